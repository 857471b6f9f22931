//! IP allowlists: CIDR networks, parsed once, matched against client addresses.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::settings::{OutsideAllowlist, SecuritySettings};

/// A network such as `192.0.2.0/24` or `2001:db8::/32`; a bare address is a /32
/// or /128.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    pub fn contains(&self, ip: IpAddr) -> bool {
        // An IPv4 client seen on an IPv6 socket (::ffff:a.b.c.d) is that IPv4 client.
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.network, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                prefix_eq(u32::from(net).into(), u32::from(ip).into(), self.prefix, 32)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                prefix_eq(u128::from(net), u128::from(ip), self.prefix, 128)
            }
            _ => false,
        }
    }
}

fn prefix_eq(net: u128, ip: u128, prefix: u8, bits: u8) -> bool {
    let host_bits = u32::from(bits - prefix);
    net.checked_shr(host_bits).unwrap_or(0) == ip.checked_shr(host_bits).unwrap_or(0)
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text, None),
        };
        let network: IpAddr = addr
            .trim()
            .parse()
            .map_err(|_| format!("{text:?} is not an IP address or CIDR network"))?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{text:?}: the prefix length must be 0 to {max}"))?,
        };
        Ok(Cidr { network, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

impl Serialize for Cidr {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// What the allowlist says about a login from `ip`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpDecision {
    Allowed,
    /// Outside the list, and the tenant allows that only with a second factor.
    SecondFactorOnly,
    Refused,
}

/// Checks `ip` against the tenant's allowlist; `None` (address unknown) counts
/// as outside a non-empty list.
pub fn check_ip(settings: &SecuritySettings, ip: Option<IpAddr>) -> IpDecision {
    if settings.ip_allowlist.is_empty()
        || ip.is_some_and(|ip| settings.ip_allowlist.iter().any(|n| n.contains(ip)))
    {
        return IpDecision::Allowed;
    }
    match settings.outside_allowlist {
        OutsideAllowlist::Refuse => IpDecision::Refused,
        OutsideAllowlist::SecondFactor => IpDecision::SecondFactorOnly,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidr(text: &str) -> Cidr {
        text.parse().expect("valid CIDR")
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("valid IP")
    }

    #[test]
    fn networks_contain_exactly_their_addresses() {
        assert!(cidr("192.0.2.0/24").contains(ip("192.0.2.255")));
        assert!(!cidr("192.0.2.0/24").contains(ip("192.0.3.0")));
        assert!(cidr("10.0.0.0/8").contains(ip("::ffff:10.1.2.3")));
        assert!(cidr("2001:db8::/32").contains(ip("2001:db8:ffff::1")));
        assert!(!cidr("2001:db8::/32").contains(ip("2001:db9::1")));
        assert!(cidr("0.0.0.0/0").contains(ip("203.0.113.9")));
        assert!(cidr("203.0.113.9").contains(ip("203.0.113.9")));
        assert!(!cidr("203.0.113.9").contains(ip("203.0.113.8")));
        assert!(!cidr("192.0.2.0/24").contains(ip("2001:db8::1")));
    }

    #[test]
    fn bad_networks_are_refused_with_the_reason() {
        assert!("192.0.2.0/33".parse::<Cidr>().is_err());
        assert!("nonsense/8".parse::<Cidr>().is_err());
        assert_eq!(cidr("192.0.2.0/24").to_string(), "192.0.2.0/24");
    }

    #[test]
    fn the_allowlist_refuses_or_asks_for_a_second_factor_outside_its_networks() {
        let mut settings = SecuritySettings::default();
        assert_eq!(check_ip(&settings, None), IpDecision::Allowed, "no list");
        settings.ip_allowlist = vec![cidr("192.0.2.0/24")];
        assert_eq!(
            check_ip(&settings, Some(ip("192.0.2.7"))),
            IpDecision::Allowed
        );
        assert_eq!(
            check_ip(&settings, Some(ip("198.51.100.1"))),
            IpDecision::Refused
        );
        assert_eq!(check_ip(&settings, None), IpDecision::Refused);
        settings.outside_allowlist = OutsideAllowlist::SecondFactor;
        assert_eq!(
            check_ip(&settings, Some(ip("198.51.100.1"))),
            IpDecision::SecondFactorOnly
        );
    }
}
