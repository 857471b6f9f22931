//! Judging a tracking hit: IP anonymization before anything is stored, and flags
//! for machine activity (image proxies, link scanners), which is recorded but
//! marked, because dropping it would hide real opens behind the same proxies.

use std::net::IpAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How much of a client's IP address is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Anonymization {
    /// The whole address (only where the customer has a basis to keep it).
    None,
    /// IPv4 last octet and IPv6 last 80 bits zeroed, as common analytics tools do.
    #[default]
    Truncate,
    /// No address at all.
    Drop,
}

impl Anonymization {
    pub fn apply(self, ip: IpAddr) -> Option<IpAddr> {
        match (self, ip) {
            (Anonymization::None, ip) => Some(ip),
            (Anonymization::Drop, _) => None,
            (Anonymization::Truncate, IpAddr::V4(v4)) => {
                let [a, b, c, _] = v4.octets();
                Some(IpAddr::from([a, b, c, 0]))
            }
            (Anonymization::Truncate, IpAddr::V6(v6)) => {
                let mut octets = v6.octets();
                octets[6..].fill(0);
                Some(IpAddr::from(octets))
            }
        }
    }
}

/// User agents of image proxies that fetch every image of a message on behalf of
/// the mailbox, whether or not a person opened it (Apple Mail Privacy Protection
/// presents as a bare `Mozilla/5.0`, Gmail and Yahoo name themselves).
pub fn is_image_proxy(user_agent: &str) -> bool {
    const MARKERS: &[&str] = &[
        "GoogleImageProxy",
        "YahooMailProxy",
        "ggpht.com",
        "Outlook-iOS",
    ];
    let ua = user_agent.trim();
    ua == "Mozilla/5.0" || MARKERS.iter().any(|m| ua.contains(m))
}

/// A click this soon after delivery is a security scanner following every link,
/// not a person (who has not had time to read the message).
pub fn is_link_scanner_delay(since_delivery: Duration, threshold: Duration) -> bool {
    since_delivery < threshold
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_zeroes_the_last_octet_or_the_last_80_bits() {
        let v4: IpAddr = "203.0.113.77".parse().expect("ip");
        assert_eq!(
            Anonymization::Truncate.apply(v4),
            "203.0.113.0".parse().ok()
        );
        let v6: IpAddr = "2001:db8:1:2:3:4:5:6".parse().expect("ip");
        assert_eq!(
            Anonymization::Truncate.apply(v6),
            "2001:db8:1::".parse().ok()
        );
        assert_eq!(Anonymization::Drop.apply(v4), None);
    }

    #[test]
    fn apple_and_gmail_proxies_are_recognized() {
        assert!(is_image_proxy("Mozilla/5.0"));
        assert!(is_image_proxy(
            "Mozilla/5.0 (Windows NT 5.1) (via ggpht.com GoogleImageProxy)"
        ));
        assert!(!is_image_proxy(
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_0) Firefox/120.0"
        ));
    }
}
