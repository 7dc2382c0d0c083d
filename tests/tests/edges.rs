//! What a newcomer hits first (issue 15): the client's address fallback and reads, the
//! server's `--host ""`, `--unix-mode`, and the edge values of its flags.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::{Duration, Instant};

use e2e::{bin, client, server_output, temp_dir, Server, PATIENCE};

const GREETING: &[u8] = b"Thank you for connecting";

#[test]
fn unix_mode_sets_the_socket_files_permissions_whatever_the_umask() {
    let dir = temp_dir("unix-mode");
    for (mode, want) in [("660", 0o660), ("0666", 0o666), ("600", 0o600)] {
        let path = dir.join(format!("greet-{mode}.sock"));
        let shown = path.to_str().unwrap();
        let server = Server::start(&["--unix", shown, "--unix-mode", mode]);
        let got = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(got, want, "--unix-mode {mode}: the file is {got:o}");
        let out = client(&["--unix", shown]);
        assert_eq!(out.stdout, b"Thank you for connecting\n", "{out:?}");
        let (status, _) = server.terminate();
        assert!(status.success());
    }
    // Without the flag the umask decides, as before; a bad mode or one without --unix is a
    // bad argument.
    for args in [
        &["--unix", "/tmp/x.sock", "--unix-mode", "999"][..],
        &["--unix", "/tmp/x.sock", "--unix-mode", "1777"],
        &["--unix", "/tmp/x.sock", "--unix-mode", "rw"],
        &["--unix-mode", "660"],
    ] {
        let out = server_output(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("--unix"),
            "{out:?}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Python's own answer to `getaddrinfo(None, SERVICE, family, 0, 0, flags)`, as greet-client
/// prints it (pprint with numbers, then the hostname).
fn python_null_host(service: &str, family: i32, flags: i32) -> String {
    let script = format!(
        "import pprint, socket\n\
         r = socket.getaddrinfo(None, {service:?}, {family}, 0, 0, {flags})\n\
         pprint.pprint([(int(f), int(t), p, c, a) for f, t, p, c, a in r])\n\
         print(socket.gethostname())"
    );
    let out = Command::new("python3")
        .args(["-c", &script])
        .output()
        .expect("python3 must be installed: it is the test oracle");
    assert!(out.status.success(), "python3: {out:?}");
    String::from_utf8(out.stdout).expect("UTF-8")
}

#[test]
fn lookup_no_host_is_pythons_none_host() {
    for (args, family, flags) in [
        (&["--no-host", "--passive", "80"][..], 0, libc::AI_PASSIVE),
        (&["--no-host", "80"], 0, 0),
        (
            &["--no-host", "-6", "--passive", "80"],
            libc::AF_INET6,
            libc::AI_PASSIVE,
        ),
    ] {
        let out = client(&[&["lookup"], args].concat());
        assert!(out.status.success(), "{args:?}: {out:?}");
        let got = String::from_utf8_lossy(&out.stdout);
        assert_eq!(got, python_null_host("80", family, flags), "{args:?}");
    }
    // --passive with a null host is the wildcard: 0.0.0.0 and ::, what bind() wants.
    let out = client(&["lookup", "--no-host", "--passive", "80"]);
    let got = String::from_utf8_lossy(&out.stdout);
    assert!(got.contains("('0.0.0.0', 80)"), "{got}");
    // Neither host nor service is EAI_NONAME, as Python's getaddrinfo(None, None); a second
    // positional argument with --no-host is a bad argument.
    let out = client(&["lookup", "--no-host"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("[Errno -2]"));
    let out = client(&["lookup", "--no-host", "80", "www"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}

/// Reads a whole greeting from `addr`.
fn greeting_from(addr: SocketAddr) -> Vec<u8> {
    let mut stream = TcpStream::connect_timeout(&addr, PATIENCE)
        .unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut got = Vec::new();
    stream.read_to_end(&mut got).unwrap();
    got
}

#[test]
fn empty_host_binds_every_address_ipv4_and_ipv6() {
    for transport in [&[][..], &["--udp"]] {
        let server =
            Server::start(&[&["--host", "", "--port", "0", "--threads", "2"], transport].concat());
        assert!(
            server.ready.starts_with("Listening on ('::', "),
            "{}",
            server.ready
        );
        let port = server.port();
        for host in ["127.0.0.1", "::1"] {
            if transport.is_empty() {
                let addr = SocketAddr::new(host.parse().unwrap(), port);
                assert_eq!(greeting_from(addr), GREETING, "over {host}");
            } else {
                let out = client(&["--udp", "--host", host, "--port", &port.to_string()]);
                assert_eq!(
                    out.stdout, b"Thank you for connecting\n",
                    "over {host}: {out:?}"
                );
            }
        }
        // An IPv4 client shows as an IPv4-mapped address, as Python's dual-stack server shows it.
        let logged = [server.next_line().unwrap(), server.next_line().unwrap()];
        assert!(logged[0].contains("('::ffff:127.0.0.1', "), "{logged:?}");
        assert!(logged[1].contains("('::1', "), "{logged:?}");
    }
    // -4 keeps IPv4 only.
    let server = Server::start(&["--host", "", "-4", "--port", "0"]);
    assert!(
        server.ready.starts_with("Listening on ('0.0.0.0', "),
        "{}",
        server.ready
    );
}
