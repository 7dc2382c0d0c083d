//! `greet-client bench`: a load generator on netcore that checks every reply byte for byte.
//!
//! TCP: N connections, C in flight; each is read to EOF and compared with the expected
//! greeting, then the next one starts in its slot. UDP: C connected sockets with one request
//! outstanding each (C source ports, as real clients would be). Echo (`--echo`, in
//! [`echo`]): kept-alive connections to an echo server, each sending `--requests` messages of
//! `--size` bytes one after another and checking every echoed byte. Every operation has a
//! deadline and the whole run a time bound, so it never hangs.

mod echo;
mod pool;
mod report;
mod tcp;
mod udp;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use bench_report::{BenchReport, ErrorCounts};
use netcore::{CloseReason, Config, Conn, ConnectError, Control, EventLoop, PeerAddr, TimerId};
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
    #[arg(value_hint = clap::ValueHint::Other, long, default_value = "120s", value_name = "DURATION", value_parser = clap_dist::positive_duration)]
    duration: Duration,

    /// Deadline of one connection (from its connect to the end of the reply), one echo
    /// request (from its send to the end of its echo), or one UDP request.
    #[arg(value_hint = clap::ValueHint::Other, long, default_value = "5s", value_name = "DURATION", value_parser = clap_dist::positive_duration)]
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

/// Runs the load and prints the report; status 1 (not an error) when any operation failed.
pub fn run(args: &BenchArgs) -> Result<ExitCode> {
    let report = bench(args)?;
    let text = if args.json {
        let json = serde_json::to_string(&report).context("encode the report")?;
        format!("{json}\n")
    } else {
        report::table(&report)
    };
    crate::output::stdout(text.as_bytes())?;
    Ok(if report.failures() == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// What one loop measured.
#[derive(Debug, Default)]
struct Tally {
    ok: u64,
    errors: ErrorCounts,
    not_started: u64,
    stray: u64,
    /// Echo: bytes that differed from what was sent, or came unasked.
    wrong_bytes: u64,
    /// Echo until the deadline: requests it cut short (not failures).
    unfinished: u64,
    latencies_us: Vec<u32>,
    last_done: Option<Instant>,
}

impl Tally {
    /// Counts an operation that succeeded, begun `since`.
    fn succeeded(&mut self, since: Instant, now: Instant) {
        self.ok += 1;
        let us = now.duration_since(since).as_micros();
        self.latencies_us
            .push(u32::try_from(us).unwrap_or(u32::MAX));
    }
}

/// Progress shared by the loops, for the progress line.
#[derive(Debug, Default)]
struct Progress {
    done: AtomicU64,
}

fn bench(args: &BenchArgs) -> Result<BenchReport> {
    let expected: Arc<[u8]> = match &args.expect_file {
        Some(path) => clap_dist::read_file_arg(path, clap_dist::MESSAGE_MAX)
            .map_err(|e| anyhow::anyhow!("expected reply {e}"))?
            .into(),
        None => args.expect.as_bytes().into(),
    };
    let transport = if args.udp {
        Transport::Udp
    } else {
        Transport::Tcp
    };
    let addr = resolver::socket_addr(&args.host, &args.port, Family::Any, transport)?;
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
                    None if udp => udp::run(plan),
                    None => tcp::run(plan),
                })
                .context("start thread")?,
        );
    }
    let mut tally = Tally::default();
    for worker in workers {
        let t = worker
            .join()
            .map_err(|_| anyhow!("a load thread panicked"))??;
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
    Ok(report::new(args, addr, tally, secs))
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
    /// Counts one finished operation: its end in `tally`, and in the progress shared by the
    /// loops.
    fn record_done(&self, tally: &mut Tally, now: Instant) {
        tally.last_done = Some(now);
        self.progress.done.fetch_add(1, Ordering::Relaxed);
    }

    /// Opens a connection load's first connections, one per slot of `pool` up to this
    /// loop's share, each connection's netcore state its slot number; a connect that fails
    /// at once frees its slot and is counted in `tally`.
    fn connect_first<S>(
        &self,
        event_loop: &mut EventLoop<(), usize>,
        pool: &mut pool::SlotPool<S>,
        tally: &mut Tally,
        state: impl Fn(usize) -> S,
    ) {
        for _ in 0..self.concurrency.min(self.total) {
            let Some(slot) = pool.start(Instant::now(), &state) else {
                break;
            };
            if let Err(e) = event_loop.connect(self.addr, slot) {
                pool.finish(slot);
                count_io_error(&mut tally.errors, e.io_error().kind());
                self.record_done(tally, Instant::now());
            }
        }
    }

    /// A connection load's `on_connect`: the connection's slot in `pool`, the connection
    /// given one deadline, `--timeout` after its operation began (`from`). The loop's idle
    /// deadline restarts with every read, so a server that keeps sending, or trickles its
    /// reply back, would never time out: the whole operation gets one deadline. `None` when
    /// the connect failed (`on_close`, which follows, counts it) or the slot is free.
    fn connected<'p, S>(
        &self,
        pool: &'p mut pool::SlotPool<S>,
        conn: &mut Conn<'_, usize>,
        outcome: Result<&PeerAddr, &ConnectError>,
        from: TimedFrom,
    ) -> Option<&'p mut pool::Slot<S>> {
        if outcome.is_err() {
            return None;
        }
        let now = conn.control().now();
        let slot = pool.get_mut(*conn.state())?;
        if let TimedFrom::Connected = from {
            slot.since = now;
        }
        conn.set_deadline(Some(slot.since + self.timeout));
        Some(slot)
    }

    /// A loop for one load thread; `T` is its handler's state per connection.
    fn event_loop<T: Default>(&self) -> Result<EventLoop<(), T>> {
        let config = Config {
            idle_timeout: Some(self.timeout),
            write_timeout: Some(self.timeout),
            linger: self.timeout,
            drain_timeout: Duration::from_millis(100),
            ..Config::default()
        };
        Ok(EventLoop::new(config)?)
    }
}

/// What a connection load's operation is timed from once connected: its latency and its
/// deadline.
#[derive(Debug, Clone, Copy)]
enum TimedFrom {
    /// The connect's start, when its slot's operation began: the operation is the whole
    /// connection (TCP: connect to EOF).
    Connect,
    /// The connect's end: the operation is the request sent then (echo); the slot's
    /// `since` moves there.
    Connected,
}

const PROGRESS_EVERY: Duration = Duration::from_secs(2);
const PROGRESS_AFTER: Duration = Duration::from_secs(3);

/// A load's timers: the end of the run, and the progress line (the first loop's only).
struct RunTimers {
    end: TimerId,
    progress: Option<TimerId>,
}

impl RunTimers {
    fn set<T: Default>(plan: &Plan, event_loop: &mut EventLoop<(), T>) -> RunTimers {
        let progress = plan
            .report_progress
            .then(|| event_loop.set_timer(Instant::now() + PROGRESS_AFTER));
        RunTimers {
            end: event_loop.set_timer(plan.deadline),
            progress,
        }
    }

    /// Whether `timer` ends the run; the progress timer prints its line and is set again.
    fn is_end<T>(&mut self, plan: &Plan, ctl: &mut Control<'_, T>, timer: TimerId) -> bool {
        if timer == self.end {
            return true;
        }
        if Some(timer) == self.progress {
            print_progress(plan, ctl.now());
            self.progress = Some(ctl.set_timer(ctl.now() + PROGRESS_EVERY));
        }
        false
    }
}

fn print_progress(plan: &Plan, now: Instant) {
    let done = plan.progress.done.load(Ordering::Relaxed);
    let secs = now.duration_since(plan.started).as_secs_f64();
    if secs > 0.0 && plan.grand_total > 0 {
        crate::output::stderr_line(format_args!(
            "bench: {done}/{} done, {:.0}/s",
            plan.grand_total,
            done as f64 / secs
        ));
    } else if secs > 0.0 {
        crate::output::stderr_line(format_args!(
            "bench: {done} done, {:.0}/s",
            done as f64 / secs
        ));
    }
}

/// Counts a connection that closed before its reply was complete (and had no bytes of it:
/// a partial reply is a wrong payload, which the caller counts), by why it closed.
fn count_close(errors: &mut ErrorCounts, reason: &CloseReason) {
    match reason {
        CloseReason::Refused => errors.refused += 1,
        CloseReason::Reset => errors.reset += 1,
        CloseReason::Timeout | CloseReason::Shutdown | CloseReason::Done => errors.timeout += 1,
        CloseReason::ConnectFailed(kind) | CloseReason::Error(kind) => {
            count_io_error(errors, *kind);
        }
        _ => errors.other += 1,
    }
}

/// Counts an I/O error by kind.
fn count_io_error(errors: &mut ErrorCounts, kind: std::io::ErrorKind) {
    match kind {
        std::io::ErrorKind::ConnectionRefused => errors.refused += 1,
        std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe => errors.reset += 1,
        std::io::ErrorKind::AddrNotAvailable => errors.addr_not_available += 1,
        std::io::ErrorKind::TimedOut => errors.timeout += 1,
        _ => errors.other += 1,
    }
}
