//! greet-server and greet-client end to end: the real binaries on ephemeral ports.

use std::collections::BTreeSet;
use std::io::Read;
use std::net::TcpStream;

use e2e::{client, server_output, temp_dir, Server, PATIENCE};

const GREETING: &[u8] = b"Thank you for connecting";

fn read_all(mut stream: TcpStream) -> Vec<u8> {
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut got = Vec::new();
    stream.read_to_end(&mut got).unwrap();
    got
}

#[test]
fn one_client_is_greeted_byte_for_byte() {
    let server = Server::start(&["--host", "127.0.0.1", "--port", "0"]);
    assert!(
        server.ready.starts_with("Listening on ('127.0.0.1', "),
        "{}",
        server.ready
    );
    assert!(server.ready.ends_with(") tcp"), "{}", server.ready);
    let stream = TcpStream::connect(server.addr()).unwrap();
    let local = stream.local_addr().unwrap();
    assert_eq!(read_all(stream), GREETING);
    assert_eq!(
        server.next_line().unwrap(),
        format!("Got connection from ('127.0.0.1', {})", local.port())
    );
}

#[test]
fn two_hundred_clients_at_once_are_all_greeted_and_each_logged() {
    let server = Server::start(&["--host", "127.0.0.1", "--port", "0", "--threads", "2"]);
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
        assert_eq!(read_all(stream), GREETING);
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
    let server = Server::start(&["--host", "127.0.0.1", "--port", "0"]);
    let out = client(&["--host", "127.0.0.1", "--port", &server.port().to_string()]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(out.stdout, b"Thank you for connecting\n");
}

#[test]
fn message_and_quiet_flags() {
    let server = Server::start(&[
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--message",
        "hi",
        "--quiet",
    ]);
    let stream = TcpStream::connect(server.addr()).unwrap();
    assert_eq!(read_all(stream), b"hi");
    let (status, stderr) = server.terminate();
    assert!(status.success());
    assert!(stderr.contains("accepted 1, greeted 1"), "{stderr}");
}

#[test]
fn sigterm_and_sigint_stop_the_server_with_status_zero() {
    for signal in [libc::SIGTERM, libc::SIGINT] {
        let server = Server::start(&["--host", "127.0.0.1", "--port", "0"]);
        assert_eq!(
            read_all(TcpStream::connect(server.addr()).unwrap()),
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
    let out = client(&["--host", "127.0.0.1", "--port", &port.to_string()]);
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
    let out = client(&["--host", "127.0.0.1", "--port", &port, "--timeout", "300ms"]);
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
    let server = Server::start(&["--udp", "--host", "127.0.0.1", "--port", "0"]);
    assert!(server.ready.ends_with(") udp"), "{}", server.ready);
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
    assert_eq!(server.ready, format!("Listening on '{shown}' unix"));
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
