//! The pairs section (also alone: `cargo xtask bench pairs`): netcore's `http`, `redis` and
//! `proxy` examples against their tokio twins (`bench/tokio-http`, `tokio-redis`,
//! `tokio-proxy`) under real clients, wrk and redis-benchmark.
//!
//! Each server is started fresh per measurement and pinned to core 0, the client to core 1;
//! netcore and tokio alternate, [`REPS`] of each per workload. The figure compared is the
//! server's on-CPU time during the client's run divided by the requests the client reports
//! completed; the proxy's backend (netcore's `http` example, one for the whole workload, on
//! the client's core) is not counted.

use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};
use proc_harness::Process;
use serde::Serialize;

use super::measure::CpuMeter;
use super::{
    median_where, number, percent, ratio, serialize_as_display, start, ServerName, ServerSpec,
    Tools,
};
use crate::root;

/// What netcore is held to: server CPU per request at most this many times tokio's.
const TARGET: f64 = 0.95;
/// Measurements of each server per workload.
pub(super) const REPS: usize = 5;
/// Connections every client keeps open.
const CONNECTIONS: u32 = 50;
/// How long each wrk run lasts.
const WRK_DURATION: &str = "2s";
/// Requests per redis-benchmark test; each run has two tests, SET then GET.
const REDIS_REQUESTS: u64 = 100_000;
const REDIS_TESTS: [&str; 2] = ["SET", "GET"];
/// Requests per write in the pipelined workloads.
const PIPELINE: u32 = 16;
/// Bound on every client run, in seconds (`timeout`, then SIGKILL 5 s later): a 2 s wrk run
/// or 200k Redis requests take a few seconds against a working server.
const CLIENT_TIMEOUT: &str = "60";

/// A workload: one client command against one pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Workload {
    Http,
    HttpPipelined,
    Redis,
    RedisPipelined,
    /// wrk through the proxy to netcore's `http` example.
    Proxy,
}

impl Workload {
    const ALL: [Workload; 5] = [
        Workload::Http,
        Workload::HttpPipelined,
        Workload::Redis,
        Workload::RedisPipelined,
        Workload::Proxy,
    ];

    /// The netcore example under test; its twin is `tokio-` followed by the same name.
    fn example(self) -> &'static str {
        match self {
            Workload::Http | Workload::HttpPipelined => "http",
            Workload::Redis | Workload::RedisPipelined => "redis",
            Workload::Proxy => "proxy",
        }
    }
}

impl fmt::Display for Workload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Workload::Http => f.write_str("http"),
            Workload::HttpPipelined => write!(f, "http pipelined x{PIPELINE}"),
            Workload::Redis => f.write_str("redis get,set"),
            Workload::RedisPipelined => write!(f, "redis get,set pipelined x{PIPELINE}"),
            Workload::Proxy => f.write_str("proxy (http behind it)"),
        }
    }
}

/// The two sides of a pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Engine {
    Netcore,
    Tokio,
}

impl fmt::Display for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Engine::Netcore => "netcore",
            Engine::Tokio => "tokio",
        })
    }
}

serialize_as_display!(Workload, Engine);

/// One measurement.
#[derive(Serialize)]
struct Run {
    workload: Workload,
    engine: Engine,
    requests: u64,
    /// The client's own figure, requests per second.
    rate: f64,
    server_cpu_us: f64,
    server_cpu_us_per_req: f64,
    /// The kernel's share of the server's CPU time (`stime / (utime + stime)` of
    /// `/proc/PID/stat`, in clock ticks).
    kernel_share: f64,
    /// wrk's socket errors and non-2xx responses (redis-benchmark stops at its first error).
    errors: u64,
}

/// What the section found, under `"pairs"` in the full bench's JSON (alone:
/// `target/bench/pairs-latest.json`).
#[derive(Serialize)]
pub(super) struct PairsSummary {
    repetitions: usize,
    /// The target, netcore's CPU per request over tokio's.
    target_ratio: f64,
    workloads: Vec<WorkloadSummary>,
    lines_of_code: Vec<PairLoc>,
    runs: Vec<Run>,
}

impl PairsSummary {
    /// netcore's worst CPU per request over tokio's across the workloads.
    pub(super) fn worst_ratio(&self) -> Option<f64> {
        self.workloads
            .iter()
            .filter_map(|w| w.cpu_per_req_vs_tokio)
            .reduce(f64::max)
    }
}

#[derive(Serialize)]
struct WorkloadSummary {
    workload: Workload,
    /// The client command, `ADDR` and `PORT` standing for the server's.
    client: String,
    server_cpu_us_per_req: PerEngine,
    /// The kernel's share of each server's CPU time: what neither engine's code can save.
    kernel_share: PerEngine,
    rate: PerEngine,
    cpu_per_req_vs_tokio: Option<f64>,
    verdict: Verdict,
    errors: u64,
}

/// Medians, one per side.
#[derive(Serialize)]
struct PerEngine {
    netcore: Option<f64>,
    tokio: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum Verdict {
    Pass,
    Miss,
    /// A side has no measurement.
    Unmeasured,
}

#[derive(Serialize)]
struct PairLoc {
    example: &'static str,
    netcore_file: String,
    netcore_lines: usize,
    tokio_file: String,
    tokio_lines: usize,
}

/// Whether wrk, redis-benchmark and redis-cli are all on `PATH`.
pub(super) fn clients_present() -> bool {
    ["wrk", "redis-benchmark", "redis-cli"]
        .iter()
        .all(|name| on_path(name))
}

/// Runs every workload [`REPS`] times per side; the release build must be done.
pub(super) fn section(tools: &Tools) -> Result<PairsSummary> {
    if !clients_present() {
        bail!("the pairs section needs wrk, redis-benchmark and redis-cli (apt-get install wrk redis-tools)");
    }
    let mut runs = Vec::new();
    for workload in Workload::ALL {
        // The proxy's backend: one for all of the workload's measurements, beside the client.
        let backend = match workload {
            Workload::Proxy => Some(start(
                &spec(tools, Engine::Netcore, "http", None)?,
                Some(1),
                tools.taskset,
            )?),
            _ => None,
        };
        let target = backend
            .as_ref()
            .map(|(_, port)| SocketAddr::from(([127, 0, 0, 1], *port)));
        for _ in 0..REPS {
            for engine in [Engine::Netcore, Engine::Tokio] {
                let server = spec(tools, engine, workload.example(), target)?;
                runs.push(measure(tools, &server, workload, engine)?);
            }
        }
        if let Some((backend, _)) = backend {
            backend.kill();
        }
    }
    Ok(PairsSummary {
        repetitions: REPS,
        target_ratio: TARGET,
        workloads: Workload::ALL.map(|w| summarize(w, &runs)).into(),
        lines_of_code: lines_of_code_of_pairs()?,
        runs,
    })
}

/// The table, a verdict per workload, and the lines of code of each pair.
pub(super) fn print(pairs: &PairsSummary) {
    println!(
        "\n| workload | CPU us/req netcore | tokio | netcore/tokio (<= {TARGET}x) | kernel share netcore / tokio | req/s netcore | req/s tokio | errors |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for w in &pairs.workloads {
        println!(
            "| {} | {} | {} | {}x | {}% / {}% | {} | {} | {} |",
            w.workload,
            number(w.server_cpu_us_per_req.netcore, 2),
            number(w.server_cpu_us_per_req.tokio, 2),
            number(w.cpu_per_req_vs_tokio, 2),
            percent(w.kernel_share.netcore),
            percent(w.kernel_share.tokio),
            number(w.rate.netcore, 0),
            number(w.rate.tokio, 0),
            w.errors,
        );
    }
    println!();
    for w in &pairs.workloads {
        let verdict = match w.verdict {
            Verdict::Pass => "pass",
            Verdict::Miss => "miss",
            Verdict::Unmeasured => "unmeasured",
        };
        println!(
            "pairs: {}: netcore {}x tokio's CPU per request (target at most {TARGET}x): {verdict}",
            w.workload,
            number(w.cpu_per_req_vs_tokio, 2)
        );
    }
    println!("\n| pair | netcore example | lines | tokio twin | lines |");
    println!("|---|---|---|---|---|");
    for l in &pairs.lines_of_code {
        println!(
            "| {} | {} | {} | {} | {} |",
            l.example, l.netcore_file, l.netcore_lines, l.tokio_file, l.tokio_lines
        );
    }
}

/// netcore's example `name`, or its tokio twin; `target` is the proxy's.
fn spec(
    tools: &Tools,
    engine: Engine,
    name: &'static str,
    target: Option<SocketAddr>,
) -> Result<ServerSpec> {
    let server = match engine {
        Engine::Netcore => ServerName::NetcoreExample(name),
        Engine::Tokio => ServerName::TokioTwin(name),
    };
    let mut spec = ServerSpec::of(tools, server, false)?;
    spec.argv.extend(target.map(|t| t.to_string()));
    Ok(spec)
}

fn measure(tools: &Tools, spec: &ServerSpec, workload: Workload, engine: Engine) -> Result<Run> {
    let (server, port) = start(spec, Some(0), tools.taskset)?;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    if matches!(workload, Workload::Redis | Workload::RedisPipelined) {
        // redis-benchmark spins until its timeout on a server it cannot reach: ask first.
        ping(&server, port)?;
    }
    let meter = CpuMeter::start(&server);
    let report = run_client(workload, addr, tools.taskset);
    let cpu = meter.stop(&server);
    server.kill();
    let report = report.with_context(|| format!("{workload} against {}", spec.name))?;
    let cpu_us = cpu.on_cpu.as_secs_f64() * 1e6;
    let run = Run {
        workload,
        engine,
        requests: report.requests,
        rate: report.rate,
        server_cpu_us: cpu_us,
        server_cpu_us_per_req: cpu_us / report.requests.max(1) as f64,
        kernel_share: cpu.kernel_share(),
        errors: report.errors,
    };
    eprintln!(
        "bench: {:<34} {:<12} {:>9.0}/s  cpu {:>5.2} us/req ({:.0}% kernel)  requests {:>8}  errors {}",
        run.workload.to_string(),
        spec.name.to_string(),
        run.rate,
        run.server_cpu_us_per_req,
        run.kernel_share * 100.0,
        run.requests,
        run.errors
    );
    Ok(run)
}

fn ping(server: &Process, port: u16) -> Result<()> {
    let out = Command::new("timeout")
        .args(["-k", "5", "10", "redis-cli", "-h", "127.0.0.1", "-p"])
        .arg(port.to_string())
        .arg("PING")
        .output()
        .context("run redis-cli")?;
    let reply = String::from_utf8_lossy(&out.stdout);
    if reply.trim() != "PONG" {
        bail!("{}: PING answered {:?}", server.name(), reply.trim());
    }
    Ok(())
}

/// What a client reports.
#[derive(Debug, PartialEq)]
struct ClientReport {
    requests: u64,
    rate: f64,
    errors: u64,
}

/// The client's argument list against `host` and `port`, run in the workspace root.
fn client_argv(workload: Workload, host: &str, port: &str) -> Vec<String> {
    let wrk = |pipelined: bool| {
        let mut argv = vec![
            "wrk".to_string(),
            "-t1".into(),
            format!("-c{CONNECTIONS}"),
            format!("-d{WRK_DURATION}"),
        ];
        if pipelined {
            argv.extend(["-s".into(), "bench/wrk-pipeline.lua".into()]);
        }
        argv.push(format!("http://{host}:{port}/"));
        if pipelined {
            argv.extend(["--".into(), PIPELINE.to_string()]);
        }
        argv
    };
    let redis = |pipelined: bool| {
        let mut argv: Vec<String> = ["redis-benchmark", "-h", host, "-p", port, "-t", "get,set"]
            .into_iter()
            .map(String::from)
            .chain([
                "-n".into(),
                REDIS_REQUESTS.to_string(),
                "-c".into(),
                CONNECTIONS.to_string(),
                "-q".into(),
            ])
            .collect();
        if pipelined {
            argv.extend(["-P".into(), PIPELINE.to_string()]);
        }
        argv
    };
    match workload {
        Workload::Http | Workload::Proxy => wrk(false),
        Workload::HttpPipelined => wrk(true),
        Workload::Redis => redis(false),
        Workload::RedisPipelined => redis(true),
    }
}

/// The client, under `timeout` (pinned to core 1 when `taskset` is there), and its report.
fn run_client(workload: Workload, addr: SocketAddr, taskset: bool) -> Result<ClientReport> {
    let argv = client_argv(workload, &addr.ip().to_string(), &addr.port().to_string());
    let mut cmd = Command::new("timeout");
    cmd.args(["-k", "5", CLIENT_TIMEOUT]);
    if taskset {
        cmd.args(["taskset", "-c", "1"]);
    }
    let out = cmd
        .args(&argv)
        .current_dir(root())
        .output()
        .with_context(|| format!("run {}", argv[0]))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!(
            "{} exited with {} (124: timed out): {}{}",
            argv[0],
            out.status,
            stdout.trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    match workload {
        Workload::Redis | Workload::RedisPipelined => parse_redis_benchmark(&stdout),
        _ => parse_wrk(&stdout),
    }
}

/// wrk's report: `N requests in 2.00s, ...`, `Requests/sec: R`, and the error lines it
/// prints only when there is something to count.
fn parse_wrk(out: &str) -> Result<ClientReport> {
    let mut requests = None;
    let mut rate = None;
    let mut errors = 0;
    for line in out.lines().map(str::trim) {
        if let Some((n, _)) = line.split_once(" requests in ") {
            requests = n.parse().ok();
        } else if let Some(r) = line.strip_prefix("Requests/sec:") {
            rate = r.trim().parse().ok();
        } else if let Some(list) = line.strip_prefix("Socket errors:") {
            // `connect 0, read 0, write 0, timeout 0`
            errors += list
                .split(',')
                .filter_map(|kind| kind.split_whitespace().nth(1)?.parse::<u64>().ok())
                .sum::<u64>();
        } else if let Some(n) = line.strip_prefix("Non-2xx or 3xx responses:") {
            errors += n.trim().parse::<u64>().unwrap_or(0);
        }
    }
    match (requests, rate) {
        (Some(requests), Some(rate)) if requests > 0 => Ok(ClientReport {
            requests,
            rate,
            errors,
        }),
        _ => bail!("wrk reported no completed request: {out}"),
    }
}

/// redis-benchmark -q's figures, one `TEST: R requests per second, ...` per test among its
/// progress lines (ended by carriage returns). Requests: every test's `-n`; rate: all of
/// them over the time the tests took together.
fn parse_redis_benchmark(out: &str) -> Result<ClientReport> {
    if out.contains("Error from server") {
        bail!("redis-benchmark got an error reply: {out}");
    }
    let rate_of = |test: &str| -> Option<f64> {
        out.split(['\r', '\n']).find_map(|line| {
            let rest = line.trim().strip_prefix(test)?.strip_prefix(": ")?;
            rest.split_once(" requests per second")?.0.parse().ok()
        })
    };
    let mut seconds = 0.0;
    for test in REDIS_TESTS {
        match rate_of(test) {
            Some(rate) if rate > 0.0 => seconds += REDIS_REQUESTS as f64 / rate,
            _ => bail!("redis-benchmark printed no figure for {test}: {out}"),
        }
    }
    let requests = REDIS_REQUESTS * REDIS_TESTS.len() as u64;
    Ok(ClientReport {
        requests,
        rate: requests as f64 / seconds,
        errors: 0,
    })
}

fn summarize(workload: Workload, runs: &[Run]) -> WorkloadSummary {
    let of = |engine: Engine, f: fn(&Run) -> f64| {
        median_where(runs, |r| r.workload == workload && r.engine == engine, f)
    };
    let cpu = |engine| of(engine, |r| r.server_cpu_us_per_req);
    let rate = |engine| of(engine, |r| r.rate);
    let kernel = |engine| of(engine, |r| r.kernel_share);
    let vs_tokio = ratio(cpu(Engine::Netcore), cpu(Engine::Tokio));
    WorkloadSummary {
        workload,
        client: client_argv(workload, "127.0.0.1", "PORT").join(" "),
        server_cpu_us_per_req: PerEngine {
            netcore: cpu(Engine::Netcore),
            tokio: cpu(Engine::Tokio),
        },
        kernel_share: PerEngine {
            netcore: kernel(Engine::Netcore),
            tokio: kernel(Engine::Tokio),
        },
        rate: PerEngine {
            netcore: rate(Engine::Netcore),
            tokio: rate(Engine::Tokio),
        },
        cpu_per_req_vs_tokio: vs_tokio,
        verdict: match vs_tokio {
            Some(r) if r <= TARGET => Verdict::Pass,
            Some(_) => Verdict::Miss,
            None => Verdict::Unmeasured,
        },
        errors: runs
            .iter()
            .filter(|r| r.workload == workload)
            .map(|r| r.errors)
            .sum(),
    }
}

/// Each pair's source files, counted as `bench/loc.sh` counts them.
fn lines_of_code_of_pairs() -> Result<Vec<PairLoc>> {
    // connect_proxy has no workload here (its target would be the proxy's backend, measured
    // already); its lines are counted with the others.
    ["http", "redis", "proxy", "connect_proxy"]
        .into_iter()
        .map(|example| {
            let netcore_file = format!("crates/netcore/examples/{example}.rs");
            let tokio_file = format!("bench/tokio-{}/src/main.rs", example.replace('_', "-"));
            Ok(PairLoc {
                example,
                netcore_lines: lines_of_code(&read(&netcore_file)?),
                tokio_lines: lines_of_code(&read(&tokio_file)?),
                netcore_file,
                tokio_file,
            })
        })
        .collect()
}

fn read(relative: &str) -> Result<String> {
    let path = root().join(relative);
    std::fs::read_to_string(&path).with_context(|| format!("read {}", path.display()))
}

/// Lines that are not blank and do not start with `//` once their leading blanks are
/// trimmed: comments and doc comments are not code (`bench/loc.sh`).
fn lines_of_code(text: &str) -> usize {
    text.lines()
        .map(|line| line.trim_start_matches([' ', '\t']))
        .filter(|line| !line.is_empty() && !line.starts_with("//"))
        .count()
}

fn on_path(name: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|paths| {
        std::env::split_paths(&paths).any(|dir| is_executable(&dir.join(name)))
    })
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The README's target for the examples: none longer than its tokio twin + 10%.
    #[test]
    fn every_example_is_no_longer_than_its_tokio_twin_plus_ten_percent() {
        for pair in lines_of_code_of_pairs().unwrap() {
            assert!(
                pair.netcore_lines * 10 <= pair.tokio_lines * 11,
                "{} is {} lines, its tokio twin {} ({})",
                pair.netcore_file,
                pair.netcore_lines,
                pair.tokio_lines,
                pair.tokio_file
            );
        }
    }

    /// wrk 4.1.0's report of a run against netcore's http example.
    const WRK: &str = "Running 2s test @ http://127.0.0.1:37923/
  1 threads and 50 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   475.80us    1.74ms  32.63ms   97.30%
    Req/Sec   108.93k    34.34k  152.71k    57.14%
  227738 requests in 2.11s, 16.94MB read
Requests/sec: 107973.02
Transfer/sec:      8.03MB
";

    #[test]
    fn wrk_report_gives_requests_rate_and_errors() {
        assert_eq!(
            parse_wrk(WRK).unwrap(),
            ClientReport {
                requests: 227_738,
                rate: 107_973.02,
                errors: 0
            }
        );
        let faulty = WRK.replace(
            "Requests/sec",
            "  Socket errors: connect 0, read 12, write 1, timeout 3\n  Non-2xx or 3xx responses: 5\nRequests/sec",
        );
        assert_eq!(parse_wrk(&faulty).unwrap().errors, 21);
        let none = WRK.replace("227738 requests", "0 requests");
        assert!(parse_wrk(&none).is_err());
        assert!(parse_wrk("unable to connect to 127.0.0.1:1 Connection refused").is_err());
    }

    /// redis-benchmark 7.0's `-q` output: progress lines ended by a carriage return, then a
    /// figure per test.
    const REDIS_BENCHMARK: &str = " \rSET: rps=97800.8 (overall: 97800.8) avg_msec=0.282 (overall: 0.282)\r                                    \rSET: 90826.52 requests per second, p50=0.271 msec\n \rGET: rps=55820.0 (overall: 69119.9) avg_msec=0.578 (overall: 0.443)\r                    \rGET: 66137.57 requests per second, p50=0.431 msec\n\n";

    #[test]
    fn redis_benchmark_report_counts_every_test() {
        let report = parse_redis_benchmark(REDIS_BENCHMARK).unwrap();
        assert_eq!(report.requests, 200_000);
        // 100k at each rate, one after the other.
        let seconds = 100_000.0 / 90_826.52 + 100_000.0 / 66_137.57;
        assert!(
            (report.rate - 200_000.0 / seconds).abs() < 0.01,
            "{report:?}"
        );
        let without_get = REDIS_BENCHMARK.replace("GET: 66137.57", "GET: rps=1");
        assert!(parse_redis_benchmark(&without_get).is_err());
        let error = format!("{REDIS_BENCHMARK}Error from server: ERR unknown command\n");
        assert!(parse_redis_benchmark(&error).is_err());
    }

    #[test]
    fn lines_of_code_skip_blank_and_comment_lines_as_loc_sh_does() {
        let text = "//! crate doc\n\nfn main() {\n    // why\n\t/// doc\n    let a = 1; // trailing\n   \n}\n";
        assert_eq!(lines_of_code(text), 3);
    }

    #[test]
    fn client_commands_are_the_documented_ones() {
        let shown = |w| client_argv(w, "127.0.0.1", "PORT").join(" ");
        assert_eq!(
            shown(Workload::Http),
            "wrk -t1 -c50 -d2s http://127.0.0.1:PORT/"
        );
        assert_eq!(
            shown(Workload::HttpPipelined),
            "wrk -t1 -c50 -d2s -s bench/wrk-pipeline.lua http://127.0.0.1:PORT/ -- 16"
        );
        assert_eq!(
            shown(Workload::RedisPipelined),
            "redis-benchmark -h 127.0.0.1 -p PORT -t get,set -n 100000 -c 50 -q -P 16"
        );
        let names: Vec<String> = Workload::ALL.iter().map(ToString::to_string).collect();
        assert_eq!(
            names,
            [
                "http",
                "http pipelined x16",
                "redis get,set",
                "redis get,set pipelined x16",
                "proxy (http behind it)"
            ]
        );
        assert_eq!(ServerName::TokioTwin("redis").to_string(), "tokio-redis");
        assert_eq!(serde_json::to_string(&Verdict::Miss).unwrap(), r#""miss""#);
    }
}
