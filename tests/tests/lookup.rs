//! End-to-end tests of `greet-client lookup`: the real binary's output compared with what
//! Python's `socket.getaddrinfo`/`getnameinfo` and `pprint` print on this machine, computed by
//! `python3` at test time (one process for all cases).
//!
//! No case asks DNS (this machine has no network): names come from `/etc/hosts`, read at test
//! time, with only the families listed there; other names are tried with `--numeric-host`.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use serde_json::{json, Value};

const ORACLE: &str = r#"
import json, pprint, socket, sys

def gai(c):
    try:
        r = socket.getaddrinfo(c["host"], c["service"], c["family"], c["type"], c["proto"],
                               c["flags"])
    except socket.gaierror as e:
        return {"code": 1, "errno": e.errno, "strerror": e.strerror}
    entries = [(int(f), int(t), p, cn, a) for f, t, p, cn, a in r]
    if c["json"]:
        doc = {"hostname": socket.gethostname(),
               "addresses": [{"family": f, "type": t, "proto": p, "canonname": cn,
                              "address": list(a)} for f, t, p, cn, a in entries]}
        return {"code": 0, "stdout": json.dumps(doc) + "\n"}
    return {"code": 0, "stdout": pprint.pformat(entries) + "\n" + socket.gethostname() + "\n"}

def gni(c):
    try:
        r = socket.getnameinfo((c["host"], c["port"]), c["flags"])
    except socket.gaierror as e:
        return {"code": 1, "errno": e.errno, "strerror": e.strerror}
    return {"code": 0, "stdout": pprint.pformat(r) + "\n"}

cases = json.load(sys.stdin)
json.dump([gai(c) if c["op"] == "gai" else gni(c) for c in cases], sys.stdout)
"#;

fn python(cases: &[Value]) -> Vec<Value> {
    let mut child = Command::new("python3")
        .args(["-c", ORACLE])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 must be installed: it is the test oracle");
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(&serde_json::to_vec(cases).expect("JSON"))
        .expect("write cases");
    let out = child.wait_with_output().expect("python3 runs");
    assert!(out.status.success(), "python3 oracle failed");
    serde_json::from_slice(&out.stdout).expect("python3 prints JSON")
}

fn lookup(args: &[&str]) -> Output {
    let out = Command::new(e2e::bin("greet-client"))
        .arg("lookup")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run greet-client lookup");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("unrecognized subcommand 'lookup'"),
        "greet-client has no `lookup` subcommand: main.rs must route `lookup` to lookup::run"
    );
    out
}

/// Families `/etc/hosts` lists for a name: (IPv4, IPv6).
fn hosts_families(name: &str) -> (bool, bool) {
    let text = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
    let (mut v4, mut v6) = (false, false);
    for line in text.lines() {
        let mut fields = line.split('#').next().unwrap_or("").split_whitespace();
        let Some(Ok(ip)) = fields.next().map(str::parse::<std::net::IpAddr>) else {
            continue;
        };
        if fields.any(|f| f == name) {
            v4 |= ip.is_ipv4();
            v6 |= ip.is_ipv6();
        }
    }
    (v4, v6)
}

fn hostname() -> String {
    let out = Command::new("python3")
        .args(["-c", "import socket; print(socket.gethostname())"])
        .output()
        .expect("python3");
    String::from_utf8_lossy(&out.stdout).trim_end().to_owned()
}

/// One forward lookup: the command line and the same call in Python's terms.
struct Case {
    args: Vec<String>,
    oracle: Value,
}

fn forward(host: &str, service: Option<&str>, extra: &[&str], json: bool) -> Case {
    let mut args = vec![host.to_owned()];
    args.extend(service.map(str::to_owned));
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    let (mut family, mut socktype, mut proto, mut flags) = (0, 0, 0, 0);
    let mut it = extra.iter();
    while let Some(arg) = it.next() {
        match *arg {
            "-4" => family = libc::AF_INET,
            "-6" => family = libc::AF_INET6,
            "--type" => {
                socktype = match it.next().copied() {
                    Some("stream") => libc::SOCK_STREAM,
                    Some("dgram") => libc::SOCK_DGRAM,
                    Some("raw") => libc::SOCK_RAW,
                    Some("seqpacket") => libc::SOCK_SEQPACKET,
                    Some(n) => n.parse().expect("numeric type"),
                    None => panic!("--type needs a value"),
                }
            }
            "--proto" => proto = it.next().and_then(|p| p.parse().ok()).expect("--proto N"),
            "--passive" => flags |= libc::AI_PASSIVE,
            "--canonname" => flags |= libc::AI_CANONNAME,
            "--numeric-host" => flags |= libc::AI_NUMERICHOST,
            "--numeric-serv" => flags |= libc::AI_NUMERICSERV,
            "--addrconfig" => flags |= libc::AI_ADDRCONFIG,
            other => panic!("no oracle for {other}"),
        }
    }
    if json {
        args.push("--json".to_owned());
    }
    Case {
        args,
        oracle: json!({"op": "gai", "host": host, "service": service, "family": family,
                       "type": socktype, "proto": proto, "flags": flags, "json": json}),
    }
}

fn check(cases: &[Case]) {
    let oracle: Vec<Value> = cases.iter().map(|c| c.oracle.clone()).collect();
    let expected = python(&oracle);
    for (case, want) in cases.iter().zip(&expected) {
        let args: Vec<&str> = case.args.iter().map(String::as_str).collect();
        let out = lookup(&args);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let code = out.status.code();
        if want["code"] == 0 {
            assert_eq!(code, Some(0), "lookup {args:?}: stderr {stderr}");
            assert_eq!(
                stdout,
                want["stdout"].as_str().expect("stdout"),
                "lookup {args:?}"
            );
        } else {
            assert_eq!(code, Some(1), "lookup {args:?}: stdout {stdout}");
            let (host, service) = (&case.args[0], case.oracle["service"].as_str());
            let label = if case.oracle["op"] == "gni" {
                format!("lookup --reverse {host} {}", case.oracle["port"])
            } else {
                match service {
                    Some(s) => format!("lookup {host} {s}"),
                    None => format!("lookup {host}"),
                }
            };
            let errno = want["errno"].as_i64().expect("errno");
            let strerror = want["strerror"].as_str().expect("strerror");
            assert_eq!(
                stderr,
                format!("greet-client: {label}: [Errno {errno}] {strerror}\n"),
                "lookup {args:?}"
            );
            if args.contains(&"--json") {
                let doc: Value = serde_json::from_str(&stdout).expect("JSON error document");
                assert_eq!(
                    doc,
                    json!({"error": {"code": errno, "message": strerror}}),
                    "lookup {args:?}"
                );
            } else {
                assert_eq!(stdout, "", "lookup {args:?}");
            }
        }
    }
}

#[test]
fn tutorial_lookup_prints_what_python_prints() {
    // The issue's acceptance line: `lookup localhost www` is Python's pprint and hostname.
    check(&[forward("localhost", Some("www"), &[], false)]);
    let out = lookup(&["localhost", "www"]);
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    assert!(lines.next().is_some_and(|l| l.starts_with("[(")), "{text}");
    assert_eq!(lines.next(), Some(hostname().as_str()));
}

#[test]
fn forward_lookups_match_python() {
    let mut cases = Vec::new();
    let mut names = vec!["localhost".to_owned()];
    let me = hostname();
    if me != "localhost" {
        names.push(me);
    }
    for name in &names {
        let (v4, v6) = hosts_families(name);
        if !(v4 || v6) {
            // Not in /etc/hosts: only a numeric-host lookup is quick (and fails).
            cases.push(forward(name, Some("www"), &["--numeric-host"], false));
            continue;
        }
        for json in [false, true] {
            cases.push(forward(name, Some("www"), &[], json));
            cases.push(forward(name, None, &[], json));
            cases.push(forward(name, Some("ssh"), &["--type", "stream"], json));
            cases.push(forward(name, Some("domain"), &["--type", "dgram"], json));
            cases.push(forward(name, Some("80"), &["--canonname"], json));
            cases.push(forward(name, Some("nosuchservice"), &[], json));
        }
        cases.push(forward(name, None, &["--type", "seqpacket"], false));
        cases.push(forward(name, Some("9"), &["--proto", "132"], false));
        cases.push(forward(name, Some("http"), &["--numeric-serv"], false));
        if v4 {
            cases.push(forward(name, Some("ssh"), &["-4", "--addrconfig"], false));
        }
        if v6 {
            cases.push(forward(name, Some("ssh"), &["-6"], false));
        }
    }
    for json in [false, true] {
        cases.push(forward("::1", Some("ssh"), &[], json));
        cases.push(forward("127.1", Some("22"), &["--numeric-host"], json));
        cases.push(forward("0x7f.1", Some("http"), &["-4"], json));
        cases.push(forward(
            "::",
            Some("80"),
            &["--passive", "--type", "dgram"],
            json,
        ));
        cases.push(forward(
            "fe80::1%1",
            Some("80"),
            &["--type", "stream"],
            json,
        ));
        cases.push(forward(
            "nosuch.invalid",
            Some("www"),
            &["--numeric-host"],
            json,
        ));
        cases.push(forward("127.0.0.1", Some("www"), &["-6"], json));
        cases.push(forward("127.0.0.1", Some("0"), &["--type", "raw"], json));
        // A negative port number is a SERVICE without `--` (Python: EAI_SERVICE), and -4
        // after HOST is still the flag.
        cases.push(forward("127.0.0.1", Some("-1"), &[], json));
        cases.push(forward("::1", Some("-1"), &["--numeric-serv"], json));
        cases.push(forward(
            "127.0.0.1",
            Some("-65536"),
            &["--type", "dgram"],
            json,
        ));
        cases.push(forward(
            "127.0.0.1",
            Some("99999999999999999999"),
            &[],
            json,
        ));
        cases.push(forward("127.0.0.1", None, &["-4"], json));
    }
    check(&cases);
}

#[test]
fn reverse_lookups_match_python() {
    let reverse = |host: &str, port: u16, extra: &[&str], flags: i32| Case {
        args: [
            vec!["--reverse".to_owned(), host.to_owned(), port.to_string()],
            extra.iter().map(|s| (*s).to_owned()).collect(),
        ]
        .concat(),
        oracle: json!({"op": "gni", "host": host, "port": port, "flags": flags}),
    };
    let mut cases = vec![
        reverse("::1", 80, &["--numeric-host"], libc::NI_NUMERICHOST),
        reverse(
            "127.0.0.1",
            53,
            &["--numeric-host", "--type", "dgram"],
            libc::NI_NUMERICHOST | libc::NI_DGRAM,
        ),
        reverse(
            "10.1.2.3",
            12345,
            &["--numeric-host", "--numeric-serv"],
            libc::NI_NUMERICHOST | libc::NI_NUMERICSERV,
        ),
    ];
    // Names only for an address /etc/hosts lists (any other would ask DNS).
    if hosts_families("localhost").0 {
        cases.push(reverse("127.0.0.1", 22, &[], 0));
        cases.push(reverse(
            "127.0.0.1",
            80,
            &["--name-required"],
            libc::NI_NAMEREQD,
        ));
    }
    let oracle: Vec<Value> = cases.iter().map(|c| c.oracle.clone()).collect();
    let expected = python(&oracle);
    for (case, want) in cases.iter().zip(&expected) {
        let args: Vec<&str> = case.args.iter().map(String::as_str).collect();
        let out = lookup(&args);
        assert_eq!(out.status.code(), Some(0), "lookup {args:?}");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            want["stdout"].as_str().expect("python succeeded"),
            "lookup {args:?}"
        );
    }
}

/// The tutorial prints the hostname after getaddrinfo's list only: a reverse lookup prints
/// its (host, service) pair alone, and its JSON document holds just those two.
#[test]
fn reverse_prints_the_pair_without_the_hostname() {
    let out = lookup(&[
        "--reverse",
        "127.0.0.1",
        "80",
        "--numeric-host",
        "--numeric-serv",
    ]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "('127.0.0.1', '80')\n"
    );
    let out = lookup(&[
        "--reverse",
        "::1",
        "22",
        "--numeric-host",
        "--numeric-serv",
        "--json",
    ]);
    let doc: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(doc, json!({"host": "::1", "service": "22"}));
}

#[test]
fn reverse_failure_is_reported() {
    // 192.0.2.1 has no name, and --numeric-host --name-required refuses without asking DNS.
    let out = lookup(&[
        "--reverse",
        "192.0.2.1",
        "80",
        "--numeric-host",
        "--name-required",
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with("greet-client: lookup --reverse 192.0.2.1 80: [Errno "),
        "{stderr}"
    );
    let doc: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert!(doc["error"]["code"].is_i64(), "{doc}");
}

#[test]
fn deliberate_differences_are_errors() {
    // Python wraps 70000 to port 4464; we refuse it with the code Python gives for every
    // other out-of-range service (EAI_SERVICE). Python raises UnicodeError for "a..b": no code.
    for (args, message, code) in [
        (
            vec!["127.0.0.1", "70000"],
            "greet-client: lookup 127.0.0.1 70000: [Errno -8] Servname not supported for ai_socktype\n",
            json!(-8),
        ),
        (
            vec!["a..b", "80"],
            "greet-client: lookup a..b 80: label empty or too long\n",
            Value::Null,
        ),
    ] {
        let out = lookup(&args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert_eq!(String::from_utf8_lossy(&out.stderr), message);
        let mut json_args = args.clone();
        json_args.push("--json");
        let out = lookup(&json_args);
        let doc: Value = serde_json::from_slice(&out.stdout).expect("JSON");
        assert_eq!(doc["error"]["code"], code, "{args:?}");
    }
}

#[test]
fn bad_arguments_exit_2() {
    for args in [
        vec!["localhost", "www", "--type", "bogus"],
        vec![],
        vec!["-4", "-6", "localhost"],
        vec!["--reverse", "127.0.0.1", "--passive"],
        // HOST and SERVICE take negative numbers, not mistyped flags.
        vec!["localhost", "--bogus"],
        vec!["localhost", "-x"],
        vec!["--bogus", "www"],
    ] {
        let out = lookup(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(!out.stderr.is_empty());
    }
}
