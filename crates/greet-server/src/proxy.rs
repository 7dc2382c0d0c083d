//! The PROXY protocol, versions 1 and 2 (HAProxy's `proxy-protocol.txt`): the header a load
//! balancer sends first on each connection to name the client it accepted.
//!
//! [`parse`] is given everything received so far and says whether a whole header is there
//! ([`Parsed::Header`], with its length), more bytes are needed ([`Parsed::Incomplete`]), or
//! the bytes can never become a valid header ([`Error`]). It rejects as early as it can: a
//! first byte that starts neither signature is an error at once, without waiting for more.
//!
//! - v1: `PROXY TCP4 192.0.2.1 198.51.100.1 56324 443\r\n` (also `TCP6`, and `UNKNOWN`
//!   followed by anything): at most 107 bytes, CRLF included.
//! - v2: the 12-byte signature `\r\n\r\n\0\r\nQUIT\n`, a version/command byte (`0x20` LOCAL,
//!   `0x21` PROXY), a family/transport byte, a big-endian length, then the addresses and
//!   optional TLVs, which are skipped.
//!
//! A header that names no usable client (`UNKNOWN`, `LOCAL`, an unspecified or Unix family)
//! gives [`Header::source`] `None`: the caller then uses the connection's own peer, as the
//! specification asks. A v2 `LOCAL` header (what HAProxy sends on its health checks) is
//! marked [`Header::local`].

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The v2 signature.
pub const V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";
/// The longest v1 header the specification allows, CRLF included.
pub const V1_MAX: usize = 107;
/// The longest v2 header accepted: the 16 fixed bytes, the largest address block (Unix,
/// 216 bytes) and room for TLVs. The format allows 64 KiB; a header that long from a load
/// balancer is a misconfiguration, and holding it per connection would be a cheap way to
/// use up the server's memory.
pub const V2_MAX: usize = 16 + 2048;

const V1_PREFIX: &[u8] = b"PROXY ";

/// A complete header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// The client the balancer accepted; `None` when the header names none.
    pub source: Option<SocketAddr>,
    /// The address the client connected to; `None` when the header names none.
    pub destination: Option<SocketAddr>,
    /// A v2 LOCAL header: a connection the balancer made on its own, such as HAProxy's
    /// health checks (`check` on a `send-proxy-v2` server), not a client's.
    pub local: bool,
}

/// What the bytes received so far amount to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parsed {
    /// A whole header, `len` bytes long; anything after it is the connection's own data.
    Header { header: Header, len: usize },
    /// A valid beginning: wait for more bytes.
    Incomplete,
}

/// Why bytes can never become a valid header.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// Neither `PROXY ` nor the v2 signature.
    Signature,
    /// A v1 line with no CRLF within 107 bytes, or a v2 header longer than [`V2_MAX`].
    TooLong(usize),
    /// A v1 line that does not follow the grammar; the text says where.
    V1(&'static str),
    /// A v2 version other than 2.
    Version(u8),
    /// A v2 command other than LOCAL (0) or PROXY (1).
    Command(u8),
    /// A v2 family or transport nibble outside the specification.
    Family(u8),
    /// A v2 address block shorter than its family needs.
    AddressBlock {
        family: &'static str,
        need: usize,
        got: usize,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Signature => write!(f, "not a PROXY protocol header (bad signature)"),
            Error::TooLong(n) => write!(f, "PROXY header too long ({n} bytes or more)"),
            Error::V1(what) => write!(f, "malformed PROXY v1 header: {what}"),
            Error::Version(v) => write!(f, "PROXY v2 header with unsupported version {v}"),
            Error::Command(c) => write!(f, "PROXY v2 header with unknown command {c}"),
            Error::Family(b) => write!(f, "PROXY v2 header with unknown family byte {b:#04x}"),
            Error::AddressBlock { family, need, got } => write!(
                f,
                "PROXY v2 {family} header with a {got}-byte address block ({need} needed)"
            ),
        }
    }
}

impl std::error::Error for Error {}

/// Parses the start of a connection's input; see the [module docs](self).
///
/// # Errors
///
/// [`Error`] when `buf` can never be the beginning of a valid header.
pub fn parse(buf: &[u8]) -> Result<Parsed, Error> {
    if buf.first() == Some(&b'P') {
        parse_v1(buf)
    } else {
        parse_v2(buf)
    }
}

fn parse_v1(buf: &[u8]) -> Result<Parsed, Error> {
    let n = buf.len().min(V1_PREFIX.len());
    if buf[..n] != V1_PREFIX[..n] {
        return Err(Error::Signature);
    }
    let window = &buf[..buf.len().min(V1_MAX)];
    let Some(lf) = window.iter().position(|&b| b == b'\n') else {
        return if buf.len() >= V1_MAX {
            Err(Error::TooLong(V1_MAX))
        } else {
            Ok(Parsed::Incomplete)
        };
    };
    if lf == 0 || window[lf - 1] != b'\r' {
        return Err(Error::V1("line does not end with CRLF"));
    }
    let line = std::str::from_utf8(&window[V1_PREFIX.len()..lf - 1])
        .map_err(|_| Error::V1("not ASCII"))?;
    let header = parse_v1_fields(line)?;
    Ok(Parsed::Header {
        header,
        len: lf + 1,
    })
}

/// The fields after `PROXY `, without the CRLF.
fn parse_v1_fields(line: &str) -> Result<Header, Error> {
    const NONE: Header = Header {
        source: None,
        destination: None,
        local: false,
    };
    let mut fields = line.split(' ');
    let v4 = match fields.next() {
        Some("TCP4") => true,
        Some("TCP6") => false,
        // The sender knows nothing of the client; whatever follows is to be ignored.
        Some("UNKNOWN") => return Ok(NONE),
        _ => return Err(Error::V1("protocol is not TCP4, TCP6 or UNKNOWN")),
    };
    let (Some(src), Some(dst), Some(sport), Some(dport), None) = (
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
    ) else {
        return Err(Error::V1("expected 4 fields separated by single spaces"));
    };
    let ip = |text: &str| -> Result<IpAddr, Error> {
        if v4 {
            text.parse::<Ipv4Addr>()
                .map(IpAddr::V4)
                .map_err(|_| Error::V1("bad IPv4 address"))
        } else {
            text.parse::<Ipv6Addr>()
                .map(IpAddr::V6)
                .map_err(|_| Error::V1("bad IPv6 address"))
        }
    };
    Ok(Header {
        source: Some(SocketAddr::new(ip(src)?, v1_port(sport)?)),
        destination: Some(SocketAddr::new(ip(dst)?, v1_port(dport)?)),
        local: false,
    })
}

/// A decimal port, digits only (no sign, no leading zero), 0 to 65535.
fn v1_port(text: &str) -> Result<u16, Error> {
    let digits_only = !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
    if !digits_only || (text.len() > 1 && text.starts_with('0')) {
        return Err(Error::V1("bad port"));
    }
    text.parse().map_err(|_| Error::V1("port out of range"))
}

fn parse_v2(buf: &[u8]) -> Result<Parsed, Error> {
    let n = buf.len().min(V2_SIGNATURE.len());
    if buf[..n] != V2_SIGNATURE[..n] {
        return Err(Error::Signature);
    }
    if let Some(&ver_cmd) = buf.get(12) {
        if ver_cmd >> 4 != 2 {
            return Err(Error::Version(ver_cmd >> 4));
        }
        if ver_cmd & 0x0f > 1 {
            return Err(Error::Command(ver_cmd & 0x0f));
        }
    }
    if let Some(&fam) = buf.get(13) {
        if fam >> 4 > 3 || fam & 0x0f > 2 {
            return Err(Error::Family(fam));
        }
    }
    let Some(len_bytes) = buf.get(14..16) else {
        return Ok(Parsed::Incomplete);
    };
    let len = 16 + usize::from(u16::from_be_bytes([len_bytes[0], len_bytes[1]]));
    if len > V2_MAX {
        return Err(Error::TooLong(len));
    }
    // The address block is checked as soon as the length is known, not when it has arrived.
    let block = len - 16;
    let local = buf[12] & 0x0f == 0;
    let (family, need) = match buf[13] >> 4 {
        1 => ("IPv4", 12),
        2 => ("IPv6", 36),
        3 => ("Unix", 216),
        _ => ("unspecified", 0),
    };
    if !local && block < need {
        return Err(Error::AddressBlock {
            family,
            need,
            got: block,
        });
    }
    let Some(addresses) = buf.get(16..len) else {
        return Ok(Parsed::Incomplete);
    };
    let header = if local {
        // A connection the balancer made on its own (a health check): no client to name.
        Header {
            source: None,
            destination: None,
            local: true,
        }
    } else {
        v2_addresses(buf[13] >> 4, addresses)
    };
    Ok(Parsed::Header { header, len })
}

/// The source and destination of an address block already checked to be long enough.
fn v2_addresses(family: u8, block: &[u8]) -> Header {
    let port = |at: usize| u16::from_be_bytes([block[at], block[at + 1]]);
    match family {
        1 => {
            let ip = |at: usize| {
                IpAddr::V4(Ipv4Addr::new(
                    block[at],
                    block[at + 1],
                    block[at + 2],
                    block[at + 3],
                ))
            };
            Header {
                source: Some(SocketAddr::new(ip(0), port(8))),
                destination: Some(SocketAddr::new(ip(4), port(10))),
                local: false,
            }
        }
        2 => {
            let ip = |at: usize| {
                let mut octets = [0u8; 16];
                octets.copy_from_slice(&block[at..at + 16]);
                IpAddr::V6(Ipv6Addr::from(octets))
            };
            Header {
                source: Some(SocketAddr::new(ip(0), port(32))),
                destination: Some(SocketAddr::new(ip(16), port(34))),
                local: false,
            }
        }
        // Unix paths and unspecified families name no client we can print as a peer.
        _ => Header {
            source: None,
            destination: None,
            local: false,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(text: &str) -> Option<SocketAddr> {
        Some(text.parse().unwrap())
    }

    fn header(src: &str, dst: &str) -> Header {
        Header {
            source: addr(src),
            destination: addr(dst),
            local: false,
        }
    }

    const NONE: Header = Header {
        source: None,
        destination: None,
        local: false,
    };

    const LOCAL: Header = Header {
        source: None,
        destination: None,
        local: true,
    };

    /// A v2 header: signature, version/command, family/transport, then `block`.
    fn v2(ver_cmd: u8, fam: u8, block: &[u8]) -> Vec<u8> {
        let mut out = V2_SIGNATURE.to_vec();
        out.push(ver_cmd);
        out.push(fam);
        out.extend_from_slice(&u16::try_from(block.len()).unwrap().to_be_bytes());
        out.extend_from_slice(block);
        out
    }

    fn v2_ipv4_block() -> Vec<u8> {
        // 192.0.2.1:56324 -> 198.51.100.1:443
        let mut b = vec![192, 0, 2, 1, 198, 51, 100, 1];
        b.extend_from_slice(&56324u16.to_be_bytes());
        b.extend_from_slice(&443u16.to_be_bytes());
        b
    }

    fn whole(buf: &[u8]) -> Header {
        match parse(buf) {
            Ok(Parsed::Header { header, len }) => {
                assert_eq!(len, buf.len(), "{buf:?}");
                header
            }
            other => panic!("{:?}: {other:?}", String::from_utf8_lossy(buf)),
        }
    }

    #[test]
    fn v1_examples_from_the_specification() {
        let table: &[(&[u8], Header)] = &[
            (
                b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n",
                header("192.168.0.1:56324", "192.168.0.11:443"),
            ),
            (b"PROXY UNKNOWN\r\n", NONE),
            (
                b"PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n",
                NONE,
            ),
            (
                b"PROXY TCP6 2001:db8::1 ::1 65535 0\r\n",
                header("[2001:db8::1]:65535", "[::1]:0"),
            ),
        ];
        for (input, want) in table {
            assert_eq!(whole(input), *want, "{}", String::from_utf8_lossy(input));
        }
    }

    #[test]
    fn the_longest_v1_line_is_accepted_and_one_more_byte_is_not() {
        let addr6 = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff";
        // The specification's worst case: UNKNOWN with two full IPv6 addresses.
        let longest = format!("PROXY UNKNOWN {addr6} {addr6} 65535 65535\r\n");
        assert_eq!(longest.len(), V1_MAX);
        assert_eq!(whole(longest.as_bytes()), NONE);
        let tcp6 = format!("PROXY TCP6 {addr6} {addr6} 65535 65535\r\n");
        assert_eq!(
            whole(tcp6.as_bytes()).source,
            Some(SocketAddr::new(addr6.parse().unwrap(), 65535))
        );
        let mut unknown = b"PROXY UNKNOWN ".to_vec();
        unknown.resize(V1_MAX, b'x');
        assert_eq!(parse(&unknown), Err(Error::TooLong(V1_MAX)));
        unknown.truncate(V1_MAX - 1);
        assert_eq!(parse(&unknown), Ok(Parsed::Incomplete));
    }

    #[test]
    fn v1_data_after_the_header_is_not_part_of_it() {
        let input = b"PROXY TCP4 10.0.0.1 10.0.0.2 1 2\r\nhello";
        assert_eq!(
            parse(input),
            Ok(Parsed::Header {
                header: header("10.0.0.1:1", "10.0.0.2:2"),
                len: input.len() - 5
            })
        );
    }

    #[test]
    fn broken_v1_lines_are_rejected() {
        let table: &[(&[u8], Error)] = &[
            (b"GET / HTTP/1.0\r\n", Error::Signature),
            (b"PROXZ", Error::Signature),
            (b"proxy TCP4", Error::Signature),
            (
                b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n",
                Error::V1("line does not end with CRLF"),
            ),
            (
                b"PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n",
                Error::V1("protocol is not TCP4, TCP6 or UNKNOWN"),
            ),
            (
                b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",
                Error::V1("expected 4 fields separated by single spaces"),
            ),
            (
                b"PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n",
                Error::V1("expected 4 fields separated by single spaces"),
            ),
            (
                b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n",
                Error::V1("expected 4 fields separated by single spaces"),
            ),
            (
                b"PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n",
                Error::V1("bad IPv4 address"),
            ),
            (b"PROXY TCP4 ::1 ::1 1 2\r\n", Error::V1("bad IPv4 address")),
            (
                b"PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n",
                Error::V1("bad IPv6 address"),
            ),
            (
                b"PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n",
                Error::V1("port out of range"),
            ),
            (
                b"PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n",
                Error::V1("bad port"),
            ),
            (
                b"PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n",
                Error::V1("bad port"),
            ),
            (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 x\r\n", Error::V1("bad port")),
            (
                b"PROXY TCP4 1.2.3.4 5.6.7.8 1 \xff\r\n",
                Error::V1("not ASCII"),
            ),
        ];
        for (input, want) in table {
            assert_eq!(
                parse(input).as_ref(),
                Err(want),
                "{}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn v2_ipv4_ipv6_local_unspec_and_unix() {
        assert_eq!(
            whole(&v2(0x21, 0x11, &v2_ipv4_block())),
            header("192.0.2.1:56324", "198.51.100.1:443")
        );
        let mut block6 = Vec::new();
        block6.extend_from_slice(&"2001:db8::7".parse::<Ipv6Addr>().unwrap().octets());
        block6.extend_from_slice(&Ipv6Addr::LOCALHOST.octets());
        block6.extend_from_slice(&40000u16.to_be_bytes());
        block6.extend_from_slice(&80u16.to_be_bytes());
        assert_eq!(
            whole(&v2(0x21, 0x21, &block6)),
            header("[2001:db8::7]:40000", "[::1]:80")
        );
        // LOCAL: addresses, if any, are ignored.
        assert_eq!(whole(&v2(0x20, 0x00, &[])), LOCAL);
        assert_eq!(whole(&v2(0x20, 0x11, &v2_ipv4_block())), LOCAL);
        // PROXY with an unspecified family, and with Unix paths: no client to name.
        assert_eq!(whole(&v2(0x21, 0x00, &[])), NONE);
        assert_eq!(whole(&v2(0x21, 0x31, &[0; 216])), NONE);
    }

    #[test]
    fn v2_tlvs_are_skipped() {
        let mut block = v2_ipv4_block();
        // PP2_TYPE_ALPN "h2", then PP2_TYPE_NOOP with 3 bytes of padding.
        block.extend_from_slice(&[0x01, 0x00, 0x02, b'h', b'2', 0x04, 0x00, 0x03, 0, 0, 0]);
        let mut input = v2(0x21, 0x11, &block);
        let len = input.len();
        input.extend_from_slice(b"client data");
        assert_eq!(
            parse(&input),
            Ok(Parsed::Header {
                header: header("192.0.2.1:56324", "198.51.100.1:443"),
                len
            })
        );
    }

    #[test]
    fn broken_v2_headers_are_rejected() {
        let mut bad_sig = v2(0x21, 0x11, &v2_ipv4_block());
        bad_sig[4] = b'x';
        assert_eq!(parse(&bad_sig), Err(Error::Signature));
        assert_eq!(parse(b"\r\n\r\n\0\r\nQUIT\r"), Err(Error::Signature));
        assert_eq!(
            parse(&v2(0x11, 0x11, &v2_ipv4_block())),
            Err(Error::Version(1))
        );
        assert_eq!(
            parse(&v2(0x22, 0x11, &v2_ipv4_block())),
            Err(Error::Command(2))
        );
        assert_eq!(
            parse(&v2(0x21, 0x41, &v2_ipv4_block())),
            Err(Error::Family(0x41))
        );
        assert_eq!(
            parse(&v2(0x21, 0x13, &v2_ipv4_block())),
            Err(Error::Family(0x13))
        );
        assert_eq!(
            parse(&v2(0x21, 0x11, &[1, 2, 3, 4])),
            Err(Error::AddressBlock {
                family: "IPv4",
                need: 12,
                got: 4
            })
        );
        assert_eq!(
            parse(&v2(0x21, 0x21, &v2_ipv4_block())),
            Err(Error::AddressBlock {
                family: "IPv6",
                need: 36,
                got: 12
            })
        );
        // Too long: rejected from the length field alone, before the bytes arrive.
        let mut too_long = V2_SIGNATURE.to_vec();
        too_long.extend_from_slice(&[0x21, 0x11, 0xff, 0xff]);
        assert_eq!(parse(&too_long), Err(Error::TooLong(16 + 0xffff)));
        let limit = v2(0x21, 0x11, &vec![0; V2_MAX - 16]);
        assert!(matches!(parse(&limit), Ok(Parsed::Header { .. })));
        let over = v2(0x21, 0x11, &vec![0; V2_MAX - 15]);
        assert_eq!(parse(&over[..16]), Err(Error::TooLong(V2_MAX + 1)));
    }

    #[test]
    fn every_split_of_a_valid_header_is_incomplete_until_the_last_byte() {
        let inputs = [
            b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n".to_vec(),
            b"PROXY UNKNOWN\r\n".to_vec(),
            v2(0x21, 0x11, &v2_ipv4_block()),
            v2(0x20, 0x00, &[]),
        ];
        for input in inputs {
            let want = whole(&input);
            // What a connection sees when the header arrives a few bytes per read.
            for cut in 0..input.len() {
                assert_eq!(
                    parse(&input[..cut]),
                    Ok(Parsed::Incomplete),
                    "cut at {cut} of {:?}",
                    String::from_utf8_lossy(&input)
                );
            }
            let mut received = Vec::new();
            let mut result = Ok(Parsed::Incomplete);
            for chunk in input.chunks(3) {
                received.extend_from_slice(chunk);
                result = parse(&received);
            }
            assert_eq!(
                result,
                Ok(Parsed::Header {
                    header: want,
                    len: input.len()
                })
            );
        }
    }

    #[test]
    fn a_wrong_first_byte_is_rejected_without_waiting() {
        for first in [b'G', 0, b'\n', 0xff, b'p'] {
            assert_eq!(parse(&[first]), Err(Error::Signature), "{first}");
        }
        assert_eq!(parse(b""), Ok(Parsed::Incomplete));
        assert_eq!(parse(b"\r"), Ok(Parsed::Incomplete));
        assert_eq!(parse(b"P"), Ok(Parsed::Incomplete));
    }

    #[test]
    fn no_input_panics() {
        // Every prefix of every byte pattern up to a small size, plus noise after valid
        // signatures: parse must answer, never panic.
        let mut seeds: Vec<Vec<u8>> = vec![V2_SIGNATURE.to_vec(), b"PROXY ".to_vec()];
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..2000 {
            for seed in &mut seeds {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let mut input = seed.clone();
                input.extend((0..(state % 64)).map(|i| (state >> (i % 8 * 8)) as u8));
                let _ = parse(&input);
            }
        }
    }
}
