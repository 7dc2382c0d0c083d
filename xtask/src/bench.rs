//! `cargo xtask bench`: the README's performance scenarios in one run, as ratios against peers
//! measured in the same run.
//!
//! Every server is started fresh per measurement and waited for through its readiness line.
//! The load is `greet-client bench` (every reply checked byte for byte). Per run we read the
//! server's on-CPU time from `/proc/PID/task/*/schedstat` before and after the load (so start-up
//! is not counted), its user and kernel time from `/proc/PID/stat` (the kernel's share of its
//! CPU) and its peak RSS (`VmHWM`). The C reference, `bench/c-greet` (epoll, compiled
//! with `cc` into `target/bench/`), runs beside greet-server, and `bench/loadgen`, a load
//! generator that shares no code with ours, checks `greet-client bench`'s rate.
//!
//! What runs is data: [`greet_rounds`] (and the echo section's round, [`echo::round`]) lists
//! each scenario's load and the servers it runs against; [`verdict::summarize`] and the
//! targets of [`verdict`] say which medians each README target compares and its bound.
//!
//! The echo section (also alone: `cargo xtask bench echo`, in [`echo`]) measures the engine's
//! own overhead: netcore's `examples/echo.rs` against `bench/mio-echo` (raw mio) and
//! `bench/tokio-echo`, each pinned to one core, loaded by `greet-client bench --echo` on the
//! other.
//!
//! The pairs section (also alone: `cargo xtask bench pairs`, in [`pairs`]) runs netcore's
//! http, redis and proxy examples against their tokio twins under wrk and redis-benchmark.
//!
//! The flood section (also alone: `cargo xtask bench flood`, in [`flood`]) times a small
//! client's echo while two others flood netcore's echo example (`bench/flood_latency.py`).
//!
//! Only when asked: `cargo xtask bench operator` ([`operator`]), what greet-server's access
//! log and metrics cost per connection, and `cargo xtask bench ir` ([`ir`]), instructions and
//! system calls per echo request.
//!
//! What `greet-client bench --json` prints is read as a `BenchReport` (the shared schema,
//! `crates/bench-report`); what this task writes is typed too ([`BenchDoc`]). Scenarios and
//! servers are the enums of [`names`], each name spelt once.

use std::time::Instant;

use anyhow::{bail, Context, Result};
use serde::Serialize;

use measure::{measure, Load, Row, ServerSpec, Tools};
use names::{Scenario, ServerName};
// What the sections in their own modules (pairs, ir) reach as `super::`.
use measure::{build_c, start};
use names::serialize_as_display;
use output::{
    kernel_release, load_average, number, percent, run_section, target_dir, unix_time, write_json,
};
use stats::{median_where, ratio};

mod echo;
pub(crate) mod fleet;
mod flood;
mod idle;
pub(crate) mod ir;
mod loadgen;
mod measure;
mod names;
mod operator;
mod output;
mod pairs;
mod stats;
mod verdict;

/// A scenario as it runs: its load against each of its servers in turn.
struct Measure {
    load: Load,
    servers: Vec<ServerName>,
}

/// Scenarios measured together, `reps` times over; each repetition runs every scenario
/// against every server once, so a disturbance of the shared machine spreads over all.
struct Round {
    reps: usize,
    measures: Vec<Measure>,
}

/// greet-server's scenarios, in the order they run, each against its peers: the C epoll
/// server (`c-greet`) and the tutorial's Python server. `cores`: greet-server's threads
/// where it runs one loop per core.
fn greet_rounds(cores: u16) -> [Round; 3] {
    use ServerName::{CGreet, Greet, Python};
    let pinned = |load: Load| Load {
        pinned: true,
        ..load
    };
    let udp = |load: Load| Load { udp: true, ..load };
    let tcp_pinned = |n| pinned(Load::tcp(Scenario::TcpPinned, n, 64));
    let udp_pinned = pinned(udp(Load::tcp(Scenario::UdpPinned, 200_000, 64)));
    [
        // CPU per operation (the README's CPU targets): server on core 0, load on core 1.
        Round {
            reps: 3,
            measures: vec![
                Measure {
                    load: tcp_pinned(50_000),
                    servers: vec![Greet(1), CGreet(1)],
                },
                Measure {
                    load: udp_pinned,
                    servers: vec![Greet(1), CGreet(1)],
                },
            ],
        },
        // The tutorial's server, once per load: it is the slow baseline.
        Round {
            reps: 1,
            measures: vec![
                Measure {
                    load: tcp_pinned(20_000),
                    servers: vec![Python],
                },
                Measure {
                    load: udp_pinned,
                    servers: vec![Python],
                },
            ],
        },
        // Rates unpinned: one connection at a time, 1000 at once, a two-thread load (the
        // rate target), and the scale target's 10k against 200k connections.
        Round {
            reps: 1,
            measures: vec![
                Measure {
                    load: Load::tcp(Scenario::TcpC1, 5_000, 1),
                    servers: vec![Greet(cores), Python],
                },
                Measure {
                    load: Load {
                        timeout: "2s",
                        duration: "30s",
                        ..Load::tcp(Scenario::TcpC1000, 50_000, 1000)
                    },
                    servers: vec![Greet(cores), Python],
                },
                Measure {
                    load: Load {
                        threads: 2,
                        ..Load::tcp(Scenario::TcpLg2, 50_000, 64)
                    },
                    servers: vec![Greet(2), Greet(1), CGreet(2)],
                },
                Measure {
                    load: Load::tcp(Scenario::Scale10k, 10_000, 64),
                    servers: vec![Greet(1)],
                },
                Measure {
                    load: Load::tcp(Scenario::Scale200k, 200_000, 64),
                    servers: vec![Greet(1)],
                },
            ],
        },
    ]
}

/// Runs `round`, adding a row per measurement to `rows`.
fn run_round(tools: &Tools, round: &Round, rows: &mut Vec<Row>) -> Result<()> {
    for _ in 0..round.reps {
        for m in &round.measures {
            for &server in &m.servers {
                let spec = ServerSpec::of(tools, server, m.load.udp)?;
                rows.push(measure(tools, &spec, &m.load)?);
            }
        }
    }
    Ok(())
}

/// What `target/bench/*.json` holds.
#[derive(Serialize)]
struct BenchDoc {
    date: u64,
    cores: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    kernel: Option<String>,
    /// The 1-minute load average when the run started, before its own load.
    load_average: Option<f64>,
    seconds: f64,
    rows: Vec<Row>,
    #[serde(skip_serializing_if = "Option::is_none")]
    idle_connections: Option<Option<idle::Idle>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    loadgen_check: Option<loadgen::LoadgenCheck>,
    echo: echo::EchoSummary,
    #[serde(skip_serializing_if = "Option::is_none")]
    pairs: Option<pairs::PairsSummary>,
    #[serde(skip_serializing_if = "Option::is_none")]
    flood: Option<flood::FloodSummary>,
    #[serde(skip_serializing_if = "Option::is_none")]
    summary: Option<verdict::Summary>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    verdict: Vec<verdict::Verdict>,
}

/// `section`: `None` for everything; `Some("echo")`, `Some("pairs")`, `Some("flood")`,
/// `Some("operator")` or `Some("ir")` for that section alone (`operator`, about 90 s, and
/// `ir`, instruction counts under callgrind, run only when asked).
pub fn run(section: Option<&str>) -> Result<()> {
    match section {
        None | Some("echo" | "pairs") => {}
        // Builds what it measures itself, and needs none of the rest.
        Some("ir") => return ir::run(&[]),
        Some("operator") => {
            let tools = Tools::build_only(&["greet-server", "greet-client"], false)?;
            let operator = run_section("operator", || operator::section(&tools), operator::print)?;
            return match operator.failures() {
                0 => Ok(()),
                n => bail!("greet-server lost or truncated {n} operations"),
            };
        }
        Some("flood") => {
            flood::build()?;
            let echo = target_dir().join("release").join("examples").join("echo");
            run_section("flood", || flood::section(&echo), flood::print)?;
            return Ok(());
        }
        Some(other) => {
            bail!(
                "unknown bench section {other:?} (known: echo, pairs, operator, flood, ir, fleet)"
            )
        }
    }
    let tools = Tools::build()?;
    measure::raise_fd_limit();
    let load_average = load_average();
    let started = Instant::now();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let seconds = || started.elapsed().as_secs_f64();
    if section == Some("pairs") {
        run_section("pairs", || pairs::section(&tools), pairs::print)?;
        return Ok(());
    }
    let mut rows = Vec::new();
    let mut full = None;
    if section.is_none() {
        for round in greet_rounds(u16::try_from(cores).unwrap_or(u16::MAX)) {
            run_round(&tools, &round, &mut rows)?;
        }
        let idle = match tools.echo {
            Some(_) => Some(idle::idle_connections(&tools, 10_000)?),
            None => None,
        };
        full = Some((idle, loadgen::loadgen_check(&tools)?));
    }
    let first_echo = rows.len();
    run_round(&tools, &echo::round(), &mut rows)?;
    let echo = echo::summary(&rows[first_echo..]);
    let echo_verdict = echo::verdict(&rows);
    let Some((idle, loadgen)) = full else {
        echo::print_table(&echo);
        let doc = BenchDoc {
            date: unix_time(),
            cores,
            kernel: None,
            load_average,
            seconds: seconds(),
            rows,
            idle_connections: None,
            loadgen_check: None,
            echo,
            pairs: None,
            flood: None,
            summary: None,
            verdict: Vec::new(),
        };
        write_json(&doc, "echo")?;
        return echo_verdict;
    };
    // Needs wrk and redis-benchmark: without them the rest of the bench still runs.
    let pairs = match pairs::clients_present() {
        true => Some(pairs::section(&tools)?),
        false => {
            eprintln!("bench: pairs section skipped: no wrk, redis-benchmark or redis-cli (apt-get install wrk redis-tools)");
            None
        }
    };
    // netcore's echo example under a flood: needs only python3, as the tutorial's server.
    let flood = match &tools.echo {
        Some(echo) => Some(flood::section(echo)?),
        None => None,
    };
    let summary = verdict::summarize(&rows, idle.as_ref(), &loadgen, &echo);
    print_table(&rows);
    echo::print_table(&echo);
    if let Some(pairs) = &pairs {
        pairs::print(pairs);
    }
    if let Some(flood) = &flood {
        flood::print(flood);
    }
    println!(
        "\n{}",
        serde_json::to_string(&summary).context("encode the summary")?
    );
    let ours_failed = summary.greet_server_failures;
    let doc = BenchDoc {
        date: unix_time(),
        cores,
        kernel: kernel_release(),
        load_average,
        seconds: seconds(),
        rows,
        idle_connections: Some(idle),
        loadgen_check: Some(loadgen),
        echo,
        verdict: verdict::verdicts(&summary, pairs.as_ref()),
        pairs,
        flood,
        summary: Some(summary),
    };
    write_json(&doc, "bench")?;
    // A miss is reported, not an error: the figures move with the machine's load.
    println!("\nverdict (target, measured median, pass|miss):");
    for line in &doc.verdict {
        println!("  {line}");
    }
    echo_verdict?;
    if ours_failed > 0 {
        bail!("greet-server lost or truncated {ours_failed} operations");
    }
    Ok(())
}

fn print_table(rows: &[Row]) {
    println!(
        "\n| scenario | server | ok | failures | rate/s | p50 us | p99 us | max us | server CPU us/op | kernel share | peak RSS kB |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for r in rows {
        let l = &r.load;
        // No latency when nothing succeeded.
        let [p50, p99, max] = l.latency_us.map_or([None; 3], |l| {
            [l.p50, l.p99, l.max].map(|us| Some(f64::from(us)))
        });
        println!(
            "| {} | {} | {} | {} | {:.0} | {} | {} | {} | {:.1} | {:.0}% | {} |",
            r.scenario,
            r.server,
            l.ok,
            l.failures(),
            l.rate,
            number(p50, 0),
            number(p99, 0),
            number(max, 0),
            r.server_cpu_us_per_op,
            r.kernel_share * 100.0,
            r.server_peak_rss_kb
        );
    }
}
