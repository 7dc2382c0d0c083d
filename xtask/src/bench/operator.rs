//! The operator section (`cargo xtask bench operator`): what greet-server's access log and
//! metrics cost per connection.
//!
//! greet-server with one loop, pinned to core 0, under `greet-client bench -n 100000 -c 64`
//! on core 1, in each configuration of [`Config::ALL`] in turn, [`ROUNDS`] times over, so
//! that a disturbance of the shared machine spreads over all of them; medians. The figure
//! compared is the server's user-space CPU per connection (`utime` of `/proc/PID/stat`, all
//! threads, the log writer's included): the kernel's part is the same system calls in every
//! configuration, most of the total and most of its noise. The whole on-CPU time
//! (`schedstat`) is reported beside it.
//!
//! The server's stdout, the access log, is read as it comes by proc-harness's reader
//! thread, so the log never waits on a full pipe; its lines are counted once the load is
//! over (after the CPU is read), which shows each configuration logged what it should.

use std::fmt;
use std::sync::mpsc::Receiver;
use std::time::Duration;

use anyhow::Result;
use serde::Serialize;

use super::measure::{load_server, start, Load, Row, ServerSpec, Tools};
use super::names::{Logging, Scenario, ServerName};
use super::stats::{median_where, ratio, Spread};
use super::{number, percent, serialize_as_display};

/// Rounds; each runs every configuration once.
const ROUNDS: usize = 5;
/// Connections per run, and in flight at once.
const CONNECTIONS: u64 = 100_000;
const IN_FLIGHT: u32 = 64;
/// How long the log may stay quiet before its count is taken.
const LOG_QUIET: Duration = Duration::from_millis(200);

/// A configuration measured: the transport and what greet-server logs and counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Config {
    /// TCP, the default `tutorial` access log.
    Default,
    /// TCP, `--log-format json`.
    Json,
    /// TCP, the default log and `--metrics 127.0.0.1:0`.
    Metrics,
    /// UDP, the default log.
    Udp,
}

impl Config {
    const ALL: [Config; 4] = [Config::Default, Config::Json, Config::Metrics, Config::Udp];

    fn logging(self) -> Logging {
        match self {
            Config::Default | Config::Udp => Logging::Tutorial,
            Config::Json => Logging::Json,
            Config::Metrics => Logging::TutorialMetrics,
        }
    }

    /// The load: [`CONNECTIONS`] connections (or requests, over UDP), server on core 0,
    /// load on core 1.
    fn load(self) -> Load {
        let udp = self == Config::Udp;
        let scenario = match udp {
            true => Scenario::UdpPinned,
            false => Scenario::TcpPinned,
        };
        Load {
            udp,
            pinned: true,
            ..Load::tcp(scenario, CONNECTIONS, IN_FLIGHT)
        }
    }
}

impl fmt::Display for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Config::Default => "tcp, tutorial log (the default)",
            Config::Json => "tcp, --log-format json",
            Config::Metrics => "tcp, tutorial log, --metrics 127.0.0.1:0",
            Config::Udp => "udp, tutorial log",
        })
    }
}

serialize_as_display!(Config);

/// One measurement.
#[derive(Serialize)]
struct Run {
    configuration: Config,
    #[serde(flatten)]
    row: Row,
    /// Access log lines the server wrote (readiness lines not counted).
    log_lines: u64,
}

/// What the section found: `target/bench/operator-latest.json`.
#[derive(Serialize)]
pub(super) struct OperatorSummary {
    rounds: usize,
    connections: u64,
    in_flight: u32,
    configurations: Vec<ConfigSummary>,
    /// `--log-format json` less the default, per connection (medians).
    json_minus_default: Difference,
    /// `--metrics` less the default, per connection (medians).
    metrics_minus_default: Difference,
    runs: Vec<Run>,
}

/// One configuration's medians, and the spread of the figure compared.
#[derive(Serialize)]
struct ConfigSummary {
    configuration: Config,
    server: ServerName,
    rate: Option<f64>,
    server_user_us_per_conn: Option<Spread>,
    server_cpu_us_per_conn: Option<Spread>,
    kernel_share: Option<f64>,
    log_lines_per_conn: Option<f64>,
    failures: u64,
}

/// One configuration's cost over the default's, per connection, in µs.
#[derive(Serialize)]
struct Difference {
    user_us: Option<f64>,
    cpu_us: Option<f64>,
}

/// Runs every configuration [`ROUNDS`] times, interleaved; the release build of
/// greet-server and greet-client must be done.
pub(super) fn section(tools: &Tools) -> Result<OperatorSummary> {
    let mut runs = Vec::new();
    for _ in 0..ROUNDS {
        for config in Config::ALL {
            runs.push(measure(tools, config)?);
        }
    }
    let configurations: Vec<ConfigSummary> = Config::ALL.map(|c| summarize(c, &runs)).into();
    let difference = |config: Config| {
        let of = |c: Config, f: fn(&ConfigSummary) -> &Option<Spread>| {
            configurations
                .iter()
                .find(|s| s.configuration == c)
                .and_then(|s| f(s).as_ref())
                .map(|s| s.median)
        };
        let minus = |f| Some(of(config, f)? - of(Config::Default, f)?);
        Difference {
            user_us: minus(|s| &s.server_user_us_per_conn),
            cpu_us: minus(|s| &s.server_cpu_us_per_conn),
        }
    };
    Ok(OperatorSummary {
        rounds: ROUNDS,
        connections: CONNECTIONS,
        in_flight: IN_FLIGHT,
        json_minus_default: difference(Config::Json),
        metrics_minus_default: difference(Config::Metrics),
        configurations,
        runs,
    })
}

impl OperatorSummary {
    /// Connections (or requests) greet-server lost or truncated, all runs.
    pub(super) fn failures(&self) -> u64 {
        self.configurations.iter().map(|c| c.failures).sum()
    }
}

/// greet-server in `config`, started fresh, under its load.
fn measure(tools: &Tools, config: Config) -> Result<Run> {
    let load = config.load();
    let spec = ServerSpec::of(tools, ServerName::GreetLogging(config.logging()), load.udp)?;
    let (mut server, port) = start(&spec, Some(0), tools.taskset)?;
    let log = server.take_stdout();
    let row = load_server(tools, &server, port, spec.name, &load);
    let log_lines = count_log_lines(&log);
    server.kill();
    let row = row?;
    if config != Config::Udp && log_lines < row.load.ok {
        eprintln!(
            "bench: {config}: {log_lines} log lines for {} connections (the log dropped some: its cost is undercounted)",
            row.load.ok
        );
    }
    Ok(Run {
        configuration: config,
        row,
        log_lines,
    })
}

/// The lines on `log` until it stays quiet for [`LOG_QUIET`], readiness lines (the metrics
/// listener's comes after the first) left out.
fn count_log_lines(log: &Receiver<String>) -> u64 {
    let lines = std::iter::from_fn(|| log.recv_timeout(LOG_QUIET).ok());
    lines.filter(|l| !l.starts_with("Listening on ")).count() as u64
}

fn summarize(config: Config, runs: &[Run]) -> ConfigSummary {
    let of_config: Vec<&Run> = runs.iter().filter(|r| r.configuration == config).collect();
    let median = |f: fn(&Run) -> f64| median_where(&of_config, |_| true, |r| f(r));
    let spread = |f: fn(&Run) -> f64| Spread::of(of_config.iter().map(|r| f(r)));
    ConfigSummary {
        configuration: config,
        server: ServerName::GreetLogging(config.logging()),
        rate: median(|r| r.row.load.rate),
        server_user_us_per_conn: spread(|r| r.row.server_user_us_per_op),
        server_cpu_us_per_conn: spread(|r| r.row.server_cpu_us_per_op),
        kernel_share: median(|r| r.row.kernel_share),
        log_lines_per_conn: median(|r| {
            ratio(Some(r.log_lines as f64), Some(r.row.load.ok as f64)).unwrap_or(0.0)
        }),
        failures: of_config.iter().map(|r| r.row.load.failures()).sum(),
    }
}

/// The table and the two differences.
pub(super) fn print(summary: &OperatorSummary) {
    println!(
        "\n| greet-server, one loop, pinned | conn/s | user CPU us/conn (min-max) | CPU us/conn (min-max) | kernel share | log lines/conn | failures |"
    );
    println!("|---|---|---|---|---|---|---|");
    let spread = |s: &Option<Spread>| s.map_or_else(|| "-".to_string(), |s| format!("{s:.2}"));
    for c in &summary.configurations {
        println!(
            "| {} | {} | {} | {} | {}% | {} | {} |",
            c.configuration,
            number(c.rate, 0),
            spread(&c.server_user_us_per_conn),
            spread(&c.server_cpu_us_per_conn),
            percent(c.kernel_share),
            number(c.log_lines_per_conn, 2),
            c.failures,
        );
    }
    println!();
    for (what, d) in [
        ("--log-format json", &summary.json_minus_default),
        ("--metrics", &summary.metrics_minus_default),
    ] {
        println!(
            "operator: {what} less the default: {} us user CPU, {} us CPU per connection (medians of {})",
            signed(d.user_us),
            signed(d.cpu_us),
            summary.rounds
        );
    }
}

/// A difference with its sign, two decimals.
fn signed(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_string(), |x| format!("{x:+.2}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configurations_run_the_documented_servers_and_loads() {
        let flags: Vec<&[&str]> = Config::ALL.map(|c| c.logging().flags()).into();
        assert_eq!(
            flags,
            [
                &[][..],
                &["--log-format", "json"],
                &["--metrics", "127.0.0.1:0"],
                &[]
            ]
        );
        let load = Config::Udp.load();
        assert!(load.udp && load.pinned);
        assert_eq!((load.n, load.c), (100_000, 64));
        assert_eq!(load.scenario, Scenario::UdpPinned);
        assert!(!Config::Json.load().udp);
        assert_eq!(
            serde_json::to_string(&Config::Metrics).unwrap(),
            r#""tcp, tutorial log, --metrics 127.0.0.1:0""#
        );
    }

    #[test]
    fn the_log_count_leaves_readiness_lines_out_and_stops_when_quiet() {
        let (tx, rx) = std::sync::mpsc::channel();
        for line in [
            "Listening on ('127.0.0.1', 9100) metrics",
            "Got connection from ('127.0.0.1', 40000)",
            "Got connection from ('127.0.0.1', 40001)",
        ] {
            tx.send(line.to_string()).unwrap();
        }
        // The sender stays open: the count ends on the quiet, not on a disconnect.
        assert_eq!(count_log_lines(&rx), 2);
        drop(tx);
    }
}
