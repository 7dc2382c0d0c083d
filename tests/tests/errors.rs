//! Every error path of both binaries: one clear line on stderr naming the input or the
//! address, the right exit status, no panic.

use e2e::{bin, temp_dir};
use std::process::{Command, Stdio};

struct Case {
    program: &'static str,
    args: Vec<String>,
    status: i32,
    /// Every one of these must appear in stderr.
    mentions: Vec<String>,
}

fn case(program: &'static str, args: &[&str], status: i32, mentions: &[&str]) -> Case {
    Case {
        program,
        args: args.iter().map(|s| s.to_string()).collect(),
        status,
        mentions: mentions.iter().map(|s| s.to_string()).collect(),
    }
}

#[test]
fn error_paths_give_one_clear_line_and_the_right_status() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken_port = taken.local_addr().unwrap().port().to_string();
    let taken_udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let taken_udp_port = taken_udp.local_addr().unwrap().port().to_string();
    let closed_port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port().to_string()
    };
    let dir = temp_dir("errors");
    let plain_file = dir.join("plain.txt");
    std::fs::write(&plain_file, "x").unwrap();
    let plain = plain_file.to_str().unwrap();
    let missing_dir = dir.join("no/such/dir/s.sock");
    let missing = missing_dir.to_str().unwrap();
    let missing_msg = dir.join("missing-message.txt");
    let missing_msg = missing_msg.to_str().unwrap();

    let cases = vec![
        // clap: bad flags and values, status 2
        case("greet-server", &["--no-such-flag"], 2, &["--no-such-flag"]),
        case("greet-server", &["--backlog=-1"], 2, &["--backlog"]),
        case("greet-server", &["--threads", "0"], 2, &["--threads"]),
        case(
            "greet-server",
            &["--idle-timeout", "soon"],
            2,
            &["--idle-timeout"],
        ),
        case(
            "greet-server",
            &["--udp", "--proxy-protocol"],
            2,
            &["--proxy-protocol", "--tcp"],
        ),
        case(
            "greet-server",
            &["--stats-interval", "0s"],
            2,
            &["--stats-interval"],
        ),
        case("greet-server", &["-4", "-6"], 2, &["-6"]),
        case("greet-client", &["--bogus"], 2, &["--bogus"]),
        case("greet-client", &["--bufsize", "0"], 2, &["--bufsize"]),
        case("greet-client", &["--timeout", "x"], 2, &["--timeout"]),
        // out-of-range port numbers are bad arguments: status 2 (clap's value parser)
        // bad hosts, services, addresses: status 1, the input named
        case(
            "greet-server",
            &["--host", "nosuch.invalid", "--port", "0"],
            1,
            &["nosuch.invalid"],
        ),
        case(
            "greet-server",
            &["--host", "300.1.1.1", "--port", "0"],
            1,
            &["300.1.1.1"],
        ),
        case(
            "greet-server",
            &["--host", "127.0.0.1", "--port", "65536"],
            2,
            &["65536"],
        ),
        case(
            "greet-server",
            &["--host", "127.0.0.1", "--port", "nosuchservice"],
            1,
            &["nosuchservice"],
        ),
        case(
            "greet-server",
            &["--host", "127.0.0.1", "--port=-5"],
            2,
            &["-5"],
        ),
        case(
            "greet-client",
            &["--host", "nosuch.invalid"],
            1,
            &["nosuch.invalid"],
        ),
        case(
            "greet-client",
            &["--host", "127.0.0.1", "--port", "70000"],
            2,
            &["70000"],
        ),
        case(
            "greet-client",
            &["--host", "127.0.0.1", "--port", "nosuchservice"],
            1,
            &["nosuchservice"],
        ),
        // addresses: in use, not local, refused
        case(
            "greet-server",
            &["--host", "127.0.0.1", "--port", &taken_port],
            1,
            &[&format!("127.0.0.1:{taken_port}"), "in use"],
        ),
        case(
            "greet-server",
            &["--udp", "--host", "127.0.0.1", "--port", &taken_udp_port],
            1,
            &[&format!("127.0.0.1:{taken_udp_port}"), "in use"],
        ),
        case(
            "greet-server",
            &["--host", "192.0.2.1", "--port", "0"],
            1,
            &["192.0.2.1"],
        ),
        case(
            "greet-client",
            &["--host", "127.0.0.1", "--port", &closed_port],
            1,
            &[&closed_port, "refused"],
        ),
        case(
            "greet-client",
            &[
                "--udp",
                "--host",
                "127.0.0.1",
                "--port",
                &closed_port,
                "--timeout",
                "5s",
            ],
            1,
            &[&closed_port, "refused"],
        ),
        // Unix paths and files
        case(
            "greet-server",
            &["--unix", plain],
            1,
            &["plain.txt", "not a socket"],
        ),
        case("greet-server", &["--unix", missing], 1, &["s.sock"]),
        case("greet-client", &["--unix", missing], 1, &["s.sock"]),
        case(
            "greet-server",
            &["--message-file", missing_msg],
            1,
            &["missing-message.txt"],
        ),
        case(
            "greet-server",
            &["--host", "127.0.0.1", "--port", ""],
            2,
            &["--port", "required"],
        ),
        case(
            "greet-server",
            &["--host", "a b", "--port", "0"],
            1,
            &["a b"],
        ),
        case(
            "greet-client",
            &["--host", "127.0.0.1", "--port", "12345x"],
            1,
            &["12345x"],
        ),
        case(
            "greet-server",
            &["--message-file", "/tmp"],
            1,
            &["/tmp", "directory"],
        ),
        case("greet-client", &["--unix", plain], 1, &["plain.txt"]),
        case(
            "greet-server",
            &["--max-connections", "abc"],
            2,
            &["--max-connections"],
        ),
        case(
            "greet-server",
            &["--max-connections", "0"],
            2,
            &["--max-connections", "never accept"],
        ),
        case(
            "greet-client",
            &["bench", "--port", "99999"],
            2,
            &["--port", "99999", "0-65535"],
        ),
        case(
            "greet-client",
            &["--udp", "--unix", "/tmp/x"],
            2,
            &["--unix"],
        ),
    ];
    assert!(cases.len() >= 30);
    for case in &cases {
        let out = Command::new(bin(case.program))
            .args(&case.args)
            .output()
            .expect("run binary");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let what = format!("{} {:?}: {stderr}", case.program, case.args);
        assert_eq!(out.status.code(), Some(case.status), "{what}");
        assert!(!stderr.contains("panicked"), "{what}");
        if case.status == 1 {
            assert_eq!(stderr.lines().count(), 1, "{what}");
            // The error chain is printed once: no OS error repeated by a cause.
            assert!(stderr.matches("os error").count() <= 1, "{what}");
        }
        for m in &case.mentions {
            assert!(stderr.contains(m.as_str()), "{what} should mention {m:?}");
        }
    }
    assert_eq!(
        std::fs::read(&plain_file).unwrap(),
        b"x",
        "a plain file was touched"
    );
}

#[test]
fn permission_denied_names_the_address() {
    // Port 80 needs privileges. As root, drop them for the server with setpriv.
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let mut server = bin("greet-server");
    if root {
        // The checkout may sit under a folder the unprivileged user cannot enter.
        let copy = temp_dir("permission").join("greet-server");
        std::fs::copy(&server, &copy).unwrap();
        let open = std::os::unix::fs::PermissionsExt::from_mode(0o755);
        std::fs::set_permissions(copy.parent().unwrap(), open).unwrap();
        server = copy;
    }
    let mut cmd = if root {
        let mut cmd = Command::new("setpriv");
        cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(&server);
        cmd
    } else {
        Command::new(&server)
    };
    let unprivileged_floor =
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start")
            .ok()
            .and_then(|s| s.trim().parse::<u16>().ok())
            .unwrap_or(1024);
    assert!(
        unprivileged_floor > 80,
        "this machine lets anyone bind port 80"
    );
    let out = cmd
        .args(["--host", "127.0.0.1", "--port", "80"])
        .output()
        .expect("run greet-server (setpriv is in util-linux)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("127.0.0.1:80"), "{stderr}");
    assert!(stderr.contains("Permission denied"), "{stderr}");
}

/// A host name that resolves nowhere (`.invalid` is reserved for that, RFC 2606).
const UNRESOLVABLE: &str = "no-such-host-for-greet.invalid";

/// Runs `program` with `args` as in a container whose name is not in /etc/hosts: in a UTS
/// namespace of its own (`unshare --uts`, as root) whose host name is [`UNRESOLVABLE`].
/// `None` (and the test passes, saying so) where that is not permitted, except under CI.
fn run_where_the_machine_name_does_not_resolve(
    program: &str,
    args: &[&str],
) -> Option<std::process::Output> {
    let unshare = e2e::tool("unshare", "util-linux")?;
    let probe = Command::new(&unshare)
        .args(["--uts", "true"])
        .output()
        .expect("run unshare");
    if !probe.status.success() {
        assert!(
            std::env::var_os("CI").is_none(),
            "unshare --uts needs root, which CI has"
        );
        eprintln!("SKIPPED: unshare --uts is not permitted here (not root)");
        return None;
    }
    let script = format!("hostname {UNRESOLVABLE} && exec \"$@\"");
    let out = Command::new(&unshare)
        .args(["--uts", "sh", "-c", &script, "sh"])
        .arg(bin(program))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run {program} in its own UTS namespace: {e}"));
    Some(out)
}

/// The one line a default host that does not resolve gives: status 1, nothing on stdout, and
/// stderr saying that no --host was given, that the name was the default, what to use instead,
/// and the name itself.
fn assert_default_host_explained(out: &std::process::Output, what: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{what}: {stderr}");
    assert!(out.stdout.is_empty(), "{what}: nothing on stdout");
    assert_eq!(stderr.lines().count(), 1, "{what}: one line: {stderr}");
    for part in [
        "no --host given",
        "this machine's name",
        "the default",
        "--host 127.0.0.1",
        UNRESOLVABLE,
    ] {
        assert!(
            stderr.contains(part),
            "{what}: {part:?} missing from {stderr:?}"
        );
    }
}

/// In a container whose name is not in /etc/hosts, the tutorial's default host (the
/// machine's name) does not resolve: the error says that the name came from the default,
/// and what to give instead.
#[test]
fn a_default_host_that_does_not_resolve_says_it_was_the_default_and_what_to_use() {
    let Some(out) = run_where_the_machine_name_does_not_resolve("greet-server", &["--port", "0"])
    else {
        return;
    };
    assert_default_host_explained(&out, "greet-server");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--host ''"),
        "{out:?}"
    );
}

/// greet-client's default host is the machine's name too (TCP and UDP alike): the same
/// explanation, in the same words as greet-server's.
#[test]
fn a_default_host_that_does_not_resolve_in_the_client_says_it_was_the_default_and_what_to_use() {
    for args in [&["--port", "1"][..], &["--udp", "--port", "1"]] {
        let Some(out) = run_where_the_machine_name_does_not_resolve("greet-client", args) else {
            return;
        };
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.starts_with("greet-client: "), "{args:?}: {stderr}");
        assert_default_host_explained(&out, &format!("greet-client {args:?}"));
    }
}

/// A host given to greet-client (`--host` or nc's positional HOST) that does not resolve is
/// that host's error alone, without the default-host hint.
#[test]
fn a_given_host_that_does_not_resolve_in_the_client_is_named_without_the_default_hint() {
    for args in [
        &["--host", UNRESOLVABLE, "--port", "1"][..],
        &[UNRESOLVABLE, "1"],
        &["--udp", "--host", UNRESOLVABLE, "--port", "1"],
    ] {
        let out = e2e::client(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: one line: {stderr}");
        assert!(
            stderr.starts_with(&format!("greet-client: host \"{UNRESOLVABLE}\": ")),
            "{args:?}: {stderr}"
        );
        assert!(
            !stderr.contains("--host"),
            "{args:?}: no hint for a given host: {stderr}"
        );
    }
}

/// A `--host` the user gave that does not resolve is reported as that host's error alone:
/// the default-host hint (see above) would send them looking for a flag they already used.
#[test]
fn a_given_host_that_does_not_resolve_is_named_without_the_default_hint() {
    let out = e2e::server_output(&["--host", "no-such-host-for-greet.invalid", "--port", "0"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    assert!(
        stderr.starts_with("greet-server: host \"no-such-host-for-greet.invalid\": "),
        "{stderr}"
    );
    assert!(
        !stderr.contains("--host"),
        "no hint for a given host: {stderr}"
    );
}
