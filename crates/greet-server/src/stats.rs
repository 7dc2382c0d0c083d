//! The summary line, at exit and while the server runs (SIGUSR1, `--stats-interval`).
//!
//! Received datagrams are netcore's own counters ([`Counters`], live atomics each loop
//! updates anyway); what only the service knows (accepted on a greeting listener, each
//! outcome, the greeting-duration histogram) each loop publishes once per turn into a
//! [`Published`] (plain stores, nothing per connection), and returns exactly at exit. The
//! metrics (`metrics.rs`) read the same.

use anyhow::{Context, Result};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::Duration;

use netcore::Counters;

use crate::logsink::{LogCounter, LogCounts};

/// What the service counts, one slot each in [`Stats::counts`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Count {
    /// Connections accepted on a greeting listener (not the metrics listener's).
    Accepted,
    /// Connections that ended, whatever the outcome (so `Accepted - Closed` are open).
    Closed,
    Greeted,
    /// The peer reset the connection before it had the whole greeting.
    Reset,
    /// The greeting waited past `--write-timeout` (or `--idle-timeout`) for a peer.
    TimedOut,
    /// The server stopped before the greeting was out.
    Shutdown,
    /// Any other I/O error.
    OtherError,
    /// A PROXY header that was malformed, too long, too slow or missing.
    ProxyError,
    /// A connection from outside `--proxy-trusted`.
    ProxyUntrusted,
    /// Refused past `--max-connections`.
    RefusedLimit,
    /// Refused past `--max-per-source`.
    RefusedPerSource,
    /// Connections a load balancer made for a health check (a PROXY v2 LOCAL header):
    /// greeted, neither logged nor counted as a client's, whatever their end.
    HealthCheck,
    /// Datagrams answered.
    DatagramsGreeted,
    /// Datagrams not answered because their source passed its reply rate.
    RateLimited,
}

impl Count {
    /// Every count, in slot order.
    pub const ALL: [Count; 14] = [
        Count::Accepted,
        Count::Closed,
        Count::Greeted,
        Count::Reset,
        Count::TimedOut,
        Count::Shutdown,
        Count::OtherError,
        Count::ProxyError,
        Count::ProxyUntrusted,
        Count::RefusedLimit,
        Count::RefusedPerSource,
        Count::HealthCheck,
        Count::DatagramsGreeted,
        Count::RateLimited,
    ];

    /// The errors of the summary line's `errors` field: a greeting that did not get out.
    pub const ERRORS: [Count; 4] = [
        Count::Reset,
        Count::TimedOut,
        Count::Shutdown,
        Count::OtherError,
    ];
}

/// Upper bounds (seconds) of the greeting-duration histogram's buckets, from the accept to
/// the close; `+Inf` is implied.
pub const DURATION_BUCKETS: [f64; 11] = [
    0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0,
];

/// Greeting durations: how many fell in each bucket (not cumulative), the total count
/// above the last bound, and their sum.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Histogram {
    /// `buckets[i]`: durations at most `DURATION_BUCKETS[i]` and above the bound before;
    /// the last slot: above every bound.
    pub buckets: [u64; DURATION_BUCKETS.len() + 1],
    /// The sum of every duration, in nanoseconds.
    pub sum_nanos: u64,
}

impl Histogram {
    pub fn record(&mut self, duration: std::time::Duration) {
        let secs = duration.as_secs_f64();
        let slot = DURATION_BUCKETS
            .iter()
            .position(|&bound| secs <= bound)
            .unwrap_or(DURATION_BUCKETS.len());
        self.buckets[slot] += 1;
        self.sum_nanos = self
            .sum_nanos
            .saturating_add(u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX));
    }

    /// How many durations were recorded.
    pub fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }
}

impl std::ops::AddAssign for Histogram {
    fn add_assign(&mut self, other: Histogram) {
        for (mine, theirs) in self.buckets.iter_mut().zip(other.buckets) {
            *mine += theirs;
        }
        self.sum_nanos = self.sum_nanos.saturating_add(other.sum_nanos);
    }
}

/// Per-loop totals of what only the service knows, added up for the summary line and the
/// metrics (datagrams received and accept errors are netcore's counters).
#[derive(Debug, Default, Clone, Copy)]
pub struct Stats {
    pub counts: [u64; Count::ALL.len()],
    /// With `--metrics`: how long greeted connections took.
    pub durations: Histogram,
}

impl Stats {
    pub fn add(&mut self, count: Count) {
        self.counts[count as usize] += 1;
    }

    pub fn get(&self, count: Count) -> u64 {
        self.counts[count as usize]
    }

    /// The summary line's `errors`.
    pub fn errors(&self) -> u64 {
        Count::ERRORS.iter().map(|&c| self.get(c)).sum()
    }
}

impl std::ops::AddAssign for Stats {
    fn add_assign(&mut self, other: Stats) {
        for (mine, theirs) in self.counts.iter_mut().zip(other.counts) {
            *mine += theirs;
        }
        self.durations += other.durations;
    }
}

/// A loop's service counts as of its last turn.
#[derive(Debug, Default)]
pub struct Published {
    counts: [AtomicU64; Count::ALL.len()],
    buckets: [AtomicU64; DURATION_BUCKETS.len() + 1],
    sum_nanos: AtomicU64,
}

impl Published {
    /// Stores `stats` (once per loop turn).
    pub fn publish(&self, stats: &Stats) {
        for (slot, &value) in self.counts.iter().zip(&stats.counts) {
            slot.store(value, Ordering::Relaxed);
        }
        for (slot, &value) in self.buckets.iter().zip(&stats.durations.buckets) {
            slot.store(value, Ordering::Relaxed);
        }
        self.sum_nanos
            .store(stats.durations.sum_nanos, Ordering::Relaxed);
    }

    pub fn load(&self) -> Stats {
        Stats {
            counts: std::array::from_fn(|i| self.counts[i].load(Ordering::Relaxed)),
            durations: Histogram {
                buckets: std::array::from_fn(|i| self.buckets[i].load(Ordering::Relaxed)),
                sum_nanos: self.sum_nanos.load(Ordering::Relaxed),
            },
        }
    }
}

/// The one-line summary. Its fields and their order are what scripts parse; optional
/// fields come last, only where they mean something, so the line without them is unchanged.
#[derive(Debug, Default, Clone, Copy)]
pub struct Summary {
    pub accepted: u64,
    pub greeted: u64,
    pub errors: u64,
    pub datagrams: u64,
    pub limited: u64,
    /// With `--proxy-protocol`.
    pub proxy_errors: Option<u64>,
    /// With `--proxy-trusted`.
    pub proxy_untrusted: Option<u64>,
    /// With `--proxy-protocol`.
    pub health_checks: Option<u64>,
    /// With `--max-connections`.
    pub refused_limit: Option<u64>,
    /// With `--max-per-source`.
    pub refused_per_source: Option<u64>,
    /// Without `--quiet`.
    pub log: Option<LogCounts>,
}

impl Summary {
    /// The totals of `loops` (netcore's counters) and `stats` (the service's), with the
    /// optional fields `shown` asks for.
    pub fn new(loops: &[Arc<Counters>], stats: Stats, shown: Shown) -> Summary {
        let datagrams = loops.iter().map(|c| c.snapshot().datagrams_in).sum();
        Summary {
            accepted: stats.get(Count::Accepted),
            greeted: stats.get(Count::Greeted),
            errors: stats.errors(),
            datagrams,
            limited: stats.get(Count::RateLimited),
            proxy_errors: shown.proxy.then_some(stats.get(Count::ProxyError)),
            proxy_untrusted: shown.trusted.then_some(stats.get(Count::ProxyUntrusted)),
            health_checks: shown.proxy.then_some(stats.get(Count::HealthCheck)),
            refused_limit: shown
                .max_connections
                .then_some(stats.get(Count::RefusedLimit)),
            refused_per_source: shown
                .per_source
                .then_some(stats.get(Count::RefusedPerSource)),
            log: None,
        }
    }
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "greet-server: accepted {}, greeted {}, errors {}, datagrams {}, rate-limited {}",
            self.accepted, self.greeted, self.errors, self.datagrams, self.limited
        )?;
        if let Some(n) = self.proxy_errors {
            write!(f, ", proxy errors {n}")?;
        }
        if let Some(n) = self.proxy_untrusted {
            write!(f, ", proxy untrusted {n}")?;
        }
        if let Some(n) = self.health_checks {
            write!(f, ", health checks {n}")?;
        }
        if let Some(n) = self.refused_limit {
            write!(f, ", over max-connections {n}")?;
        }
        if let Some(n) = self.refused_per_source {
            write!(f, ", over max-per-source {n}")?;
        }
        if let Some(log) = self.log {
            write!(
                f,
                ", logged {}, log lines dropped {}",
                log.logged, log.dropped
            )?;
        }
        Ok(())
    }
}

/// Which optional fields the summary line has: those of the features turned on.
#[derive(Debug, Default, Clone, Copy)]
pub struct Shown {
    /// `--proxy-protocol`: proxy errors.
    pub proxy: bool,
    /// `--proxy-trusted`: connections refused from other sources.
    pub trusted: bool,
    /// `--max-connections`: connections refused past it.
    pub max_connections: bool,
    /// `--max-per-source`: connections refused past it.
    pub per_source: bool,
}

impl Shown {
    /// The fields `args` turn on.
    pub fn of(args: &greet_server::cli::Args) -> Shown {
        Shown {
            proxy: args.proxy_protocol,
            trusted: !args.proxy_trusted.is_empty(),
            max_connections: args.max_connections.is_some(),
            per_source: args.max_per_source.is_some(),
        }
    }
}

/// Everything needed to print the summary while the loops run, from any thread.
#[derive(Debug, Clone)]
pub struct Live {
    pub loops: Vec<(Arc<Counters>, Arc<Published>)>,
    pub log: Option<LogCounter>,
    pub shown: Shown,
}

impl Live {
    /// The summary as of now (each loop as of its last turn).
    pub fn summary(&self) -> Summary {
        let mut stats = Stats::default();
        for (_, published) in &self.loops {
            stats += published.load();
        }
        let counters: Vec<Arc<Counters>> = self.loops.iter().map(|(c, _)| Arc::clone(c)).collect();
        let mut summary = Summary::new(&counters, stats, self.shown);
        summary.log = self.log.as_ref().map(LogCounter::counts);
        summary
    }
}

/// Prints the summary on stderr on request (SIGUSR1) and every `--stats-interval`, from a
/// thread of its own, started only when first needed.
#[derive(Debug)]
pub struct Reporter {
    live: Live,
    interval: Option<Duration>,
    requests: Option<Sender<()>>,
}

impl Reporter {
    /// With an interval, the thread starts now.
    pub fn new(live: Live, interval: Option<Duration>) -> Result<Reporter> {
        let mut reporter = Reporter {
            live,
            interval,
            requests: None,
        };
        if interval.is_some() {
            reporter.start()?;
        }
        Ok(reporter)
    }

    /// Asks for the summary line now (never blocks: the thread prints it).
    pub fn report(&mut self) {
        if self.requests.is_none() {
            if let Err(e) = self.start() {
                say!("greet-server: {e:#}");
                return;
            }
        }
        if let Some(requests) = &self.requests {
            let _ = requests.send(());
        }
    }

    fn start(&mut self) -> Result<()> {
        let (tx, rx) = mpsc::channel();
        start_reporter(self.live.clone(), rx, self.interval)?;
        self.requests = Some(tx);
        Ok(())
    }
}

/// Prints the summary on stderr when asked (a message on `requests`) and every `interval`;
/// on its own thread, so that a slow stderr delays only these lines.
fn start_reporter(live: Live, requests: Receiver<()>, interval: Option<Duration>) -> Result<()> {
    std::thread::Builder::new()
        .name("stats".into())
        .spawn(move || loop {
            let asked = match interval {
                Some(every) => requests.recv_timeout(every),
                None => requests.recv().map_err(|_| RecvTimeoutError::Disconnected),
            };
            match asked {
                Ok(()) | Err(RecvTimeoutError::Timeout) => say!("{}", live.summary()),
                Err(RecvTimeoutError::Disconnected) => return,
            }
        })
        .map(drop)
        .context("start the stats thread")
}
