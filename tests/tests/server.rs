//! greet-server and greet-client end to end: the real binaries on ephemeral ports.

use std::collections::BTreeSet;
use std::net::TcpStream;

use e2e::{client, local_client, read_all, server_output, temp_dir, Server, PATIENCE};

const GREETING: &[u8] = b"Thank you for connecting";

#[test]
fn one_client_is_greeted_byte_for_byte() {
    let server = Server::local(&[]);
    assert!(
        server.ready().starts_with("Listening on ('127.0.0.1', "),
        "{}",
        server.ready()
    );
    assert!(server.ready().ends_with(") tcp"), "{}", server.ready());
    let stream = TcpStream::connect(server.addr()).unwrap();
    let local = stream.local_addr().unwrap();
    assert_eq!(read_all(stream).unwrap(), GREETING);
    assert_eq!(
        server.next_line().unwrap(),
        format!("Got connection from ('127.0.0.1', {})", local.port())
    );
}

#[test]
fn two_hundred_clients_at_once_are_all_greeted_and_each_logged() {
    let server = Server::local(&["--threads", "2"]);
    let streams: Vec<TcpStream> = (0..200)
        .map(|_| TcpStream::connect(server.addr()).unwrap())
        .collect();
    let locals: BTreeSet<String> = streams
        .iter()
        .map(|s| {
            format!(
                "Got connection from ('127.0.0.1', {})",
                s.local_addr().unwrap().port()
            )
        })
        .collect();
    for stream in streams {
        assert_eq!(read_all(stream).unwrap(), GREETING);
    }
    let logged: BTreeSet<String> = (0..200).map(|_| server.next_line().unwrap()).collect();
    assert_eq!(logged, locals);
    let (status, stderr) = server.terminate();
    assert!(status.success(), "{status}: {stderr}");
    assert!(
        stderr.contains("accepted 200, greeted 200, errors 0,"),
        "{stderr}"
    );
}

#[test]
fn the_client_prints_the_greeting() {
    let server = Server::local(&[]);
    let out = local_client(server.port(), &[]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(out.stdout, b"Thank you for connecting\n");
}

#[test]
fn message_and_quiet_flags() {
    let server = Server::local(&["--message", "hi", "--quiet"]);
    let stream = TcpStream::connect(server.addr()).unwrap();
    assert_eq!(read_all(stream).unwrap(), b"hi");
    let (status, stderr) = server.terminate();
    assert!(status.success());
    assert!(stderr.contains("accepted 1, greeted 1"), "{stderr}");
}

#[test]
fn sigterm_and_sigint_stop_the_server_with_status_zero() {
    for signal in [libc::SIGTERM, libc::SIGINT] {
        let server = Server::local(&[]);
        assert_eq!(
            read_all(TcpStream::connect(server.addr()).unwrap()).unwrap(),
            GREETING
        );
        server.signal(signal);
        let (status, stderr) = server.terminate_after_signal();
        assert!(status.success(), "signal {signal}: {status}");
        assert!(
            stderr.contains("greet-server: accepted 1, greeted 1, errors 0"),
            "{stderr}"
        );
    }
}

#[test]
fn a_port_in_use_is_one_clear_line_and_status_1() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let out = server_output(&["--host", "127.0.0.1", "--port", &port]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains(&format!("127.0.0.1:{port}")), "{stderr}");
    assert!(stderr.contains("in use"), "{stderr}");
}

#[test]
fn bad_arguments_are_status_2() {
    let out = server_output(&["--port", "0", "--no-such-flag"]);
    assert_eq!(out.status.code(), Some(2));
    let out = client(&["--bufsize", "0"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn a_refused_connection_is_one_line_and_status_1() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let out = local_client(port, &[]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains(&format!("('127.0.0.1', {port})")),
        "{stderr}"
    );
    assert!(stderr.contains("refused"), "{stderr}");
}

#[test]
fn a_server_that_never_speaks_times_the_client_out() {
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port().to_string();
    let out = local_client(&port, &["--timeout", "300ms"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("timed out") || stderr.contains("within the timeout"),
        "{stderr}"
    );
    drop(silent);
}

#[test]
fn udp_datagrams_are_answered() {
    let server = Server::local(&["--udp"]);
    assert!(server.ready().ends_with(") udp"), "{}", server.ready());
    let out = client(&[
        "--udp",
        "--host",
        "127.0.0.1",
        "--port",
        &server.port().to_string(),
    ]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(out.stdout, b"Thank you for connecting\n");
    let (status, stderr) = server.terminate();
    assert!(status.success());
    assert!(stderr.contains("datagrams 1"), "{stderr}");
}

#[test]
fn unix_socket_served_and_removed_on_exit() {
    let dir = temp_dir("unix");
    let path = dir.join("greet.sock");
    let shown = path.to_str().unwrap();
    let server = Server::start(&["--unix", shown]);
    assert_eq!(server.ready(), format!("Listening on '{shown}' unix"));
    let out = client(&["--unix", shown]);
    assert_eq!(out.stdout, b"Thank you for connecting\n");
    let (status, _) = server.terminate();
    assert!(status.success());
    assert!(!path.exists(), "socket file left behind");
}

#[test]
fn unix_path_that_is_not_a_socket_is_never_deleted() {
    let dir = temp_dir("unix-file");
    let path = dir.join("precious.txt");
    std::fs::write(&path, b"keep me").unwrap();
    let out = server_output(&["--unix", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("precious.txt"));
    assert_eq!(std::fs::read(&path).unwrap(), b"keep me");
}

#[test]
fn a_stale_unix_socket_is_replaced() {
    let dir = temp_dir("unix-stale");
    let path = dir.join("stale.sock");
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    assert!(path.exists());
    let server = Server::start(&["--unix", path.to_str().unwrap()]);
    let out = client(&["--unix", path.to_str().unwrap()]);
    assert_eq!(out.stdout, b"Thank you for connecting\n");
    drop(server);
}

#[test]
fn udp_rate_limits_a_flooding_source_and_still_answers_others() {
    use std::time::{Duration, Instant};
    let server = Server::local(&["--udp", "--udp-rate", "5", "--quiet"]);
    let flood = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    flood.connect(server.addr()).unwrap();
    let started = Instant::now();
    for _ in 0..200 {
        flood.send(b"").unwrap();
    }
    // Another source address is answered while the first one is being limited.
    let other = std::net::UdpSocket::bind("127.0.0.2:0").unwrap();
    other.connect(server.addr()).unwrap();
    other.set_read_timeout(Some(PATIENCE)).unwrap();
    other.send(b"").unwrap();
    let mut buf = [0u8; 64];
    let n = other.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], GREETING);
    // Count the flood's replies until the server has been quiet for a while.
    flood
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut replies = 0;
    while flood.recv(&mut buf).is_ok() {
        replies += 1;
    }
    let allowed = 5.0 + started.elapsed().as_secs_f64() * 5.0 + 1.0;
    assert!(replies >= 5, "only {replies} replies");
    assert!(
        f64::from(replies) <= allowed,
        "{replies} replies > {allowed}"
    );
    let (status, stderr) = server.terminate();
    assert!(status.success());
    // The kernel may drop some of the flood on a full socket buffer; what arrived and was
    // not answered is counted as rate-limited.
    let limited: u64 = stderr
        .split("rate-limited ")
        .nth(1)
        .and_then(|rest| rest.trim().parse().ok())
        .unwrap_or_else(|| panic!("no rate-limited count in {stderr:?}"));
    assert!(limited >= 100, "{stderr}");
}

#[test]
fn ipv6_peers_print_as_python_four_tuples() {
    let Ok(probe) = std::net::TcpListener::bind("[::1]:0") else {
        eprintln!("no IPv6 loopback here; skipping");
        return;
    };
    drop(probe);
    let server = Server::start(&["--host", "::1", "--port", "0"]);
    assert!(
        server.ready().starts_with("Listening on ('::1', "),
        "{}",
        server.ready()
    );
    assert!(
        server.ready().ends_with(", 0, 0) tcp"),
        "{}",
        server.ready()
    );
    let addr: std::net::SocketAddr = format!("[::1]:{}", server.port()).parse().unwrap();
    let stream = TcpStream::connect(addr).unwrap();
    let local = stream.local_addr().unwrap().port();
    assert_eq!(read_all(stream).unwrap(), GREETING);
    assert_eq!(
        server.next_line().unwrap(),
        format!("Got connection from ('::1', {local}, 0, 0)")
    );
}

#[test]
fn message_file_is_sent_whole() {
    let dir = temp_dir("message-file");
    let path = dir.join("big.txt");
    let body: Vec<u8> = (0..300_000u32).map(|i| b'a' + (i % 26) as u8).collect();
    std::fs::write(&path, &body).unwrap();
    let server = Server::local(&["--quiet", "--message-file", path.to_str().unwrap()]);
    let stream = TcpStream::connect(server.addr()).unwrap();
    assert_eq!(read_all(stream).unwrap(), body);
}
