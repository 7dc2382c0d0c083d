//! The run's result: a [`BenchReport`] (the schema shared with its readers, printed by
//! `--json`) built from the loops' tallies, and the table printed without `--json`.

use std::net::SocketAddr;

use bench_report::{BenchReport, EchoInfo, Latency, Mode};

use super::{BenchArgs, Tally};

/// The report of a run against `target` that took `secs` (until its last operation ended).
pub(super) fn new(
    args: &BenchArgs,
    target: SocketAddr,
    mut tally: Tally,
    secs: f64,
) -> BenchReport {
    tally.latencies_us.sort_unstable();
    let v = &tally.latencies_us;
    // Nearest rank.
    let pct = |p: f64| v[(((p / 100.0) * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
    let latency_us = v.last().map(|&max| Latency {
        p50: pct(50.0),
        p90: pct(90.0),
        p99: pct(99.0),
        max,
    });
    let echo = args.echo.then_some(EchoInfo {
        size: args.size,
        requests_per_connection: args.requests,
        connections: args.connections,
        wrong_bytes: tally.wrong_bytes,
        unfinished_at_deadline: tally.unfinished,
    });
    BenchReport {
        target: target.to_string(),
        mode: if args.echo {
            Mode::Echo
        } else if args.udp {
            Mode::Udp
        } else {
            Mode::Tcp
        },
        echo,
        planned: match echo {
            Some(echo) => args
                .connections
                .saturating_mul(echo.requests_per_connection),
            None => args.connections,
        },
        concurrency: args.concurrency,
        threads: args.threads,
        ok: tally.ok,
        errors: tally.errors.with_total(),
        not_started: tally.not_started,
        stray: tally.stray,
        secs,
        rate: if secs > 0.0 {
            tally.ok as f64 / secs
        } else {
            0.0
        },
        latency_us,
    }
}

/// The report as the table printed without `--json`.
pub(super) fn table(report: &BenchReport) -> String {
    let e = &report.errors;
    let unit = if report.mode == Mode::Tcp {
        "connections"
    } else {
        "requests"
    };
    let (mode, echo) = match &report.echo {
        Some(echo) => {
            let per_conn = if echo.requests_per_connection == 0 {
                "until the deadline".to_string()
            } else {
                echo.requests_per_connection.to_string()
            };
            (
                format!("echo of {}-byte messages", echo.size),
                format!(
                    "echo         {} connections, {per_conn} requests each; \
                     {} wrong bytes, {} cut short at the deadline\n",
                    echo.connections, echo.wrong_bytes, echo.unfinished_at_deadline
                ),
            )
        }
        None => (report.mode.as_str().to_string(), String::new()),
    };
    let latency = match &report.latency_us {
        Some(l) => format!(
            "p50 {} us, p90 {} us, p99 {} us, max {} us",
            l.p50, l.p90, l.p99, l.max
        ),
        None => "n/a (none succeeded)".to_string(),
    };
    format!(
        "target       {target}\n\
         mode         {mode} ({threads} thread(s), concurrency {c})\n\
         {unit:<12} {ok} ok of {planned} ({not_started} not started)\n\
         rate         {rate:.0}/s over {secs:.3} s\n\
         latency      {latency}\n\
         errors       {total} (refused {refused}, reset {reset}, timeout {timeout}, \
         addr not available {ana}, wrong payload {wrong}, other {other})\n{echo}",
        target = report.target,
        threads = report.threads,
        c = report.concurrency,
        ok = report.ok,
        planned = report.planned,
        not_started = report.not_started,
        rate = report.rate,
        secs = report.secs,
        total = e.total,
        refused = e.refused,
        reset = e.reset,
        timeout = e.timeout,
        ana = e.addr_not_available,
        wrong = e.wrong_payload,
        other = e.other,
    )
}
