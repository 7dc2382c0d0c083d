//! Property tests: no string (NUL bytes, any Unicode, 10 kB, empty) makes the resolver panic;
//! every call returns a value or an error whose message names the input.
//!
//! Only numeric lookups (`AI_NUMERICHOST`, `NI_NUMERICHOST`, `socket_addr_numeric`), so no case
//! waits for DNS.

use std::net::{IpAddr, SocketAddr, SocketAddrV6};

use proptest::prelude::*;
use resolver::{
    encode_host, getaddrinfo, getnameinfo, socket_addr_numeric, Family, Hints, Transport,
};

/// Strings of every kind: anything, host-like text with NULs and dots, long runs, empty.
fn any_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[0-9a-zA-Z.:%\\-\\x00ß日]{0,40}",
        "[0-9.x]{0,20}",
        Just(String::new()),
        (any::<char>(), 1usize..10_240).prop_map(|(c, n)| std::iter::repeat_n(c, n).collect()),
        ("[a-z.]{1,3}", 10_000usize..10_240).prop_map(|(s, n)| s.repeat(n / s.len().max(1))),
    ]
}

fn family() -> impl Strategy<Value = Family> {
    prop_oneof![Just(Family::Any), Just(Family::V4), Just(Family::V6)]
}

fn transport() -> impl Strategy<Value = Transport> {
    prop_oneof![Just(Transport::Tcp), Just(Transport::Udp)]
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 200,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn getaddrinfo_never_panics(
        host in proptest::option::of(any_text()),
        service in proptest::option::of(any_text()),
        family in prop_oneof![Just(0), Just(libc::AF_INET), Just(libc::AF_INET6), any::<i32>()],
        socktype in prop_oneof![Just(0), Just(libc::SOCK_STREAM), Just(libc::SOCK_DGRAM), any::<i32>()],
        protocol in prop_oneof![Just(0), any::<i32>()],
        flags in any::<i32>(),
    ) {
        let hints = Hints {
            family,
            socktype,
            protocol,
            flags: flags | libc::AI_NUMERICHOST | libc::AI_NUMERICSERV,
        };
        match getaddrinfo(host.as_deref(), service.as_deref(), &hints) {
            Ok(list) => {
                for ai in list {
                    prop_assert!(!ai.to_string().is_empty());
                }
            }
            Err(e) => {
                let text = e.to_string();
                // Inputs are cut to 100 characters in messages, so a 10 kB input gives a short message.
                prop_assert!(text.len() < 3_000, "message too long: {} bytes", text.len());
                if host.is_some() {
                    prop_assert!(text.starts_with("host "), "{}", text);
                }
            }
        }
    }

    #[test]
    fn socket_addr_never_panics(
        host in any_text(),
        port in any_text(),
        family in family(),
        transport in transport(),
    ) {
        if let Err(e) = socket_addr_numeric(&host, &port, family, transport) {
            let text = e.to_string();
            prop_assert!(text.starts_with("host ") || text.starts_with("port "), "{}", text);
        }
    }

    #[test]
    fn encode_host_never_panics(host in any_text()) {
        match encode_host(&host) {
            Ok(ascii) => {
                prop_assert!(ascii.is_ascii());
                prop_assert!(!ascii.contains('\0'));
            }
            Err(e) => prop_assert!(e.to_string().starts_with("host ")),
        }
    }

    #[test]
    fn getnameinfo_never_panics(
        octets in any::<[u8; 16]>(),
        v6 in any::<bool>(),
        port in any::<u16>(),
        flowinfo in any::<u32>(),
        scope in any::<u32>(),
        flags in any::<i32>(),
    ) {
        let addr = if v6 {
            SocketAddr::V6(SocketAddrV6::new(octets.into(), port, flowinfo, scope))
        } else {
            SocketAddr::new(IpAddr::from([octets[0], octets[1], octets[2], octets[3]]), port)
        };
        // NI_NAMEREQD would send a reverse query; NI_NUMERICHOST keeps it local.
        let flags = (flags | libc::NI_NUMERICHOST) & !libc::NI_NAMEREQD;
        if let Err(e) = getnameinfo(&addr, flags) {
            prop_assert!(e.to_string().starts_with("address ("));
        }
    }
}
