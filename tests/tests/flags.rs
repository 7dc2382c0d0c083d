//! The flags of both binaries that the other suites do not already exercise.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use e2e::{client, Server, PATIENCE};

const GREETING: &[u8] = b"Thank you for connecting";

fn read_all(mut stream: TcpStream) -> Vec<u8> {
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut got = Vec::new();
    stream.read_to_end(&mut got).unwrap();
    got
}

#[test]
fn bufsize_limits_what_the_client_reads() {
    let server = Server::start(&["--host", "127.0.0.1", "--port", "0", "--quiet"]);
    let port = server.port().to_string();
    let out = client(&["--host", "127.0.0.1", "--port", &port, "--bufsize", "5"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(out.stdout, b"Thank\n");
}

#[test]
fn ipv4_and_ipv6_flags_choose_the_family() {
    let server = Server::start(&["-4", "--host", "localhost", "--port", "0"]);
    assert!(
        server.ready.starts_with("Listening on ('127.0.0.1', "),
        "{}",
        server.ready
    );
    let port = server.port().to_string();
    let out = client(&["-4", "--host", "localhost", "--port", &port]);
    assert_eq!(out.stdout, b"Thank you for connecting\n", "{out:?}");
    if std::net::TcpListener::bind("[::1]:0").is_ok() {
        let v6 = Server::start(&["-6", "--host", "::1", "--port", "0"]);
        assert!(
            v6.ready.starts_with("Listening on ('::1', "),
            "{}",
            v6.ready
        );
        let out = client(&["-6", "--host", "::1", "--port", &v6.port().to_string()]);
        assert_eq!(out.stdout, b"Thank you for connecting\n", "{out:?}");
    }
}

#[test]
fn backlog_flag_is_accepted_and_the_tutorial_value_still_serves() {
    let server = Server::start(&["--host", "127.0.0.1", "--port", "0", "--backlog", "5"]);
    assert_eq!(
        read_all(TcpStream::connect(server.addr()).unwrap()),
        GREETING
    );
}

#[test]
fn a_client_that_speaks_first_still_gets_the_whole_greeting() {
    // Closing with the client's bytes unread would send a reset that can destroy the
    // greeting; the server drains them and shuts its side in order instead.
    let server = Server::start(&[
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--idle-timeout",
        "200ms",
        "--quiet",
    ]);
    let mut stream = TcpStream::connect(server.addr()).unwrap();
    stream.write_all(b"hello?").unwrap();
    let started = Instant::now();
    assert_eq!(read_all(stream), GREETING);
    assert!(started.elapsed() < PATIENCE);
    let (status, stderr) = server.terminate();
    assert!(status.success());
    assert!(stderr.contains("accepted 1,"), "{stderr}");
}

#[test]
fn max_connections_holds_the_rest_in_the_backlog_until_one_closes() {
    let server = Server::start(&[
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--threads",
        "1",
        "--max-connections",
        "1",
        "--quiet",
    ]);
    // The first client sends data, so its connection stays open (draining) until it closes.
    let mut first = TcpStream::connect(server.addr()).unwrap();
    first.write_all(b"x").unwrap();
    let mut greeting = [0u8; 24];
    first.set_read_timeout(Some(PATIENCE)).unwrap();
    first.read_exact(&mut greeting).unwrap();
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
    // Closing the first frees the slot; the second is greeted.
    first.shutdown(std::net::Shutdown::Write).unwrap();
    drop(first);
    assert_eq!(read_all(second), GREETING);
}

#[test]
fn threads_flag_serves_from_every_loop() {
    let server = Server::start(&[
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--threads",
        "4",
        "--quiet",
    ]);
    let streams: Vec<TcpStream> = (0..100)
        .map(|_| TcpStream::connect(server.addr()).unwrap())
        .collect();
    for stream in streams {
        assert_eq!(read_all(stream), GREETING);
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
        let fd = std::os::unix::io::AsRawFd::as_raw_fd(&stream);
        let linger = libc::linger {
            l_onoff: 1,
            l_linger: 0,
        };
        // SAFETY: setsockopt on a socket we own, with a correctly sized linger struct.
        let rc = unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_LINGER,
                std::ptr::addr_of!(linger).cast(),
                std::mem::size_of::<libc::linger>() as libc::socklen_t,
            )
        };
        assert_eq!(rc, 0);
        drop(stream); // SO_LINGER 0: close sends RST
    });
    let out = client(&["--host", "127.0.0.1", "--port", &port]);
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
    let server = Server::start(&["--host", "127.0.0.1", "--port", "0", "--quiet"]);
    // A client that spoke first and never closes keeps the server draining after the
    // first signal (until its linger deadline), so the second signal finds it running.
    let mut lingering = TcpStream::connect(server.addr()).unwrap();
    lingering.write_all(b"x").unwrap();
    let mut greeting = [0u8; 24];
    lingering.set_read_timeout(Some(PATIENCE)).unwrap();
    lingering.read_exact(&mut greeting).unwrap();
    server.signal(libc::SIGTERM);
    // Two signals sent back to back may merge into one; wait until the first has been
    // acted on (the listener is closed, so connecting is refused).
    let deadline = Instant::now() + PATIENCE;
    while TcpStream::connect(server.addr()).is_ok() {
        assert!(
            Instant::now() < deadline,
            "the server never stopped accepting"
        );
        std::thread::yield_now();
    }
    server.signal(libc::SIGTERM);
    let (status, stderr) = server.terminate_after_signal();
    assert_eq!(status.code(), Some(128 + libc::SIGTERM), "{stderr}");
    assert!(stderr.contains("second signal"), "{stderr}");
    drop(lingering);
}
