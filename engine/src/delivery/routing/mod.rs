//! Where to deliver mail for a recipient domain: a configured route if one
//! matches, else the domain's MX hosts from DNS, cached per domain for the
//! answer's TTL.

mod cache;
mod dns;
mod table;

#[cfg(test)]
mod test_dns;
#[cfg(test)]
mod tests;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

pub use table::{RouteConfig, RouteConfigError, RouteTable, RouteTarget, WILDCARD};

use self::cache::DestinationCache;
use self::dns::Dns;
use crate::smtp::{DeliveryError, TlsMode};

/// One address to try, with the name to present and check in TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    /// The MX (or route) host name: the TLS server name (SNI) and the name the
    /// certificate must carry; the IP literal for routes given as addresses.
    pub host: String,
    pub addr: SocketAddr,
    /// Set by a route; `None` leaves the choice to the sender's default policy.
    pub tls: Option<TlsMode>,
}

/// Where DNS questions go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DnsMode {
    /// No lookups at all: unrouted domains are deferred. For tests, the demo
    /// and load tests, so nothing can leave the machine by accident.
    Disabled,
    /// The operating system's resolver configuration (`/etc/resolv.conf`).
    System,
    /// These servers only (UDP, TCP for truncated answers), e.g. a test zone on
    /// a loopback port or a local validating resolver.
    Servers(Vec<SocketAddr>),
}

/// Tuning for lookups and the answer cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoutingSettings {
    /// Domains held at most; the cache evicts when full. Zero disables it.
    pub cache_capacity: usize,
    /// How long "no such domain", "null MX" and "no address" are remembered;
    /// a campaign hitting a dead domain must not ask DNS once per recipient.
    pub negative_ttl: Duration,
    /// How long a transient failure (SERVFAIL, timeout) is remembered: long
    /// enough to spare a struggling DNS server a stampede, short enough that
    /// the next retry asks again.
    pub failure_ttl: Duration,
    /// How long one DNS request may take before it is retried (hickory makes
    /// two attempts per server) and finally counted as a transient failure.
    pub lookup_timeout: Duration,
}

impl Default for RoutingSettings {
    fn default() -> Self {
        Self {
            cache_capacity: 10_000,
            negative_ttl: Duration::from_secs(60),
            failure_ttl: Duration::from_secs(5),
            lookup_timeout: Duration::from_secs(5),
        }
    }
}

/// The router cannot be built from this configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RoutingSetupError {
    #[error("DNS resolver: {0}")]
    Resolver(String),
    /// A route names a host while DNS is disabled: it could never be resolved,
    /// so every message on it would be deferred forever.
    #[error("route {domain:?} names host {host:?}, which needs DNS, but DNS lookups are disabled")]
    NameRouteWithoutDns { domain: String, host: String },
}

/// Decides where mail for a domain goes. Shared by all tenants (`Arc<Router>`):
/// the answer does not depend on who sends.
#[derive(Debug)]
pub struct Router {
    routes: RouteTable,
    /// `None` when DNS is disabled; then only routes can answer.
    dns: Option<Dns>,
    cache: DestinationCache,
    settings: RoutingSettings,
}

impl Router {
    /// A router with the default settings.
    pub fn new(routes: RouteTable, dns: DnsMode) -> Result<Self, RoutingSetupError> {
        Self::with_settings(routes, dns, RoutingSettings::default())
    }

    pub fn with_settings(
        routes: RouteTable,
        dns: DnsMode,
        settings: RoutingSettings,
    ) -> Result<Self, RoutingSetupError> {
        let dns = Dns::new(&dns, settings.lookup_timeout)?;
        if dns.is_none() {
            let by_name = routes
                .iter()
                .find(|(_, target)| literal_address(&target.host).is_none());
            if let Some((domain, target)) = by_name {
                return Err(RoutingSetupError::NameRouteWithoutDns {
                    domain: domain.to_owned(),
                    host: target.host.clone(),
                });
            }
        }
        Ok(Self {
            routes,
            dns,
            cache: DestinationCache::new(settings.cache_capacity),
            settings,
        })
    }

    pub fn routes(&self) -> &RouteTable {
        &self.routes
    }

    /// Addresses to try for mail to `domain`, best first. `Permanent` means the
    /// domain cannot receive mail (bounce); `Transient` means ask again later.
    pub async fn resolve(&self, domain: &str) -> Result<Vec<Destination>, DeliveryError> {
        let domain = table::normalize_domain(domain);
        if let Some(target) = self.routes.lookup(&domain) {
            return self.resolve_route(target).await;
        }
        let Some(dns) = &self.dns else {
            return Err(DeliveryError::transient(
                "no route and DNS lookups are disabled",
            ));
        };
        if let Some(cached) = self.cache.get(&domain, Instant::now()) {
            return cached;
        }
        let outcome = dns.mail_destinations(&domain).await;
        let now = Instant::now();
        let (outcome, expires) = match outcome {
            // A partial answer (some MX hosts failed transiently) is kept only
            // as long as a failure, so the missing hosts are retried soon.
            Ok(resolved) if !resolved.complete => (
                Ok(resolved.destinations),
                resolved.valid_until.min(now + self.settings.failure_ttl),
            ),
            Ok(resolved) => (Ok(resolved.destinations), resolved.valid_until),
            Err(e @ DeliveryError::Permanent { .. }) => (Err(e), now + self.settings.negative_ttl),
            Err(e @ DeliveryError::Transient { .. }) => (Err(e), now + self.settings.failure_ttl),
        };
        self.cache.insert(domain, outcome.clone(), expires, now);
        outcome
    }

    /// A route's destinations. Failures are transient whatever DNS said: a
    /// route is the operator's promise that the host exists, so a broken one
    /// must hold mail back, not bounce it.
    async fn resolve_route(&self, target: &RouteTarget) -> Result<Vec<Destination>, DeliveryError> {
        let ips = match (literal_address(&target.host), &self.dns) {
            (Some(ip), _) => vec![ip],
            (None, Some(dns)) => {
                let (ips, _) = dns.route_addresses(&target.host).await.map_err(|e| {
                    DeliveryError::transient(format!("route host {}: {e}", target.host))
                })?;
                ips
            }
            // Router::new refuses name routes without DNS.
            (None, None) => {
                return Err(DeliveryError::transient(format!(
                    "route host {} needs DNS, which is disabled",
                    target.host
                )));
            }
        };
        Ok(ips
            .into_iter()
            .map(|ip| Destination {
                host: target.host.clone(),
                addr: SocketAddr::new(ip, target.port),
                tls: target.tls,
            })
            .collect())
    }
}

/// An IP literal, or `localhost`, which RFC 6761 reserves for loopback and
/// which therefore needs no DNS even when lookups are disabled.
fn literal_address(host: &str) -> Option<IpAddr> {
    if host.eq_ignore_ascii_case("localhost") {
        return Some(IpAddr::V4(Ipv4Addr::LOCALHOST));
    }
    host.parse().ok()
}
