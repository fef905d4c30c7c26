//! IPv4 subnets: parsing `10.88.0.0/24`, the gateway, the addresses a sandbox may take.

use crate::Error;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

/// An IPv4 subnet, `address/prefix`, kept with its host part cleared.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Ipv4Cidr {
    network: Ipv4Addr,
    prefix: u8,
}

impl Ipv4Cidr {
    /// A subnet from an address in it and a prefix length (8 to 30: room for a gateway and
    /// at least one sandbox).
    pub fn new(addr: Ipv4Addr, prefix: u8) -> Result<Ipv4Cidr, Error> {
        if !(8..=30).contains(&prefix) {
            return Err(Error::Cidr {
                cidr: format!("{addr}/{prefix}"),
                reason:
                    "the prefix must be between /8 and /30 (a gateway and at least one sandbox)",
            });
        }
        let mask = u32::MAX << (32 - prefix);
        let net = Ipv4Addr::from(u32::from(addr) & mask);
        if net.octets()[0] == 0 || net.is_loopback() || u32::from(net) >= 0xe000_0000 {
            return Err(Error::Cidr {
                cidr: format!("{addr}/{prefix}"),
                reason: "not a unicast subnet (0/8, 127/8 and 224.0.0.0 and above are not)",
            });
        }
        Ok(Ipv4Cidr {
            network: Ipv4Addr::from(u32::from(addr) & mask),
            prefix,
        })
    }

    /// The network address (host part zero).
    pub fn network(&self) -> Ipv4Addr {
        self.network
    }

    /// The prefix length.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// The first host address, which the bridge takes as the sandboxes' gateway.
    pub fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network) + 1)
    }

    /// The broadcast address.
    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network) | !(u32::MAX << (32 - self.prefix)))
    }

    /// Whether `addr` is in the subnet.
    pub fn contains(&self, addr: Ipv4Addr) -> bool {
        let mask = u32::MAX << (32 - self.prefix);
        u32::from(addr) & mask == u32::from(self.network)
    }

    /// Whether `addr` may be given to a sandbox: in the subnet, neither the network nor the
    /// broadcast address, nor the gateway.
    pub fn assignable(&self, addr: Ipv4Addr) -> bool {
        self.contains(addr)
            && addr != self.network
            && addr != self.broadcast()
            && addr != self.gateway()
    }

    /// How many sandboxes the subnet has room for.
    pub fn capacity(&self) -> u32 {
        (1u32 << (32 - self.prefix)) - 3
    }
}

impl fmt::Display for Ipv4Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

impl FromStr for Ipv4Cidr {
    type Err = Error;

    fn from_str(s: &str) -> Result<Ipv4Cidr, Error> {
        let bad = |reason| Error::Cidr {
            cidr: s.to_string(),
            reason,
        };
        let (a, p) = s
            .split_once('/')
            .ok_or_else(|| bad("expected ADDRESS/PREFIX"))?;
        let addr: Ipv4Addr = a.parse().map_err(|_| bad("not an IPv4 address"))?;
        let prefix: u8 = p.parse().map_err(|_| bad("the prefix is not a number"))?;
        Ipv4Cidr::new(addr, prefix)
    }
}

impl TryFrom<String> for Ipv4Cidr {
    type Error = Error;
    fn try_from(s: String) -> Result<Ipv4Cidr, Error> {
        s.parse()
    }
}

impl From<Ipv4Cidr> for String {
    fn from(c: Ipv4Cidr) -> String {
        c.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_normalises() {
        let c: Ipv4Cidr = "10.88.3.7/24".parse().unwrap();
        assert_eq!(c.to_string(), "10.88.3.0/24");
        assert_eq!(c.gateway(), Ipv4Addr::new(10, 88, 3, 1));
        assert_eq!(c.broadcast(), Ipv4Addr::new(10, 88, 3, 255));
        assert_eq!(c.capacity(), 253);
        assert!(c.assignable(Ipv4Addr::new(10, 88, 3, 2)));
        assert!(!c.assignable(c.gateway()));
        assert!(!c.assignable(Ipv4Addr::new(10, 88, 4, 2)));
    }

    #[test]
    fn bad_cidrs_are_typed_errors() {
        for s in [
            "10.0.0.0",
            "10.0.0/24",
            "10.0.0.0/x",
            "10.0.0.0/31",
            "10.0.0.0/4",
        ] {
            let e = s.parse::<Ipv4Cidr>().unwrap_err();
            assert!(matches!(e, Error::Cidr { .. }), "{s}: {e}");
            assert!(e.to_string().contains(s), "{e}");
        }
    }
}
