//! `socket_addr` compared with Python where Python defines the form: IPv4 hosts with
//! `socket.gethostbyname` (Python's `setipaddr` for `AF_INET`), IPv6 literals with
//! `socket.getaddrinfo(..., AI_NUMERICHOST)`, service names with `socket.getservbyname`. The forms
//! where we differ on purpose are asserted in `deliberate_differences.rs`.

use crate::common;

use std::net::SocketAddr;

use common::python;
use resolver::{socket_addr, Family, Transport};
use serde_json::{json, Value};

const V4_HOSTS: &[&str] = &[
    "",
    "<broadcast>",
    "255.255.255.255",
    "127.0.0.1",
    "127.1",
    "0x7f.1",
    "0X7F.0.0.1",
    "0177.0.0.1",
    "2130706433",
    "0x7f000001",
    // Octal integers above 32 bits when read as decimal (found by tests/properties.rs).
    "022107675241",
    "037777777777",
    "0",
    "1.2.3",
    "10.0.0.255",
    "a..b",
];

#[test]
fn ipv4_hosts_match_gethostbyname() {
    let mut hosts: Vec<String> = V4_HOSTS.iter().map(|h| (*h).to_owned()).collect();
    // Names only from /etc/hosts: any other name would wait for DNS.
    let hostname = resolver::gethostname().expect("gethostname");
    for name in ["localhost".to_owned(), hostname] {
        if common::in_hosts(&name).is_some_and(|e| e.v4) && !hosts.contains(&name) {
            hosts.push(name);
        }
    }
    let cases: Vec<Value> = hosts
        .iter()
        .map(|h| json!({"op": "ghbn", "host": h}))
        .collect();
    let expected = python(&cases);
    for (host, python) in hosts.iter().zip(&expected) {
        for transport in [Transport::Tcp, Transport::Udp] {
            let ours = match socket_addr(host, "12345", Family::V4, transport) {
                Ok(SocketAddr::V4(a)) => {
                    assert_eq!(a.port(), 12345);
                    json!({"ok": a.ip().to_string()})
                }
                Ok(other) => json!({"ours": other.to_string()}),
                Err(e) => common::error_json(&e),
            };
            assert!(
                common::same(python, &ours),
                "host {host:?}: python {python}, ours {ours}"
            );
        }
        // Family::Any gives the same IPv4 answer for every IPv4 form.
        if let Some(ip) = python["ok"].as_str() {
            let any = socket_addr(host, "1", Family::Any, Transport::Tcp).expect("Family::Any");
            assert_eq!(any.ip().to_string(), ip, "host {host:?} with Family::Any");
        }
    }
}

#[test]
fn ipv6_literals_match_getaddrinfo_numerichost() {
    let hosts = [
        "::1",
        "::",
        "::ffff:127.0.0.1",
        "fe80::1%lo",
        "fe80::1%1",
        "2001:db8::1",
    ];
    let cases: Vec<Value> = hosts
        .iter()
        .map(|h| {
            common::gai_case(
                Some(h),
                Some("80"),
                libc::AF_INET6,
                libc::SOCK_STREAM,
                0,
                libc::AI_NUMERICHOST,
            )
        })
        .collect();
    let expected = python(&cases);
    for (host, python) in hosts.iter().zip(&expected) {
        for family in [Family::Any, Family::V6] {
            let ours = socket_addr(host, "80", family, Transport::Tcp).expect(host);
            // The scope id is kept, as getaddrinfo keeps it.
            assert_eq!(
                common::addr_json(&ours),
                python["ok"][0][4],
                "host {host:?} {family:?}"
            );
        }
    }
}

#[test]
fn service_names_match_getservbyname() {
    let names = [
        "www",
        "http",
        "ssh",
        "domain",
        "ntp",
        "https",
        "nosuchservice",
    ];
    let mut cases = Vec::new();
    for name in names {
        for proto in ["tcp", "udp"] {
            cases.push(json!({"op": "serv", "name": name, "proto": proto}));
        }
    }
    let expected = python(&cases);
    for (case, python) in cases.iter().zip(&expected) {
        let transport = if case["proto"] == "tcp" {
            Transport::Tcp
        } else {
            Transport::Udp
        };
        let name = case["name"].as_str().expect("name");
        let ours = socket_addr("127.0.0.1", name, Family::V4, transport);
        match python.get("ok").and_then(Value::as_u64) {
            Some(port) => assert_eq!(ours.map(|a| u64::from(a.port())).ok(), Some(port), "{case}"),
            None => {
                let err = ours.expect_err("python found no such service");
                assert_eq!(err.eai_code(), Some(libc::EAI_SERVICE), "{case}: {err}");
                assert!(err.to_string().starts_with(&format!("port \"{name}\": ")));
            }
        }
    }
}

#[test]
fn numeric_ports() {
    for (port, expected) in [("0", Some(0)), ("80", Some(80)), ("65535", Some(65535))] {
        let ours = socket_addr("", port, Family::V4, Transport::Tcp).map(|a| a.port());
        assert_eq!(ours.ok(), expected, "port {port:?}");
    }
    // Python's bind refuses these too (OverflowError: port must be 0-65535).
    for port in ["65536", "99999999999999999999", ""] {
        let err = socket_addr("", port, Family::V4, Transport::Tcp).expect_err(port);
        assert_eq!(
            err.kind(),
            resolver::ErrorKind::InvalidPort,
            "{port:?}: {err}"
        );
    }
}
