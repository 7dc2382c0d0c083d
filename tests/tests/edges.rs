//! What a newcomer hits first (issue 15): the client's address fallback and reads, the
//! server's `--host ""`, `--unix-mode`, and the edge values of its flags.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::{Duration, Instant};

use e2e::{bin, client, local_client, server_output, temp_dir, Server, PATIENCE};

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
            server.ready().starts_with("Listening on ('::', "),
            "{}",
            server.ready()
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
        // Two loops log independently, so the two lines may come in either order.
        let logged = [server.next_line().unwrap(), server.next_line().unwrap()];
        assert!(
            logged.iter().any(|l| l.contains("('::ffff:127.0.0.1', ")),
            "{logged:?}"
        );
        assert!(logged.iter().any(|l| l.contains("('::1', ")), "{logged:?}");
    }
    // -4 keeps IPv4 only.
    let server = Server::start(&["--host", "", "-4", "--port", "0"]);
    assert!(
        server.ready().starts_with("Listening on ('0.0.0.0', "),
        "{}",
        server.ready()
    );
}

/// A name that resolves to `::1` first, then `127.0.0.1`, as `localhost` does on many
/// machines (not on every one, and not always in that order). A private mount namespace
/// (`unshare -rm`, no privileges needed where user namespaces are allowed) binds a hosts
/// file over /etc/hosts for the client alone; python3's getaddrinfo, run the same way,
/// confirms the order first. `None` (after saying why) where namespaces are not allowed.
struct TwoAddressName {
    hosts: std::path::PathBuf,
}

const TWO_ADDRESS_NAME: &str = "greet-fallback-test";

impl TwoAddressName {
    fn new() -> Option<TwoAddressName> {
        let dir = temp_dir("two-address-name");
        let hosts = dir.join("hosts");
        std::fs::write(
            &hosts,
            format!("::1 {TWO_ADDRESS_NAME}\n127.0.0.1 {TWO_ADDRESS_NAME}\n"),
        )
        .unwrap();
        let name = TwoAddressName { hosts };
        let script = format!(
            "import socket\n\
             print([a[4][0] for a in socket.getaddrinfo('{TWO_ADDRESS_NAME}', 1, 0, socket.SOCK_STREAM)])"
        );
        let out = name.command("python3").args(["-c", &script]).output();
        match out {
            Ok(out) if out.status.success() && out.stdout == b"['::1', '127.0.0.1']\n" => {
                Some(name)
            }
            other => {
                eprintln!(
                    "SKIPPED: cannot give a name ::1 then 127.0.0.1 in a private mount \
                     namespace here (unshare -rm + mount --bind): {other:?}"
                );
                None
            }
        }
    }

    /// `program` run with the private hosts file.
    fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new("unshare");
        cmd.args([
            "-rm",
            "sh",
            "-c",
            "mount --bind \"$0\" /etc/hosts && exec \"$@\"",
        ])
        .arg(&self.hosts)
        .arg(program);
        cmd
    }
}

#[test]
fn the_client_falls_back_to_the_next_address_over_tcp_and_udp() {
    let Some(name) = TwoAddressName::new() else {
        return;
    };
    for transport in [&[][..], &["--udp"]] {
        let server = Server::local(&[&["--threads", "1"], transport].concat());
        let port = server.port().to_string();
        let out = name
            .command(bin("greet-client"))
            .args(
                [
                    &[
                        "--host",
                        TWO_ADDRESS_NAME,
                        "--port",
                        &port,
                        "--timeout",
                        "20s",
                    ],
                    transport,
                ]
                .concat(),
            )
            .env("RUST_LOG", "info")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{transport:?}: {out:?}");
        assert_eq!(out.stdout, b"Thank you for connecting\n", "{transport:?}");
        // ::1 was tried first, and refused.
        assert!(
            stderr.contains(&format!("('::1', {port}, 0, 0)")) && stderr.contains("refused"),
            "{transport:?}: {stderr}"
        );
        // -6 leaves only ::1: refused, one line naming it.
        let out = name
            .command(bin("greet-client"))
            .args(
                [
                    &[
                        "-6",
                        "--host",
                        TWO_ADDRESS_NAME,
                        "--port",
                        &port,
                        "--timeout",
                        "20s",
                    ],
                    transport,
                ]
                .concat(),
            )
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains("refused"), "{stderr}");
    }
}

/// A server that sends `parts` (a pause between them) and then keeps the connection open
/// until the client closes it, as an SMTP or FTP server does after its banner.
fn banner_server(
    parts: &'static [&'static [u8]],
    pause: Duration,
) -> (SocketAddr, std::thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let thread = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        for (i, part) in parts.iter().enumerate() {
            if i > 0 {
                std::thread::sleep(pause);
            }
            stream.write_all(part).unwrap();
        }
        // Hold the connection open until the client closes it (bounded by PATIENCE).
        stream.set_read_timeout(Some(PATIENCE)).unwrap();
        let _ = stream.read(&mut [0; 64]);
    });
    (addr, thread)
}

#[test]
fn a_banner_on_a_connection_kept_open_is_printed_not_timed_out() {
    let (addr, server) = banner_server(&[b"220 greet ESMTP ready\r\n"], Duration::ZERO);
    let port = addr.port().to_string();
    let started = Instant::now();
    let out = local_client(&port, &["--timeout", "20s"]);
    let took = started.elapsed();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(out.stdout, b"220 greet ESMTP ready\r\n\n");
    assert!(
        took < Duration::from_secs(15),
        "took {took:?}: it waited for the timeout"
    );
    server.join().unwrap();

    // A reply in two parts within --read-idle is read whole (then, the connection still
    // open, the client waits --read-idle once more before printing).
    let (addr, server) = banner_server(
        &[b"220 greet ", b"ESMTP ready\r\n"],
        Duration::from_millis(100),
    );
    let port = addr.port().to_string();
    let out = client(&[
        "--host",
        "127.0.0.1",
        "--port",
        &port,
        "--read-idle",
        "2s",
        "--timeout",
        "20s",
    ]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(out.stdout, b"220 greet ESMTP ready\r\n\n");
    server.join().unwrap();

    // A server that says nothing still times out, as before.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port().to_string();
    let out = local_client(&port, &["--timeout", "300ms"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
}
