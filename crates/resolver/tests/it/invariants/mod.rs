//! What must hold for every input of the resolver's socket-address forms, checked by the
//! property tests (`tests/properties.rs`) and the fuzz target `resolver_socket_addr`
//! (`fuzz/`, which includes this file by path): one definition, two drivers.
//!
//! Only numeric hosts are resolved ([`socket_addr_numeric`], as `AI_NUMERICHOST`), so no input
//! waits for DNS; [`socket_addr`] is called only on a host already known to be numeric, which
//! glibc answers without a query.

use std::net::SocketAddr;

use resolver::{socket_addr, socket_addr_numeric, ErrorKind, Family, Transport};

/// The host text that names `addr`'s address exactly, scope id included.
pub fn host_text(addr: &SocketAddr) -> String {
    match addr {
        SocketAddr::V4(a) => a.ip().to_string(),
        SocketAddr::V6(a) if a.scope_id() != 0 => format!("{}%{}", a.ip(), a.scope_id()),
        SocketAddr::V6(a) => a.ip().to_string(),
    }
}

/// Checks every invariant of `socket_addr_numeric(host, port, family, transport)` and
/// returns its result; panics (with the input) when one does not hold.
pub fn check_socket_addr(
    host: &str,
    port: &str,
    family: Family,
    transport: Transport,
) -> Result<SocketAddr, resolver::Error> {
    let got = socket_addr_numeric(host, port, family, transport);
    let input = format!("({host:?}, {port:?}, {family:?}, {transport:?})");
    let numeric_port = !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit());
    match &got {
        Ok(addr) => {
            match family {
                Family::V4 => assert!(addr.is_ipv4(), "{input}: {addr} is not IPv4"),
                Family::V6 => assert!(addr.is_ipv6(), "{input}: {addr} is not IPv6"),
                Family::Any => {}
            }
            if numeric_port {
                assert_eq!(Ok(addr.port()), port.parse::<u16>(), "{input}: port");
            }
            // The answer, written back as text, is the same address: nothing is lost or
            // invented on the way (scope ids included).
            let again = socket_addr_numeric(
                &host_text(addr),
                &addr.port().to_string(),
                family,
                transport,
            );
            assert_eq!(
                again.ok(),
                Some(*addr),
                "{input}: {addr} does not read back"
            );
            // A numeric host gives the same answer with name resolution allowed (glibc
            // answers numeric forms before it asks NSS, so this sends no query).
            let resolved = socket_addr(host, port, family, transport);
            assert_eq!(resolved.ok(), Some(*addr), "{input}: socket_addr differs");
        }
        Err(e) => {
            let text = e.to_string();
            assert!(
                text.starts_with("host ") || text.starts_with("port "),
                "{input}: the error does not name its input: {text}"
            );
            // Inputs are cut to 100 characters in messages.
            assert!(
                text.len() < 3_000,
                "{input}: message of {} bytes",
                text.len()
            );
            if numeric_port && port.parse::<u16>().is_err() {
                assert_eq!(e.kind(), ErrorKind::InvalidPort, "{input}: {text}");
            }
        }
    }
    got
}
