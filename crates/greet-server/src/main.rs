//! `greet-server`: the socket tutorial's greeting server, on netcore.
//!
//! The outline, as `run` follows it: take what a service manager or a restarting server
//! handed over (before any thread starts: that removes it from the environment), open the
//! sockets (`listen.rs`), install the signal handlers, print the readiness lines, start
//! the log writer, the event loops (`loops.rs`, with the metrics listener: `metrics.rs`) and
//! the signal thread (`signals.rs`), tell whoever started us that we are ready
//! (`restart.rs`), and once the loops have drained:
//! flush the log, remove our socket file, print the summary (`stats.rs`).

#[macro_use]
mod say;

mod accesslog;
mod limits;
mod logger;
mod logsink;
mod loops;
mod metrics;
mod ratelimit;
mod restart;
mod service;
mod signals;
mod stats;

use anyhow::{Context, Result};
use std::os::fd::OwnedFd;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;

use greet_server::activation;
use greet_server::cli::{self, Args};
use greet_server::listen::{Listener, Sockets};
use greet_server::socket_file::{self, FileId, SocketFile};
use loops::Loops;
use restart::Restarter;
use signals::Signals;
use stats::{Reporter, Shown, Summary};

/// After the loops have drained: how long the log writer may take to write what is queued
/// before the server exits anyway, counting the rest as dropped.
const LOG_FLUSH_GRACE: Duration = Duration::from_secs(1);

fn main() -> ExitCode {
    logger::init();
    match serve() {
        Ok(()) => ExitCode::SUCCESS,
        // clap prints its own messages and ignores a failed write; the rest is ours.
        Err(e) if e.downcast_ref::<clap::Error>().is_some() => {
            clap_dist::exit_status("greet-server", &e)
        }
        Err(e) => {
            say!("greet-server: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn serve() -> Result<()> {
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if let Some(request) = clap_dist::request(&argv, "greet-server") {
        let dir = request.map_err(anyhow::Error::msg)?;
        return cli::generate(&dir);
    }
    let args = Args::try_parse_from(argv)?;
    args.check()?;
    if let Some(notice) = args.trust_notice() {
        say!("greet-server: {notice}");
    }
    // Before any thread starts: taking the sockets (and the readiness pipe of a restart, and
    // the identity of the socket file it hands on) also removes LISTEN_* (GREET_READY_FD,
    // GREET_UNIX_FILE) from the environment.
    let ready = restart::take_ready_fd();
    let passed = socket_file::take_passed();
    let handed = activation::take_listeners().context("socket activation")?;
    let summary = run(&args, handed, ready, passed)?;
    say!("{summary}");
    Ok(())
}

fn run(
    args: &Args,
    mut handed: Option<Vec<(Listener, String)>>,
    ready: Option<OwnedFd>,
    passed: Option<FileId>,
) -> Result<Summary> {
    let message = args.greeting().map_err(anyhow::Error::msg)?;
    let metrics_listener = metrics::listener(args.metrics, handed.as_mut())?;
    let mut sockets = Sockets::open(args, handed, ready.is_some(), passed)?;
    metrics::hand_on(metrics_listener.as_ref(), &mut sockets.handover)?;
    // Before the readiness lines: a signal sent once they are out is handled (it waits in
    // the handler's pipe until the signal thread starts), never the default action.
    let signals = Signals::install()?;
    sockets.announce()?;
    metrics::announce(metrics_listener.as_ref())?;
    let (writer, sink) = logsink::for_stdout(args.quiet)?;
    let mut loops = Loops::new(args, sockets.groups)?;
    let live = loops.live(sink.as_ref(), Shown::of(args));
    let metrics = loops.serve_metrics(metrics_listener, &live)?;
    let reporter = Reporter::new(live, args.stats_interval)?;
    let restarter = Arc::new(Restarter::new(
        sockets.handover,
        args.upgrade_binary.clone(),
        sockets.unix_file.as_ref().map(SocketFile::id),
        args.restart_timeout,
        loops.handles(),
    ));
    if let Some(metrics) = &metrics {
        metrics.carry_on(&restarter, ready.as_ref())?;
    }
    signals.watch(loops.handles(), Arc::clone(&restarter), reporter)?;
    let running = loops.spawn(args, &message, sink.as_ref());
    // Only the loops hold the log sink now: when they end, the writer sees the end.
    drop(sink);
    // A server started by a restart that could not say it is ready (the old one gave up on
    // it and goes on serving) leaves the socket file to the old one.
    let told = restart::notify_ready(ready);

    let ended = running.join()?;
    let log = writer.map(|w| w.finish(Instant::now() + LOG_FLUSH_GRACE));
    metrics.inspect(|m| m.finish());
    // The socket file stays when a new server took it over.
    if let Some(file) = sockets
        .unix_file
        .filter(|_| told && !restarter.handed_over())
    {
        file.remove();
    }
    if let Some(e) = ended.failure {
        return Err(e);
    }
    let mut summary = Summary::new(&ended.counters, ended.total, Shown::of(args));
    summary.log = log;
    Ok(summary)
}
