//! `--proxy-protocol` end to end: hand-written headers (good, split, broken, slow), then real
//! HAProxy in TCP mode in front of two greet-servers, with `send-proxy` (v1) and
//! `send-proxy-v2`.
//!
//! Without `haproxy` the HAProxy tests say so and pass, except under CI (`CI` set), where a
//! missing tool is a failure: `.ci/run` installs it.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use e2e::{temp_dir, HaProxy, Server, PATIENCE};

const GREETING: &[u8] = b"Thank you for connecting";
const V2_SIGNATURE: &[u8] = b"\r\n\r\n\0\r\nQUIT\n";

fn tool(name: &str) -> Option<PathBuf> {
    e2e::tool(name, "haproxy")
}

fn proxy_server(extra: &[&str]) -> Server {
    Server::local(&[&["--proxy-protocol"], extra].concat())
}

/// Connects, sends `first`, and reads until the server closes: what it sent back.
fn exchange(addr: SocketAddr, first: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect_timeout(&addr, PATIENCE).unwrap();
    stream.write_all(first).unwrap();
    read_to_close(stream)
}

/// Everything the server sends before it closes; a reset counts as the end.
fn read_to_close(mut stream: TcpStream) -> Vec<u8> {
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut got = Vec::new();
    match stream.read_to_end(&mut got) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        Err(e) => panic!("read: {e}"),
    }
    got
}

/// Stops a server and returns the connection lines it printed, and its stderr.
fn stop(server: Server) -> (Vec<String>, String) {
    server.signal(libc::SIGTERM);
    // After the exit, stdout is closed and the lines still queued come at once.
    let lines: Vec<String> = std::iter::from_fn(|| server.next_line()).collect();
    let (status, stderr) = server.terminate_after_signal();
    assert!(status.success(), "{status}: {stderr}");
    (lines, stderr)
}

fn v2_ipv4(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16) -> Vec<u8> {
    let mut h = V2_SIGNATURE.to_vec();
    h.extend_from_slice(&[0x21, 0x11, 0, 12]);
    h.extend_from_slice(&src);
    h.extend_from_slice(&dst);
    h.extend_from_slice(&sport.to_be_bytes());
    h.extend_from_slice(&dport.to_be_bytes());
    h
}

#[test]
fn headers_v1_and_v2_name_the_client_they_carry() {
    let server = proxy_server(&["--threads", "1"]);
    let addr = server.addr();
    assert_eq!(
        exchange(addr, b"PROXY TCP4 192.0.2.1 198.51.100.1 56324 443\r\n"),
        GREETING
    );
    assert_eq!(
        exchange(
            addr,
            b"PROXY TCP6 2001:db8::1 2001:db8::2 4000 12345\r\nand then some data"
        ),
        GREETING
    );
    assert_eq!(
        exchange(addr, &v2_ipv4([203, 0, 113, 9], 61000, [127, 0, 0, 1], 80)),
        GREETING
    );
    // LOCAL (a balancer's own health check) is greeted, so a check may expect the
    // greeting, but it is no client's: not logged, counted apart. UNKNOWN names no client:
    // the real peer is logged.
    let mut local = V2_SIGNATURE.to_vec();
    local.extend_from_slice(&[0x20, 0x00, 0, 0]);
    let stream = TcpStream::connect(addr).unwrap();
    (&stream).write_all(&local).unwrap();
    assert_eq!(read_to_close(stream), GREETING);
    let stream = TcpStream::connect(addr).unwrap();
    let unknown_port = stream.local_addr().unwrap().port();
    (&stream).write_all(b"PROXY UNKNOWN\r\n").unwrap();
    assert_eq!(read_to_close(stream), GREETING);
    // A header that comes a few bytes at a time.
    let stream = TcpStream::connect(addr).unwrap();
    stream.set_nodelay(true).unwrap();
    for piece in [&b"PROX"[..], b"Y TCP4 10.1.2.3 10.", b"0.0.1 7 8\r", b"\n"] {
        (&stream).write_all(piece).unwrap();
    }
    assert_eq!(read_to_close(stream), GREETING);

    let (lines, stderr) = stop(server);
    assert_eq!(
        lines,
        [
            "Got connection from ('192.0.2.1', 56324)".to_string(),
            "Got connection from ('2001:db8::1', 4000, 0, 0)".to_string(),
            "Got connection from ('203.0.113.9', 61000)".to_string(),
            format!("Got connection from ('127.0.0.1', {unknown_port})"),
            "Got connection from ('10.1.2.3', 7)".to_string(),
        ]
    );
    assert!(
        stderr.contains("greet-server: accepted 6, greeted 5, errors 0, datagrams 0, rate-limited 0, proxy errors 0, health checks 1"),
        "{stderr}"
    );
}

#[test]
fn broken_oversized_missing_and_slow_headers_close_only_their_connection() {
    let server = proxy_server(&["--threads", "1", "--proxy-timeout", "300ms"]);
    let addr = server.addr();
    let mut too_long = b"PROXY UNKNOWN ".to_vec();
    too_long.resize(200, b'x');
    let mut bad_version = v2_ipv4([1, 2, 3, 4], 1, [5, 6, 7, 8], 2);
    bad_version[12] = 0x11;
    let broken: [&[u8]; 5] = [
        b"GET / HTTP/1.0\r\n\r\n",
        b"PROXY TCP4 1.2.3.400 5.6.7.8 1 2\r\n",
        b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n",
        &too_long,
        &bad_version,
    ];
    for input in broken {
        assert_eq!(
            exchange(addr, input),
            b"",
            "{:?}",
            String::from_utf8_lossy(input)
        );
    }
    // Silent: closed at the deadline; meanwhile another connection is served.
    let silent = TcpStream::connect(addr).unwrap();
    assert_eq!(
        exchange(addr, b"PROXY TCP4 192.0.2.40 192.0.2.1 4040 80\r\n"),
        GREETING
    );
    assert_eq!(read_to_close(silent), b"");
    // A header trickled slower than the deadline allows: a byte each time the read
    // timeout passes without the server having closed.
    let trickle = TcpStream::connect(addr).unwrap();
    trickle
        .set_read_timeout(Some(Duration::from_millis(120)))
        .unwrap();
    let header = b"PROXY TCP4 192.0.2.7 192.0.2.8 1000 2000\r\n";
    let deadline = Instant::now() + PATIENCE;
    let mut got = Vec::new();
    for byte in header {
        if (&trickle).write_all(&[*byte]).is_err() {
            break;
        }
        match (&trickle).read_to_end(&mut got) {
            Ok(_) => break, // closed by the server
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(_) => assert!(Instant::now() < deadline, "trickle never closed"),
        }
    }
    assert_eq!(got, b"", "a slow header was greeted");

    // The server as a whole is unharmed.
    assert_eq!(
        exchange(addr, b"PROXY TCP4 192.0.2.50 192.0.2.1 5050 80\r\n"),
        GREETING
    );
    let (lines, stderr) = stop(server);
    assert_eq!(
        lines,
        [
            "Got connection from ('192.0.2.40', 4040)",
            "Got connection from ('192.0.2.50', 5050)"
        ]
    );
    // 5 broken, 1 silent, 1 slow.
    assert!(
        stderr.contains(
            "accepted 9, greeted 2, errors 0, datagrams 0, rate-limited 0, proxy errors 7"
        ),
        "{stderr}"
    );
}

/// A balancer's connection whose header has not arrived when the server is told to stop
/// is left to finish: closing it empty would lose a client the balancer cannot retry.
#[test]
fn a_connection_awaiting_its_header_at_shutdown_is_still_greeted() {
    use crate::metrics::{sample, scrape, server_with_metrics};
    let (server, metrics) = server_with_metrics(&["--proxy-protocol", "--threads", "1"]);
    let addr = server.addr();
    let mut pending = TcpStream::connect_timeout(&addr, PATIENCE).unwrap();
    // Accepted (each loop publishes its counts at the end of its turn).
    e2e::wait_until("the connection is accepted", || {
        sample(&scrape(metrics), "greet_accepted_total") == 1
    });
    server.signal(libc::SIGTERM);
    // Stopping: the listener is closed.
    e2e::wait_until("the listener closes", || {
        TcpStream::connect_timeout(&addr, PATIENCE).is_err()
    });
    pending
        .write_all(b"PROXY TCP4 192.0.2.7 127.0.0.1 5555 80\r\n")
        .unwrap();
    assert_eq!(read_to_close(pending), b"Thank you for connecting");
    let lines: Vec<String> = std::iter::from_fn(|| server.next_line()).collect();
    let (status, stderr) = server.terminate_after_signal();
    assert!(status.success(), "{status}: {stderr}");
    assert!(lines.iter().any(|l| l.contains("192.0.2.7")), "{lines:?}");
}

#[test]
fn a_header_from_outside_proxy_trusted_is_refused_and_counted() {
    // The issue's case: a client on loopback names 192.0.2.7 as itself.
    use crate::metrics::{sample, scrape, server_with_metrics};
    let lie = b"PROXY TCP4 192.0.2.7 198.51.100.1 56324 443\r\n";
    let (server, metrics) = server_with_metrics(&[
        "--proxy-protocol",
        "--threads",
        "1",
        "--proxy-trusted",
        "10.0.0.0/8,2001:db8::/32",
        "--log-format",
        "json",
    ]);
    let stream = TcpStream::connect_timeout(&server.addr(), PATIENCE).unwrap();
    let port = stream.local_addr().unwrap().port();
    (&stream).write_all(lie).unwrap();
    assert_eq!(read_to_close(stream), b"");
    // Counted once, as its own outcome (each loop publishes its counts at the end of its
    // turn: the scrape may come first).
    let outcome = |text: &str, name: &str| {
        sample(
            text,
            &format!("greet_connections_total{{outcome=\"{name}\"}}"),
        )
    };
    let mut text = String::new();
    e2e::wait_until("the refused connection is counted", || {
        text = scrape(metrics);
        sample(&text, "greet_accepted_total") == 1 && sample(&text, "greet_open_connections") == 0
    });
    assert_eq!(outcome(&text, "proxy-untrusted"), 1, "{text}");
    for other in ["greeted", "proxy-error", "reset", "error", "health-check"] {
        assert_eq!(outcome(&text, other), 0, "{other}: {text}");
    }
    let (lines, stderr) = stop(server);
    // One line, about the real peer: the client the header names is a lie, never logged.
    let lines: Vec<&String> = lines
        .iter()
        .filter(|l| !l.starts_with("Listening on "))
        .collect();
    assert_eq!(lines.len(), 1, "{lines:#?}");
    let line: serde_json::Value =
        serde_json::from_str(lines[0]).unwrap_or_else(|e| panic!("{e}: {lines:?}"));
    assert_eq!(line["outcome"], "proxy-untrusted", "{line}");
    assert_eq!(line["peer"], format!("127.0.0.1:{port}").as_str(), "{line}");
    assert_eq!(line["sent"], 0, "{line}");
    assert!(
        line.get("client").is_none(),
        "an untrusted header was logged: {line}"
    );
    assert!(!lines[0].contains("192.0.2.7"), "{line}");
    assert!(
        stderr.contains(
            "greeted 0, errors 0, datagrams 0, rate-limited 0, proxy errors 0, proxy untrusted 1"
        ),
        "{stderr}"
    );
    assert!(!stderr.contains("every source"), "{stderr}");

    // From a trusted source the same header is honoured.
    let server = proxy_server(&["--threads", "1", "--proxy-trusted", "10.0.0.0/8,127.0.0.1"]);
    assert_eq!(exchange(server.addr(), lie), GREETING);
    let (lines, stderr) = stop(server);
    assert_eq!(lines, ["Got connection from ('192.0.2.7', 56324)"]);
    assert!(
        stderr.contains("greeted 1,") && stderr.contains("proxy untrusted 0"),
        "{stderr}"
    );
}

#[test]
fn without_proxy_trusted_the_server_says_every_source_is_trusted() {
    let server = proxy_server(&["--quiet"]);
    let (_, stderr) = stop(server);
    assert!(
        stderr.contains("a PROXY header is honoured from every source"),
        "{stderr}"
    );
    // Only with --proxy-protocol: alone it is a usage error.
    let out = e2e::server_output(&["--port", "0", "--proxy-trusted", "127.0.0.1"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let out = e2e::server_output(&[
        "--port",
        "0",
        "--proxy-protocol",
        "--proxy-trusted",
        "10.1.2.3/8",
    ]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("did you mean 10.0.0.0/8?"),
        "{out:?}"
    );
}

/// Starts HAProxy on a free port in front of `backends`, each server line ending in
/// `option`; returns it, once ready, with its frontend address.
fn start_haproxy(
    haproxy: &Path,
    dir: &Path,
    backends: &[SocketAddr],
    option: &str,
) -> (HaProxy, SocketAddr) {
    for _ in 0..10 {
        let frontend = SocketAddr::from(([127, 0, 0, 1], e2e::free_port()));
        let servers: String = backends
            .iter()
            .enumerate()
            .map(|(i, addr)| format!("    server greet{i} {addr} {option}\n"))
            .collect();
        let config = format!(
            "global\n    maxconn 1000\n\n\
             defaults\n    mode tcp\n    timeout connect 10s\n    timeout client 30s\n    \
             timeout server 30s\n\n\
             frontend greet\n    bind {frontend}\n    default_backend greeters\n\n\
             backend greeters\n    balance roundrobin\n{servers}"
        );
        let cfg = dir.join("haproxy.cfg");
        std::fs::write(&cfg, config).unwrap();
        match e2e::haproxy(haproxy, &cfg) {
            Ok(proxy) => return (proxy, frontend),
            // Someone took the port since it was chosen: another.
            Err(log) if log.contains("cannot bind") => {}
            Err(log) => panic!("{log}"),
        }
    }
    panic!("no free port for haproxy after 10 tries");
}

/// Two greet-servers behind HAProxy: every client greeted byte for byte, and across the
/// two logs each client's own address and port exactly once.
fn behind_haproxy(option: &str) {
    let Some(haproxy) = tool("haproxy") else {
        return;
    };
    let dir = temp_dir("haproxy");
    // Only HAProxy, on loopback, may send the header.
    let trusted = ["--proxy-trusted", "127.0.0.1"];
    let servers = [proxy_server(&trusted), proxy_server(&trusted)];
    let backends: Vec<SocketAddr> = servers.iter().map(Server::addr).collect();
    let (proxy, frontend) = start_haproxy(&haproxy, &dir, &backends, option);
    let first = TcpStream::connect(frontend).unwrap();

    let mut clients = vec![(first.local_addr().unwrap(), read_to_close(first))];
    let threads: Vec<_> = (0..4)
        .map(|_| {
            std::thread::spawn(move || {
                (0..10)
                    .map(|_| {
                        let stream = TcpStream::connect_timeout(&frontend, PATIENCE).unwrap();
                        (stream.local_addr().unwrap(), read_to_close(stream))
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    for thread in threads {
        clients.extend(thread.join().unwrap());
    }
    for (addr, got) in &clients {
        assert_eq!(got, GREETING, "client {addr} through haproxy ({option})");
    }
    drop(proxy);

    let mut seen: HashMap<String, usize> = HashMap::new();
    for server in servers {
        let (lines, stderr) = stop(server);
        assert!(
            !lines.is_empty(),
            "roundrobin left a server without clients"
        );
        assert!(
            stderr.contains(", proxy errors 0, proxy untrusted 0, health checks "),
            "{stderr}"
        );
        for line in lines {
            *seen.entry(line).or_default() += 1;
        }
    }
    for (addr, _) in &clients {
        let line = format!("Got connection from ('127.0.0.1', {})", addr.port());
        assert_eq!(seen.remove(&line), Some(1), "{line} ({option})");
    }
    assert!(seen.is_empty(), "lines for no client: {seen:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn haproxy_send_proxy_v1_names_every_client() {
    behind_haproxy("send-proxy");
}

#[test]
fn haproxy_send_proxy_v2_names_every_client() {
    behind_haproxy("send-proxy-v2");
}
