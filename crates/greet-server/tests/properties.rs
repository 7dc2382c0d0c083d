//! Property tests, on stable, of the parsers that read input greet-server does not control:
//! the PROXY protocol header, the socket-activation environment and the duration flags. The
//! invariants are those of `tests/invariants` (the fuzz targets in `fuzz/` check the same
//! ones under libFuzzer, `cargo xtask fuzz`); the number of cases is bounded so that plain
//! `cargo test` stays quick.

mod invariants;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use greet_server::proxy::{self, Header, Parsed, V2_SIGNATURE};
use proptest::prelude::*;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// A valid v1 header, with the header the parser must find in it.
fn v1_header() -> impl Strategy<Value = (Vec<u8>, Header)> {
    let v4 = (
        any::<[u8; 4]>(),
        any::<[u8; 4]>(),
        any::<u16>(),
        any::<u16>(),
    )
        .prop_map(|(s, d, sp, dp)| {
            let (s, d) = (Ipv4Addr::from(s), Ipv4Addr::from(d));
            let line = format!("PROXY TCP4 {s} {d} {sp} {dp}\r\n");
            let header = Header {
                source: Some(SocketAddr::new(IpAddr::V4(s), sp)),
                destination: Some(SocketAddr::new(IpAddr::V4(d), dp)),
                local: false,
            };
            (line.into_bytes(), header)
        });
    let v6 = (
        any::<[u8; 16]>(),
        any::<[u8; 16]>(),
        any::<u16>(),
        any::<u16>(),
    )
        .prop_map(|(s, d, sp, dp)| {
            let (s, d) = (Ipv6Addr::from(s), Ipv6Addr::from(d));
            let line = format!("PROXY TCP6 {s} {d} {sp} {dp}\r\n");
            let header = Header {
                source: Some(SocketAddr::new(IpAddr::V6(s), sp)),
                destination: Some(SocketAddr::new(IpAddr::V6(d), dp)),
                local: false,
            };
            (line.into_bytes(), header)
        });
    // UNKNOWN: anything printable may follow, up to the 107-byte line.
    let unknown = "[ -~]{0,90}".prop_map(|rest| {
        let line = if rest.is_empty() {
            "PROXY UNKNOWN\r\n".to_owned()
        } else {
            format!("PROXY UNKNOWN {rest}\r\n")
        };
        let none = Header {
            source: None,
            destination: None,
            local: false,
        };
        (line.into_bytes(), none)
    });
    prop_oneof![v4, v6, unknown]
}

/// A valid v2 header (any command, family, transport, TLV bytes), with its header.
fn v2_header() -> impl Strategy<Value = (Vec<u8>, Header)> {
    (
        any::<bool>(),
        0u8..=3,
        0u8..=2,
        any::<[u8; 36]>(),
        prop::collection::vec(any::<u8>(), 0..64),
    )
        .prop_map(|(local, family, transport, addresses, tlvs)| {
            let need = [0, 12, 36, 216][usize::from(family)];
            let mut block = vec![0u8; need];
            let n = need.min(addresses.len());
            block[..n].copy_from_slice(&addresses[..n]);
            block.extend_from_slice(&tlvs);
            let mut out = V2_SIGNATURE.to_vec();
            out.push(if local { 0x20 } else { 0x21 });
            out.push(family << 4 | transport);
            let len = u16::try_from(block.len()).expect("short block");
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(&block);
            let port = |at: usize| u16::from_be_bytes([block[at], block[at + 1]]);
            let header = match family {
                1 if !local => Header {
                    source: Some(SocketAddr::new(
                        IpAddr::from([block[0], block[1], block[2], block[3]]),
                        port(8),
                    )),
                    destination: Some(SocketAddr::new(
                        IpAddr::from([block[4], block[5], block[6], block[7]]),
                        port(10),
                    )),
                    local: false,
                },
                2 if !local => {
                    let ip = |at: usize| {
                        let mut o = [0u8; 16];
                        o.copy_from_slice(&block[at..at + 16]);
                        IpAddr::from(o)
                    };
                    Header {
                        source: Some(SocketAddr::new(ip(0), port(32))),
                        destination: Some(SocketAddr::new(ip(16), port(34))),
                        local: false,
                    }
                }
                _ => Header {
                    source: None,
                    destination: None,
                    local,
                },
            };
            (out, header)
        })
}

proptest! {
    #![proptest_config(config())]

    /// A valid header, followed by the connection's own bytes, parses to what was sent; the
    /// invariants hold for it as a whole and for every split.
    #[test]
    fn valid_headers_parse_to_what_was_sent_at_every_split(
        (bytes, want) in prop_oneof![v1_header(), v2_header()],
        after in prop::collection::vec(any::<u8>(), 0..32),
    ) {
        let len = bytes.len();
        let mut input = bytes;
        input.extend_from_slice(&after);
        prop_assert_eq!(proxy::parse(&input), Ok(Parsed::Header { header: want, len }));
        for cut in 0..len {
            prop_assert_eq!(proxy::parse(&input[..cut]), Ok(Parsed::Incomplete), "cut {}", cut);
        }
        invariants::proxy(&input);
    }

    /// A valid header with one byte changed, or cut and padded: whatever the parser says, the
    /// invariants hold.
    #[test]
    fn damaged_headers_keep_the_invariants(
        (bytes, _) in prop_oneof![v1_header(), v2_header()],
        at in any::<prop::sample::Index>(),
        byte in any::<u8>(),
        keep in any::<prop::sample::Index>(),
        pad in prop::collection::vec(any::<u8>(), 0..200),
    ) {
        let mut input = bytes;
        let i = at.index(input.len());
        input[i] = byte;
        input.truncate(keep.index(input.len() + 1));
        input.extend_from_slice(&pad);
        invariants::proxy(&input);
    }

    /// Any bytes at all, and long runs that test the length limits.
    #[test]
    fn any_bytes_keep_the_invariants(
        input in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..300),
            (prop_oneof![Just(b"PROXY ".to_vec()), Just(V2_SIGNATURE.to_vec())],
             prop::collection::vec(any::<u8>(), 0..2200))
                .prop_map(|(mut head, tail)| { head.extend(tail); head }),
        ],
    ) {
        invariants::proxy(&input);
    }

    #[test]
    fn the_activation_environment_keeps_its_invariants(
        pid in proptest::option::of(prop_oneof!["[0-9 ]{0,12}", "[0-9+\\-a-z ]{0,8}", any::<String>()]),
        fds in proptest::option::of(prop_oneof!["[0-9 ]{0,6}", "[0-9+\\-x ]{0,6}", any::<String>()]),
        names in proptest::option::of(prop_oneof!["[a-z:]{0,20}", "[\\x00-\\x1f:a\\n]{0,10}", any::<String>()]),
        our_pid in prop_oneof![Just(4242u32), any::<u32>()],
        pid_is_ours in any::<bool>(),
    ) {
        let ours = our_pid.to_string();
        let pid = if pid_is_ours { Some(ours.as_str()) } else { pid.as_deref() };
        invariants::activation(pid, fds.as_deref(), names.as_deref(), our_pid);
    }

    #[test]
    fn duration_flags_read_what_humantime_reads(
        text in prop_oneof![
            "[0-9]{1,6} ?(ns|us|ms|s|sec|m|min|h|hr|d|w|M|y|years|)",
            "([0-9]{1,4}(ms|s|m|h) ?){1,4}",
            "[0-9a-zA-Z .:\\-+]{0,12}",
            any::<String>(),
        ],
    ) {
        invariants::duration_flags(&text);
    }
}

/// The tutorial-scale durations users write, and the ones that must be refused.
#[test]
fn duration_flag_examples() {
    use std::time::Duration;
    assert_eq!(
        invariants::duration_flags("10s"),
        Some(Duration::from_secs(10))
    );
    assert_eq!(
        invariants::duration_flags("1m 30s"),
        Some(Duration::from_secs(90))
    );
    assert_eq!(
        invariants::duration_flags("500ms"),
        Some(Duration::from_millis(500))
    );
    assert_eq!(
        invariants::duration_flags("1.5s"),
        Some(Duration::from_millis(1500))
    );
    for bad in [
        "",
        "soon",
        "10",
        "-1s",
        "1s 2",
        "10 seconds later",
        "0s",
        "0ms 0s",
    ] {
        assert_eq!(invariants::duration_flags(bad), None, "{bad:?}");
    }
}
