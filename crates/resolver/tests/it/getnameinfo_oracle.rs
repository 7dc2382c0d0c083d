//! `getnameinfo` compared with Python's `socket.getnameinfo`: the same names, or the same error
//! number and message. Only addresses listed in `/etc/hosts` are looked up by name; every other
//! address is tried with `NI_NUMERICHOST`, so no case asks DNS.

use crate::common;

use std::net::{IpAddr, SocketAddr, SocketAddrV6};

use common::python;
use resolver::{NI_DGRAM, NI_NAMEREQD, NI_NOFQDN, NI_NUMERICHOST, NI_NUMERICSERV};
use serde_json::{json, Value};

const OTHER_ADDRESSES: &[&str] = &[
    "127.0.0.1",
    "0.0.0.0",
    "255.255.255.255",
    "10.1.2.3",
    "::1",
    "::",
    "::ffff:127.0.0.1",
    "::1.2.3.4",
    "2001:db8::1",
    "fe80::1",
];

const PORTS: &[u16] = &[0, 7, 13, 22, 53, 80, 443, 12345, 65535];

const FLAGS: &[i32] = &[
    0,
    NI_NUMERICHOST,
    NI_NUMERICSERV,
    NI_NOFQDN,
    NI_NAMEREQD,
    NI_DGRAM,
    NI_NUMERICHOST | NI_NUMERICSERV,
    NI_NAMEREQD | NI_NUMERICSERV,
    NI_DGRAM | NI_NOFQDN,
];

fn addresses() -> Vec<(SocketAddr, bool)> {
    let listed = common::hosts_addresses();
    let mut out = Vec::new();
    let mut ips: Vec<IpAddr> = listed.clone();
    for a in OTHER_ADDRESSES {
        let ip: IpAddr = a.parse().expect("test address");
        if !ips.contains(&ip) {
            ips.push(ip);
        }
    }
    for ip in ips {
        let in_hosts = listed.contains(&ip);
        for &port in PORTS {
            out.push((SocketAddr::new(ip, port), in_hosts));
        }
    }
    // A scoped link-local address: the scope id shows as "%lo" in the numeric host.
    if let Ok(SocketAddr::V6(a)) = "[fe80::1]:80".parse::<SocketAddr>() {
        out.push((
            SocketAddr::V6(SocketAddrV6::new(*a.ip(), a.port(), 0, 1)),
            false,
        ));
    }
    out
}

#[test]
fn getnameinfo_matches_python() {
    let mut cases = Vec::new();
    let mut inputs = Vec::new();
    for (addr, in_hosts) in addresses() {
        for &flags in FLAGS {
            // An address outside /etc/hosts would be looked up in DNS.
            let flags = if in_hosts {
                flags
            } else {
                flags | NI_NUMERICHOST
            };
            if inputs.contains(&(addr, flags)) {
                continue;
            }
            inputs.push((addr, flags));
            cases.push(json!({"op": "gni", "addr": common::addr_json(&addr), "flags": flags}));
        }
    }
    let expected = python(&cases);
    let mut mismatches = Vec::new();
    for ((addr, flags), python) in inputs.iter().zip(&expected) {
        let ours: Value = match resolver::getnameinfo(addr, *flags) {
            Ok((h, s)) => json!({"ok": [h, s]}),
            Err(e) => common::error_json(&e),
        };
        if !common::same(python, &ours) {
            mismatches.push(format!(
                "{addr} flags {flags:#x}\n  python: {python}\n  ours:   {ours}"
            ));
        }
    }
    eprintln!("getnameinfo: {} cases compared with python3", cases.len());
    assert!(cases.len() >= 100, "only {} cases", cases.len());
    assert!(
        mismatches.is_empty(),
        "{} of {} cases differ from Python:\n{}",
        mismatches.len(),
        cases.len(),
        mismatches[..mismatches.len().min(20)].join("\n")
    );
}

#[test]
fn getnameinfo_error_names_the_address() {
    // 192.0.2.1 (TEST-NET-1) with NI_NUMERICHOST | NI_NAMEREQD: glibc refuses at once.
    let addr: SocketAddr = "192.0.2.1:80".parse().expect("address");
    match resolver::getnameinfo(&addr, NI_NUMERICHOST | NI_NAMEREQD) {
        Ok(found) => panic!("expected an error, got {found:?}"),
        Err(e) => {
            assert_eq!(e.kind(), resolver::ErrorKind::Lookup);
            assert!(e
                .to_string()
                .starts_with("address ('192.0.2.1', 80): [Errno "));
        }
    }
}
