//! `--metrics ADDR`: the counts in Prometheus's text exposition format (version 0.0.4),
//! served over HTTP on a listener of its own in the first event loop (no second runtime, no
//! thread per scrape): `GET /metrics`.
//!
//! What a scrape reads is what the summary line reads: each loop's counts as of its last
//! turn ([`Published`]), netcore's counters, the log sink's. Nothing is added to the
//! greeting's path but the increments the summary already needed.
//!
//! **Counters survive a restart.** At a SIGHUP restart the old server, once the new one is
//! ready, freezes what it serves and hands its totals to the new one over the readiness
//! channel (a socket pair, see `restart.rs`), then again every
//! [`HANDOVER_INTERVAL`] while it drains, and a last time at exit. The new server serves
//! its own counts plus the latest totals it was handed; until the first arrive it holds
//! its scrapes (at most [`HOLD_LIMIT`]). So a scrape never sees a counter go down: whatever
//! the old server served is at most what it handed over, and what the new one serves is at
//! least that.

use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Write as _};
use std::net::{SocketAddr, TcpListener};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use netcore::ListenOptions;

use greet_server::listen::Listener;

use crate::restart::{HandoverHook, Restarter};
use crate::stats::{Count, Histogram, Live, DURATION_BUCKETS};

/// How often a draining old server hands its totals on.
pub const HANDOVER_INTERVAL: Duration = Duration::from_millis(200);
/// How long one write of totals to the new server may wait for it to read.
const HANDOVER_WRITE_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a new server holds a scrape while it waits for its predecessor's totals before
/// it answers 503.
pub const HOLD_LIMIT: Duration = Duration::from_secs(5);
/// A request head longer than this is refused (431): a scraper sends a few hundred bytes.
pub const MAX_REQUEST: usize = 8 * 1024;

/// Everything a scrape reports, for one server or a line of them.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Totals {
    counts: [u64; Count::ALL.len()],
    durations: Histogram,
    datagrams: u64,
    accept_errors: u64,
    log_written: u64,
    log_dropped: u64,
    /// Restarts done by this line of servers (a gauge: each restart adds one).
    restarts: u64,
}

impl Totals {
    fn add(&mut self, other: &Totals) {
        for (mine, theirs) in self.counts.iter_mut().zip(other.counts) {
            *mine += theirs;
        }
        self.durations += other.durations;
        self.datagrams += other.datagrams;
        self.accept_errors += other.accept_errors;
        self.log_written += other.log_written;
        self.log_dropped += other.log_dropped;
        self.restarts += other.restarts;
    }

    fn get(&self, count: Count) -> u64 {
        self.counts[count as usize]
    }

    /// Every number, in a fixed order, for the line handed to a new server.
    fn numbers(&self) -> Vec<u64> {
        let mut out = self.counts.to_vec();
        out.extend_from_slice(&self.durations.buckets);
        out.extend_from_slice(&[
            self.durations.sum_nanos,
            self.datagrams,
            self.accept_errors,
            self.log_written,
            self.log_dropped,
            self.restarts,
        ]);
        out
    }

    /// `totals v1 N N N ...`
    fn to_line(self) -> String {
        let mut line = String::from("totals v1");
        for n in self.numbers() {
            let _ = write!(line, " {n}");
        }
        line.push('\n');
        line
    }

    fn from_line(line: &str) -> Option<Totals> {
        let numbers: Vec<u64> = line
            .trim_end()
            .strip_prefix("totals v1 ")?
            .split(' ')
            .map(str::parse)
            .collect::<Result<_, _>>()
            .ok()?;
        let mut totals = Totals::default();
        if numbers.len() != totals.numbers().len() {
            return None;
        }
        let (counts, rest) = numbers.split_at(totals.counts.len());
        totals.counts.copy_from_slice(counts);
        let (buckets, rest) = rest.split_at(totals.durations.buckets.len());
        totals.durations.buckets.copy_from_slice(buckets);
        let [sum, datagrams, accept_errors, written, dropped, restarts] = rest else {
            return None;
        };
        totals.durations.sum_nanos = *sum;
        totals.datagrams = *datagrams;
        totals.accept_errors = *accept_errors;
        totals.log_written = *written;
        totals.log_dropped = *dropped;
        totals.restarts = *restarts;
        Some(totals)
    }
}

/// What the predecessor (the server that started this one at a restart) handed over.
#[derive(Debug, Default)]
struct Inherited {
    /// Waiting for its first totals: scrapes are held.
    waiting: bool,
    totals: Totals,
}

/// The metrics of this server: its live counts, its predecessor's, and the frozen totals
/// once it handed over.
#[derive(Debug)]
pub struct Metrics {
    live: Live,
    inherited: Mutex<Inherited>,
    /// Set at the handover: what this server serves from then on.
    frozen: Mutex<Option<Totals>>,
    /// The channel to the successor, once handed over.
    successor: Mutex<Option<UnixStream>>,
}

impl Metrics {
    pub fn new(live: Live) -> Metrics {
        Metrics {
            live,
            inherited: Mutex::default(),
            frozen: Mutex::new(None),
            successor: Mutex::new(None),
        }
    }

    /// This server's own counts now.
    fn own(&self) -> Totals {
        let summary = self.live.summary();
        let mut totals = Totals::default();
        for (counters, published) in &self.live.loops {
            let stats = published.load();
            for (mine, theirs) in totals.counts.iter_mut().zip(stats.counts) {
                *mine += theirs;
            }
            totals.durations += stats.durations;
            let snapshot = counters.snapshot();
            totals.accept_errors += snapshot.accept_errors;
        }
        totals.datagrams = summary.datagrams;
        if let Some(log) = summary.log {
            totals.log_written = log.logged;
            totals.log_dropped = log.dropped;
        }
        totals
    }

    /// What a scrape reports now: `None` while the predecessor's totals are awaited.
    pub fn totals(&self) -> Option<Totals> {
        if let Ok(frozen) = self.frozen.lock() {
            if let Some(totals) = *frozen {
                return Some(totals);
            }
        }
        let inherited = self.inherited.lock().ok()?;
        if inherited.waiting {
            return None;
        }
        let mut totals = self.own();
        totals.add(&inherited.totals);
        Some(totals)
    }

    /// In a server started by a restart: reads the predecessor's totals from `channel` on a
    /// thread of its own; scrapes are held until the first arrive (or the channel ends).
    pub fn follow(self: &Arc<Self>, channel: OwnedFd) -> Result<()> {
        if let Ok(mut inherited) = self.inherited.lock() {
            inherited.waiting = true;
        }
        let this = Arc::clone(self);
        std::thread::Builder::new()
            .name("metrics-in".into())
            .spawn(move || {
                let reader = BufReader::new(UnixStream::from(channel));
                for line in reader.lines() {
                    let Ok(line) = line else { break };
                    match Totals::from_line(&line) {
                        Some(totals) => {
                            if let Ok(mut inherited) = this.inherited.lock() {
                                *inherited = Inherited {
                                    waiting: false,
                                    totals,
                                };
                            }
                        }
                        None => log::debug!("predecessor's totals: {line:?} not understood"),
                    }
                }
                // Gone (exited, or an old version that sends none): serve what we have.
                if let Ok(mut inherited) = this.inherited.lock() {
                    inherited.waiting = false;
                }
            })
            .map(drop)
            .context("start the metrics handover thread")
    }

    /// Counters that carry on across restarts: at a restart `restarter` makes, the totals go
    /// on to the new server; in a server a restart started (`ready`, its readiness channel),
    /// the old one's are read.
    pub fn carry_on(
        self: &Arc<Self>,
        restarter: &Restarter,
        ready: Option<&OwnedFd>,
    ) -> Result<()> {
        let successor = Arc::clone(self);
        restarter.on_handover(HandoverHook(Box::new(move |channel| {
            successor.hand_over(channel);
        })));
        match ready {
            Some(ready) => self.follow(
                ready
                    .try_clone()
                    .context("duplicate the readiness channel")?,
            ),
            None => Ok(()),
        }
    }

    /// At a restart, once the new server is ready: freezes what this server serves, and
    /// hands its totals (one restart more) to the successor over `channel`, now, every
    /// [`HANDOVER_INTERVAL`] while it drains, and at [`finish`](Self::finish).
    pub fn hand_over(self: &Arc<Self>, channel: OwnedFd) {
        let Some(mut frozen) = self.totals() else {
            // Still waiting for our own predecessor: nothing trustworthy to hand on.
            return;
        };
        frozen.restarts += 1;
        if let Ok(mut slot) = self.frozen.lock() {
            *slot = Some(frozen);
        }
        let stream = UnixStream::from(channel);
        // A successor that does not read must not hold up the exit for long.
        if let Err(e) = stream.set_write_timeout(Some(HANDOVER_WRITE_TIMEOUT)) {
            log::warn!("metrics handover: {e}");
        }
        if let Ok(mut successor) = self.successor.lock() {
            *successor = Some(stream);
        }
        self.send_totals();
        let this = Arc::clone(self);
        let spawned = std::thread::Builder::new()
            .name("metrics-out".into())
            .spawn(move || loop {
                std::thread::sleep(HANDOVER_INTERVAL);
                if !this.send_totals() {
                    return;
                }
            });
        if let Err(e) = spawned {
            log::warn!("metrics handover: start a thread: {e}");
        }
    }

    /// At exit: the last totals to the successor, if this server handed over.
    pub fn finish(&self) {
        self.send_totals();
    }

    /// Sends this server's cumulative totals (its own and its predecessor's, with the
    /// restart it did) to the successor; false once there is none to send to.
    fn send_totals(&self) -> bool {
        let restarts = match self.frozen.lock() {
            Ok(frozen) => match *frozen {
                Some(totals) => totals.restarts,
                None => return false,
            },
            Err(_) => return false,
        };
        // Counted while the channel is held: two writers (the periodic thread, the last
        // send at exit) then send in the order they counted, and the last line the new server
        // reads is the latest count.
        let Ok(mut successor) = self.successor.lock() else {
            return false;
        };
        let Some(stream) = successor.as_mut() else {
            return false;
        };
        let Some(mut totals) = self.live_totals() else {
            return true;
        };
        totals.restarts = restarts;
        if stream.write_all(totals.to_line().as_bytes()).is_ok() {
            return true;
        }
        // A successor gone, or not reading for a whole write timeout: a line may be cut,
        // so nothing more is sent.
        *successor = None;
        false
    }

    /// Own plus inherited counts, ignoring the freeze.
    fn live_totals(&self) -> Option<Totals> {
        let inherited = self.inherited.lock().ok()?;
        let mut totals = self.own();
        totals.add(&inherited.totals);
        Some(totals)
    }
}

/// The exposition of `totals`, in Prometheus's text format 0.0.4.
pub fn render(totals: &Totals) -> String {
    let mut out = String::with_capacity(4096);
    let mut family = |name: &str, kind: &str, help: &str, samples: &[(&str, u64)]| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for (labels, value) in samples {
            let _ = writeln!(out, "{name}{labels} {value}");
        }
    };
    family(
        "greet_accepted_total",
        "counter",
        "Connections accepted on the greeting listeners.",
        &[("", totals.get(Count::Accepted))],
    );
    let outcome = |count: Count| totals.get(count);
    family(
        "greet_connections_total",
        "counter",
        "Connections ended, by outcome (the access log's outcome field).",
        &[
            ("{outcome=\"greeted\"}", outcome(Count::Greeted)),
            ("{outcome=\"reset\"}", outcome(Count::Reset)),
            ("{outcome=\"timed-out\"}", outcome(Count::TimedOut)),
            ("{outcome=\"shutdown\"}", outcome(Count::Shutdown)),
            ("{outcome=\"error\"}", outcome(Count::OtherError)),
            ("{outcome=\"proxy-error\"}", outcome(Count::ProxyError)),
            (
                "{outcome=\"proxy-untrusted\"}",
                outcome(Count::ProxyUntrusted),
            ),
            ("{outcome=\"refused-limit\"}", outcome(Count::RefusedLimit)),
            (
                "{outcome=\"refused-per-source\"}",
                outcome(Count::RefusedPerSource),
            ),
            ("{outcome=\"health-check\"}", outcome(Count::HealthCheck)),
        ],
    );
    family(
        "greet_datagrams_received_total",
        "counter",
        "UDP datagrams received.",
        &[("", totals.datagrams)],
    );
    family(
        "greet_datagrams_rate_limited_total",
        "counter",
        "UDP datagrams not answered: their source passed --udp-rate.",
        &[("", totals.get(Count::RateLimited))],
    );
    family(
        "greet_accept_errors_total",
        "counter",
        "accept() failures other than a peer that gave up (out of descriptors or memory).",
        &[("", totals.accept_errors)],
    );
    family(
        "greet_log_lines_written_total",
        "counter",
        "Access log lines written to stdout.",
        &[("", totals.log_written)],
    );
    family(
        "greet_log_lines_dropped_total",
        "counter",
        "Access log lines dropped because stdout was not read fast enough.",
        &[("", totals.log_dropped)],
    );
    let open = totals
        .get(Count::Accepted)
        .saturating_sub(totals.get(Count::Closed));
    family(
        "greet_open_connections",
        "gauge",
        "Connections open now (greeting listeners).",
        &[("", open)],
    );
    family(
        "greet_restarts",
        "gauge",
        "SIGHUP restarts done by this server and the servers it replaced.",
        &[("", totals.restarts)],
    );
    let name = "greet_greeting_duration_seconds";
    let _ = writeln!(
        out,
        "# HELP {name} Time from accept to close of greeted connections."
    );
    let _ = writeln!(out, "# TYPE {name} histogram");
    let mut cumulative = 0;
    for (bound, n) in DURATION_BUCKETS.iter().zip(totals.durations.buckets) {
        cumulative += n;
        let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
    }
    let count = totals.durations.count();
    let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
    // Nanoseconds to seconds: exact enough for a sum (f64 holds 2^53 ns, 104 days).
    let sum = totals.durations.sum_nanos as f64 / 1e9;
    let _ = writeln!(out, "{name}_sum {sum}");
    let _ = writeln!(out, "{name}_count {count}");
    out
}

/// What an HTTP request head asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Request {
    /// Not all of the head yet.
    Incomplete,
    /// `GET /metrics` (`head`: a `HEAD`, answered without a body).
    Metrics { head: bool },
    /// Anything else: the status to answer.
    Refuse(u16),
}

/// Reads a request head from the start of `input`.
pub fn parse_request(input: &[u8]) -> Request {
    let end = input
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .or_else(|| input.windows(2).position(|w| w == b"\n\n"));
    if end.is_none() {
        return if input.len() > MAX_REQUEST {
            Request::Refuse(431)
        } else {
            Request::Incomplete
        };
    }
    let line = input.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut parts = line.trim_end().split(' ');
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    // The query (Prometheus sends none; others may) does not change the answer.
    let path = path.split('?').next().unwrap_or_default();
    match (method, path) {
        ("GET", "/metrics") => Request::Metrics { head: false },
        ("HEAD", "/metrics") => Request::Metrics { head: true },
        ("GET" | "HEAD", _) => Request::Refuse(404),
        _ => Request::Refuse(405),
    }
}

/// A whole HTTP/1.1 response that closes the connection.
pub fn response(status: u16, body: &str, head: bool) -> Vec<u8> {
    let reason = match status {
        200 => "OK",
        404 => "Not Found",
        405 => "Method Not Allowed",
        431 => "Request Header Fields Too Large",
        _ => "Service Unavailable",
    };
    let kind = if status == 200 {
        "text/plain; version=0.0.4; charset=utf-8"
    } else {
        "text/plain; charset=utf-8"
    };
    let mut out = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if !head {
        out.extend_from_slice(body.as_bytes());
    }
    out
}

/// The metrics listener: the socket named `metrics` among those handed over (by a restart,
/// or by systemd with `FileDescriptorName=metrics`), taken out of `handed`, or else
/// `--metrics ADDR` bound now. `None` without either.
pub fn listener(
    addr: Option<SocketAddr>,
    handed: Option<&mut Vec<(Listener, String)>>,
) -> Result<Option<TcpListener>> {
    if let Some(sockets) = handed {
        if let Some(i) = sockets.iter().position(|(_, name)| name == "metrics") {
            if let (Listener::Tcp(listener), _) = sockets.remove(i) {
                return Ok(Some(listener));
            }
        }
    }
    let Some(addr) = addr else { return Ok(None) };
    let opts = ListenOptions {
        backlog: 128,
        ..ListenOptions::default()
    };
    netcore::tcp_listener(addr, &opts)
        .map(Some)
        .with_context(|| format!("--metrics {addr}"))
}

/// Adds a duplicate of the metrics listener, if any, to the sockets a restart hands on
/// (role `metrics`).
pub fn hand_on(
    listener: Option<&TcpListener>,
    handover: &mut Vec<(OwnedFd, &'static str)>,
) -> Result<()> {
    if let Some(listener) = listener {
        let fd = std::os::fd::AsFd::as_fd(listener).try_clone_to_owned();
        handover.push((fd.context("duplicate the metrics listener")?, "metrics"));
    }
    Ok(())
}

/// The metrics listener's readiness line, after the others: `Listening on ('127.0.0.1',
/// 9100) metrics`.
pub fn announce(listener: Option<&TcpListener>) -> Result<()> {
    let Some(listener) = listener else {
        return Ok(());
    };
    let addr = listener.local_addr().context("getsockname")?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "Listening on {} metrics", resolver::PyAddr(&addr)).context("stdout")?;
    out.flush().context("stdout")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Totals {
        let mut totals = Totals::default();
        for (i, slot) in totals.counts.iter_mut().enumerate() {
            *slot = 10 + i as u64;
        }
        totals.durations.record(Duration::from_micros(50));
        totals.durations.record(Duration::from_millis(3));
        totals.durations.record(Duration::from_secs(20));
        totals.datagrams = 7;
        totals.accept_errors = 2;
        totals.log_written = 100;
        totals.log_dropped = 3;
        totals.restarts = 4;
        totals
    }

    #[test]
    fn totals_survive_the_line_handed_to_a_new_server() {
        let totals = sample();
        assert_eq!(Totals::from_line(&totals.to_line()), Some(totals));
        assert_eq!(Totals::from_line("totals v1 1 2 3"), None);
        assert_eq!(Totals::from_line("READY=1"), None);
        let mut sum = totals;
        sum.add(&totals);
        assert_eq!(sum.get(Count::Greeted), 2 * totals.get(Count::Greeted));
        assert_eq!(sum.durations.count(), 6);
    }

    #[test]
    fn the_exposition_has_every_family_and_a_cumulative_histogram() {
        let text = render(&sample());
        for line in [
            "# TYPE greet_accepted_total counter",
            "greet_accepted_total 10",
            "greet_connections_total{outcome=\"greeted\"} 12",
            "greet_connections_total{outcome=\"refused-per-source\"} 20",
            "greet_connections_total{outcome=\"health-check\"} 21",
            "greet_datagrams_received_total 7",
            "greet_datagrams_rate_limited_total 23",
            "greet_log_lines_dropped_total 3",
            "greet_open_connections 0",
            "greet_restarts 4",
            "greet_greeting_duration_seconds_bucket{le=\"0.0001\"} 1",
            "greet_greeting_duration_seconds_bucket{le=\"0.005\"} 2",
            "greet_greeting_duration_seconds_bucket{le=\"10\"} 2",
            "greet_greeting_duration_seconds_bucket{le=\"+Inf\"} 3",
            "greet_greeting_duration_seconds_count 3",
        ] {
            assert!(text.lines().any(|l| l == line), "no {line:?} in\n{text}");
        }
    }

    #[test]
    fn requests_are_read_from_their_head() {
        assert_eq!(
            parse_request(b"GET /metrics HTTP/1.1\r\nHost: x"),
            Request::Incomplete
        );
        assert_eq!(
            parse_request(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"),
            Request::Metrics { head: false }
        );
        assert_eq!(
            parse_request(b"HEAD /metrics?x=1 HTTP/1.0\n\n"),
            Request::Metrics { head: true }
        );
        assert_eq!(
            parse_request(b"GET / HTTP/1.1\r\n\r\n"),
            Request::Refuse(404)
        );
        assert_eq!(
            parse_request(b"POST /metrics HTTP/1.1\r\n\r\n"),
            Request::Refuse(405)
        );
        assert_eq!(
            parse_request(&[b'x'; MAX_REQUEST + 1]),
            Request::Refuse(431)
        );
        let ok = String::from_utf8(response(200, "a 1\n", false)).unwrap();
        assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"));
        assert!(ok.contains("Content-Length: 4\r\n") && ok.ends_with("\r\n\r\na 1\n"));
        let head = String::from_utf8(response(200, "a 1\n", true)).unwrap();
        assert!(head.ends_with("\r\n\r\n"));
    }
}
