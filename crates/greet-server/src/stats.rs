//! The summary line, at exit and while the server runs (SIGUSR1, `--stats-interval`).
//!
//! Accepted connections and received datagrams are netcore's own counters ([`Counters`],
//! live atomics each loop updates anyway); what only the service knows (greeted, errors,
//! rate-limited, PROXY header errors) each loop publishes once per turn into a [`Published`]
//! (plain stores, nothing per connection), and returns exactly at exit.

use anyhow::{Context, Result};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::Duration;

use netcore::Counters;

use crate::logsink::{LogCounter, LogCounts};

/// Per-loop totals of what only the service knows, added up for the summary line (accepted
/// connections and datagrams are netcore's counters).
#[derive(Debug, Default, Clone, Copy)]
pub struct Stats {
    pub greeted: u64,
    pub errors: u64,
    /// Datagrams not answered because their source passed its reply rate.
    pub limited: u64,
    /// Connections closed because their PROXY header was malformed, too long, too slow or
    /// missing (only with `--proxy-protocol`).
    pub proxy_errors: u64,
    /// Connections refused because they came from outside `--proxy-trusted`.
    pub proxy_untrusted: u64,
    /// Connections refused past `--max-connections`.
    pub refused_limit: u64,
    /// Connections refused past `--max-per-source`.
    pub refused_per_source: u64,
}

impl std::ops::AddAssign for Stats {
    fn add_assign(&mut self, other: Stats) {
        self.greeted += other.greeted;
        self.errors += other.errors;
        self.limited += other.limited;
        self.proxy_errors += other.proxy_errors;
        self.proxy_untrusted += other.proxy_untrusted;
        self.refused_limit += other.refused_limit;
        self.refused_per_source += other.refused_per_source;
    }
}

/// A loop's service counts as of its last turn.
#[derive(Debug, Default)]
pub struct Published {
    greeted: AtomicU64,
    errors: AtomicU64,
    limited: AtomicU64,
    proxy_errors: AtomicU64,
    proxy_untrusted: AtomicU64,
    refused_limit: AtomicU64,
    refused_per_source: AtomicU64,
}

impl Published {
    /// Stores `stats` (once per loop turn).
    pub fn publish(&self, stats: &Stats) {
        self.greeted.store(stats.greeted, Ordering::Relaxed);
        self.errors.store(stats.errors, Ordering::Relaxed);
        self.limited.store(stats.limited, Ordering::Relaxed);
        self.proxy_errors
            .store(stats.proxy_errors, Ordering::Relaxed);
        self.proxy_untrusted
            .store(stats.proxy_untrusted, Ordering::Relaxed);
        self.refused_limit
            .store(stats.refused_limit, Ordering::Relaxed);
        self.refused_per_source
            .store(stats.refused_per_source, Ordering::Relaxed);
    }

    fn load(&self) -> Stats {
        Stats {
            greeted: self.greeted.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            limited: self.limited.load(Ordering::Relaxed),
            proxy_errors: self.proxy_errors.load(Ordering::Relaxed),
            proxy_untrusted: self.proxy_untrusted.load(Ordering::Relaxed),
            refused_limit: self.refused_limit.load(Ordering::Relaxed),
            refused_per_source: self.refused_per_source.load(Ordering::Relaxed),
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
        let (mut accepted, mut datagrams) = (0, 0);
        for counters in loops {
            let snapshot = counters.snapshot();
            accepted += snapshot.accepted;
            datagrams += snapshot.datagrams_in;
        }
        Summary {
            accepted,
            greeted: stats.greeted,
            errors: stats.errors,
            datagrams,
            limited: stats.limited,
            proxy_errors: shown.proxy.then_some(stats.proxy_errors),
            proxy_untrusted: shown.trusted.then_some(stats.proxy_untrusted),
            refused_limit: shown.max_connections.then_some(stats.refused_limit),
            refused_per_source: shown.per_source.then_some(stats.refused_per_source),
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
