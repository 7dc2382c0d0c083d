//! `greet-client bench`: counts what it should, checks every byte, never hangs.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use e2e::{bench_report, client, BenchReport, Mode, Process, Server, PATIENCE};

fn bench(args: &[&str]) -> (Output, BenchReport) {
    let mut all = vec!["bench", "--json"];
    all.extend_from_slice(args);
    let out = client(&all);
    let report = bench_report(&out);
    (out, report)
}

#[test]
fn every_connection_is_checked_and_counted() {
    let server = Server::local(&["--quiet"]);
    let port = server.port().to_string();
    let (out, r) = bench(&["--port", &port, "-n", "2000", "-c", "32", "--threads", "2"]);
    assert!(out.status.success(), "{r:?}");
    assert_eq!(r.ok, 2000, "{r:?}");
    assert_eq!(r.errors.total, 0, "{r:?}");
    assert!(r.rate > 0.0);
    let lat = r.latency_us.expect("latencies of 2000 connections");
    assert!(lat.p50 <= lat.p90, "{r:?}");
    assert!(lat.p90 <= lat.p99, "{r:?}");
    assert!(lat.p99 <= lat.max, "{r:?}");
    let (status, stderr) = server.terminate();
    assert!(status.success());
    assert!(stderr.contains("accepted 2000, greeted 2000"), "{stderr}");
}

#[test]
fn a_wrong_reply_is_counted_as_wrong_payload() {
    let server = Server::local(&["--quiet", "--message", "Thank you for connectinG"]);
    let (out, r) = bench(&["--port", &server.port().to_string(), "-n", "50", "-c", "5"]);
    assert_eq!(out.status.code(), Some(1), "{r:?}");
    assert_eq!(r.ok, 0, "{r:?}");
    assert_eq!(r.errors.wrong_payload, 50, "{r:?}");
}

#[test]
fn a_closed_port_is_refused_and_ends_at_once() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port().to_string()
    };
    let (out, r) = bench(&["--port", &port, "-n", "100", "-c", "10"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(r.errors.refused, 100, "{r:?}");
}

#[test]
fn a_silent_server_times_out_within_the_bounds() {
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port().to_string();
    let started = Instant::now();
    let (out, r) = bench(&[
        "--port",
        &port,
        "-n",
        "1000",
        "-c",
        "4",
        "--timeout",
        "200ms",
        "--duration",
        "1s",
    ]);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "bench ran past its bound"
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(r.ok, 0, "{r:?}");
    let timeouts = r.errors.timeout;
    let not_started = r.not_started;
    assert!(timeouts >= 4, "{r:?}");
    assert_eq!(timeouts + not_started, 1000, "{r:?}");
    drop(silent);
}

#[test]
fn udp_requests_are_checked_and_counted() {
    let server = Server::local(&["--udp", "--quiet"]);
    let (out, r) = bench(&[
        "--udp",
        "--port",
        &server.port().to_string(),
        "-n",
        "5000",
        "-c",
        "16",
    ]);
    assert!(out.status.success(), "{r:?}");
    assert_eq!(r.mode, Mode::Udp);
    assert_eq!(r.ok, 5000, "{r:?}");
}

#[test]
fn the_table_is_for_humans() {
    let server = Server::local(&["--quiet"]);
    let out = client(&[
        "bench",
        "--port",
        &server.port().to_string(),
        "-n",
        "10",
        "-c",
        "2",
    ]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for word in ["rate", "latency", "p99", "errors", "10 ok of 10"] {
        assert!(text.contains(word), "{text}");
    }
}

/// The table says what it loaded, and a run where nothing succeeded has no latency to show
/// (not `p50 0 us`); its JSON document says so with `null`, typed as `Option`.
#[test]
fn the_table_names_its_target_and_no_latency_when_nothing_succeeded() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port().to_string()
    };
    let target = format!("127.0.0.1:{port}");
    let out = client(&["bench", "--port", &port, "-n", "5", "-c", "5"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    let line = |label: &str| {
        text.lines()
            .find(|l| l.starts_with(label))
            .unwrap_or_else(|| panic!("no {label} line in {text}"))
            .to_owned()
    };
    assert_eq!(line("target "), format!("target       {target}"), "{text}");
    assert_eq!(
        line("latency "),
        "latency      n/a (none succeeded)",
        "{text}"
    );
    let (_, r) = bench(&["--port", &port, "-n", "5", "-c", "5"]);
    assert_eq!(r.target, target, "{r:?}");
    assert_eq!(r.latency_us, None, "{r:?}");
    let server = Server::local(&["--quiet"]);
    let port = server.port().to_string();
    let out = client(&["bench", "--port", &port, "-n", "5", "-c", "5"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("target       127.0.0.1:{port}\n")),
        "{text}"
    );
    assert!(text.contains("latency      p50 "), "{text}");
}

// ---- Echo ---------------------------------------------------------------------------

/// netcore's `examples/echo.rs`, built once per test process (only that example: the
/// library is already built for the tests, so this compiles one small file).
fn echo_example() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let status = Command::new(env!("CARGO"))
                .args(["build", "--quiet", "-p", "netcore", "--example", "echo"])
                .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(".."))
                .status()
                .expect("run cargo build");
            assert!(status.success(), "cargo build --example echo failed");
            // target/debug/deps/bench-<hash> -> target/debug/examples/echo
            let exe = std::env::current_exe().expect("current_exe");
            exe.parent()
                .and_then(Path::parent)
                .expect("test binary lives in target/<profile>/deps")
                .join("examples")
                .join("echo")
        })
        .clone()
}

/// The echo example, running until dropped (the harness kills and reaps it).
struct EchoServer {
    _process: Process,
    port: u16,
}

impl EchoServer {
    fn start() -> EchoServer {
        let mut cmd = Command::new(echo_example());
        cmd.arg("127.0.0.1:0");
        // Its first line, `Listening on 127.0.0.1:PORT`, is printed once it listens.
        let process =
            Process::start("netcore's echo example", cmd).unwrap_or_else(|e| panic!("{e}"));
        let port = process
            .port()
            .unwrap_or_else(|| panic!("readiness line {:?}", process.ready()));
        EchoServer {
            _process: process,
            port,
        }
    }
}

#[test]
fn echo_requests_against_netcore_are_all_checked_and_counted() {
    let server = EchoServer::start();
    let port = server.port.to_string();
    for size in ["64", "4096"] {
        let (out, r) = bench(&[
            "--echo",
            "--port",
            &port,
            "-n",
            "40",
            "-c",
            "20",
            "--requests",
            "25",
            "--size",
            size,
            "--threads",
            "2",
        ]);
        assert!(out.status.success(), "{r:?}");
        assert_eq!(r.mode, Mode::Echo, "{r:?}");
        assert_eq!(r.echo.expect("echo info").size.to_string(), size, "{r:?}");
        assert_eq!(r.planned, 1000, "{r:?}");
        assert_eq!(r.ok, 1000, "{r:?}");
        assert_eq!(r.errors.total, 0, "{r:?}");
        assert_eq!(r.echo.expect("echo info").wrong_bytes, 0, "{r:?}");
        assert_eq!(r.not_started, 0, "{r:?}");
        let lat = r.latency_us.expect("latencies of 1000 requests");
        assert!(lat.p50 <= lat.p99, "{r:?}");
        assert!(lat.p99 <= lat.max, "{r:?}");
    }
}

#[test]
fn echo_until_the_deadline_ends_on_time_and_counts_no_failure() {
    let server = EchoServer::start();
    let started = Instant::now();
    let (out, r) = bench(&[
        "--echo",
        "--port",
        &server.port.to_string(),
        "-c",
        "8",
        "--requests",
        "0",
        "--duration",
        "500ms",
    ]);
    assert!(started.elapsed() < PATIENCE, "bench ran past its bound");
    assert!(out.status.success(), "{r:?}");
    assert!(r.ok > 0, "{r:?}");
    assert_eq!(r.errors.total, 0, "{r:?}");
    // What was in flight at the deadline is cut short, at most one per connection.
    assert!(
        r.echo.expect("echo info").unfinished_at_deadline <= 8,
        "{r:?}"
    );
}

/// An echo server on std threads that flips the bits of byte `corrupt_at` of every
/// connection's stream; serves `connections` connections, then stops accepting.
fn corrupting_echo(connections: usize, corrupt_at: usize) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("local_addr").port();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(connections) {
            let Ok(stream) = stream else { continue };
            std::thread::spawn(move || corrupt_echo(stream, corrupt_at));
        }
    });
    port
}

fn corrupt_echo(mut stream: TcpStream, corrupt_at: usize) {
    let _ = stream.set_read_timeout(Some(PATIENCE));
    let mut buf = [0u8; 4096];
    let mut seen = 0;
    loop {
        let n = match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if (seen..seen + n).contains(&corrupt_at) {
            buf[corrupt_at - seen] ^= 0xff;
        }
        seen += n;
        if stream.write_all(&buf[..n]).is_err() {
            return;
        }
    }
}

#[test]
fn a_corrupted_echo_byte_is_caught() {
    // Byte 100 is in each connection's second 64-byte message.
    let port = corrupting_echo(3, 100);
    let (out, r) = bench(&[
        "--echo",
        "--port",
        &port.to_string(),
        "-n",
        "3",
        "-c",
        "3",
        "--requests",
        "5",
        "--size",
        "64",
    ]);
    assert_eq!(out.status.code(), Some(1), "{r:?}");
    assert_eq!(r.errors.wrong_payload, 3, "{r:?}");
    assert_eq!(r.echo.expect("echo info").wrong_bytes, 3, "{r:?}");
    assert_eq!(r.ok, 12, "{r:?}");
    assert_eq!(r.errors.total, 3, "{r:?}");
}

#[test]
fn an_echo_server_that_never_answers_times_out_within_the_bounds() {
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port().to_string();
    let started = Instant::now();
    let (out, r) = bench(&[
        "--echo",
        "--port",
        &port,
        "-n",
        "6",
        "-c",
        "3",
        "--requests",
        "10",
        "--timeout",
        "200ms",
        "--duration",
        "5s",
    ]);
    assert!(started.elapsed() < PATIENCE, "bench ran past its bound");
    assert_eq!(out.status.code(), Some(1), "{r:?}");
    assert_eq!(r.ok, 0, "{r:?}");
    // Each connection's first request times out; the other nine were never sent.
    assert_eq!(r.errors.timeout, 6, "{r:?}");
    assert_eq!(r.not_started, 54, "{r:?}");
    drop(silent);
}
