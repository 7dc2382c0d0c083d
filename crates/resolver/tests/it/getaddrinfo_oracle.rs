//! `getaddrinfo` compared with Python's `socket.getaddrinfo`, case by case: the same entries in
//! the same order, or the same error number and message. Expected values come from `python3` at
//! test time.
//!
//! No case makes either side ask DNS (this machine has no network): host names are taken from
//! `/etc/hosts` at test time, with only the families listed there; any other name is tried with
//! `AI_NUMERICHOST` only.

use crate::common;

use common::{gai_case, hosts_names, our_gai, python, same};
use libc::{
    AF_INET, AF_INET6, AI_ADDRCONFIG, AI_ALL, AI_CANONNAME, AI_NUMERICHOST, AI_NUMERICSERV,
    AI_PASSIVE, AI_V4MAPPED, IPPROTO_SCTP, IPPROTO_TCP, IPPROTO_UDP, SOCK_DGRAM, SOCK_RAW,
    SOCK_SEQPACKET, SOCK_STREAM,
};
use serde_json::Value;

/// Hosts that libc resolves without NSS, so with every flag and family.
const NUMERIC_HOSTS: &[&str] = &[
    "127.0.0.1",
    "127.1",
    "0x7f.1",
    "0177.0.0.1",
    "2130706433",
    "0.0.0.0",
    "255.255.255.255",
    "::1",
    "::",
    "::ffff:127.0.0.1",
    "fe80::1%1",
    "fe80::1%lo",
];

/// Hosts that fail before any lookup on both sides, or only tried with `AI_NUMERICHOST`.
const NUMERIC_ONLY_HOSTS: &[&str] = &[
    "",
    "nosuch.invalid",
    "bücher.example",
    "1.2.3.4 ",
    "256.0.0.1",
    "fe80::1%nosuchif0",
];

/// Names Python (its idna codec) and we refuse before libc is asked.
const REFUSED_HOSTS: &[&str] = &["a..b", ".", "x.."];

const SERVICES: &[Option<&str>] = &[
    None,
    Some("www"),
    Some("http"),
    Some("ssh"),
    Some("domain"),
    Some("80"),
    Some("0"),
    Some("65535"),
    Some(" 22"),
    Some(""),
    Some("nosuchservice"),
];

const FLAGS: &[i32] = &[
    0,
    AI_PASSIVE,
    AI_CANONNAME,
    AI_NUMERICHOST,
    AI_NUMERICSERV,
    AI_ADDRCONFIG,
    AI_V4MAPPED,
    AI_V4MAPPED | AI_ALL,
    AI_PASSIVE | AI_NUMERICSERV,
    AI_CANONNAME | AI_NUMERICHOST,
];

/// A host with the families and flags it may be tried with without asking DNS.
struct HostPlan {
    host: Option<String>,
    families: Vec<i32>,
    flags: Vec<i32>,
}

fn plans() -> Vec<HostPlan> {
    let mut plans = vec![HostPlan {
        host: None,
        families: vec![0, AF_INET, AF_INET6],
        flags: FLAGS.to_vec(),
    }];
    for h in NUMERIC_HOSTS.iter().chain(REFUSED_HOSTS) {
        plans.push(HostPlan {
            host: Some((*h).to_owned()),
            families: vec![0, AF_INET, AF_INET6],
            flags: FLAGS.to_vec(),
        });
    }
    for h in NUMERIC_ONLY_HOSTS {
        plans.push(HostPlan {
            host: Some((*h).to_owned()),
            families: vec![0, AF_INET, AF_INET6],
            flags: FLAGS
                .iter()
                .map(|f| f | AI_NUMERICHOST)
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect(),
        });
    }
    // /etc/hosts names, including this machine's host name when it is listed there; only the
    // families it lists, since a missing family goes on to DNS.
    let hostname = resolver::gethostname().expect("gethostname");
    let mut names: Vec<String> = vec!["localhost".to_owned(), hostname.clone()];
    names.dedup();
    for name in names {
        let Some(entry) = common::in_hosts(&name) else {
            eprintln!("{name:?} is not in /etc/hosts: tried with AI_NUMERICHOST only");
            plans.push(HostPlan {
                host: Some(name),
                families: vec![0, AF_INET, AF_INET6],
                flags: vec![AI_NUMERICHOST],
            });
            continue;
        };
        let mut families = vec![0];
        if entry.v4 {
            families.push(AF_INET);
        }
        if entry.v6 {
            families.push(AF_INET6);
        }
        let flags = FLAGS
            .iter()
            .copied()
            .filter(|f| {
                // V4MAPPED with AF_INET6 asks for AAAA first, and AI_ALL asks for both.
                (f & AI_V4MAPPED == 0 || (entry.v6 && (f & AI_ALL == 0 || entry.v4)))
                    && !(f & AI_NUMERICHOST != 0 && f & AI_CANONNAME != 0)
            })
            .collect();
        plans.push(HostPlan {
            host: Some(name),
            families,
            flags,
        });
    }
    plans
}

fn cases() -> Vec<Value> {
    let mut cases = Vec::new();
    for plan in plans() {
        let host = plan.host.as_deref();
        // Every service, family and type, without flags.
        for service in SERVICES {
            for &family in &plan.families {
                for socktype in [0, SOCK_STREAM, SOCK_DGRAM] {
                    let flags = plan.flags[0];
                    cases.push(gai_case(host, *service, family, socktype, 0, flags));
                }
            }
        }
        // Every flag, with a few services.
        for service in [None, Some("www"), Some("53"), Some("nosuchservice")] {
            for &family in &plan.families {
                for socktype in [0, SOCK_DGRAM] {
                    for &flags in &plan.flags {
                        cases.push(gai_case(host, service, family, socktype, 0, flags));
                    }
                }
            }
        }
        // Types and protocols beyond TCP and UDP: raw, SCTP's SOCK_SEQPACKET, mismatches.
        for (socktype, proto) in [
            (SOCK_RAW, 0),
            (SOCK_SEQPACKET, 0),
            (0, IPPROTO_TCP),
            (0, IPPROTO_UDP),
            (0, IPPROTO_SCTP),
            (SOCK_STREAM, IPPROTO_UDP),
            (SOCK_DGRAM, IPPROTO_UDP),
            (SOCK_SEQPACKET, IPPROTO_SCTP),
            (99, 0),
            (0, 99),
        ] {
            for service in [None, Some("ssh"), Some("9")] {
                cases.push(gai_case(
                    host,
                    service,
                    plan.families[0],
                    socktype,
                    proto,
                    plan.flags[0],
                ));
            }
        }
        // Bad family and bad flags.
        cases.push(gai_case(host, Some("80"), 99, 0, 0, plan.flags[0]));
        cases.push(gai_case(host, Some("80"), 0, 0, 0, plan.flags[0] | 0x10000));
    }
    cases
}

#[test]
fn getaddrinfo_matches_python() {
    let cases = cases();
    let expected = python(&cases);
    let mut mismatches = Vec::new();
    let (mut ok, mut errors) = (0, 0);
    for (case, python) in cases.iter().zip(&expected) {
        let ours = our_gai(case);
        if same(python, &ours) {
            if python.get("ok").is_some() {
                ok += 1;
            } else {
                errors += 1;
            }
        } else {
            mismatches.push(format!("{case}\n  python: {python}\n  ours:   {ours}"));
        }
    }
    eprintln!(
        "getaddrinfo: {} cases compared with python3 ({ok} with results, {errors} errors)",
        cases.len()
    );
    assert!(cases.len() >= 300, "only {} cases", cases.len());
    assert!(ok >= 100 && errors >= 100, "{ok} results, {errors} errors");
    assert!(
        mismatches.is_empty(),
        "{} of {} cases differ from Python:\n{}",
        mismatches.len(),
        cases.len(),
        mismatches[..mismatches.len().min(20)].join("\n")
    );
}

#[test]
fn gethostname_matches_python() {
    let expected = python(&[serde_json::json!({"op": "hostname"})]);
    assert_eq!(
        expected[0]["ok"].as_str(),
        Some(resolver::gethostname().expect("gethostname").as_str())
    );
}

#[test]
fn hosts_file_names_are_tried() {
    // The oracle cases include at least localhost from /etc/hosts on any machine that has it.
    if hosts_names().iter().any(|n| n.name == "localhost") {
        assert!(cases()
            .iter()
            .any(|c| c["host"] == "localhost" && c["flags"] == 0));
    }
}
