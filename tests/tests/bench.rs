//! `greet-client bench`: counts what it should, checks every byte, never hangs.

use std::process::Output;
use std::time::{Duration, Instant};

use e2e::{client, Server};
use serde_json::Value;

fn bench(args: &[&str]) -> (Output, Value) {
    let mut all = vec!["bench", "--json"];
    all.extend_from_slice(args);
    let out = client(&all);
    let report =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("no JSON ({e}): {out:?}"));
    (out, report)
}

#[test]
fn every_connection_is_checked_and_counted() {
    let server = Server::start(&["--host", "127.0.0.1", "--port", "0", "--quiet"]);
    let port = server.port().to_string();
    let (out, r) = bench(&["--port", &port, "-n", "2000", "-c", "32", "--threads", "2"]);
    assert!(out.status.success(), "{r}");
    assert_eq!(r["ok"], 2000, "{r}");
    assert_eq!(r["errors"]["total"], 0, "{r}");
    assert!(r["rate"].as_f64().unwrap() > 0.0);
    let lat = &r["latency_us"];
    assert!(lat["p50"].as_u64() <= lat["p90"].as_u64(), "{r}");
    assert!(lat["p90"].as_u64() <= lat["p99"].as_u64(), "{r}");
    assert!(lat["p99"].as_u64() <= lat["max"].as_u64(), "{r}");
    let (status, stderr) = server.terminate();
    assert!(status.success());
    assert!(stderr.contains("accepted 2000, greeted 2000"), "{stderr}");
}

#[test]
fn a_wrong_reply_is_counted_as_wrong_payload() {
    let server = Server::start(&[
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--quiet",
        "--message",
        "Thank you for connectinG",
    ]);
    let (out, r) = bench(&["--port", &server.port().to_string(), "-n", "50", "-c", "5"]);
    assert_eq!(out.status.code(), Some(1), "{r}");
    assert_eq!(r["ok"], 0, "{r}");
    assert_eq!(r["errors"]["wrong_payload"], 50, "{r}");
}

#[test]
fn a_closed_port_is_refused_and_ends_at_once() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port().to_string()
    };
    let (out, r) = bench(&["--port", &port, "-n", "100", "-c", "10"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(r["errors"]["refused"], 100, "{r}");
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
    assert_eq!(r["ok"], 0, "{r}");
    let timeouts = r["errors"]["timeout"].as_u64().unwrap();
    let not_started = r["not_started"].as_u64().unwrap();
    assert!(timeouts >= 4, "{r}");
    assert_eq!(timeouts + not_started, 1000, "{r}");
    drop(silent);
}

#[test]
fn udp_requests_are_checked_and_counted() {
    let server = Server::start(&["--udp", "--host", "127.0.0.1", "--port", "0", "--quiet"]);
    let (out, r) = bench(&[
        "--udp",
        "--port",
        &server.port().to_string(),
        "-n",
        "5000",
        "-c",
        "16",
    ]);
    assert!(out.status.success(), "{r}");
    assert_eq!(r["mode"], "udp");
    assert_eq!(r["ok"], 5000, "{r}");
}

#[test]
fn the_table_is_for_humans() {
    let server = Server::start(&["--host", "127.0.0.1", "--port", "0", "--quiet"]);
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
