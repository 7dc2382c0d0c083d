//! The Python oracle: expected values computed at test time by `python3` on this machine.
//!
//! One `python3` process per call answers a whole JSON list of cases, so a test with thousands
//! of cases starts Python once.
#![allow(dead_code)]

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::{json, Value};

const ORACLE: &str = r#"
import json, socket, sys

def run(c):
    op = c["op"]
    try:
        if op == "gai":
            r = socket.getaddrinfo(c["host"], c["service"], c["family"], c["type"],
                                   c["proto"], c["flags"])
            return {"ok": [[int(f), int(t), p, cn, list(a)] for f, t, p, cn, a in r]}
        if op == "gni":
            return {"ok": list(socket.getnameinfo(tuple(c["addr"]), c["flags"]))}
        if op == "ghbn":
            return {"ok": socket.gethostbyname(c["host"])}
        if op == "serv":
            return {"ok": socket.getservbyname(c["name"], c["proto"])}
        if op == "hostname":
            return {"ok": socket.gethostname()}
        if op == "idna":
            return {"ok": c["host"].encode("idna").decode("ascii")}
        return {"other": "unknown op " + op}
    except socket.gaierror as e:
        return {"gaierror": e.errno, "message": e.strerror}
    except OSError as e:
        return {"oserror": e.errno, "message": str(e)}
    except UnicodeError as e:
        return {"unicode": str(e)}
    except Exception as e:
        return {"other": type(e).__name__ + ": " + str(e)}

json.dump([run(c) for c in json.load(sys.stdin)], sys.stdout)
"#;

/// Runs every case through Python and returns its answers, in order.
pub fn python(cases: &[Value]) -> Vec<Value> {
    let mut child = Command::new("python3")
        .args(["-c", ORACLE])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("python3 must be installed: it is the test oracle");
    let input = serde_json::to_vec(cases).expect("cases serialise");
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(&input)
        .expect("write cases to python3");
    let out = child.wait_with_output().expect("python3 runs");
    assert!(
        out.status.success(),
        "python3 oracle failed: {:?}",
        out.status
    );
    let answers: Vec<Value> = serde_json::from_slice(&out.stdout).expect("python3 prints JSON");
    assert_eq!(answers.len(), cases.len());
    answers
}

/// A `getaddrinfo` case in the oracle's form.
pub fn gai_case(
    host: Option<&str>,
    service: Option<&str>,
    family: i32,
    socktype: i32,
    proto: i32,
    flags: i32,
) -> Value {
    json!({"op": "gai", "host": host, "service": service, "family": family, "type": socktype,
           "proto": proto, "flags": flags})
}

/// Our answer to a `getaddrinfo` case, in the oracle's form.
pub fn our_gai(case: &Value) -> Value {
    let hints = resolver::Hints {
        family: int(&case["family"]),
        socktype: int(&case["type"]),
        protocol: int(&case["proto"]),
        flags: int(&case["flags"]),
    };
    match resolver::getaddrinfo(case["host"].as_str(), case["service"].as_str(), &hints) {
        Ok(list) => json!({"ok": list.iter().map(|ai| json!([
            ai.family, ai.socktype, ai.protocol, ai.canonname, addr_json(&ai.address)
        ])).collect::<Vec<_>>()}),
        Err(e) => error_json(&e),
    }
}

/// A socket address as Python's tuple, in JSON.
pub fn addr_json(addr: &std::net::SocketAddr) -> Value {
    match addr {
        std::net::SocketAddr::V4(a) => json!([a.ip().to_string(), a.port()]),
        std::net::SocketAddr::V6(a) => json!([
            resolver::ipv6_text(a.ip()),
            a.port(),
            a.flowinfo(),
            a.scope_id()
        ]),
    }
}

/// Our error in the oracle's form (Python's exception type and number).
pub fn error_json(e: &resolver::Error) -> Value {
    match e.kind() {
        resolver::ErrorKind::Lookup => json!({"gaierror": e.code(), "message": e.reason()}),
        resolver::ErrorKind::Os => json!({"oserror": e.code()}),
        // Python's idna codec refuses the same names with UnicodeError.
        resolver::ErrorKind::InvalidHost => json!({"unicode": e.reason()}),
        other => json!({"ours": format!("{other:?}: {e}")}),
    }
}

/// Compares answers, ignoring the text of UnicodeError (Python's wording differs).
pub fn same(python: &Value, ours: &Value) -> bool {
    if python.get("unicode").is_some() {
        return ours.get("unicode").is_some();
    }
    if python.get("oserror").is_some() {
        return python["oserror"] == ours["oserror"];
    }
    python == ours
}

fn int(v: &Value) -> i32 {
    v.as_i64()
        .and_then(|n| i32::try_from(n).ok())
        .expect("an i32")
}

/// A name in `/etc/hosts`, with the families it has there.
#[derive(Debug, Clone)]
pub struct HostsName {
    pub name: String,
    pub v4: bool,
    pub v6: bool,
}

/// The names of `/etc/hosts`, read at test time: only they resolve without DNS, and this
/// machine has no network (a name outside it waits for a DNS timeout).
pub fn hosts_names() -> Vec<HostsName> {
    let text = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
    let mut names: Vec<HostsName> = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("");
        let mut fields = line.split_whitespace();
        let Some(addr) = fields.next() else { continue };
        let Ok(ip) = addr.parse::<std::net::IpAddr>() else {
            continue;
        };
        for name in fields {
            let entry = match names.iter_mut().find(|n| n.name == name) {
                Some(e) => e,
                None => {
                    names.push(HostsName {
                        name: name.to_owned(),
                        v4: false,
                        v6: false,
                    });
                    names.last_mut().expect("just pushed")
                }
            };
            if ip.is_ipv4() {
                entry.v4 = true;
            } else {
                entry.v6 = true;
            }
        }
    }
    names
}

/// `/etc/hosts`'s entry for a name, if it has one.
pub fn in_hosts(name: &str) -> Option<HostsName> {
    hosts_names().into_iter().find(|n| n.name == name)
}

/// The addresses listed in `/etc/hosts` (reverse lookups of others would ask DNS).
pub fn hosts_addresses() -> Vec<std::net::IpAddr> {
    let text = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("");
        if let Some(Ok(ip)) = line
            .split_whitespace()
            .next()
            .map(str::parse::<std::net::IpAddr>)
        {
            if line.split_whitespace().count() > 1 && !out.contains(&ip) {
                out.push(ip);
            }
        }
    }
    out
}
