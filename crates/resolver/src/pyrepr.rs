//! Python's `repr` of strings and socket addresses, as the tutorial prints them.

use std::fmt;
use std::net::{Ipv6Addr, SocketAddr};

/// Python's `repr` of a socket address: `('127.0.0.1', 48437)` for IPv4, and
/// `('::1', 48437, 0, 0)` for IPv6 (host, port, flowinfo, scope id).
///
/// The host is written as glibc's `inet_ntop` writes it, which is what Python shows (for
/// example `::1.2.3.4` for an IPv4-compatible address); the IPv6 scope is shown as the number
/// in the fourth field, not as a `%` suffix.
///
/// # Examples
///
/// ```
/// use resolver::PyAddr;
/// let v4: std::net::SocketAddr = "127.0.0.1:48437".parse().unwrap();
/// assert_eq!(PyAddr(&v4).to_string(), "('127.0.0.1', 48437)");
/// let v6: std::net::SocketAddr = "[::1]:48437".parse().unwrap();
/// assert_eq!(PyAddr(&v6).to_string(), "('::1', 48437, 0, 0)");
/// ```
#[derive(Debug, Clone, Copy)]
pub struct PyAddr<'a>(pub &'a SocketAddr);

impl fmt::Display for PyAddr<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            SocketAddr::V4(a) => write!(f, "('{}', {})", a.ip(), a.port()),
            SocketAddr::V6(a) => write!(
                f,
                "('{}', {}, {}, {})",
                ipv6_text(a.ip()),
                a.port(),
                a.flowinfo(),
                a.scope_id()
            ),
        }
    }
}

/// An IPv6 address as glibc's `inet_ntop` writes it.
///
/// Rust's `Display` agrees with glibc (RFC 5952: longest run of zero groups compressed, the first
/// on a tie, never a single group, IPv4-mapped addresses as `::ffff:a.b.c.d`) except for
/// IPv4-compatible addresses (`::a.b.c.d`), which glibc still writes in dotted form.
pub fn ipv6_text(ip: &Ipv6Addr) -> String {
    let seg = ip.segments();
    // glibc: the longest zero run starts at 0 and is 6 groups long (so group 6 is not zero).
    if seg[..6].iter().all(|&s| s == 0) && seg[6] != 0 {
        let o = ip.octets();
        return format!("::{}.{}.{}.{}", o[12], o[13], o[14], o[15]);
    }
    ip.to_string()
}

/// Python's `repr` of a `str`: single quotes unless the text holds a single quote and no double
/// quote, with Python's escapes.
///
/// # Examples
///
/// ```
/// assert_eq!(resolver::py_str("localhost"), "'localhost'");
/// assert_eq!(resolver::py_str("it's"), "\"it's\"");
/// assert_eq!(resolver::py_str("a\tb"), "'a\\tb'");
/// ```
pub fn py_str(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || (0x7f..0xa0).contains(&(c as u32)) => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_forms() {
        let t = |s: &str| ipv6_text(&s.parse().unwrap());
        assert_eq!(t("::1"), "::1");
        assert_eq!(t("::"), "::");
        assert_eq!(t("::1.2.3.4"), "::1.2.3.4");
        assert_eq!(t("::ffff:127.0.0.1"), "::ffff:127.0.0.1");
        assert_eq!(t("fe80::1"), "fe80::1");
    }

    #[test]
    fn str_repr() {
        assert_eq!(py_str(""), "''");
        assert_eq!(py_str("it's"), "\"it's\"");
        assert_eq!(py_str("a'\""), "'a\\'\"'");
        assert_eq!(py_str("a\0b"), "'a\\x00b'");
    }
}
