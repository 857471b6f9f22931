//! Configured routes: recipient domain (or `*`) → a fixed `host:port`, which is
//! how tests, the demo and load tests reach loopback sinks, and how an operator
//! sends a domain through a smarthost instead of its MX.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::smtp::TlsMode;

/// The domain pattern that matches every domain without an exact route.
pub const WILDCARD: &str = "*";

/// One route as written in the configuration, e.g.
/// `{ domain = "d1.example", target = "127.0.0.1:2525", tls = "disabled" }`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// A domain (matched case-insensitively) or `*`.
    pub domain: String,
    /// `host:port`; IPv6 literals in brackets (`[::1]:2525`).
    pub target: String,
    /// `"disabled"`, `"opportunistic"` or `"required"`; absent means the
    /// sender's default policy applies.
    #[serde(default)]
    pub tls: Option<String>,
}

impl RouteConfig {
    pub fn new(domain: impl Into<String>, target: impl Into<String>) -> Self {
        Self {
            domain: domain.into(),
            target: target.into(),
            tls: None,
        }
    }
}

/// Where a routed domain's mail goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteTarget {
    /// An IP literal or a host name; a name is resolved when the route is used.
    pub host: String,
    pub port: u16,
    /// `None` leaves the choice to the sender's default policy.
    pub tls: Option<TlsMode>,
}

/// A configuration entry that cannot be used; names the entry so the operator
/// can find it in a file with many routes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("route {domain:?} = {target:?}: {reason}")]
pub struct RouteConfigError {
    pub domain: String,
    pub target: String,
    pub reason: String,
}

/// All configured routes, looked up by recipient domain.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouteTable {
    /// Keyed by the lower-cased domain without a trailing dot, so lookups need
    /// only normalise the query.
    exact: HashMap<String, RouteTarget>,
    /// The `*` route, used when no exact route matches.
    wildcard: Option<RouteTarget>,
}

impl RouteTable {
    /// An empty table: every domain goes through DNS.
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds the table from configuration entries; a malformed or duplicated
    /// entry is an error rather than silently ignored, because a lost route
    /// would send test mail to real MX hosts.
    pub fn from_config(entries: &[RouteConfig]) -> Result<Self, RouteConfigError> {
        let mut table = Self::new();
        for entry in entries {
            let error = |reason: &str| RouteConfigError {
                domain: entry.domain.clone(),
                target: entry.target.clone(),
                reason: reason.to_owned(),
            };
            let domain = normalize_pattern(&entry.domain).map_err(&error)?;
            let (host, port) = parse_target(&entry.target).map_err(&error)?;
            let tls = entry
                .tls
                .as_deref()
                .map(parse_tls)
                .transpose()
                .map_err(&error)?;
            let target = RouteTarget { host, port, tls };
            if !table.insert(&domain, target) {
                return Err(error("the domain has more than one route"));
            }
        }
        Ok(table)
    }

    /// Adds a route; `false` when `domain` already has one (the old route is
    /// kept). `domain` is a domain or `*`.
    pub fn insert(&mut self, domain: &str, target: RouteTarget) -> bool {
        let domain = normalize_domain(domain);
        if domain == WILDCARD {
            if self.wildcard.is_some() {
                return false;
            }
            self.wildcard = Some(target);
            return true;
        }
        match self.exact.entry(domain) {
            Entry::Occupied(_) => false,
            Entry::Vacant(slot) => {
                slot.insert(target);
                true
            }
        }
    }

    /// The route for `domain`: an exact match first, else the `*` route.
    pub fn lookup(&self, domain: &str) -> Option<&RouteTarget> {
        self.exact
            .get(&normalize_domain(domain))
            .or(self.wildcard.as_ref())
    }

    pub fn is_empty(&self) -> bool {
        self.exact.is_empty() && self.wildcard.is_none()
    }

    /// Every route as (domain or `*`, target), for start-up checks and logs.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &RouteTarget)> {
        self.exact
            .iter()
            .map(|(domain, target)| (domain.as_str(), target))
            .chain(self.wildcard.iter().map(|target| (WILDCARD, target)))
    }
}

/// Lower case without a trailing dot: `Example.COM.` and `example.com` are the
/// same domain.
pub(super) fn normalize_domain(domain: &str) -> String {
    domain.trim().trim_end_matches('.').to_ascii_lowercase()
}

fn normalize_pattern(domain: &str) -> Result<String, &'static str> {
    let domain = normalize_domain(domain);
    if domain.is_empty() {
        return Err("the domain is empty");
    }
    if domain != WILDCARD && !domain.chars().all(is_name_char) {
        return Err("the domain must be a domain name or \"*\"");
    }
    Ok(domain)
}

/// Splits `host:port`; IPv6 literals need brackets because their colons would
/// make the port ambiguous.
fn parse_target(target: &str) -> Result<(String, u16), &'static str> {
    let target = target.trim();
    let (host, port) = if let Some(rest) = target.strip_prefix('[') {
        let (host, port) = rest
            .split_once("]:")
            .ok_or("an IPv6 target must look like [::1]:2525")?;
        host.parse::<std::net::Ipv6Addr>()
            .map_err(|_| "the bracketed host is not an IPv6 address")?;
        (host, port)
    } else {
        let (host, port) = target
            .rsplit_once(':')
            .ok_or("the target must be host:port")?;
        if host.contains(':') {
            return Err("an IPv6 target must look like [::1]:2525");
        }
        if host.is_empty() || !(host.parse::<IpAddr>().is_ok() || host.chars().all(is_name_char)) {
            return Err("the host must be an IP address or a host name");
        }
        (host, port)
    };
    let port = port
        .parse::<u16>()
        .map_err(|_| "the port must be a number from 1 to 65535")?;
    if port == 0 {
        return Err("the port must be a number from 1 to 65535");
    }
    Ok((host.trim_end_matches('.').to_ascii_lowercase(), port))
}

fn parse_tls(value: &str) -> Result<TlsMode, &'static str> {
    value
        .trim()
        .to_ascii_lowercase()
        .parse()
        .map_err(|_| "tls must be \"disabled\", \"opportunistic\" or \"required\"")
}

/// Characters of an ASCII (A-label) domain name; `_` appears in real host
/// names even though RFC 952 forbids it.
fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(domain: &str, target: &str, tls: Option<&str>) -> RouteConfig {
        RouteConfig {
            domain: domain.into(),
            target: target.into(),
            tls: tls.map(Into::into),
        }
    }

    fn table(entries: &[RouteConfig]) -> RouteTable {
        RouteTable::from_config(entries).expect("valid routes")
    }

    #[test]
    fn an_exact_route_beats_the_wildcard() {
        let routes = table(&[
            route("*", "127.0.0.1:2600", None),
            route("d1.example", "127.0.0.1:2525", None),
        ]);

        assert_eq!(routes.lookup("d1.example").map(|t| t.port), Some(2525));
        assert_eq!(routes.lookup("other.example").map(|t| t.port), Some(2600));
    }

    #[test]
    fn domains_match_case_insensitively_and_ignore_a_trailing_dot() {
        let routes = table(&[route("D1.Example.", "127.0.0.1:2525", None)]);

        assert!(routes.lookup("d1.example").is_some());
        assert!(routes.lookup("D1.EXAMPLE.").is_some());
        assert!(routes.lookup("d2.example").is_none());
    }

    #[test]
    fn targets_parse_ipv4_ipv6_names_and_tls_modes() {
        let routes = table(&[
            route("a.example", "127.0.0.1:2525", Some("disabled")),
            route("b.example", "[::1]:2526", Some("Required")),
            route("c.example", "Sink.Local:25", None),
        ]);

        let a = routes.lookup("a.example").expect("a");
        assert_eq!(
            (a.host.as_str(), a.port, a.tls),
            ("127.0.0.1", 2525, Some(TlsMode::Disabled))
        );
        let b = routes.lookup("b.example").expect("b");
        assert_eq!(
            (b.host.as_str(), b.port, b.tls),
            ("::1", 2526, Some(TlsMode::Required))
        );
        let c = routes.lookup("c.example").expect("c");
        assert_eq!((c.host.as_str(), c.port, c.tls), ("sink.local", 25, None));
    }

    #[test]
    fn a_malformed_route_is_rejected_with_the_entry_named() {
        let bad = [
            route("d1.example", "127.0.0.1", None),
            route("d1.example", "127.0.0.1:0", None),
            route("d1.example", "127.0.0.1:99999", None),
            route("d1.example", "::1:25", None),
            route("d1.example", ":25", None),
            route("", "127.0.0.1:25", None),
            route("bad domain", "127.0.0.1:25", None),
            route("d1.example", "127.0.0.1:25", Some("sometimes")),
        ];
        for entry in bad {
            let err = RouteTable::from_config(std::slice::from_ref(&entry))
                .expect_err(&format!("{entry:?} must be rejected"));
            assert_eq!(
                (err.domain.as_str(), err.target.as_str()),
                (entry.domain.as_str(), entry.target.as_str())
            );
            assert!(
                err.to_string().contains(&format!("{:?}", entry.target)),
                "{err}"
            );
        }
    }

    #[test]
    fn a_domain_routed_twice_is_rejected() {
        let err = RouteTable::from_config(&[
            route("d1.example", "127.0.0.1:2525", None),
            route("D1.example", "127.0.0.1:2526", None),
        ])
        .expect_err("duplicate");

        assert!(err.reason.contains("more than one route"), "{err}");
    }

    #[test]
    fn routes_deserialize_from_toml() {
        #[derive(Deserialize)]
        struct File {
            routes: Vec<RouteConfig>,
        }
        let file: File = toml::from_str(
            r#"routes = [
                { domain = "d1.example", target = "127.0.0.1:2525" },
                { domain = "*", target = "127.0.0.1:2600", tls = "disabled" },
            ]"#,
        )
        .expect("toml");

        let routes = table(&file.routes);
        assert_eq!(
            routes.lookup("x.example").and_then(|t| t.tls),
            Some(TlsMode::Disabled)
        );
    }

    proptest::proptest! {
        #[test]
        fn any_ipv4_target_round_trips(a: u8, b: u8, c: u8, d: u8, port in 1u16..) {
            let target = format!("{a}.{b}.{c}.{d}:{port}");
            let routes = table(&[route("p.example", &target, None)]);
            let found = routes.lookup("p.example").expect("route");
            proptest::prop_assert_eq!(format!("{}:{}", found.host, found.port), target);
        }
    }
}
