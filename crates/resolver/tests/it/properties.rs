//! Property tests of `socket_addr` on generated numeric host and port forms: the invariants of
//! `tests/invariants` (which the fuzz target `resolver_socket_addr` also checks, `cargo xtask
//! fuzz`), and agreement with Python on every generated form. Python is the oracle: each
//! proptest case is a batch of forms answered by one `python3` process
//! (`socket.getaddrinfo(host, port, family, type, 0, AI_NUMERICHOST)`, the first entry), so the
//! whole file starts Python a handful of times.
//!
//! Numeric hosts only: no form waits for DNS.

use crate::common;
use crate::invariants;

use proptest::prelude::*;
use resolver::{ErrorKind, Family, Transport};
use serde_json::Value;

/// One part of a dotted IPv4 form: decimal, octal (leading 0) or hex (0x), in or out of range,
/// or broken ("08", "0x", "").
fn v4_part() -> impl Strategy<Value = String> {
    prop_oneof![
        (0u64..=255).prop_map(|v| v.to_string()),
        (0u64..=0xffff_ffff).prop_map(|v| v.to_string()),
        (0u64..=0x1_ffff_ffff).prop_map(|v| format!("0{v:o}")),
        (0u64..=0x1_ffff_ffff, any::<bool>()).prop_map(|(v, up)| if up {
            format!("0X{v:X}")
        } else {
            format!("0x{v:x}")
        }),
        prop_oneof![
            Just("08"),
            Just("0x"),
            Just(""),
            Just("1a"),
            Just("00"),
            Just("0"),
            Just(" 1")
        ]
        .prop_map(str::to_owned),
    ]
}

/// IPv4 forms: one to five parts (glibc's `inet_aton` short forms), sometimes a trailing dot.
/// Never `""`, which is the wildcard address on purpose (Python's getaddrinfo refuses it; see
/// `deliberate_differences.rs`).
fn v4_host() -> impl Strategy<Value = String> {
    (prop::collection::vec(v4_part(), 1..=5), 0u8..8).prop_map(|(parts, tail)| {
        let mut host = parts.join(".");
        if tail == 0 || host.is_empty() {
            host.push('.');
        }
        host
    })
}

/// IPv6 forms: any address written by Rust (compressed), fully expanded, upper case, with an
/// IPv4 tail, broken by an extra group or `:::`, with a numeric or named scope.
fn v6_host() -> impl Strategy<Value = String> {
    (any::<[u16; 8]>(), 0u8..6, 0u8..8, 0u8..4).prop_map(|(mut seg, zeros, style, scope)| {
        // Zero runs, so that `::` compression happens.
        for s in seg.iter_mut().take(usize::from(zeros)) {
            *s = 0;
        }
        if style == 6 {
            seg.rotate_left(usize::from(zeros));
        }
        let ip = std::net::Ipv6Addr::from(seg);
        let mut host = match style {
            0 | 6 => ip.to_string(),
            1 => seg
                .iter()
                .map(|s| format!("{s:x}"))
                .collect::<Vec<_>>()
                .join(":"),
            2 => ip.to_string().to_uppercase(),
            3 => {
                let o = ip.octets();
                let head: Vec<String> = seg[..6].iter().map(|s| format!("{s:x}")).collect();
                format!("{}:{}.{}.{}.{}", head.join(":"), o[12], o[13], o[14], o[15])
            }
            4 => format!("{ip}:1"),
            5 => ip.to_string().replacen("::", ":::", 1),
            _ => format!(
                "::ffff:{}.{}.{}.{}",
                seg[6] >> 8,
                seg[6] & 0xff,
                seg[7] >> 8,
                seg[7] & 0xff
            ),
        };
        match scope {
            1 => host.push_str(&format!("%{}", seg[0] % 3)),
            2 => host.push_str("%lo"),
            _ => {}
        }
        host
    })
}

fn family() -> impl Strategy<Value = Family> {
    prop_oneof![Just(Family::Any), Just(Family::V4), Just(Family::V6)]
}

fn transport() -> impl Strategy<Value = Transport> {
    prop_oneof![Just(Transport::Tcp), Just(Transport::Udp)]
}

/// A batch of (host, port, family, transport) forms.
fn forms() -> impl Strategy<Value = Vec<(String, String, Family, Transport)>> {
    prop::collection::vec(
        (
            prop_oneof![v4_host(), v6_host()],
            prop_oneof![
                (0u32..=65535).prop_map(|p| p.to_string()),
                (0u32..=999).prop_map(|p| format!("0{p}")),
            ],
            family(),
            transport(),
        ),
        256,
    )
}

fn python_case(host: &str, port: &str, family: Family, transport: Transport) -> Value {
    common::gai_case(
        Some(host),
        Some(port),
        family.af(),
        transport.socktype(),
        0,
        libc::AI_NUMERICHOST,
    )
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 4,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// 4 batches of 256 forms: ours agrees with Python's first getaddrinfo entry, or both
    /// refuse (our one deliberate difference: an integer host above 32 bits is our
    /// InvalidHost, glibc's EAI_NONAME), and the invariants hold for each.
    #[test]
    fn socket_addr_agrees_with_python_on_numeric_forms(batch in forms()) {
        let cases: Vec<Value> = batch
            .iter()
            .map(|(h, p, f, t)| python_case(h, p, *f, *t))
            .collect();
        let answers = common::python(&cases);
        for ((host, port, family, transport), python) in batch.iter().zip(&answers) {
            let ours = invariants::check_socket_addr(host, port, *family, *transport);
            let what = format!("({host:?}, {port:?}, {family:?}, {transport:?})");
            match (&ours, python.get("ok")) {
                (Ok(addr), Some(list)) => {
                    prop_assert_eq!(&common::addr_json(addr), &list[0][4], "{}", what);
                }
                (Err(e), None) if e.kind() == ErrorKind::InvalidHost
                    && host.bytes().all(|b| b.is_ascii_digit()) => {
                    prop_assert_eq!(python["gaierror"].as_i64(), Some(i64::from(libc::EAI_NONAME)), "{}", what);
                }
                (Err(e), None) => {
                    let ours = common::error_json(e);
                    prop_assert!(common::same(python, &ours), "{}: python {}, ours {}", what, python, ours);
                }
                (ours, _) => prop_assert!(false, "{}: python {}, ours {:?}", what, python, ours),
            }
        }
    }
}
