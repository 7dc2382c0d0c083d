//! Address blocks in CIDR notation (`10.0.0.0/8`, `2001:db8::/32`, or one address), for
//! `--proxy-trusted`: the sources whose PROXY header is believed.

use std::fmt;
use std::net::IpAddr;

/// An address block: every address whose first `prefix` bits are `network`'s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Parses `ADDRESS/PREFIX` or a lone address (a block of one). Host bits set below the
    /// prefix (`10.1.2.3/8`) are refused: they are usually a typo for another block.
    ///
    /// # Errors
    ///
    /// A message naming what is wrong with `text`.
    pub fn parse(text: &str) -> Result<Cidr, String> {
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text, None),
        };
        let network: IpAddr = addr
            .trim()
            .parse()
            .map_err(|_| format!("{addr:?} is not an IPv4 or IPv6 address"))?;
        let bits = match network {
            IpAddr::V4(_) => 32,
            IpAddr::V6(_) => 128,
        };
        let prefix = match prefix {
            None => bits,
            Some(p) => match p.parse::<u8>() {
                Ok(n) if n <= bits && p.bytes().all(|b| b.is_ascii_digit()) => n,
                _ => return Err(format!("prefix length {p:?} is not 0 to {bits}")),
            },
        };
        let cidr = Cidr { network, prefix };
        if cidr.masked(network) != network {
            return Err(format!(
                "{text} has bits set past its /{prefix} prefix (did you mean {}/{prefix}?)",
                cidr.masked(network)
            ));
        }
        Ok(cidr)
    }

    /// Whether `addr` is in the block. An IPv4 address seen as IPv4-mapped IPv6
    /// (`::ffff:192.0.2.1`, what a dual-stack listener reports) matches IPv4 blocks.
    pub fn contains(&self, addr: IpAddr) -> bool {
        let addr = addr.to_canonical();
        let same_family = matches!(
            (addr, self.network),
            (IpAddr::V4(_), IpAddr::V4(_)) | (IpAddr::V6(_), IpAddr::V6(_))
        );
        same_family && self.masked(addr) == self.network
    }

    /// `addr` with the bits past the prefix cleared (same family as the block).
    fn masked(&self, addr: IpAddr) -> IpAddr {
        match addr {
            IpAddr::V4(v4) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                IpAddr::V4((u32::from(v4) & mask).into())
            }
            IpAddr::V6(v6) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                IpAddr::V6((u128::from(v6) & mask).into())
            }
        }
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// Whether any block of `blocks` holds `addr`.
pub fn any_contains(blocks: &[Cidr], addr: IpAddr) -> bool {
    blocks.iter().any(|block| block.contains(addr))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn blocks_hold_what_their_prefix_says() {
        let table = [
            ("10.0.0.0/8", "10.255.1.2", true),
            ("10.0.0.0/8", "11.0.0.1", false),
            ("127.0.0.1", "127.0.0.1", true),
            ("127.0.0.1", "127.0.0.2", false),
            ("0.0.0.0/0", "203.0.113.9", true),
            ("0.0.0.0/0", "::1", false),
            ("192.168.1.0/24", "::ffff:192.168.1.77", true),
            ("2001:db8::/32", "2001:db8:ffff::1", true),
            ("2001:db8::/32", "2001:db9::1", false),
            ("::/0", "::1", true),
            ("::1/128", "::1", true),
            ("::1", "127.0.0.1", false),
        ];
        for (block, addr, want) in table {
            let cidr = Cidr::parse(block).unwrap();
            assert_eq!(cidr.contains(ip(addr)), want, "{block} holds {addr}?");
        }
    }

    #[test]
    fn bad_blocks_are_refused_with_a_reason() {
        for bad in [
            "10.0.0.0/33",
            "::/129",
            "10.0.0.0/-1",
            "10.0.0.0/+8",
            "10.0.0.0/",
            "ten/8",
            "",
            "10.1.2.3/8",
            "2001:db8::1/32",
        ] {
            assert!(Cidr::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert!(Cidr::parse("10.1.2.3/8")
            .unwrap_err()
            .contains("did you mean 10.0.0.0/8?"));
        assert_eq!(Cidr::parse("10.0.0.0/8").unwrap().to_string(), "10.0.0.0/8");
    }
}
