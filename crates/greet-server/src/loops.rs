//! The event loops: one netcore `EventLoop` per thread, each serving its group of listeners
//! with its own `GreetService`; their counters while they run, their totals once they end.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use anyhow::{anyhow, Context, Result};
use netcore::{Config, Counters, EventLoop, ListenerId, ShutdownHandle};
use std::net::TcpListener;

use greet_server::cli::Args;
use greet_server::listen::Listener;

use crate::limits::{ConnectionLimit, SourceLimit};
use crate::logsink::LogSink;
use crate::metrics::Metrics;
use crate::ratelimit::{self, ReplyLimiter};
use crate::service::{GreetService, Session};
use crate::stats::{Live, Published, Shown, Stats};

/// The loops, built and holding their listeners, not yet running.
pub struct Loops {
    loops: Vec<EventLoop<(), Session>>,
    /// Where each loop's service publishes its counts, for reports while running.
    published: Vec<Arc<Published>>,
    /// `--metrics`: its listener, in the first loop, and what it serves.
    metrics: Option<(ListenerId, Arc<Metrics>)>,
}

/// The loops' threads, until they end.
pub struct Running {
    workers: Vec<std::io::Result<JoinHandle<Result<Stats, netcore::Error>>>>,
    counters: Vec<Arc<Counters>>,
}

impl Loops {
    /// One loop per group, serving the group's listeners, with the limits `args` set.
    pub fn new(args: &Args, groups: Vec<Vec<Listener>>) -> Result<Loops> {
        let config = Config {
            idle_timeout: Some(args.idle_timeout),
            write_timeout: Some(args.write_timeout),
            max_connections: args.max_connections.unwrap_or(usize::MAX),
            ..Config::default()
        };
        let mut loops = Vec::with_capacity(groups.len());
        for group in groups {
            let mut event_loop = EventLoop::new(config.clone())?;
            for listener in group {
                listener.add_to(&mut event_loop)?;
            }
            loops.push(event_loop);
        }
        let published = loops.iter().map(|_| Arc::default()).collect();
        Ok(Loops {
            loops,
            published,
            metrics: None,
        })
    }

    /// With a metrics listener: serves the counts `live` reads on it, from the first loop;
    /// the metrics served.
    ///
    /// # Errors
    ///
    /// netcore could not register it.
    pub fn serve_metrics(
        &mut self,
        listener: Option<TcpListener>,
        live: &Live,
    ) -> Result<Option<Arc<Metrics>>> {
        let (Some(listener), Some(first)) = (listener, self.loops.first_mut()) else {
            return Ok(None);
        };
        let metrics = Arc::new(Metrics::new(live.clone()));
        self.metrics = Some((first.add_tcp_listener(listener)?, Arc::clone(&metrics)));
        Ok(Some(metrics))
    }

    /// What stops each loop gracefully.
    pub fn handles(&self) -> Vec<ShutdownHandle> {
        self.loops.iter().map(EventLoop::shutdown_handle).collect()
    }

    /// The counts as the loops run, for the summary on request (`sink`: the log's, when
    /// there is one).
    pub fn live(&self, sink: Option<&LogSink>, shown: Shown) -> Live {
        Live {
            loops: self
                .loops
                .iter()
                .map(EventLoop::counters)
                .zip(self.published.iter().cloned())
                .collect(),
            log: sink.map(LogSink::counter),
            shown,
        }
    }

    /// Starts a thread per loop, each running a `GreetService` for `args` that sends
    /// `message` and logs to `sink`.
    pub fn spawn(self, args: &Args, message: &Arc<[u8]>, sink: Option<&LogSink>) -> Running {
        let counters = self.loops.iter().map(EventLoop::counters).collect();
        // The process's limits, shared by every loop's service.
        let limit = args
            .max_connections
            .map(|n| Arc::new(ConnectionLimit::new(n)));
        let per_source = args.max_per_source.map(|n| Arc::new(SourceLimit::new(n)));
        let metrics = self.metrics;
        let workers = self
            .loops
            .into_iter()
            .zip(self.published)
            .enumerate()
            .map(|(i, (mut event_loop, published))| {
                let limiter = match args.udp_rate {
                    Some(0) => None,
                    Some(rate) => Some(ReplyLimiter::new(rate, true, Instant::now())),
                    None => Some(ReplyLimiter::new(
                        ratelimit::DEFAULT_RATE,
                        false,
                        Instant::now(),
                    )),
                };
                let mut service =
                    GreetService::new(Arc::clone(message), sink.cloned(), limiter, published)
                        .with_log_format(args.log_format)
                        .with_limits(limit.clone(), per_source.clone())
                        .timed(metrics.is_some());
                if args.proxy_protocol {
                    let trusted =
                        (!args.proxy_trusted.is_empty()).then(|| args.proxy_trusted.clone());
                    service = service.with_proxy_protocol(args.proxy_timeout, trusted);
                }
                if let (0, Some((id, metrics))) = (i, &metrics) {
                    service = service.with_metrics(*id, Arc::clone(metrics));
                }
                std::thread::Builder::new()
                    .name(format!("loop-{i}"))
                    .spawn(move || event_loop.run(&mut service).map(|()| service.finish()))
            })
            .collect();
        Running { workers, counters }
    }
}

/// How the loops ended.
pub struct Ended {
    /// The services' counts, summed.
    pub total: Stats,
    /// Each loop's netcore counters.
    pub counters: Vec<Arc<Counters>>,
    /// The last loop that ended with an error, if any.
    pub failure: Option<anyhow::Error>,
}

impl Running {
    /// Waits for every loop to end.
    ///
    /// # Errors
    ///
    /// A loop's thread that could not start (found once the loops before it have ended)
    /// or that panicked: at once, without waiting for the loops after it.
    pub fn join(self) -> Result<Ended> {
        let mut total = Stats::default();
        let mut failure = None;
        for worker in self.workers {
            let joined = worker
                .context("start event loop thread")?
                .join()
                .map_err(|_| anyhow!("an event loop thread panicked"))?;
            match joined {
                Ok(stats) => total += stats,
                Err(e) => failure = Some(anyhow::Error::from(e).context("event loop")),
            }
        }
        Ok(Ended {
            total,
            counters: self.counters,
            failure,
        })
    }
}
