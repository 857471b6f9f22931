//! DNS for mail routing (RFC 5321 section 5.1) through hickory-resolver: MX
//! lookup, null MX (RFC 7505), the implicit MX fallback, and the mapping of DNS
//! outcomes onto `DeliveryError` classes (permanent only when DNS answered
//! authoritatively that there is nowhere to deliver).

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use hickory_resolver::TokioResolver;
use hickory_resolver::config::{
    ConnectionConfig, LookupIpStrategy, NameServerConfig, ResolveHosts, ResolverConfig,
};
use hickory_resolver::net::NetError;
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::{Name, RData};

use super::{Destination, DnsMode, RoutingSetupError};
use crate::smtp::DeliveryError;

/// The SMTP port of MX hosts.
const SMTP_PORT: u16 = 25;
/// At most this many MX hosts are resolved per domain, so a hostile or broken
/// zone with hundreds of MX records cannot turn one resolve into hundreds of
/// lookups; senders rarely get past the second host anyway.
const MAX_MX_HOSTS: usize = 10;

/// Destinations found through DNS and how long the answer holds.
#[derive(Debug)]
pub(super) struct Resolved {
    pub(super) destinations: Vec<Destination>,
    /// The earliest expiry of the records used (MX and address records).
    pub(super) valid_until: Instant,
    /// False when some MX hosts could not be resolved for a transient reason, so
    /// the answer should be cached only briefly and those hosts retried.
    pub(super) complete: bool,
}

/// Addresses of one host name.
struct Addresses {
    ips: Vec<IpAddr>,
    valid_until: Instant,
}

/// A configured resolver; exists only when DNS lookups are enabled.
#[derive(Debug)]
pub(super) struct Dns {
    resolver: TokioResolver,
}

impl Dns {
    /// `None` for `DnsMode::Disabled`: without a resolver nothing can be looked
    /// up, which is the guarantee tests and load tests rely on.
    pub(super) fn new(
        mode: &DnsMode,
        timeout: Duration,
    ) -> Result<Option<Self>, RoutingSetupError> {
        let setup = |e: NetError| RoutingSetupError::Resolver(e.to_string());
        let mut builder = match mode {
            DnsMode::Disabled => return Ok(None),
            DnsMode::System => TokioResolver::builder_tokio().map_err(setup)?,
            DnsMode::Servers(servers) => {
                if servers.is_empty() {
                    return Err(RoutingSetupError::Resolver(
                        "DNS servers mode needs at least one server".into(),
                    ));
                }
                let config = ResolverConfig::from_name_servers(
                    servers.iter().map(|addr| name_server(*addr)).collect(),
                );
                let mut builder =
                    TokioResolver::builder_with_config(config, TokioRuntimeProvider::default());
                // Explicit servers are the whole truth (a test zone, a local
                // validating resolver); /etc/hosts must not answer instead.
                builder.options_mut().use_hosts_file = ResolveHosts::Never;
                builder
            }
        };
        // IPv4 first: many sending hosts lack IPv6 reachability or reverse DNS
        // on it, and receivers penalise the latter.
        builder.options_mut().ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
        builder.options_mut().timeout = timeout;
        let resolver = builder.build().map_err(setup)?;
        Ok(Some(Self { resolver }))
    }

    /// Where mail for `domain` goes according to DNS, best first.
    pub(super) async fn mail_destinations(&self, domain: &str) -> Result<Resolved, DeliveryError> {
        let name = fqdn(domain)?;
        match self.resolver.mx_lookup(name.clone()).await {
            Ok(lookup) => {
                let exchanges = lookup
                    .answers()
                    .iter()
                    .filter_map(|record| match &record.data {
                        RData::MX(mx) => Some((mx.preference, mx.exchange.clone())),
                        _ => None,
                    })
                    .collect::<Vec<_>>();
                if exchanges.is_empty() {
                    // Only a CNAME chain without MX at its end: no MX records.
                    return self.implicit_mx(domain, name).await;
                }
                self.mx_destinations(domain, exchanges, lookup.valid_until())
                    .await
            }
            Err(e) if e.is_nx_domain() => {
                Err(permanent(format!("{domain}: domain does not exist")))
            }
            Err(e) if e.is_no_records_found() => self.implicit_mx(domain, name).await,
            Err(e) => Err(DeliveryError::transient(format!(
                "MX lookup for {domain} failed: {e}"
            ))),
        }
    }

    /// Addresses of a configured route's host name; loopback allowed, since
    /// reaching local sinks is what routes are for.
    pub(super) async fn route_addresses(
        &self,
        host: &str,
    ) -> Result<(Vec<IpAddr>, Instant), DeliveryError> {
        let found = self.addresses(fqdn(host)?, |_| true).await?;
        Ok((found.ips, found.valid_until))
    }

    async fn mx_destinations(
        &self,
        domain: &str,
        mut exchanges: Vec<(u16, Name)>,
        mx_valid_until: Instant,
    ) -> Result<Resolved, DeliveryError> {
        if exchanges.iter().all(|(_, exchange)| exchange.is_root()) {
            return Err(permanent(format!(
                "{domain}: domain accepts no mail (null MX)"
            )));
        }
        // A null MX next to real ones is a misconfiguration (RFC 7505 section
        // 3); the real hosts are the sender-friendly reading.
        exchanges.retain(|(_, exchange)| !exchange.is_root());
        // Stable sort: equal preferences keep the server's order, which keeps
        // tests deterministic; the server already rotates them between answers.
        exchanges.sort_by_key(|(preference, _)| *preference);
        exchanges.truncate(MAX_MX_HOSTS);

        let lookups = join_all(
            exchanges
                .iter()
                .map(|(_, exchange)| self.addresses(exchange.clone(), is_usable)),
        )
        .await;

        let mut resolved = Resolved {
            destinations: Vec::new(),
            valid_until: mx_valid_until,
            complete: true,
        };
        let mut last_error = None;
        for ((_, exchange), lookup) in exchanges.iter().zip(lookups) {
            match lookup {
                Ok(found) => {
                    resolved.valid_until = resolved.valid_until.min(found.valid_until);
                    let host = host_name(exchange);
                    push_destinations(&mut resolved.destinations, &host, &found.ips);
                }
                Err(e) => {
                    resolved.complete &= matches!(e, DeliveryError::Permanent { .. });
                    last_error = Some(e);
                }
            }
        }
        if resolved.destinations.is_empty() {
            return Err(no_mx_address(domain, resolved.complete, last_error));
        }
        Ok(resolved)
    }

    /// RFC 5321 section 5.1: without MX records the domain itself is the host.
    async fn implicit_mx(&self, domain: &str, name: Name) -> Result<Resolved, DeliveryError> {
        let found = self.addresses(name, is_usable).await.map_err(|e| match e {
            DeliveryError::Permanent { .. } => permanent(format!(
                "{domain}: domain has neither MX nor address records"
            )),
            transient => transient,
        })?;
        let mut destinations = Vec::new();
        push_destinations(&mut destinations, domain, &found.ips);
        Ok(Resolved {
            destinations,
            valid_until: found.valid_until,
            complete: true,
        })
    }

    /// A and AAAA records of `name` that pass `keep`.
    async fn addresses(
        &self,
        name: Name,
        keep: fn(&IpAddr) -> bool,
    ) -> Result<Addresses, DeliveryError> {
        let host = host_name(&name);
        match self.resolver.lookup_ip(name).await {
            Ok(lookup) => {
                let ips = lookup.iter().filter(keep).collect::<Vec<_>>();
                if ips.is_empty() {
                    return Err(permanent(format!("{host}: no usable address")));
                }
                Ok(Addresses {
                    ips,
                    valid_until: lookup.valid_until(),
                })
            }
            Err(e) if e.is_nx_domain() => Err(permanent(format!("{host}: host does not exist"))),
            Err(e) if e.is_no_records_found() => {
                Err(permanent(format!("{host}: no address records")))
            }
            Err(e) => Err(DeliveryError::transient(format!(
                "address lookup for {host} failed: {e}"
            ))),
        }
    }
}

/// A UDP and a TCP connection to `addr`; the port is set on each connection
/// because hickory 0.26 keeps it there, not on the server.
fn name_server(addr: SocketAddr) -> NameServerConfig {
    let mut udp = ConnectionConfig::udp();
    udp.port = addr.port();
    // TCP is the fallback for truncated answers (large MX sets).
    let mut tcp = ConnectionConfig::tcp();
    tcp.port = addr.port();
    NameServerConfig::new(addr.ip(), true, vec![udp, tcp])
}

/// The absolute name, so resolv.conf search domains are never appended to a
/// recipient domain (which would route `example.com` to `example.com.corp`).
fn fqdn(domain: &str) -> Result<Name, DeliveryError> {
    let mut name = Name::from_utf8(domain)
        .map_err(|e| permanent(format!("{domain}: not a valid domain name ({e})")))?;
    name.set_fqdn(true);
    Ok(name)
}

/// The name as TLS and logs want it: ASCII, lower case, no trailing dot.
fn host_name(name: &Name) -> String {
    name.to_ascii().trim_end_matches('.').to_ascii_lowercase()
}

/// Loopback, unspecified and multicast addresses from DNS are never mail hosts;
/// following them would let any recipient domain point our sender at services
/// on this machine. Configured routes are the way to reach loopback.
fn is_usable(ip: &IpAddr) -> bool {
    !(ip.is_loopback() || ip.is_unspecified() || ip.is_multicast())
}

fn push_destinations(destinations: &mut Vec<Destination>, host: &str, ips: &[IpAddr]) {
    destinations.extend(ips.iter().map(|ip| Destination {
        host: host.to_owned(),
        addr: SocketAddr::new(*ip, SMTP_PORT),
        tls: None,
    }));
}

fn no_mx_address(domain: &str, all_permanent: bool, last: Option<DeliveryError>) -> DeliveryError {
    let detail = last.map(|e| e.to_string()).unwrap_or_default();
    if all_permanent {
        permanent(format!("{domain}: no MX host has an address ({detail})"))
    } else {
        DeliveryError::transient(format!(
            "{domain}: MX hosts could not be resolved ({detail})"
        ))
    }
}

pub(super) fn permanent(reason: String) -> DeliveryError {
    DeliveryError::Permanent {
        reason,
        reply: None,
    }
}
