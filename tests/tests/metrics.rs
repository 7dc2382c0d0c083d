//! `--metrics ADDR`: the exposition checked by the real `promtool`, scraped by a real
//! Prometheus (1 s interval, values read back through its query API), and counters that
//! carry on across a SIGHUP restart.
//!
//! Without `prometheus`/`promtool` (Debian package `prometheus`) these tests say so and
//! pass, except under CI (`CI` set), where a missing tool is a failure: `.ci/run` installs it.

use std::io::Write;
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use e2e::{free_port, http_get, port_of, read_all, temp_dir, Server, PATIENCE};

use crate::operations::Watched;

const GREETING: &[u8] = b"Thank you for connecting";

/// A server with `--metrics 127.0.0.1:0`, and its metrics address (the last readiness
/// line).
pub(crate) fn server_with_metrics(extra: &[&str]) -> (Server, SocketAddr) {
    let server = Server::local(&[&["--metrics", "127.0.0.1:0"], extra].concat());
    let addr = metrics_addr(|| server.next_line());
    (server, addr)
}

/// Reads readiness lines until the metrics one; its address.
pub(crate) fn metrics_addr(mut next: impl FnMut() -> Option<String>) -> SocketAddr {
    loop {
        let line = next().expect("a `Listening on (...) metrics` line");
        if line.ends_with(" metrics") {
            let port = port_of(&line).unwrap_or_else(|| panic!("no port in {line:?}"));
            return SocketAddr::from(([127, 0, 0, 1], port));
        }
    }
}

/// One scrape: the exposition text.
pub(crate) fn scrape(addr: SocketAddr) -> String {
    let (status, body) = http_get(addr, "/metrics").expect("GET /metrics");
    assert_eq!(status, 200, "{body}");
    body
}

/// The value of the sample `name` (with its labels, as written) in an exposition.
pub(crate) fn sample(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|value| value.parse().ok())
        .unwrap_or_else(|| panic!("no sample {name} in\n{text}"))
}

fn greet(addr: SocketAddr) {
    assert_eq!(
        read_all(TcpStream::connect(addr).unwrap()).unwrap(),
        GREETING
    );
}

#[test]
fn the_exposition_counts_what_happened_and_promtool_accepts_it() {
    let (server, metrics) = server_with_metrics(&["--tcp", "--udp", "--threads", "2", "--quiet"]);
    for _ in 0..5 {
        greet(server.addr());
    }
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut buf = [0u8; 64];
    for _ in 0..2 {
        udp.send_to(b"x", server.addr()).unwrap();
        udp.recv(&mut buf).unwrap();
    }
    // Each loop publishes its counts at the end of its turn: the scrape may come first.
    let deadline = Instant::now() + PATIENCE;
    let text = loop {
        let text = scrape(metrics);
        if sample(&text, "greet_connections_total{outcome=\"greeted\"}") == 5
            && sample(&text, "greet_datagrams_received_total") == 2
        {
            break text;
        }
        assert!(
            Instant::now() < deadline,
            "the counts never arrived:\n{text}"
        );
        std::thread::yield_now();
    };
    assert_eq!(sample(&text, "greet_accepted_total"), 5);
    assert_eq!(sample(&text, "greet_greeting_duration_seconds_count"), 5);
    assert_eq!(
        sample(&text, "greet_greeting_duration_seconds_bucket{le=\"+Inf\"}"),
        5
    );
    assert_eq!(sample(&text, "greet_open_connections"), 0);
    assert_eq!(sample(&text, "greet_restarts"), 0);
    // Scrapes are neither greetings nor connections of the summary.
    assert_eq!(http_get(metrics, "/").unwrap().0, 404);

    if let Some(promtool) = e2e::tool("promtool", "prometheus") {
        let mut check = Command::new(promtool)
            .args(["check", "metrics"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        check
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        let out = check.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "promtool: {}{}\n{text}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let (status, stderr) = server.terminate();
    assert!(status.success(), "{stderr}");
    assert!(stderr.contains("accepted 5, greeted 5,"), "{stderr}");
}

/// A real Prometheus on a free port, with a temporary configuration and storage, killed
/// and its folder removed on drop.
pub(crate) struct Prometheus {
    child: Child,
    pub(crate) addr: SocketAddr,
    dir: PathBuf,
    /// Its log (stderr), read on a thread for as long as it runs: a closed pipe would kill
    /// it (a Go program dies of SIGPIPE on a write to its stderr).
    _log: Receiver<String>,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Prometheus {
    /// Starts Prometheus scraping `targets` every second; `None` (after saying so) when it
    /// is not installed and the test may skip it.
    pub(crate) fn start(targets: &[SocketAddr]) -> Option<Prometheus> {
        let binary = e2e::tool("prometheus", "prometheus")?;
        let dir = temp_dir("prometheus");
        let list: Vec<String> = targets.iter().map(|t| format!("'{t}'")).collect();
        let config = format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n\
             scrape_configs:\n  - job_name: greet\n    static_configs:\n      - targets: [{}]\n",
            list.join(", ")
        );
        std::fs::write(dir.join("prometheus.yml"), config).unwrap();
        // Prometheus takes no port 0: a port free now, and another if it was taken since.
        for _ in 0..5 {
            let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
            if let Some(prometheus) = Prometheus::try_start(&binary, &dir, addr) {
                return Some(prometheus);
            }
        }
        panic!("prometheus did not start on any of 5 free ports");
    }

    fn try_start(binary: &Path, dir: &Path, addr: SocketAddr) -> Option<Prometheus> {
        let mut child = Command::new(binary)
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn prometheus");
        let log = proc_harness::lines(child.stderr.take().expect("its stderr"));
        // Ready when its log says so.
        let deadline = Instant::now() + 2 * PATIENCE;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match log.recv_timeout(left) {
                Ok(line) if line.contains("Server is ready to receive web requests") => {
                    return Some(Prometheus {
                        child,
                        addr,
                        dir: dir.to_path_buf(),
                        _log: log,
                    });
                }
                Ok(line) => seen.push(line),
                // Its stderr closed: it exited.
                Err(RecvTimeoutError::Disconnected) => {
                    let _ = child.wait();
                    let seen = seen.join("\n");
                    if seen.contains("address already in use") {
                        return None;
                    }
                    panic!("prometheus exited: {seen}");
                }
                Err(RecvTimeoutError::Timeout) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("prometheus never became ready: {}", seen.join("\n"))
                }
            }
        }
    }

    /// The value of `query` (an instant vector of one sample, or a scalar expression) now,
    /// if Prometheus has one.
    pub(crate) fn query(&self, query: &str) -> Option<f64> {
        let path = format!("/api/v1/query?query={}", url_escape(query));
        let (status, body) = http_get(self.addr, &path).ok()?;
        if status != 200 {
            return None;
        }
        let json: serde_json::Value = serde_json::from_str(&body).ok()?;
        let result = &json["data"]["result"];
        let value = match json["data"]["resultType"].as_str()? {
            "vector" => result.get(0)?.get("value")?.get(1)?,
            "scalar" => result.get(1)?,
            _ => return None,
        };
        value.as_str()?.parse().ok()
    }

    /// Polls `query` until it equals `want` (within a minute: a scrape a second, on a
    /// loaded machine); the last value seen otherwise.
    pub(crate) fn wait_for(&self, query: &str, want: f64) -> Result<(), Option<f64>> {
        let deadline = Instant::now() + 2 * PATIENCE;
        let mut last = None;
        while Instant::now() < deadline {
            last = self.query(query);
            if last == Some(want) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        Err(last)
    }
}

/// Percent-encodes a query parameter.
fn url_escape(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' | b'-' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[test]
fn prometheus_scrapes_the_endpoint_and_reads_the_counts_back() {
    let (server, metrics) = server_with_metrics(&[
        "--quiet",
        "--proxy-protocol",
        "--proxy-trusted",
        "127.0.0.1",
    ]);
    let Some(prometheus) = Prometheus::start(&[metrics]) else {
        return;
    };
    for _ in 0..7 {
        let mut stream = TcpStream::connect(server.addr()).unwrap();
        stream
            .write_all(b"PROXY TCP4 192.0.2.1 192.0.2.2 1000 80\r\n")
            .unwrap();
        assert_eq!(read_all(stream).unwrap(), GREETING);
    }
    let mut broken = TcpStream::connect(server.addr()).unwrap();
    broken.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
    assert_eq!(read_all(broken).unwrap(), b"");
    for (query, want) in [
        ("greet_accepted_total", 8.0),
        ("greet_connections_total{outcome=\"greeted\"}", 7.0),
        ("greet_connections_total{outcome=\"proxy-error\"}", 1.0),
        ("greet_greeting_duration_seconds_count", 7.0),
        ("up{job=\"greet\"}", 1.0),
    ] {
        if let Err(last) = prometheus.wait_for(query, want) {
            panic!("Prometheus never saw {query} = {want} (last: {last:?})");
        }
    }
    let (status, stderr) = server.terminate();
    assert!(status.success(), "{stderr}");
}

#[test]
fn counters_carry_on_across_a_restart_and_never_go_down() {
    let mut watched = Watched::start(
        &[
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--quiet",
            "--metrics",
            "127.0.0.1:0",
        ],
        &[],
    );
    let ready = watched.next_stdout();
    let addr = SocketAddr::from(([127, 0, 0, 1], port_of(&ready).unwrap()));
    let metrics = metrics_addr(|| Some(watched.next_stdout()));
    for _ in 0..3 {
        greet(addr);
    }
    // A scraper that never stops during the restart: every value it sees is at least the
    // one before.
    let scraper = std::thread::spawn(move || {
        let until = Instant::now() + Duration::from_secs(4);
        let mut seen = Vec::new();
        while Instant::now() < until && seen.len() < 20_000 {
            if let Ok((200, text)) = http_get(metrics, "/metrics") {
                seen.push((
                    sample(&text, "greet_accepted_total"),
                    sample(&text, "greet_connections_total{outcome=\"greeted\"}"),
                ));
            }
        }
        seen
    });
    let greeter = std::thread::spawn(move || {
        let until = Instant::now() + Duration::from_secs(3);
        let mut greeted = 0u64;
        while Instant::now() < until {
            greet(addr);
            greeted += 1;
        }
        greeted
    });
    let first = watched.first.pid();
    let second = watched.restart(first);
    let during = greeter.join().unwrap();
    let seen = scraper.join().unwrap();
    assert!(seen.len() > 10, "too few scrapes: {}", seen.len());
    for pair in seen.windows(2) {
        assert!(
            pair[1].0 >= pair[0].0 && pair[1].1 >= pair[0].1,
            "a counter went down: {:?} then {:?}",
            pair[0],
            pair[1]
        );
    }
    // The old server's summary line is the last thing it writes, after its last totals went
    // to the new one; from then on the new one serves every connection of both, once it has
    // read them.
    let old_summary = watched.stderr_line("the old server's summary at its exit", |l| {
        l.starts_with("greet-server: accepted ")
    });
    let total = 3 + during;
    let deadline = Instant::now() + PATIENCE;
    loop {
        let text = scrape(metrics);
        if sample(&text, "greet_accepted_total") == total {
            assert_eq!(
                sample(&text, "greet_connections_total{outcome=\"greeted\"}"),
                total
            );
            assert_eq!(sample(&text, "greet_restarts"), 1);
            break;
        }
        assert!(Instant::now() < deadline, "never {total} accepted:\n{text}");
        std::thread::sleep(Duration::from_millis(50));
    }
    crate::operations::signal(second, libc::SIGTERM);
    let mut stderr = vec![old_summary];
    stderr.extend(watched.rest_of_stderr());
    assert_eq!(
        stderr
            .iter()
            .filter(|l| l.starts_with("greet-server: accepted "))
            .count(),
        2,
        "{stderr:#?}"
    );
}
