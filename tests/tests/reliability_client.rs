//! greet-client under faults: a server that streams forever, trickles, or says more than it
//! should, and a stdout or stderr that cannot be written. Every exchange is bounded by
//! `--timeout`, a reply longer than expected is counted wrong at once, and no failed write
//! panics.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use e2e::{
    bench_report, client, client_with_stdio, closed_pipe, dev_full, serve_each, BenchReport, Server,
};

/// What `greet-client bench` expects by default.
const GREETING: &[u8] = b"Thank you for connecting";

/// How long an in-test server goes on when the client never goes away.
const SERVER_BOUND: Duration = Duration::from_secs(30);

fn bench(args: &[&str]) -> (std::process::Output, BenchReport) {
    let out = client(&[&["bench", "--json"], args].concat());
    let report = bench_report(&out);
    (out, report)
}

/// The greeting, then the greeting again and again, until the client goes away.
fn stream_forever(mut stream: TcpStream) {
    let end = Instant::now() + SERVER_BOUND;
    let _ = stream.set_write_timeout(Some(SERVER_BOUND));
    while Instant::now() < end {
        if stream.write_all(GREETING).is_err() {
            return;
        }
    }
}

/// The greeting and a few bytes more, then nothing (the connection left open) until the
/// client goes away.
fn say_too_much_and_wait(mut stream: TcpStream) {
    if stream.write_all(GREETING).is_err() || stream.write_all(b" and more").is_err() {
        return;
    }
    let _ = stream.set_read_timeout(Some(SERVER_BOUND));
    let _ = stream.read(&mut [0; 64]);
}

/// Writes `reply` one byte at a time, a quarter of a second apart: every read the client
/// makes is quick, the whole reply slow.
fn trickle(stream: &mut TcpStream, reply: &[u8]) {
    for byte in reply {
        if stream.write_all(std::slice::from_ref(byte)).is_err() {
            return;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn trickle_greeting(mut stream: TcpStream) {
    trickle(&mut stream, GREETING);
}

/// An echo server that echoes each message it reads a byte at a time, slowly.
fn trickle_echo(mut stream: TcpStream) {
    let _ = stream.set_read_timeout(Some(SERVER_BOUND));
    let mut buf = [0; 4096];
    while let Ok(n @ 1..) = stream.read(&mut buf) {
        trickle(&mut stream, &buf[..n]);
    }
}

/// The bench failed (status 1) because each of its 4 connections got a wrong reply, and
/// none was left unstarted.
fn assert_all_four_wrong(out: &std::process::Output, r: &e2e::BenchReport) {
    assert_eq!(out.status.code(), Some(1), "{r:?}");
    assert_eq!(r.ok, 0, "{r:?}");
    assert_eq!(r.errors.wrong_payload, 4, "{r:?}");
    assert_eq!(r.errors.total, 4, "{r:?}");
    assert_eq!(r.not_started, 0, "{r:?}");
}

#[test]
fn bench_ends_a_server_that_streams_forever_at_once_and_counts_it_wrong() {
    let port = serve_each(4, stream_forever).to_string();
    let started = Instant::now();
    let (out, r) = bench(&[
        "--port",
        &port,
        "-n",
        "4",
        "--timeout",
        "1s",
        "--duration",
        "20s",
    ]);
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(10),
        "bench took {took:?}, half its --duration: {r:?}"
    );
    assert_all_four_wrong(&out, &r);
}

#[test]
fn bench_counts_a_longer_than_expected_reply_wrong_without_waiting_for_the_close() {
    // One connection at a time: each next one starts only once the last is counted.
    let port = serve_each(4, say_too_much_and_wait).to_string();
    let started = Instant::now();
    let (out, r) = bench(&[
        "--port",
        &port,
        "-n",
        "4",
        "-c",
        "1",
        "--timeout",
        "40s",
        "--duration",
        "60s",
    ]);
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(20),
        "bench waited {took:?}, as for the timeout or the close: {r:?}"
    );
    assert_all_four_wrong(&out, &r);
}

#[test]
fn bench_timeout_bounds_the_whole_reply_not_each_read() {
    // The greeting takes 6 s to trickle in; every byte comes well within the 1 s timeout.
    let port = serve_each(4, trickle_greeting).to_string();
    let (out, r) = bench(&[
        "--port",
        &port,
        "-n",
        "4",
        "--timeout",
        "1s",
        "--duration",
        "20s",
    ]);
    assert_eq!(out.status.code(), Some(1), "{r:?}");
    assert_eq!(
        r.ok, 0,
        "a reply slower than --timeout counted as received: {r:?}"
    );
    // Part of the reply, then the deadline: a truncated reply.
    assert_eq!(r.errors.wrong_payload, 4, "{r:?}");
    assert_eq!(r.errors.total, 4, "{r:?}");
}

#[test]
fn bench_echo_timeout_bounds_each_whole_request_not_each_read() {
    // Each 8-byte echo takes 2 s to trickle back; every byte comes well within 1 s.
    let port = serve_each(2, trickle_echo).to_string();
    let (out, r) = bench(&[
        "--echo",
        "--port",
        &port,
        "-n",
        "2",
        "--requests",
        "2",
        "--size",
        "8",
        "--timeout",
        "1s",
        "--duration",
        "20s",
    ]);
    assert_eq!(out.status.code(), Some(1), "{r:?}");
    assert_eq!(
        r.ok, 0,
        "an echo slower than --timeout counted as received: {r:?}"
    );
    // Each connection's first request: part of its echo, then the deadline.
    assert_eq!(r.errors.wrong_payload, 2, "{r:?}");
    assert_eq!(r.errors.total, 2, "{r:?}");
    assert_eq!(r.not_started, 2, "{r:?}");
}

// ---- stdout and stderr that cannot be written ------------------------------------------

/// A direct client of a `--proxy-protocol` server sends no PROXY header, so the server
/// closes without a word once its header deadline passes: that is an error, not an empty
/// reply (which would print an empty line and exit 0). The same for any peer that closes
/// without sending anything, over TCP or a Unix socket.
#[test]
fn a_server_that_closes_without_sending_anything_is_an_error() {
    let server = Server::local(&["--quiet", "--proxy-protocol", "--proxy-timeout", "100ms"]);
    let port = server.port().to_string();
    let out = e2e::local_client(&port, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(
        stderr,
        format!("greet-client: recv from ('127.0.0.1', {port}): connection closed with no data\n")
    );
    assert!(out.stdout.is_empty(), "{out:?}");

    let port = serve_each(1, drop);
    let out = e2e::local_client(port, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        stderr.ends_with(": connection closed with no data\n"),
        "{stderr}"
    );

    let dir = e2e::temp_dir("closes-without-data");
    let path = dir.join("silent.sock");
    let listener = std::os::unix::net::UnixListener::bind(&path).expect("bind");
    // Not joined: were the client not to connect, the test fails on its status instead.
    std::thread::spawn(move || drop(listener.accept()));
    let out = client(&["--unix", path.to_str().expect("UTF-8 temp path")]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        stderr.ends_with(": connection closed with no data\n"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

fn assert_no_panic(out: &std::process::Output) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(101), "panicked: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn client_with_stdout_on_a_full_disk_exits_1_without_a_panic() {
    let server = Server::local(&["--quiet"]);
    let port = server.port().to_string();
    let args = ["--host", "127.0.0.1", "--port", &port];
    let out = client_with_stdio(&args, dev_full(), std::process::Stdio::piped());
    assert_no_panic(&out);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("stdout"), "{stderr}");
}

#[test]
fn client_with_stdout_a_closed_pipe_exits_0_quietly() {
    let server = Server::local(&["--quiet"]);
    let port = server.port().to_string();
    let args = ["--host", "127.0.0.1", "--port", &port];
    let out = client_with_stdio(&args, closed_pipe(), std::process::Stdio::piped());
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
}

#[test]
fn client_error_with_stderr_on_a_full_disk_exits_1_without_a_panic() {
    let port = {
        let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        closed.local_addr().expect("local_addr").port().to_string()
    };
    let args = ["--host", "127.0.0.1", "--port", &port, "--timeout", "5s"];
    let out = client_with_stdio(&args, std::process::Stdio::null(), dev_full());
    assert_eq!(out.status.code(), Some(1), "{out:?}");
}

#[test]
fn lookup_with_stdout_or_stderr_on_a_full_disk_exits_1_without_a_panic() {
    let piped = std::process::Stdio::piped;
    let out = client_with_stdio(&["lookup", "127.0.0.1", "80"], dev_full(), piped());
    assert_no_panic(&out);
    assert_eq!(out.status.code(), Some(1), "{out:?}");

    let out = client_with_stdio(
        &["lookup", "127.0.0.1", "80", "--json"],
        dev_full(),
        piped(),
    );
    assert_no_panic(&out);
    assert_eq!(out.status.code(), Some(1), "{out:?}");

    // A failed lookup (no such service, answered from /etc/services) with nowhere to say so.
    let args = ["lookup", "127.0.0.1", "no-such-service-e2e"];
    let out = client_with_stdio(&args, piped(), dev_full());
    assert_eq!(out.status.code(), Some(1), "{out:?}");
}

#[test]
fn bench_with_stdout_on_a_full_disk_exits_1_without_a_panic() {
    let server = Server::local(&["--quiet"]);
    let port = server.port().to_string();
    let args = ["bench", "--port", &port, "-n", "10", "--json"];
    let out = client_with_stdio(&args, dev_full(), std::process::Stdio::piped());
    assert_no_panic(&out);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
}

#[test]
fn bench_progress_with_stderr_on_a_full_disk_neither_panics_nor_loses_the_report() {
    // A server that never answers and a 4 s timeout: the progress line (after 3 s) is
    // written to stderr while the run goes on.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = silent.local_addr().expect("local_addr").port().to_string();
    let args = [
        "bench",
        "--json",
        "--port",
        &port,
        "-n",
        "1",
        "--timeout",
        "4s",
        "--duration",
        "20s",
    ];
    let out = client_with_stdio(&args, std::process::Stdio::piped(), dev_full());
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let r = bench_report(&out);
    assert_eq!(r.errors.timeout, 1, "{r:?}");
    drop(silent);
}
