//! The flags of both binaries that the other suites do not already exercise.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use e2e::{client, local_client, read_all, set_linger_zero, wait_until, Process, Server, PATIENCE};

const GREETING: &[u8] = b"Thank you for connecting";

#[test]
fn bufsize_limits_what_the_client_reads() {
    let server = Server::local(&["--quiet"]);
    let port = server.port().to_string();
    let out = local_client(&port, &["--bufsize", "5"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(out.stdout, b"Thank\n");
}

#[test]
fn ipv4_and_ipv6_flags_choose_the_family() {
    let server = Server::start(&["-4", "--host", "localhost", "--port", "0"]);
    assert!(
        server.ready().starts_with("Listening on ('127.0.0.1', "),
        "{}",
        server.ready()
    );
    let port = server.port().to_string();
    let out = client(&["-4", "--host", "localhost", "--port", &port]);
    assert_eq!(out.stdout, b"Thank you for connecting\n", "{out:?}");
    if std::net::TcpListener::bind("[::1]:0").is_ok() {
        let v6 = Server::start(&["-6", "--host", "::1", "--port", "0"]);
        assert!(
            v6.ready().starts_with("Listening on ('::1', "),
            "{}",
            v6.ready()
        );
        let out = client(&["-6", "--host", "::1", "--port", &v6.port().to_string()]);
        assert_eq!(out.stdout, b"Thank you for connecting\n", "{out:?}");
    }
}

#[test]
fn backlog_flag_is_accepted_and_the_tutorial_value_still_serves() {
    let server = Server::local(&["--backlog", "5"]);
    assert_eq!(
        read_all(TcpStream::connect(server.addr()).unwrap()).unwrap(),
        GREETING
    );
}

#[test]
fn a_client_that_speaks_first_still_gets_the_whole_greeting() {
    // Closing with the client's bytes unread would send a reset that can destroy the
    // greeting; the server drains them and shuts its side in order instead.
    let server = Server::local(&["--idle-timeout", "200ms", "--quiet"]);
    let mut stream = TcpStream::connect(server.addr()).unwrap();
    stream.write_all(b"hello?").unwrap();
    let started = Instant::now();
    assert_eq!(read_all(stream).unwrap(), GREETING);
    assert!(started.elapsed() < PATIENCE);
    let (status, stderr) = server.terminate();
    assert!(status.success());
    assert!(stderr.contains("accepted 1,"), "{stderr}");
}

#[test]
fn max_connections_holds_the_rest_in_the_backlog_until_one_closes() {
    let (dir, message) = big_message("max-connections");
    let server = Server::local(&[
        "--threads",
        "1",
        "--max-connections",
        "1",
        "--quiet",
        "--message-file",
        &message,
    ]);
    // The first client does not read its large greeting, so its connection stays open.
    let first = slow_reader(&server);
    // The second is accepted by the kernel but not by the server while the first is open.
    let mut second = TcpStream::connect(server.addr()).unwrap();
    second
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut byte = [0u8; 1];
    let waited = second.read(&mut byte);
    assert!(
        matches!(&waited, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "{waited:?}"
    );
    // Closing the first frees the slot; the second is greeted in full.
    drop(first);
    assert_eq!(read_all(second).unwrap().len(), 8 << 20);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn threads_flag_serves_from_every_loop() {
    let server = Server::local(&["--threads", "4", "--quiet"]);
    let streams: Vec<TcpStream> = (0..100)
        .map(|_| TcpStream::connect(server.addr()).unwrap())
        .collect();
    for stream in streams {
        assert_eq!(read_all(stream).unwrap(), GREETING);
    }
    let (status, stderr) = server.terminate();
    assert!(status.success());
    assert!(stderr.contains("accepted 100, greeted 100"), "{stderr}");
}

#[test]
fn a_reset_is_one_clear_line() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let resetter = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        set_linger_zero(&stream);
        drop(stream); // SO_LINGER 0: close sends RST
    });
    let out = local_client(&port, &[]);
    resetter.join().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains(&port) && stderr.contains("reset"),
        "{stderr}"
    );
}

#[test]
fn a_second_signal_exits_at_once() {
    let (dir, message) = big_message("second-signal");
    let server = Server::local(&["--quiet", "--message-file", &message]);
    // A client that never reads its (large) greeting keeps the server draining after the
    // first signal, so the second signal finds it running.
    let slow = slow_reader(&server);
    server.signal(libc::SIGTERM);
    // Two signals sent back to back may merge into one; wait until the first has been
    // acted on (the listener is closed, so connecting is refused).
    wait_until("the server stops accepting", || {
        TcpStream::connect(server.addr()).is_err()
    });
    server.signal(libc::SIGTERM);
    let (status, stderr) = server.terminate_after_signal();
    assert_eq!(status.code(), Some(128 + libc::SIGTERM), "{stderr}");
    assert!(stderr.contains("second signal"), "{stderr}");
    drop(slow);
    let _ = std::fs::remove_dir_all(dir);
}

/// A zero duration would mean "give up at once" (`--timeout`), or close every connection as
/// it opens: refused on the command line, status 2, naming the flag, as
/// `--max-connections 0` is. The server's check is made on a server that would otherwise
/// start (its readiness line is waited for, so it cannot hang the test).
#[test]
fn zero_durations_are_refused_when_parsed() {
    for args in [
        &["--host", "127.0.0.1", "--port", "9", "--timeout", "0"][..],
        &["--host", "127.0.0.1", "--port", "9", "--timeout", "0s"],
        &[
            "bench",
            "--port",
            "9",
            "-n",
            "1",
            "--duration",
            "5s",
            "--timeout",
            "0",
        ],
        &["bench", "--port", "9", "-n", "1", "--duration", "0s"],
    ] {
        let out = client(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(2),
            "greet-client {args:?}: {stderr}"
        );
        let flag = args[args.len() - 2];
        assert!(
            stderr.contains(flag) && stderr.contains("more than 0"),
            "greet-client {args:?}: {stderr}"
        );
    }
    for flag in [
        "--idle-timeout",
        "--write-timeout",
        "--proxy-timeout",
        "--restart-timeout",
    ] {
        let mut cmd = std::process::Command::new(e2e::bin("greet-server"));
        cmd.args(["--host", "127.0.0.1", "--port", "0", flag, "0s"]);
        match Process::start("greet-server", cmd) {
            Ok(started) => panic!("greet-server {flag} 0s started: {}", started.ready()),
            Err(proc_harness::Error::NotReady { status, stderr, .. }) => {
                assert_eq!(status.and_then(|s| s.code()), Some(2), "{flag}: {stderr}");
                assert!(
                    stderr.contains(flag) && stderr.contains("more than 0"),
                    "{flag}: {stderr}"
                );
            }
            Err(other) => panic!("{other}"),
        }
    }
}

/// `greet-client help` is the help, and `greet-client HOST PORT` nc's positional form of
/// `--host HOST --port PORT`; the subcommands keep their names (a host called `lookup` is
/// given with --host).
#[test]
fn help_subcommand_and_positional_host_and_port() {
    for (args, starts) in [
        (&["help"][..], "The socket tutorial's client"),
        (&["help", "lookup"], "The tutorial's lookup script"),
        (&["help", "bench"], "A load generator"),
    ] {
        let out = client(args);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {out:?}");
        assert!(stdout.starts_with(starts), "{args:?}: {stdout}");
        assert!(stdout.contains("Usage: greet-client"), "{args:?}: {stdout}");
    }
    let server = Server::local(&["--quiet"]);
    let port = server.port().to_string();
    for args in [
        &["127.0.0.1", &port][..],
        &["--bufsize", "100", "127.0.0.1", &port],
        &["127.0.0.1", "--port", &port],
    ] {
        let out = client(args);
        assert_eq!(
            out.stdout, b"Thank you for connecting\n",
            "{args:?}: {out:?}"
        );
    }
    // The subcommands are still subcommands, and `--host lookup` is the client's flag (over
    // a Unix socket, so that no name is resolved).
    let out = client(&["lookup", "127.0.0.1", "80", "--numeric-host"]);
    assert!(out.stdout.starts_with(b"[(2, "), "{out:?}");
    let dir = e2e::temp_dir("host-named-lookup");
    let socket = dir.join("greet.sock");
    let socket = socket.to_str().expect("UTF-8 temp path");
    let unix = Server::start(&["--unix", socket, "--quiet"]);
    let out = client(&["--host", "lookup", "--unix", socket]);
    assert_eq!(out.stdout, b"Thank you for connecting\n", "{out:?}");
    drop(unix);
    let _ = std::fs::remove_dir_all(&dir);
    // A host or port given twice is a usage error.
    for args in [
        &["--host", "127.0.0.1", "127.0.0.1", &port][..],
        &["127.0.0.1", &port, "--port", &port],
        &["127.0.0.1", &port, "extra"],
    ] {
        let out = client(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
    }
}

/// A client connected to `server` that has read the start of its greeting (so the server
/// has accepted it) and reads no more.
fn slow_reader(server: &Server) -> TcpStream {
    let mut stream = TcpStream::connect(server.addr()).unwrap();
    let mut start = [0u8; 24];
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    stream.read_exact(&mut start).unwrap();
    stream
}

/// A greeting larger than a loopback socket's buffers take (~4 MB here), so a client that
/// does not read it keeps its connection open on the server.
fn big_message(name: &str) -> (std::path::PathBuf, String) {
    let dir = e2e::temp_dir(name);
    let path = dir.join("8mib.txt");
    std::fs::write(&path, vec![b'g'; 8 << 20]).unwrap();
    let shown = path.to_str().unwrap().to_string();
    (dir, shown)
}
