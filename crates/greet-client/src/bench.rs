//! `greet-client bench`: a load generator on netcore that checks every reply byte for byte.
//!
//! TCP: N connections, C in flight; each is read to EOF and compared with the expected
//! greeting, then the next one starts in its slot. UDP: C connected sockets with one request
//! outstanding each (C source ports, as real clients would be). Echo (`--echo`, in
//! [`echo`]): kept-alive connections to an echo server, each sending `--requests` messages of
//! `--size` bytes one after another and checking every echoed byte. Every operation has a
//! deadline and the whole run a time bound, so it never hangs.

mod echo;

use std::collections::HashMap;
use std::io::Write;
use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use netcore::{CloseReason, Closed, Config, Conn, Control, Datagram, EventLoop, Handler, TimerId};
use resolver::{Family, Transport};

#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Server host.
    #[arg(value_hint = clap::ValueHint::Hostname, long, default_value = "127.0.0.1")]
    host: String,

    /// Server port: a number or a service name.
    #[arg(value_hint = clap::ValueHint::Other, long, default_value = "12345", value_parser = crate::client::port_arg)]
    port: String,

    /// Load UDP instead of TCP: requests with --concurrency outstanding.
    #[arg(long)]
    udp: bool,

    /// Load an echo server: each connection sends --requests messages of --size bytes, one
    /// at a time, and checks every echoed byte.
    #[arg(long, conflicts_with_all = ["udp", "expect", "expect_file"])]
    echo: bool,

    /// Echo: bytes per message (a pseudo-random pattern that shifts with every request).
    #[arg(value_hint = clap::ValueHint::Other, long, default_value_t = 64, value_name = "BYTES", requires = "echo",
          value_parser = clap::value_parser!(u32).range(1..=16 << 20))]
    size: u32,

    /// Echo: requests per connection; 0 repeats until --duration ends (what is in flight
    /// then is not counted).
    #[arg(value_hint = clap::ValueHint::Other, long, default_value_t = 100, value_name = "R", requires = "echo")]
    requests: u64,

    /// Connections (TCP, echo) or requests (UDP) in all.
    #[arg(value_hint = clap::ValueHint::Other, short = 'n', long, default_value_t = 50_000, value_name = "N")]
    connections: u64,

    /// Connections or requests in flight at once.
    #[arg(value_hint = clap::ValueHint::Other, short = 'c', long, default_value_t = 64, value_name = "C",
          value_parser = clap::value_parser!(u32).range(1..=60_000))]
    concurrency: u32,

    /// Stop after this long whatever is left: what is in flight then counts as timed out,
    /// what never started as not started.
    #[arg(value_hint = clap::ValueHint::Other, long, default_value = "120s", value_name = "DURATION", value_parser = humantime::parse_duration)]
    duration: Duration,

    /// Deadline of one connection or request.
    #[arg(value_hint = clap::ValueHint::Other, long, default_value = "5s", value_name = "DURATION", value_parser = humantime::parse_duration)]
    timeout: Duration,

    /// Event loops, one per thread, sharing N and C.
    #[arg(value_hint = clap::ValueHint::Other, long, default_value_t = 1, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=64))]
    threads: u16,

    /// The reply every operation must receive, byte for byte.
    #[arg(value_hint = clap::ValueHint::Other, long, default_value = "Thank you for connecting", value_name = "TEXT")]
    expect: String,

    /// Read the expected reply from a file instead: a regular file of at most 16 MiB, as
    /// greet-server's --message-file.
    #[arg(value_hint = clap::ValueHint::FilePath, long, value_name = "PATH", conflicts_with = "expect")]
    expect_file: Option<PathBuf>,

    /// Print one JSON document instead of the table.
    #[arg(long)]
    json: bool,
}

pub fn run(args: &BenchArgs) -> ExitCode {
    match bench(args) {
        Ok(report) => {
            let text = if args.json {
                format!("{}\n", report.json())
            } else {
                report.table()
            };
            let _ = std::io::stdout().lock().write_all(text.as_bytes());
            if report.failures() == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(message) => {
            eprintln!("greet-client bench: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Failures by kind.
#[derive(Debug, Default, Clone, Copy)]
struct Errors {
    refused: u64,
    reset: u64,
    timeout: u64,
    addr_not_available: u64,
    wrong_payload: u64,
    other: u64,
}

impl Errors {
    fn total(&self) -> u64 {
        self.refused
            + self.reset
            + self.timeout
            + self.addr_not_available
            + self.wrong_payload
            + self.other
    }

    fn add(&mut self, o: &Errors) {
        self.refused += o.refused;
        self.reset += o.reset;
        self.timeout += o.timeout;
        self.addr_not_available += o.addr_not_available;
        self.wrong_payload += o.wrong_payload;
        self.other += o.other;
    }
}

/// What one loop measured.
#[derive(Debug, Default)]
struct Tally {
    ok: u64,
    errors: Errors,
    not_started: u64,
    stray: u64,
    /// Echo: bytes that differed from what was sent, or came unasked.
    wrong_bytes: u64,
    /// Echo until the deadline: requests it cut short (not failures).
    unfinished: u64,
    latencies_us: Vec<u32>,
    last_done: Option<Instant>,
}

/// Progress shared by the loops, for the progress line.
#[derive(Debug, Default)]
struct Progress {
    done: AtomicU64,
}

fn bench(args: &BenchArgs) -> Result<Report, String> {
    let expected: Arc<[u8]> = match &args.expect_file {
        Some(path) => clap_dist::read_file_arg(path, clap_dist::MESSAGE_MAX)
            .map_err(|e| format!("expected reply {e}"))?
            .into(),
        None => args.expect.as_bytes().into(),
    };
    let transport = if args.udp {
        Transport::Udp
    } else {
        Transport::Tcp
    };
    let addr = resolver::socket_addr(&args.host, &args.port, Family::Any, transport)
        .map_err(|e| e.to_string())?;
    let threads = u64::from(args.threads);
    let echo_plan = args
        .echo
        .then(|| echo::EchoPlan::new(args.size as usize, args.requests));
    let grand_total = match &echo_plan {
        Some(e) => args.connections.saturating_mul(e.requests),
        None => args.connections,
    };
    let progress = Arc::new(Progress::default());
    let started = Instant::now();
    let deadline = started + args.duration;
    let mut workers = Vec::new();
    for t in 0..threads {
        let share = args.connections / threads + u64::from(t < args.connections % threads);
        let c = u64::from(args.concurrency);
        let conc = (c / threads + u64::from(t < c % threads)).max(1);
        let plan = Plan {
            addr,
            expected: Arc::clone(&expected),
            total: share,
            concurrency: conc.min(share.max(1)),
            timeout: args.timeout,
            deadline,
            progress: Arc::clone(&progress),
            report_progress: t == 0,
            grand_total,
            started,
        };
        let udp = args.udp;
        let echo = echo_plan.clone();
        workers.push(
            std::thread::Builder::new()
                .name(format!("bench-{t}"))
                .spawn(move || match echo {
                    Some(echo) => echo::run(plan, echo),
                    None if udp => run_udp(plan),
                    None => run_tcp(plan),
                })
                .map_err(|e| format!("start thread: {e}"))?,
        );
    }
    let mut tally = Tally::default();
    for worker in workers {
        let t = worker
            .join()
            .map_err(|_| "a load thread panicked".to_string())??;
        tally.ok += t.ok;
        tally.errors.add(&t.errors);
        tally.not_started += t.not_started;
        tally.stray += t.stray;
        tally.wrong_bytes += t.wrong_bytes;
        tally.unfinished += t.unfinished;
        tally.latencies_us.extend_from_slice(&t.latencies_us);
        tally.last_done = tally.last_done.max(t.last_done);
    }
    let secs = tally
        .last_done
        .map_or(0.0, |t| t.duration_since(started).as_secs_f64());
    Ok(Report::new(args, tally, secs))
}

/// One loop's share of the work.
struct Plan {
    addr: SocketAddr,
    expected: Arc<[u8]>,
    total: u64,
    concurrency: u64,
    timeout: Duration,
    deadline: Instant,
    progress: Arc<Progress>,
    report_progress: bool,
    grand_total: u64,
    started: Instant,
}

impl Plan {
    fn event_loop(&self) -> Result<EventLoop, String> {
        let config = Config {
            idle_timeout: Some(self.timeout),
            write_timeout: Some(self.timeout),
            linger: self.timeout,
            drain_timeout: Duration::from_millis(100),
            ..Config::default()
        };
        EventLoop::new(config).map_err(|e| e.to_string())
    }
}

const PROGRESS_EVERY: Duration = Duration::from_secs(2);
const PROGRESS_AFTER: Duration = Duration::from_secs(3);

fn print_progress(plan: &Plan, now: Instant) {
    let done = plan.progress.done.load(Ordering::Relaxed);
    let secs = now.duration_since(plan.started).as_secs_f64();
    if secs > 0.0 && plan.grand_total > 0 {
        eprintln!(
            "bench: {done}/{} done, {:.0}/s",
            plan.grand_total,
            done as f64 / secs
        );
    } else if secs > 0.0 {
        eprintln!("bench: {done} done, {:.0}/s", done as f64 / secs);
    }
}

// ---- TCP ----------------------------------------------------------------------------

struct TcpLoad {
    plan: Plan,
    started_ops: u64,
    in_flight: u64,
    /// Per connection (by tag): when it started, bytes matched so far, whether it is wrong.
    slots: Vec<TcpSlot>,
    free: Vec<u64>,
    tally: Tally,
    end_timer: Option<TimerId>,
    progress_timer: Option<TimerId>,
    over: bool,
}

#[derive(Clone, Copy)]
struct TcpSlot {
    start: Instant,
    got: usize,
    wrong: bool,
    finished: bool,
}

fn run_tcp(plan: Plan) -> Result<Tally, String> {
    let mut event_loop = plan.event_loop()?;
    let concurrency = plan.concurrency;
    let now = Instant::now();
    let mut load = TcpLoad {
        slots: vec![
            TcpSlot {
                start: now,
                got: 0,
                wrong: false,
                finished: true,
            };
            concurrency as usize
        ],
        free: (0..concurrency).rev().collect(),
        plan,
        started_ops: 0,
        in_flight: 0,
        tally: Tally::default(),
        end_timer: None,
        progress_timer: None,
        over: false,
    };
    load.end_timer = Some(event_loop.set_timer(load.plan.deadline));
    if load.plan.report_progress {
        load.progress_timer = Some(event_loop.set_timer(now + PROGRESS_AFTER));
    }
    for _ in 0..concurrency.min(load.plan.total) {
        load.start_one_direct(&mut event_loop);
    }
    if load.in_flight > 0 {
        event_loop.run(&mut load).map_err(|e| e.to_string())?;
    }
    load.tally.not_started = load.plan.total - load.started_ops;
    Ok(load.tally)
}

impl TcpLoad {
    fn take_slot(&mut self, now: Instant) -> Option<u64> {
        let tag = self.free.pop()?;
        self.slots[tag as usize] = TcpSlot {
            start: now,
            got: 0,
            wrong: false,
            finished: false,
        };
        self.started_ops += 1;
        self.in_flight += 1;
        Some(tag)
    }

    fn start_one_direct(&mut self, event_loop: &mut EventLoop) {
        let Some(tag) = self.take_slot(Instant::now()) else {
            return;
        };
        if let Err(e) = event_loop.connect(self.plan.addr, tag) {
            self.in_flight -= 1;
            self.free.push(tag);
            count_io_error(&mut self.tally.errors, e.io_error().kind());
            self.record_done(Instant::now());
        }
    }

    fn start_next(&mut self, ctl: &mut Control<'_>) {
        let now = ctl.now();
        if self.over || self.started_ops >= self.plan.total {
            return;
        }
        if let Some(tag) = self.take_slot(now) {
            ctl.connect(self.plan.addr, tag);
        }
    }

    fn record_done(&mut self, now: Instant) {
        self.tally.last_done = Some(now);
        self.plan.progress.done.fetch_add(1, Ordering::Relaxed);
    }

    fn maybe_stop(&mut self, ctl: &mut Control<'_>) {
        if self.in_flight == 0 && (self.over || self.started_ops >= self.plan.total) {
            ctl.stop();
        }
    }
}

impl Handler for TcpLoad {
    fn on_data(&mut self, conn: &mut Conn<'_>, data: &[u8]) {
        let slot = &mut self.slots[conn.tag() as usize];
        let end = slot.got + data.len();
        if end > self.plan.expected.len() || self.plan.expected[slot.got..end] != *data {
            slot.wrong = true;
        }
        slot.got = end;
    }

    fn on_read_closed(&mut self, conn: &mut Conn<'_>) {
        let now = conn.control().now();
        let slot = &mut self.slots[conn.tag() as usize];
        slot.finished = true;
        if slot.wrong || slot.got != self.plan.expected.len() {
            self.tally.errors.wrong_payload += 1;
        } else {
            self.tally.ok += 1;
            let us = now.duration_since(slot.start).as_micros();
            self.tally
                .latencies_us
                .push(u32::try_from(us).unwrap_or(u32::MAX));
        }
        self.record_done(now);
        conn.close();
    }

    fn on_close(&mut self, ctl: &mut Control<'_>, closed: &Closed<'_>) {
        let tag = closed.tag;
        let slot = self.slots[tag as usize];
        if !slot.finished && slot.got > 0 {
            // Some bytes, then a reset or a deadline: a truncated reply, whatever the cause.
            self.tally.errors.wrong_payload += 1;
            self.record_done(ctl.now());
        } else if !slot.finished {
            let errors = &mut self.tally.errors;
            match closed.reason {
                CloseReason::Refused => errors.refused += 1,
                CloseReason::Reset => errors.reset += 1,
                CloseReason::Timeout | CloseReason::Shutdown | CloseReason::Done => {
                    errors.timeout += 1;
                }
                CloseReason::ConnectFailed(kind) | CloseReason::Error(kind) => {
                    count_io_error(errors, kind);
                }
                _ => errors.other += 1,
            }
            self.record_done(ctl.now());
        }
        self.in_flight -= 1;
        self.free.push(tag);
        self.start_next(ctl);
        self.maybe_stop(ctl);
    }

    fn on_timer(&mut self, ctl: &mut Control<'_>, timer: TimerId) {
        if Some(timer) == self.end_timer {
            self.over = true;
            ctl.stop();
        } else if Some(timer) == self.progress_timer {
            print_progress(&self.plan, ctl.now());
            self.progress_timer = Some(ctl.set_timer(ctl.now() + PROGRESS_EVERY));
        }
    }
}

fn count_io_error(errors: &mut Errors, kind: std::io::ErrorKind) {
    match kind {
        std::io::ErrorKind::ConnectionRefused => errors.refused += 1,
        std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe => errors.reset += 1,
        std::io::ErrorKind::AddrNotAvailable => errors.addr_not_available += 1,
        std::io::ErrorKind::TimedOut => errors.timeout += 1,
        _ => errors.other += 1,
    }
}

// ---- UDP ----------------------------------------------------------------------------

struct UdpLoad {
    plan: Plan,
    sent: u64,
    /// Per socket: when its outstanding request was sent.
    outstanding: Vec<Option<Instant>>,
    slot_of: HashMap<netcore::SocketId, usize>,
    in_flight: u64,
    tally: Tally,
    end_timer: Option<TimerId>,
    sweep_timer: Option<TimerId>,
    next_progress: Instant,
    sockets: Vec<UdpSocket>,
}

fn run_udp(plan: Plan) -> Result<Tally, String> {
    let mut event_loop = plan.event_loop()?;
    let local: SocketAddr = if plan.addr.is_ipv4() {
        (std::net::Ipv4Addr::LOCALHOST, 0).into()
    } else {
        (std::net::Ipv6Addr::LOCALHOST, 0).into()
    };
    let count = plan.concurrency.min(plan.total) as usize;
    let mut sockets = Vec::with_capacity(count);
    let mut slot_of = HashMap::with_capacity(count);
    for slot in 0..count {
        let socket = UdpSocket::bind(local).map_err(|e| format!("bind {local}: {e}"))?;
        socket
            .connect(plan.addr)
            .map_err(|e| format!("connect {}: {e}", plan.addr))?;
        let for_loop = socket.try_clone().map_err(|e| format!("dup socket: {e}"))?;
        let id = event_loop
            .add_udp_socket(for_loop)
            .map_err(|e| e.to_string())?;
        slot_of.insert(id, slot);
        sockets.push(socket);
    }
    let now = Instant::now();
    let mut load = UdpLoad {
        outstanding: vec![None; count],
        slot_of,
        sent: 0,
        in_flight: 0,
        tally: Tally::default(),
        end_timer: None,
        sweep_timer: None,
        next_progress: now + PROGRESS_AFTER,
        sockets,
        plan,
    };
    load.end_timer = Some(event_loop.set_timer(load.plan.deadline));
    load.sweep_timer = Some(event_loop.set_timer(now + load.sweep_every()));
    for slot in 0..count {
        load.send(slot, Instant::now());
    }
    if load.in_flight > 0 {
        event_loop.run(&mut load).map_err(|e| e.to_string())?;
    }
    load.tally.errors.timeout += load.in_flight;
    load.tally.not_started = load.plan.total - load.sent;
    Ok(load.tally)
}

impl UdpLoad {
    fn sweep_every(&self) -> Duration {
        (self.plan.timeout / 4).max(Duration::from_millis(10))
    }

    /// Sends the next request on `slot`'s socket (through the std handle: a connected
    /// socket, so `send` needs no address).
    fn send(&mut self, slot: usize, now: Instant) {
        if self.sent >= self.plan.total || now >= self.plan.deadline {
            return;
        }
        self.sent += 1;
        match self.sockets[slot].send(b"") {
            Ok(_) => {
                self.outstanding[slot] = Some(now);
                self.in_flight += 1;
            }
            Err(e) => {
                count_io_error(&mut self.tally.errors, e.kind());
                self.record_done(now);
            }
        }
    }

    fn record_done(&mut self, now: Instant) {
        self.tally.last_done = Some(now);
        self.plan.progress.done.fetch_add(1, Ordering::Relaxed);
    }
}

impl Handler for UdpLoad {
    fn on_datagram(&mut self, socket: &mut Datagram<'_>, data: &[u8], _from: SocketAddr) {
        let now = socket.control().now();
        let Some(&slot) = self.slot_of.get(&socket.id()) else {
            return;
        };
        let Some(sent_at) = self.outstanding[slot].take() else {
            self.tally.stray += 1;
            return;
        };
        self.in_flight -= 1;
        if *data == *self.plan.expected {
            self.tally.ok += 1;
            let us = now.duration_since(sent_at).as_micros();
            self.tally
                .latencies_us
                .push(u32::try_from(us).unwrap_or(u32::MAX));
        } else {
            self.tally.errors.wrong_payload += 1;
        }
        self.record_done(now);
        self.send(slot, now);
        if self.in_flight == 0 {
            socket.control().stop();
        }
    }

    fn on_timer(&mut self, ctl: &mut Control<'_>, timer: TimerId) {
        let now = ctl.now();
        if Some(timer) == self.end_timer {
            ctl.stop();
            return;
        }
        if Some(timer) != self.sweep_timer {
            return;
        }
        // Requests past their deadline are lost; their slot sends the next one.
        for slot in 0..self.outstanding.len() {
            if let Some(sent_at) = self.outstanding[slot] {
                if now.duration_since(sent_at) >= self.plan.timeout {
                    self.outstanding[slot] = None;
                    self.in_flight -= 1;
                    self.tally.errors.timeout += 1;
                    self.record_done(now);
                    self.send(slot, now);
                }
            }
        }
        if self.plan.report_progress && now >= self.next_progress {
            print_progress(&self.plan, now);
            self.next_progress = now + PROGRESS_EVERY;
        }
        if self.in_flight == 0 {
            ctl.stop();
        } else {
            self.sweep_timer = Some(ctl.set_timer(now + self.sweep_every()));
        }
    }
}

// ---- Report -------------------------------------------------------------------------

struct Report {
    mode: &'static str,
    /// Echo: message size, requests per connection, connections planned.
    echo: Option<(u32, u64, u64)>,
    wrong_bytes: u64,
    unfinished: u64,
    planned: u64,
    concurrency: u32,
    threads: u16,
    ok: u64,
    errors: Errors,
    not_started: u64,
    stray: u64,
    secs: f64,
    p50: u32,
    p90: u32,
    p99: u32,
    max: u32,
}

impl Report {
    fn new(args: &BenchArgs, mut tally: Tally, secs: f64) -> Report {
        tally.latencies_us.sort_unstable();
        let pct = |p: f64| -> u32 {
            let v = &tally.latencies_us;
            if v.is_empty() {
                return 0;
            }
            // Nearest rank.
            let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
            v[rank.clamp(1, v.len()) - 1]
        };
        let echo = args
            .echo
            .then_some((args.size, args.requests, args.connections));
        Report {
            mode: if args.echo {
                "echo"
            } else if args.udp {
                "udp"
            } else {
                "tcp"
            },
            echo,
            wrong_bytes: tally.wrong_bytes,
            unfinished: tally.unfinished,
            planned: match echo {
                Some((_, requests, _)) => args.connections.saturating_mul(requests),
                None => args.connections,
            },
            concurrency: args.concurrency,
            threads: args.threads,
            ok: tally.ok,
            errors: tally.errors,
            not_started: tally.not_started,
            stray: tally.stray,
            secs,
            p50: pct(50.0),
            p90: pct(90.0),
            p99: pct(99.0),
            max: tally.latencies_us.last().copied().unwrap_or(0),
        }
    }

    fn failures(&self) -> u64 {
        self.errors.total() + self.not_started
    }

    fn rate(&self) -> f64 {
        if self.secs > 0.0 {
            self.ok as f64 / self.secs
        } else {
            0.0
        }
    }

    fn json(&self) -> serde_json::Value {
        let e = &self.errors;
        let echo = self.echo.map(|(size, requests, connections)| {
            serde_json::json!({
                "size": size,
                "requests_per_connection": requests,
                "connections": connections,
                "wrong_bytes": self.wrong_bytes,
                "unfinished_at_deadline": self.unfinished,
            })
        });
        serde_json::json!({
            "mode": self.mode,
            "echo": echo,
            "planned": self.planned,
            "concurrency": self.concurrency,
            "threads": self.threads,
            "ok": self.ok,
            "errors": {
                "total": e.total(),
                "refused": e.refused,
                "reset": e.reset,
                "timeout": e.timeout,
                "addr_not_available": e.addr_not_available,
                "wrong_payload": e.wrong_payload,
                "other": e.other,
            },
            "not_started": self.not_started,
            "stray": self.stray,
            "secs": self.secs,
            "rate": self.rate(),
            "latency_us": { "p50": self.p50, "p90": self.p90, "p99": self.p99, "max": self.max },
        })
    }

    fn table(&self) -> String {
        let e = &self.errors;
        let unit = if self.mode == "tcp" {
            "connections"
        } else {
            "requests"
        };
        let (mode, echo) = match self.echo {
            Some((size, requests, connections)) => {
                let per_conn = if requests == 0 {
                    "until the deadline".to_string()
                } else {
                    requests.to_string()
                };
                (
                    format!("echo of {size}-byte messages"),
                    format!(
                        "echo         {connections} connections, {per_conn} requests each; \
                         {} wrong bytes, {} cut short at the deadline\n",
                        self.wrong_bytes, self.unfinished
                    ),
                )
            }
            None => (self.mode.to_string(), String::new()),
        };
        format!(
            "mode         {mode} ({threads} thread(s), concurrency {c})\n\
             {unit:<12} {ok} ok of {planned} ({not_started} not started)\n\
             rate         {rate:.0}/s over {secs:.3} s\n\
             latency      p50 {p50} us, p90 {p90} us, p99 {p99} us, max {max} us\n\
             errors       {total} (refused {refused}, reset {reset}, timeout {timeout}, \
             addr not available {ana}, wrong payload {wrong}, other {other})\n{echo}",
            threads = self.threads,
            c = self.concurrency,
            ok = self.ok,
            planned = self.planned,
            not_started = self.not_started,
            rate = self.rate(),
            secs = self.secs,
            p50 = self.p50,
            p90 = self.p90,
            p99 = self.p99,
            max = self.max,
            total = e.total(),
            refused = e.refused,
            reset = e.reset,
            timeout = e.timeout,
            ana = e.addr_not_available,
            wrong = e.wrong_payload,
            other = e.other,
        )
    }
}
