//! The `[send]` and `[metrics]` sections: how campaigns are dispatched, rendered
//! and delivered, and where metrics are served.

use std::path::PathBuf;

use serde::{Deserialize, Deserializer, Serialize};

use super::Duration;

/// Dispatch, rendering and SMTP delivery.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SendConfig {
    /// The name announced in EHLO; receiving servers check it against our reverse
    /// DNS, so production sets the sending host's public name.
    pub ehlo_name: String,
    /// Domain of generated Message-IDs; empty means `ehlo_name`.
    pub message_id_domain: String,
    /// Threads rendering and signing messages; 0 means one per core.
    pub render_threads: usize,
    /// Recipients per campaign between dispatch and a stored outcome. Bounds
    /// memory, and is the most messages a crash can cause to be sent twice.
    pub max_in_flight: usize,
    /// Recipients read per store query.
    pub batch_size: u32,
    /// How often a campaign with nothing due looks again.
    pub poll_interval: Duration,
    /// Recipients waiting per destination domain; past it a domain is skipped
    /// for now, so a slow domain never holds up the others.
    pub queue_capacity: usize,
    /// STARTTLS towards receiving servers: "disabled", "opportunistic" or "required".
    pub tls: String,
    /// Recipient domains whose mail must go over STARTTLS with a verified
    /// certificate (deferred otherwise), whatever `tls` says.
    pub tls_required_domains: Vec<String>,
    /// A session is closed and a new one opened after this many messages.
    pub max_messages_per_connection: u32,
    /// An idle session is closed after this long.
    pub idle_timeout: Duration,
    /// Ceiling on open sessions per destination domain, shared by all tenants.
    pub max_connections_per_domain: u32,
    /// Ceiling on messages per second per destination domain; 0 means none.
    pub max_rate_per_domain: f64,
    /// Where MX lookups go: "system" (resolv.conf) or "disabled" (routes only:
    /// nothing can leave the machine unless a route says so).
    pub dns: String,
    /// Outcomes per store write (group commit).
    pub tracking_batch: usize,
    /// Longest an outcome waits before it is written.
    pub tracking_flush: Duration,
    pub retry: RetryConfig,
    pub timeouts: TimeoutConfig,
    /// Fixed routes that override MX lookups: domain (or "*") to host:port.
    /// Written as a list of tables, or in the environment as
    /// `"d1.example=127.0.0.1:2525,*=127.0.0.1:2526"`.
    #[serde(deserialize_with = "routes_from_table_or_string")]
    pub routes: Vec<RouteEntry>,
    /// DKIM keys per From domain.
    pub dkim: Vec<DkimEntry>,
    /// Per-domain ceilings that differ from the defaults above.
    pub domain_limits: Vec<DomainLimitEntry>,
}

impl Default for SendConfig {
    fn default() -> Self {
        Self {
            ehlo_name: "localhost".to_owned(),
            message_id_domain: String::new(),
            render_threads: 0,
            max_in_flight: 2000,
            batch_size: 500,
            poll_interval: Duration::from_secs(1),
            queue_capacity: 256,
            tls: "opportunistic".to_owned(),
            tls_required_domains: Vec::new(),
            max_messages_per_connection: 1000,
            idle_timeout: Duration::from_secs(5),
            max_connections_per_domain: 10,
            max_rate_per_domain: 0.0,
            dns: "system".to_owned(),
            tracking_batch: 512,
            tracking_flush: Duration::from_millis(50),
            retry: RetryConfig::default(),
            timeouts: TimeoutConfig::default(),
            routes: Vec::new(),
            dkim: Vec::new(),
            domain_limits: Vec::new(),
        }
    }
}

/// When deferred messages are tried again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetryConfig {
    /// Delay before the second attempt; each later delay doubles.
    pub first_delay: Duration,
    /// No delay is longer than this.
    pub max_delay: Duration,
    /// A message failing for longer than this since its first attempt fails.
    pub max_age: Duration,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            first_delay: Duration::from_secs(60),
            max_delay: Duration::from_secs(3600),
            max_age: Duration::from_secs(3 * 24 * 3600),
        }
    }
}

impl RetryConfig {
    /// The policy the engine retries by: these settings, the policy's own
    /// doubling factor and jitter. One place, so the load harness checks
    /// retries against what the engine does.
    pub fn policy(&self) -> crate::smtp::RetryPolicy {
        crate::smtp::RetryPolicy {
            first_delay: self.first_delay.as_std(),
            max_delay: self.max_delay.as_std(),
            max_age: self.max_age.as_std(),
            ..crate::smtp::RetryPolicy::default()
        }
    }
}

/// SMTP time limits per phase (RFC 5321 4.5.3.2 defaults).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TimeoutConfig {
    pub connect: Duration,
    pub greeting: Duration,
    pub mail: Duration,
    pub rcpt: Duration,
    pub data_init: Duration,
    pub data_end: Duration,
}

impl Default for TimeoutConfig {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(30),
            greeting: Duration::from_secs(300),
            mail: Duration::from_secs(300),
            rcpt: Duration::from_secs(300),
            data_init: Duration::from_secs(120),
            data_end: Duration::from_secs(600),
        }
    }
}

/// One fixed route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteEntry {
    /// A recipient domain, or "*" for every domain without its own route.
    pub domain: String,
    /// "host:port".
    pub target: String,
    /// Overrides `send.tls` for this route.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<String>,
}

impl RouteEntry {
    pub fn to_route_config(&self) -> crate::delivery::RouteConfig {
        crate::delivery::RouteConfig {
            domain: self.domain.clone(),
            target: self.target.clone(),
            tls: self.tls.clone(),
        }
    }
}

/// One DKIM key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DkimEntry {
    /// Messages whose From address is in this domain are signed (`d=`).
    pub domain: String,
    /// `s=`: the public key is published at `<selector>._domainkey.<domain>`.
    pub selector: String,
    /// PEM file: RSA (PKCS#1 or PKCS#8) or Ed25519 (PKCS#8).
    pub private_key_file: PathBuf,
}

/// Limits for one destination domain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DomainLimitEntry {
    pub domain: String,
    pub max_connections: u32,
    /// Messages per second; 0 means none.
    #[serde(default)]
    pub max_rate: f64,
}

/// Where metrics are served.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// Address of the Prometheus endpoint (`/metrics`); empty disables it.
    pub listen: String,
    /// Domains that get their own label value; all others are counted as
    /// "other", so label cardinality stays bounded.
    pub top_domains: Vec<String>,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:9464".to_owned(),
            top_domains: [
                "gmail.com",
                "googlemail.com",
                "outlook.com",
                "hotmail.com",
                "yahoo.com",
                "icloud.com",
                "gmx.de",
                "web.de",
                "t-online.de",
                "orange.fr",
            ]
            .map(str::to_owned)
            .to_vec(),
        }
    }
}

/// Routes as a TOML list of tables, or as one string (the only form an
/// environment variable can carry): `domain=host:port[,domain=host:port…]`.
fn routes_from_table_or_string<'de, D: Deserializer<'de>>(
    de: D,
) -> Result<Vec<RouteEntry>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Routes {
        List(Vec<RouteEntry>),
        Text(String),
    }
    match Routes::deserialize(de)? {
        Routes::List(list) => Ok(list),
        Routes::Text(text) => parse_route_list(&text).map_err(serde::de::Error::custom),
    }
}

/// Parses `domain=host:port` pairs separated by commas.
pub fn parse_route_list(text: &str) -> Result<Vec<RouteEntry>, String> {
    text.split(',')
        .map(str::trim)
        .filter(|part| !part.is_empty())
        .map(|part| {
            let (domain, target) = part
                .split_once('=')
                .ok_or_else(|| format!("route {part:?} is not domain=host:port"))?;
            Ok(RouteEntry {
                domain: domain.trim().to_owned(),
                target: target.trim().to_owned(),
                tls: None,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_can_be_written_as_one_string() {
        let routes =
            parse_route_list("d1.example=127.0.0.1:2525, *=127.0.0.1:2526").expect("valid");
        assert_eq!(routes.len(), 2);
        assert_eq!(
            (routes[1].domain.as_str(), routes[1].target.as_str()),
            ("*", "127.0.0.1:2526")
        );
        assert!(parse_route_list("nonsense").is_err());
    }

    #[test]
    fn the_retry_policy_takes_the_configured_delays_and_the_engines_backoff() {
        let config = RetryConfig {
            first_delay: Duration::from_secs(5),
            max_delay: Duration::from_secs(40),
            max_age: Duration::from_secs(3600),
        };
        let policy = config.policy();
        let delays: Vec<u64> = (1..=5).map(|k| policy.base_delay(k).as_secs()).collect();
        assert_eq!(delays, [5, 10, 20, 40, 40]);
        assert_eq!(policy.max_age, std::time::Duration::from_secs(3600));
        assert_eq!(policy.jitter, crate::smtp::RetryPolicy::default().jitter);
    }
}
