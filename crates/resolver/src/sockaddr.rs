//! Socket-address resolution: what `bind`, `connect` and `sendto` take (Python's `setipaddr`).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

use crate::addrinfo::{getaddrinfo, Hints, AI_NUMERICHOST, AI_PASSIVE};
use crate::error::{quote, Error, ErrorKind};
use crate::host::{check_port, refuse_nul};

/// Which socket kind an address is for: decides the service-name protocol (tcp/udp) and
/// getaddrinfo's socktype.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// TCP: `SOCK_STREAM`, service names from the services database's `tcp` entries.
    Tcp,
    /// UDP: `SOCK_DGRAM`, service names from the services database's `udp` entries.
    Udp,
}

impl Transport {
    /// The socket type for `getaddrinfo`: `SOCK_STREAM` or `SOCK_DGRAM`.
    pub fn socktype(self) -> i32 {
        match self {
            Transport::Tcp => libc::SOCK_STREAM,
            Transport::Udp => libc::SOCK_DGRAM,
        }
    }
}

/// Family restriction for socket-address resolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Family {
    /// IPv4 or IPv6, whichever the host gives first (`AF_UNSPEC`).
    #[default]
    Any,
    /// IPv4 only (`AF_INET`).
    V4,
    /// IPv6 only (`AF_INET6`).
    V6,
}

impl Family {
    /// The family that command-line flags `-4` and `-6` select (`-4` wins if both are set;
    /// neither means [`Family::Any`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use resolver::Family;
    /// assert_eq!(Family::from_flags(false, false), Family::Any);
    /// assert_eq!(Family::from_flags(false, true), Family::V6);
    /// ```
    pub fn from_flags(ipv4: bool, ipv6: bool) -> Family {
        match (ipv4, ipv6) {
            (true, _) => Family::V4,
            (_, true) => Family::V6,
            _ => Family::Any,
        }
    }

    /// The `AF_*` number for `getaddrinfo`'s hints: `AF_UNSPEC`, `AF_INET` or `AF_INET6`.
    pub fn af(self) -> i32 {
        match self {
            Family::Any => libc::AF_UNSPEC,
            Family::V4 => libc::AF_INET,
            Family::V6 => libc::AF_INET6,
        }
    }

    fn allows_v4(self) -> bool {
        self != Family::V6
    }

    fn allows_v6(self) -> bool {
        self != Family::V4
    }
}

/// Socket-address resolution (Python's `setipaddr` path: what `bind`, `connect` and
/// `sendto` take; see the crate docs for every form).
///
/// Host forms:
/// - `""`: the wildcard address, `0.0.0.0` (`::` with [`Family::V6`]);
/// - `"<broadcast>"` (and `"255.255.255.255"`): `255.255.255.255`, IPv4 only;
/// - a dotted quad, with glibc's `inet_aton` short forms: `127.1`, `0x7f.1`, `0177.0.0.1`;
/// - an integer (decimal, or octal after a leading `0`), a binary IPv4 address in host byte
///   order: `2130706433` is `127.0.0.1`
///   (Python 3 refuses an `int` host; the tutorial teaches it, so we take it, written as a string);
///   a number above 4294967295 is an [`ErrorKind::InvalidHost`] error, never a DNS query;
/// - an IPv6 address, with an optional `%scope` (`fe80::1%lo`, `fe80::1%1`): the scope id is
///   kept in the result (Python 3 drops it); a host with a colon is always taken as an IPv6
///   literal and never sent to DNS (`"localhost:80"` is an `EAI_NONAME` error at once);
/// - a host name: the first `getaddrinfo` result for the family (IDNA-encoded first when not
///   ASCII, see [`encode_host`](crate::encode_host)).
///
/// Port forms: a number 0-65535 written in decimal, or a service name looked up for the
/// transport's protocol (`"www"` is 80 over TCP). Python's `bind` takes only an integer.
///
/// # Errors
///
/// Lookup errors with their `EAI_*` number (unknown host, unknown service), and
/// [`ErrorKind::NulByte`], [`ErrorKind::InvalidHost`], [`ErrorKind::InvalidPort`],
/// [`ErrorKind::FamilyMismatch`] for input that can never be an address.
///
/// # Examples
///
/// ```
/// use resolver::{socket_addr, Family, Transport};
/// let addr = socket_addr("127.1", "www", Family::Any, Transport::Tcp)?;
/// assert_eq!(addr.to_string(), "127.0.0.1:80");
/// let addr = socket_addr("2130706433", "12345", Family::V4, Transport::Udp)?;
/// assert_eq!(addr.to_string(), "127.0.0.1:12345");
/// let addr = socket_addr("", "0", Family::V6, Transport::Tcp)?;
/// assert_eq!(addr.to_string(), "[::]:0");
/// assert!(socket_addr("<broadcast>", "9", Family::V6, Transport::Udp).is_err());
/// # Ok::<(), resolver::Error>(())
/// ```
pub fn socket_addr(
    host: &str,
    port: &str,
    family: Family,
    transport: Transport,
) -> Result<SocketAddr, Error> {
    resolve(host, port, family, transport, false)
}

/// [`socket_addr`] with the tutorial's default host: `None` means this machine's own name,
/// as `socket.gethostname()` in the tutorial's server and client.
///
/// # Examples
///
/// ```
/// use resolver::{socket_addr_or_hostname, Family, Transport};
/// let addr = socket_addr_or_hostname(Some("127.0.0.1"), "12345", Family::Any, Transport::Tcp)?;
/// assert_eq!(addr.port(), 12345);
/// # Ok::<(), resolver::Error>(())
/// ```
pub fn socket_addr_or_hostname(
    host: Option<&str>,
    port: &str,
    family: Family,
    transport: Transport,
) -> Result<SocketAddr, Error> {
    match host {
        Some(host) => socket_addr(host, port, family, transport),
        None => socket_addr(&crate::gethostname()?, port, family, transport),
    }
}

/// Every address a host and port resolve to, in `getaddrinfo`'s order (duplicates removed):
/// what a client tries in turn until one answers, as Python's `socket.create_connection`
/// and `nc` do. The host and port forms are [`socket_addr`]'s; a numeric or special host
/// gives one address, a name as many as it has (`localhost` may be `::1` then
/// `127.0.0.1`). [`socket_addr`] is the first of them.
///
/// # Errors
///
/// As [`socket_addr`]; never an empty list.
///
/// # Examples
///
/// ```
/// use resolver::{socket_addrs, Family, Transport};
/// let all = socket_addrs("127.0.0.1", "www", Family::Any, Transport::Tcp)?;
/// assert_eq!(all, ["127.0.0.1:80".parse()?]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn socket_addrs(
    host: &str,
    port: &str,
    family: Family,
    transport: Transport,
) -> Result<Vec<SocketAddr>, Error> {
    let port = resolve_port(port, transport)?;
    let mut addrs = resolve_hosts(host, family, transport, false)?;
    for addr in &mut addrs {
        addr.set_port(port);
    }
    log::debug!("socket_addrs({host:?}, {family:?}, {transport:?}) -> {addrs:?}");
    Ok(addrs)
}

/// [`socket_addrs`] with the tutorial's default host: `None` means this machine's own name.
///
/// # Examples
///
/// ```
/// use resolver::{socket_addrs_or_hostname, Family, Transport};
/// let all = socket_addrs_or_hostname(None, "12345", Family::Any, Transport::Udp)?;
/// assert!(!all.is_empty() && all.iter().all(|a| a.port() == 12345));
/// # Ok::<(), resolver::Error>(())
/// ```
pub fn socket_addrs_or_hostname(
    host: Option<&str>,
    port: &str,
    family: Family,
    transport: Transport,
) -> Result<Vec<SocketAddr>, Error> {
    match host {
        Some(host) => socket_addrs(host, port, family, transport),
        None => socket_addrs(&crate::gethostname()?, port, family, transport),
    }
}

/// [`socket_addr`] without name resolution: the same host and port forms, except that a host
/// name is an `EAI_NONAME` error (as with `AI_NUMERICHOST`) instead of a query to `/etc/hosts`
/// or DNS. Service names for the port are still read from the services database, which is local.
///
/// # Examples
///
/// ```
/// use resolver::{socket_addr_numeric, Family, Transport};
/// let addr = socket_addr_numeric("0x7f.1", "ssh", Family::Any, Transport::Tcp)?;
/// assert_eq!(addr.to_string(), "127.0.0.1:22");
/// let err = socket_addr_numeric("localhost", "22", Family::Any, Transport::Tcp).unwrap_err();
/// assert_eq!(err.eai_code(), Some(libc::EAI_NONAME));
/// # Ok::<(), resolver::Error>(())
/// ```
pub fn socket_addr_numeric(
    host: &str,
    port: &str,
    family: Family,
    transport: Transport,
) -> Result<SocketAddr, Error> {
    resolve(host, port, family, transport, true)
}

fn resolve(
    host: &str,
    port: &str,
    family: Family,
    transport: Transport,
    numeric: bool,
) -> Result<SocketAddr, Error> {
    let port = resolve_port(port, transport)?;
    let mut addr = resolve_host(host, family, transport, numeric)?;
    addr.set_port(port);
    log::debug!("socket_addr({host:?}, {family:?}, {transport:?}) -> {addr}");
    Ok(addr)
}

fn resolve_host(
    host: &str,
    family: Family,
    transport: Transport,
    numeric: bool,
) -> Result<SocketAddr, Error> {
    let all = resolve_hosts(host, family, transport, numeric)?;
    first(all, host)
}

/// Every address for `host`, never an empty list.
fn resolve_hosts(
    host: &str,
    family: Family,
    transport: Transport,
    numeric: bool,
) -> Result<Vec<SocketAddr>, Error> {
    let one = |addr: SocketAddr| Ok(vec![addr]);
    let subject = || format!("host {}", quote(host));
    refuse_nul("host", host)?;
    if host.is_empty() {
        return one(match family {
            Family::V6 => SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0),
            _ => SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
        });
    }
    if host == "<broadcast>" || host == "255.255.255.255" {
        if !family.allows_v4() {
            return Err(Error::new(
                ErrorKind::FamilyMismatch,
                subject(),
                "the broadcast address is IPv4 only",
            ));
        }
        return one(SocketAddr::new(IpAddr::V4(Ipv4Addr::BROADCAST), 0));
    }
    if family.allows_v4() {
        match inet_aton(host) {
            Aton::Address(ip) => return one(SocketAddr::V4(SocketAddrV4::new(ip, 0))),
            Aton::IntegerOutOfRange => {
                return Err(Error::new(
                    ErrorKind::InvalidHost,
                    subject(),
                    "integer address must be 0-4294967295",
                ))
            }
            Aton::NotNumeric => {}
        }
    }
    if family.allows_v6() && host.contains(':') {
        if let Ok(ip) = host.parse::<Ipv6Addr>() {
            return one(SocketAddr::V6(SocketAddrV6::new(ip, 0, 0, 0)));
        }
        // A scoped or unusual IPv6 literal: glibc parses it (and resolves an interface name to
        // its index) without asking DNS.
        let hints = Hints {
            family: libc::AF_INET6,
            socktype: transport.socktype(),
            flags: AI_NUMERICHOST,
            ..Hints::default()
        };
        let found = getaddrinfo(Some(host), None, &hints)?;
        let addrs = found.into_iter().map(|ai| ai.address).collect();
        return first(addrs, host).map(|a| vec![a]);
    }
    let hints = Hints {
        family: family.af(),
        socktype: transport.socktype(),
        flags: if numeric { AI_NUMERICHOST } else { 0 },
        ..Hints::default()
    };
    let mut addrs: Vec<SocketAddr> = Vec::new();
    for ai in getaddrinfo(Some(host), None, &hints)? {
        if !addrs.contains(&ai.address) {
            addrs.push(ai.address);
        }
    }
    if addrs.is_empty() {
        return Err(Error::from_eai(libc::EAI_NONAME, subject()));
    }
    Ok(addrs)
}

fn first(found: Vec<SocketAddr>, host: &str) -> Result<SocketAddr, Error> {
    found
        .into_iter()
        .next()
        .ok_or_else(|| Error::from_eai(libc::EAI_NONAME, format!("host {}", quote(host))))
}

fn resolve_port(port: &str, transport: Transport) -> Result<u16, Error> {
    let subject = || format!("port {}", quote(port));
    // The empty string and numbers outside 0-65535 (negative ones too) are refused before any
    // lookup, as Python's bind refuses them (OverflowError: port must be 0-65535).
    check_port(port)?;
    if port.bytes().all(|b| b.is_ascii_digit()) {
        return port.parse::<u16>().map_err(|_| {
            Error::new(
                ErrorKind::InvalidPort,
                subject(),
                "port number must be 0-65535",
            )
        });
    }
    let hints = Hints {
        family: libc::AF_INET,
        socktype: transport.socktype(),
        flags: AI_PASSIVE,
        ..Hints::default()
    };
    let found = getaddrinfo(None, Some(port), &hints).map_err(|e| e.with_subject(subject()))?;
    found
        .first()
        .map(|ai| ai.address.port())
        .ok_or_else(|| Error::from_eai(libc::EAI_SERVICE, subject()))
}

/// What glibc's `inet_aton` makes of a host string.
#[derive(Debug, PartialEq, Eq)]
enum Aton {
    Address(Ipv4Addr),
    /// Decimal digits only, but too large for 32 bits.
    IntegerOutOfRange,
    NotNumeric,
}

/// glibc's `__inet_aton_exact`: 1 to 4 parts separated by dots, each decimal, octal (leading `0`)
/// or hexadecimal (`0x`); `a` is 32 bits, `a.b` is 8.24, `a.b.c` is 8.8.16, `a.b.c.d` 8.8.8.8.
/// No trailing characters.
fn inet_aton(s: &str) -> Aton {
    // One all-digit part: decimal, or octal after a leading 0 (`022107675241` is
    // 145.31.122.161, though its decimal reading is above 32 bits). A value too large in the
    // base that applies is refused here rather than sent to DNS; an octal part with an 8 or
    // a 9 is no number at all (left to the general path below).
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        let octal = s.len() > 1 && s.starts_with('0');
        if !octal || s.bytes().all(|b| b < b'8') {
            let value = if octal {
                u32::from_str_radix(&s[1..], 8)
            } else {
                s.parse::<u32>()
            };
            return match value {
                Ok(v) => Aton::Address(Ipv4Addr::from(v)),
                Err(_) => Aton::IntegerOutOfRange,
            };
        }
    }
    let parts: Vec<&str> = s.split('.').collect();
    if parts.is_empty() || parts.len() > 4 {
        return Aton::NotNumeric;
    }
    let mut values = Vec::with_capacity(4);
    for part in &parts {
        match parse_c_number(part) {
            Some(v) => values.push(v),
            None => return Aton::NotNumeric,
        }
    }
    let (last, head) = match values.split_last() {
        Some(x) => x,
        None => return Aton::NotNumeric,
    };
    if head.iter().any(|&v| v > 0xff) {
        return Aton::NotNumeric;
    }
    let max_last: u64 = 0xffff_ffff >> (8 * head.len());
    if *last > max_last {
        return Aton::NotNumeric;
    }
    let mut addr: u64 = *last;
    for (i, v) in head.iter().enumerate() {
        addr |= v << (24 - 8 * i);
    }
    match u32::try_from(addr) {
        Ok(a) => Aton::Address(Ipv4Addr::from(a)),
        Err(_) => Aton::NotNumeric,
    }
}

/// `strtoul(part, &end, 0)` consuming the whole part, which must start with a digit; `None` if
/// not, or above 32 bits.
fn parse_c_number(part: &str) -> Option<u64> {
    let bytes = part.as_bytes();
    if !bytes.first()?.is_ascii_digit() {
        return None;
    }
    let (digits, radix) =
        if let Some(hex) = part.strip_prefix("0x").or_else(|| part.strip_prefix("0X")) {
            (hex, 16)
        } else if part.len() > 1 && part.starts_with('0') {
            (&part[1..], 8)
        } else {
            (part, 10)
        };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let mut value: u64 = 0;
    for c in digits.chars() {
        value = value * u64::from(radix) + u64::from(c.to_digit(radix)?);
        if value > 0xffff_ffff {
            return None;
        }
    }
    Some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(s: &str) -> Option<String> {
        match inet_aton(s) {
            Aton::Address(a) => Some(a.to_string()),
            _ => None,
        }
    }

    #[test]
    fn aton_forms() {
        assert_eq!(v4("127.1").as_deref(), Some("127.0.0.1"));
        assert_eq!(v4("0x7f.1").as_deref(), Some("127.0.0.1"));
        assert_eq!(v4("0177.0.0.1").as_deref(), Some("127.0.0.1"));
        assert_eq!(v4("2130706433").as_deref(), Some("127.0.0.1"));
        assert_eq!(v4("1.2.65535").as_deref(), Some("1.2.255.255"));
        assert_eq!(v4("1.2.65536"), None);
        assert_eq!(v4("256.1"), None);
        assert_eq!(v4("08"), None);
        assert_eq!(v4("0x"), None);
        assert_eq!(v4("1.2.3.4."), None);
        assert_eq!(v4("1.2.3.4.5"), None);
        assert_eq!(v4(""), None);
        assert_eq!(inet_aton("4294967296"), Aton::IntegerOutOfRange);
        // Found by the Python-oracle property test: octal integers whose decimal reading is
        // above 32 bits are still addresses (glibc's strtoul with base 0).
        assert_eq!(v4("022107675241").as_deref(), Some("145.31.122.161"));
        assert_eq!(v4("037777777777").as_deref(), Some("255.255.255.255"));
        assert_eq!(v4("00000000000000000000001").as_deref(), Some("0.0.0.1"));
        assert_eq!(inet_aton("040000000000"), Aton::IntegerOutOfRange);
        assert_eq!(inet_aton("0999999999999"), Aton::NotNumeric);
    }
}
