//! `cargo xtask bench`: the README's performance scenarios in one run, as ratios against peers
//! measured in the same run.
//!
//! Every server is started fresh per measurement and waited for through its readiness line.
//! The load is `greet-client bench` (every reply checked byte for byte). Per run we read the
//! server's on-CPU time from `/proc/PID/task/*/schedstat` before and after the load (so start-up
//! is not counted) and its peak RSS (`VmHWM`). The C reference, `bench/c-greet` (epoll, compiled
//! with `cc` into `target/bench/`), runs beside greet-server, and `bench/loadgen`, a load
//! generator that shares no code with ours, checks `greet-client bench`'s rate.
//!
//! The echo section (also alone: `cargo xtask bench echo`) measures the engine's own overhead:
//! netcore's `examples/echo.rs` against `bench/mio-echo` (raw mio) and `bench/tokio-echo`, each
//! pinned to one core, loaded by `greet-client bench --echo` on the other.
//!
//! The pairs section (also alone: `cargo xtask bench pairs`, in [`pairs`]) runs netcore's
//! http, redis and proxy examples against their tokio twins under wrk and redis-benchmark.

//! What `greet-client bench --json` prints is read as a [`BenchReport`] (the shared schema,
//! `crates/bench-report`); what this task writes is typed too ([`BenchDoc`]). Scenarios and
//! servers are the enums [`Scenario`] and [`ServerName`], each name spelt once.

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bench_report::BenchReport;
use proc_harness::{Process, Stderr};
use serde::{Deserialize, Serialize, Serializer};

use crate::{cargo, root, run_step};

pub(crate) mod ir;
mod pairs;

/// A measured load, named once: its name is its `Display`, in tables and JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scenario {
    /// 64 connections in flight, server on core 0, load on core 1: CPU per connection.
    TcpPinned,
    /// 64 requests in flight over UDP, pinned the same way.
    UdpPinned,
    /// One connection at a time.
    TcpC1,
    /// 1000 connections in flight.
    TcpC1000,
    /// Rate with a two-thread load generator, unpinned.
    TcpLg2,
    /// 10k connections, for the scale ratio.
    Scale10k,
    /// 200k connections.
    Scale200k,
    /// Echo: connections at once, message size.
    Echo { connections: u32, size: u32 },
    /// The load run beside the independent load generator.
    LoadgenCheck,
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scenario::TcpPinned => f.write_str("tcp c=64 pinned"),
            Scenario::UdpPinned => f.write_str("udp c=64 pinned"),
            Scenario::TcpC1 => f.write_str("tcp c=1"),
            Scenario::TcpC1000 => f.write_str("tcp c=1000"),
            Scenario::TcpLg2 => f.write_str("tcp unpinned lg2"),
            Scenario::Scale10k => f.write_str("scale 10k"),
            Scenario::Scale200k => f.write_str("scale 200k"),
            Scenario::Echo { connections, size } if size % 1024 == 0 => {
                write!(f, "echo c={connections} {} KiB", size / 1024)
            }
            Scenario::Echo { connections, size } => write!(f, "echo c={connections} {size} B"),
            Scenario::LoadgenCheck => f.write_str("loadgen check"),
        }
    }
}

/// A server under test, named once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ServerName {
    /// greet-server with this many threads.
    Greet(u16),
    /// The tutorial's Python server, `bench/seed_server.py`.
    Python,
    /// `bench/c-greet`, the C epoll server, with this many threads.
    CGreet(u16),
    /// netcore's `examples/echo.rs`.
    NetcoreEcho,
    /// `bench/mio-echo`.
    MioEcho,
    /// `bench/tokio-echo`.
    TokioEcho,
    /// netcore's example of this name (`http`, `redis`, `proxy`).
    NetcoreExample(&'static str),
    /// Its twin on tokio, `bench/tokio-NAME`.
    TokioTwin(&'static str),
}

impl fmt::Display for ServerName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServerName::Greet(threads) => write!(f, "greet-server/{threads}"),
            ServerName::Python => f.write_str("python-tutorial"),
            ServerName::CGreet(threads) => write!(f, "c-greet/{threads}"),
            ServerName::NetcoreEcho => f.write_str("netcore-echo"),
            ServerName::MioEcho => f.write_str("mio-echo"),
            ServerName::TokioEcho => f.write_str("tokio-echo"),
            ServerName::NetcoreExample(name) => write!(f, "netcore-{name}"),
            ServerName::TokioTwin(name) => write!(f, "tokio-{name}"),
        }
    }
}

/// Names are written as their `Display` (paths in full: [`pairs`] uses it too).
macro_rules! serialize_as_display {
    ($($t:ty),*) => {$(
        impl serde::Serialize for $t {
            fn serialize<S: serde::Serializer>(
                &self,
                s: S,
            ) -> std::result::Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
    )*};
}
use serialize_as_display;
serialize_as_display!(Scenario, ServerName);

/// One server under test.
#[derive(Clone)]
struct ServerSpec {
    name: ServerName,
    argv: Vec<String>,
}

/// One load: what `greet-client bench` is asked to do.
#[derive(Clone)]
struct Load {
    scenario: Scenario,
    udp: bool,
    /// Echo: the message size; the connections (`c` of them) repeat requests until the
    /// load's duration ends.
    echo: Option<u32>,
    n: u64,
    c: u32,
    threads: u16,
    pinned: bool,
    timeout: &'static str,
    duration: &'static str,
}

/// One measurement, as written to the JSON document.
#[derive(Serialize)]
struct Row {
    scenario: Scenario,
    server: ServerName,
    load: BenchReport,
    server_cpu_us_per_op: f64,
    server_peak_rss_kb: u64,
}

/// What `target/bench/*.json` holds.
#[derive(Serialize)]
struct BenchDoc {
    date: u64,
    cores: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    kernel: Option<String>,
    seconds: f64,
    rows: Vec<Row>,
    #[serde(skip_serializing_if = "Option::is_none")]
    idle_connections: Option<Option<Idle>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    loadgen_check: Option<LoadgenCheck>,
    echo: EchoSummary,
    #[serde(skip_serializing_if = "Option::is_none")]
    pairs: Option<pairs::PairsSummary>,
    #[serde(skip_serializing_if = "Option::is_none")]
    summary: Option<Summary>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    verdict: Vec<Verdict>,
}

/// How a README target compares its figure with the limit.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
enum Bound {
    AtMost(f64),
    AtLeast(f64),
    /// A ratio within this fraction of 1.0, either way.
    Within(f64),
}

impl Bound {
    fn holds(self, value: f64) -> bool {
        match self {
            Bound::AtMost(limit) => value <= limit,
            Bound::AtLeast(limit) => value >= limit,
            Bound::Within(fraction) => (value - 1.0).abs() <= fraction,
        }
    }
}

/// What a verdict's figure is, for printing it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
enum Unit {
    Ratio,
    KiloBytes,
    Count,
}

/// One README target, the figure this run measured for it (a ratio of medians, or a
/// count), and whether it is met. A target with nothing measured is a miss.
#[derive(Debug, Serialize)]
struct Verdict {
    target: &'static str,
    bound: Bound,
    unit: Unit,
    measured: Option<f64>,
    pass: bool,
}

impl Verdict {
    fn new(target: &'static str, bound: Bound, unit: Unit, measured: Option<f64>) -> Verdict {
        Verdict {
            target,
            bound,
            unit,
            measured,
            pass: measured.is_some_and(|v| bound.holds(v)),
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let measured = match (self.measured, self.unit) {
            (None, _) => "not measured".to_string(),
            (Some(v), Unit::Ratio) => format!("{v:.2}x"),
            (Some(v), Unit::KiloBytes) => format!("{v:.0} kB"),
            (Some(v), Unit::Count) => format!("{v:.0}"),
        };
        let outcome = if self.pass { "pass" } else { "miss" };
        write!(f, "{}, {measured}, {outcome}", self.target)
    }
}

/// The README's targets against this run's figures, in the README's order; the pairs
/// target only when that section ran.
fn verdicts(summary: &Summary, pairs: Option<&pairs::PairsSummary>) -> Vec<Verdict> {
    let mut out = vec![
        Verdict::new(
            "TCP greeting, server CPU per connection vs C (<= 1.0x)",
            Bound::AtMost(1.0),
            Unit::Ratio,
            summary.tcp_cpu_per_conn_vs_c,
        ),
        Verdict::new(
            "UDP greeting, server CPU per request vs C (<= 1.0x)",
            Bound::AtMost(1.0),
            Unit::Ratio,
            summary.udp_cpu_per_req_vs_c,
        ),
        Verdict::new(
            "greet-server peak RSS (<= 2 MB = 2048 kB)",
            Bound::AtMost(2048.0),
            Unit::KiloBytes,
            summary.peak_rss_kb.map(|kb| kb as f64),
        ),
        Verdict::new(
            "TCP rate, two-thread load, vs C (>= 1.0x)",
            Bound::AtLeast(1.0),
            Unit::Ratio,
            summary.tcp_rate_lg2_vs_c,
        ),
        Verdict::new(
            "greet-server connections hung or truncated (= 0)",
            Bound::AtMost(0.0),
            Unit::Count,
            Some(summary.greet_server_failures as f64),
        ),
        Verdict::new(
            "rate at 200k vs 10k connections (within 10%)",
            Bound::Within(0.10),
            Unit::Ratio,
            summary.scale_rate_200k_vs_10k,
        ),
        Verdict::new(
            "greet-client bench vs bench/loadgen (>= 0.95x)",
            Bound::AtLeast(0.95),
            Unit::Ratio,
            summary.greet_client_vs_loadgen,
        ),
        Verdict::new(
            "echo, CPU per request vs raw mio, worst load (<= 1.0x)",
            Bound::AtMost(1.0),
            Unit::Ratio,
            summary.echo_cpu_per_req_vs_mio_max,
        ),
        Verdict::new(
            "echo, CPU per request vs tokio, worst load (<= 0.85x)",
            Bound::AtMost(0.85),
            Unit::Ratio,
            summary.echo_cpu_per_req_vs_tokio_max,
        ),
    ];
    if let Some(pairs) = pairs {
        out.push(Verdict::new(
            "pairs, CPU per request vs tokio, worst workload (<= 0.95x)",
            Bound::AtMost(0.95),
            Unit::Ratio,
            pairs.worst_ratio(),
        ));
    }
    out
}

/// RSS per idle connection.
#[derive(Serialize)]
struct Idle {
    connections: usize,
    rss_before_kb: u64,
    rss_after_kb: u64,
    bytes_per_connection: f64,
}

/// The independent load generator against ours.
#[derive(Serialize)]
struct LoadgenCheck {
    loadgen_rate: f64,
    greet_client_rate: f64,
    ratio: f64,
}

/// What `bench/loadgen` prints (the part read here).
#[derive(Deserialize)]
struct LoadgenOutput {
    conns: u64,
    ok: u64,
    conn_per_s: f64,
}

/// The README's performance targets, as ratios measured in this run.
#[derive(Serialize)]
struct Summary {
    tcp_cpu_per_conn_vs_c: Option<f64>,
    udp_cpu_per_req_vs_c: Option<f64>,
    tcp_cpu_per_conn_vs_python: Option<f64>,
    tcp_rate_lg2_vs_c: Option<f64>,
    peak_rss_kb: Option<u64>,
    greet_server_failures: u64,
    scale_rate_200k_vs_10k: Option<f64>,
    idle_bytes_per_connection: Option<f64>,
    greet_client_vs_loadgen: Option<f64>,
    echo_cpu_per_req_vs_mio_max: Option<f64>,
    echo_cpu_per_req_vs_tokio_max: Option<f64>,
    echo_wrong_bytes: u64,
}

/// The echo section: per load, medians and netcore's ratios to the peers.
#[derive(Serialize)]
struct EchoSummary {
    repetitions: usize,
    duration: &'static str,
    loads: Vec<EchoLoadSummary>,
    cpu_per_req_vs_mio_max: Option<f64>,
    cpu_per_req_vs_tokio_max: Option<f64>,
    wrong_bytes: u64,
}

#[derive(Serialize)]
struct EchoLoadSummary {
    scenario: Scenario,
    connections: u32,
    size: u32,
    rate: PerEchoServer,
    server_cpu_us_per_req: PerEchoServer,
    cpu_per_req_vs_mio: Option<f64>,
    cpu_per_req_vs_tokio: Option<f64>,
    wrong_bytes: u64,
    failures: u64,
}

/// One figure per echo server, in [`ECHO_SERVERS`]' order; written as
/// `{"netcore-echo": .., "mio-echo": .., "tokio-echo": ..}`.
struct PerEchoServer([Option<f64>; 3]);

impl Serialize for PerEchoServer {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(Some(ECHO_SERVERS.len()))?;
        for (name, value) in ECHO_SERVERS.iter().zip(&self.0) {
            map.serialize_entry(&name.to_string(), value)?;
        }
        map.end()
    }
}

struct Tools {
    server: PathBuf,
    client: PathBuf,
    echo: Option<PathBuf>,
    /// The echo peers, `bench/mio-echo` and `bench/tokio-echo`.
    mio_echo: PathBuf,
    tokio_echo: PathBuf,
    python: PathBuf,
    /// The C reference server and the independent load generator.
    c_greet: PathBuf,
    loadgen: PathBuf,
    taskset: bool,
}

/// A section run alone.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Section {
    Echo,
    Pairs,
    Ir,
}

/// `section`: `None` for everything, `Some("echo")`, `Some("pairs")` or `Some("ir")` for
/// that section alone (`ir`, instruction counts under callgrind, runs only when asked).
pub fn run(section: Option<&str>) -> Result<()> {
    let only = match section {
        None => None,
        Some("echo") => Some(Section::Echo),
        Some("pairs") => Some(Section::Pairs),
        Some("ir") => Some(Section::Ir),
        Some(other) => bail!("unknown bench section {other:?} (known: echo, pairs, ir)"),
    };
    if only == Some(Section::Ir) {
        return ir::run(&[]);
    }
    run_step(
        "cargo build --release",
        cargo().args([
            "build",
            "--release",
            "-p",
            "greet-server",
            "-p",
            "greet-client",
            "-p",
            "netcore",
            "-p",
            "mio-echo",
            "-p",
            "loadgen",
            "-p",
            "tokio-echo",
            "-p",
            "tokio-http",
            "-p",
            "tokio-redis",
            "-p",
            "tokio-proxy",
            "--examples",
            "--bins",
        ]),
    )?;
    let c_greet = build_c("c-greet", &["-lpthread"])?;
    raise_fd_limit();
    let release = target_dir().join("release");
    let tools = Tools {
        server: release.join("greet-server"),
        client: release.join("greet-client"),
        echo: Some(release.join("examples").join("echo")).filter(|p| p.exists()),
        mio_echo: release.join("mio-echo"),
        tokio_echo: release.join("tokio-echo"),
        python: root().join("bench").join("seed_server.py"),
        c_greet,
        loadgen: release.join("loadgen"),
        taskset: Command::new("taskset")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success()),
    };
    let started = Instant::now();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    if only == Some(Section::Pairs) {
        let pairs = pairs::section(&tools, &release)?;
        pairs::print(&pairs);
        let doc = pairs::PairsDoc {
            date: unix_time(),
            cores,
            kernel: kernel_release(),
            seconds: started.elapsed().as_secs_f64(),
            pairs,
        };
        return write_json(&doc, "pairs");
    }
    if only == Some(Section::Echo) {
        let mut rows = Vec::new();
        let echo = echo_section(&tools, &mut rows)?;
        print_echo_table(&echo);
        let verdict = echo_verdict(&rows);
        let doc = BenchDoc {
            date: unix_time(),
            cores,
            kernel: None,
            seconds: started.elapsed().as_secs_f64(),
            rows,
            idle_connections: None,
            loadgen_check: None,
            echo,
            pairs: None,
            summary: None,
            verdict: Vec::new(),
        };
        write_json(&doc, "echo")?;
        return verdict;
    }
    let mut rows = Vec::new();
    let ours = |threads: u16| ServerSpec {
        name: ServerName::Greet(threads),
        argv: greet_server_argv(&tools.server, threads),
    };
    let python = |udp: bool| ServerSpec {
        name: ServerName::Python,
        argv: [
            "python3",
            &tools.python.display().to_string(),
            "--port",
            "0",
            "--quiet",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain(udp.then(|| "--udp".to_string()))
        .collect(),
    };
    let c_greet = |threads: u16, udp: bool| ServerSpec {
        name: ServerName::CGreet(threads),
        argv: [
            tools.c_greet.display().to_string(),
            "--threads".into(),
            threads.to_string(),
            "--quiet".into(),
        ]
        .into_iter()
        .chain(udp.then(|| "--udp".to_string()))
        .chain(["127.0.0.1".to_string(), "0".to_string()])
        .collect(),
    };
    let with_udp = |mut spec: ServerSpec| {
        spec.argv.push("--udp".into());
        spec
    };

    let tcp = |scenario, n, c, threads, pinned| Load {
        scenario,
        udp: false,
        echo: None,
        n,
        c,
        threads,
        pinned,
        timeout: "5s",
        duration: "60s",
    };
    let udp_pinned = |n| Load {
        udp: true,
        ..tcp(Scenario::UdpPinned, n, 64, 1, true)
    };
    let reps = 3;
    // The CPU-per-operation measures: server pinned to one core, load on the other.
    for _ in 0..reps {
        let load = tcp(Scenario::TcpPinned, 50_000, 64, 1, true);
        measure_each(&tools, [ours(1), c_greet(1, false)], &load, &mut rows)?;
        measure_each(
            &tools,
            [with_udp(ours(1)), c_greet(1, true)],
            &udp_pinned(200_000),
            &mut rows,
        )?;
    }
    // The tutorial's server, once per load: it is the slow baseline.
    rows.push(measure(
        &tools,
        &python(false),
        &tcp(Scenario::TcpPinned, 20_000, 64, 1, true),
    )?);
    rows.push(measure(&tools, &python(true), &udp_pinned(200_000))?);
    for (scenario, n, c, timeout, duration) in [
        (Scenario::TcpC1, 5_000, 1, "5s", "60s"),
        (Scenario::TcpC1000, 50_000, 1000, "2s", "30s"),
    ] {
        let load = Load {
            timeout,
            duration,
            ..tcp(scenario, n, c, 1, false)
        };
        let cores = u16::try_from(cores).unwrap_or(u16::MAX);
        rows.push(measure(&tools, &ours(cores), &load)?);
        rows.push(measure(&tools, &python(false), &load)?);
    }
    // Rate with a two-thread load generator, unpinned.
    let lg2 = tcp(Scenario::TcpLg2, 50_000, 64, 2, false);
    measure_each(
        &tools,
        [ours(2), ours(1), c_greet(2, false)],
        &lg2,
        &mut rows,
    )?;
    // Scale: rate and RSS at 10k and 200k connections.
    rows.push(measure(
        &tools,
        &ours(1),
        &tcp(Scenario::Scale10k, 10_000, 64, 1, false),
    )?);
    rows.push(measure(
        &tools,
        &ours(1),
        &tcp(Scenario::Scale200k, 200_000, 64, 1, false),
    )?);

    let idle = match &tools.echo {
        Some(echo) => Some(idle_connections(echo, 10_000)?),
        None => None,
    };
    let loadgen = loadgen_check(&tools)?;
    let echo = echo_section(&tools, &mut rows)?;
    // Needs wrk and redis-benchmark: without them the rest of the bench still runs.
    let pairs = match pairs::clients_present() {
        true => Some(pairs::section(&tools, &release)?),
        false => {
            eprintln!("bench: pairs section skipped: no wrk, redis-benchmark or redis-cli (apt-get install wrk redis-tools)");
            None
        }
    };

    let summary = summarize(&rows, idle.as_ref(), &loadgen, &echo);
    print_table(&rows);
    print_echo_table(&echo);
    if let Some(pairs) = &pairs {
        pairs::print(pairs);
    }
    println!(
        "\n{}",
        serde_json::to_string(&summary).context("encode the summary")?
    );
    let ours_failed = summary.greet_server_failures;
    let verdict = echo_verdict(&rows);
    let targets = verdicts(&summary, pairs.as_ref());
    let doc = BenchDoc {
        date: unix_time(),
        cores,
        kernel: kernel_release(),
        seconds: started.elapsed().as_secs_f64(),
        rows,
        idle_connections: Some(idle),
        loadgen_check: Some(loadgen),
        echo,
        pairs,
        summary: Some(summary),
        verdict: targets,
    };
    write_json(&doc, "bench")?;
    // A miss is reported, not an error: the figures move with the machine's load.
    println!("\nverdict (target, measured median, pass|miss):");
    for line in &doc.verdict {
        println!("  {line}");
    }
    verdict?;
    if ours_failed > 0 {
        bail!("greet-server lost or truncated {ours_failed} operations");
    }
    Ok(())
}

/// Compiles `bench/NAME/NAME.c` with the system's C compiler (Debian package gcc) into
/// `target/bench/NAME`, never into the source tree; `libs` go last on the command line.
fn build_c(name: &str, libs: &[&str]) -> Result<PathBuf> {
    let dir = target_dir().join("bench");
    std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    let out = dir.join(name);
    let source = root().join("bench").join(name).join(format!("{name}.c"));
    let status = Command::new("cc")
        .args(["-O2", "-Wall", "-Wextra", "-Werror", "-o"])
        .arg(&out)
        .arg(&source)
        .args(libs)
        .status()
        .with_context(|| format!("run cc (Debian package gcc) for bench/{name}"))?;
    if !status.success() {
        bail!("cc {}: {status}", source.display());
    }
    Ok(out)
}

/// `greet-server --host 127.0.0.1 --port 0 --quiet --threads N`.
fn greet_server_argv(server: &Path, threads: u16) -> Vec<String> {
    [
        server.display().to_string(),
        "--host".into(),
        "127.0.0.1".into(),
        "--port".into(),
        "0".into(),
        "--quiet".into(),
        "--threads".into(),
        threads.to_string(),
    ]
    .into()
}

/// Writes `doc` as `target/bench/PREFIX-TIME.json` and `PREFIX`'s latest (`latest.json` for
/// the whole bench, `echo-latest.json` or `pairs-latest.json` for a section alone).
fn write_json(doc: &impl Serialize, prefix: &str) -> Result<()> {
    let dir = target_dir().join("bench");
    std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    let text = serde_json::to_string_pretty(doc).context("encode the bench document")?;
    let latest = match prefix {
        "bench" => "latest.json".to_string(),
        other => format!("{other}-latest.json"),
    };
    for name in [format!("{prefix}-{}.json", unix_time()), latest.clone()] {
        let path = dir.join(name);
        std::fs::write(&path, &text).with_context(|| format!("write {}", path.display()))?;
    }
    println!("wrote {}", dir.join(latest).display());
    Ok(())
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root().join("target"), PathBuf::from)
}

fn kernel_release() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .ok()
        .map(|s| s.trim().to_string())
}

fn unix_time() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// 10k connections need more descriptors than the usual soft limit of 1024.
fn raise_fd_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid pointer to an rlimit we own.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

/// Starts `spec` (pinned to `pin_cpu` when given and `taskset` is there) through
/// proc-harness; the process and the port of its readiness line.
fn start(spec: &ServerSpec, pin_cpu: Option<u32>, taskset: bool) -> Result<(Process, u16)> {
    let cmd = match pin_cpu.filter(|_| taskset) {
        Some(cpu) => {
            let mut cmd = Command::new("taskset");
            cmd.args(["-c", &cpu.to_string()]).args(&spec.argv);
            cmd
        }
        None => {
            let mut cmd = Command::new(&spec.argv[0]);
            cmd.args(&spec.argv[1..]);
            cmd
        }
    };
    let name = spec.name.to_string();
    let process = Process::start_with(&name, cmd, Stderr::Null)?;
    let port = process
        .port()
        .with_context(|| format!("{name}: no port in {:?}", process.ready()))?;
    Ok((process, port))
}

/// Measures `load` against each server in turn.
fn measure_each<const N: usize>(
    tools: &Tools,
    specs: [ServerSpec; N],
    load: &Load,
    rows: &mut Vec<Row>,
) -> Result<()> {
    for spec in specs {
        rows.push(measure(tools, &spec, load)?);
    }
    Ok(())
}

fn measure(tools: &Tools, spec: &ServerSpec, load: &Load) -> Result<Row> {
    let (server, port) = start(spec, load.pinned.then_some(0), tools.taskset)?;
    let before = server.cpu_time();
    let result = run_load(tools, port, load);
    let cpu = server.cpu_time().saturating_sub(before);
    let rss_kb = server.status_kb("VmHWM:");
    server.kill();
    let report = result?;
    let row = Row {
        scenario: load.scenario,
        server: spec.name,
        server_cpu_us_per_op: if report.ok > 0 {
            cpu.as_secs_f64() * 1e6 / report.ok as f64
        } else {
            0.0
        },
        server_peak_rss_kb: rss_kb,
        load: report,
    };
    eprintln!(
        "bench: {:<18} {:<18} {:>8.0}/s  cpu {:>5.1} us/op  rss {:>6} kB  failures {}",
        row.scenario.to_string(),
        row.server.to_string(),
        row.load.rate,
        row.server_cpu_us_per_op,
        row.server_peak_rss_kb,
        row.load.failures()
    );
    Ok(row)
}

fn run_load(tools: &Tools, port: u16, load: &Load) -> Result<BenchReport> {
    let mut cmd = match load.pinned && tools.taskset {
        true => {
            let mut cmd = Command::new("taskset");
            cmd.args(["-c", "1"]).arg(&tools.client);
            cmd
        }
        false => Command::new(&tools.client),
    };
    cmd.args(["bench", "--json", "--port", &port.to_string()])
        .args(["-n", &load.n.to_string(), "-c", &load.c.to_string()])
        .args(["--threads", &load.threads.to_string()])
        .args(["--timeout", load.timeout, "--duration", load.duration]);
    if load.udp {
        cmd.arg("--udp");
    }
    if let Some(size) = load.echo {
        cmd.args(["--echo", "--size", &size.to_string(), "--requests", "0"]);
    }
    let out = cmd
        .stderr(std::process::Stdio::inherit())
        .output()
        .context("run greet-client bench")?;
    report_of(&out.stdout)
}

/// The `BenchReport` that `greet-client bench --json` printed on `stdout`.
fn report_of(stdout: &[u8]) -> Result<BenchReport> {
    serde_json::from_slice(stdout).with_context(|| {
        format!(
            "greet-client bench printed no report: {}",
            String::from_utf8_lossy(stdout)
        )
    })
}

/// The echo loads: connections at once, message size.
const ECHO_LOADS: [Scenario; 4] = [
    Scenario::Echo {
        connections: 50,
        size: 64,
    },
    Scenario::Echo {
        connections: 50,
        size: 4096,
    },
    Scenario::Echo {
        connections: 500,
        size: 64,
    },
    Scenario::Echo {
        connections: 500,
        size: 4096,
    },
];
const ECHO_REPS: usize = 3;
/// How long each echo measurement runs: 4 loads x 3 servers x 3 repetitions of this, plus
/// start-up, keep the section under a minute.
const ECHO_DURATION: &str = "1s";
/// netcore's echo example and its two peers, in the tables' order.
const ECHO_SERVERS: [ServerName; 3] = [
    ServerName::NetcoreEcho,
    ServerName::MioEcho,
    ServerName::TokioEcho,
];

/// The echo section: each server started fresh per measurement, pinned to core 0, the load
/// on core 1, every load repeated [`ECHO_REPS`] times (servers interleaved, so a disturbance
/// of the shared machine spreads over all three). Returns the per-load comparison.
fn echo_section(tools: &Tools, rows: &mut Vec<Row>) -> Result<EchoSummary> {
    let netcore_echo = tools
        .echo
        .as_ref()
        .context("netcore's echo example was not built")?;
    let servers = ECHO_SERVERS.map(|name| {
        let bin = match name {
            ServerName::MioEcho => &tools.mio_echo,
            ServerName::TokioEcho => &tools.tokio_echo,
            _ => netcore_echo,
        };
        ServerSpec {
            name,
            argv: vec![bin.display().to_string(), "127.0.0.1:0".into()],
        }
    });
    let first = rows.len();
    for _ in 0..ECHO_REPS {
        for scenario in ECHO_LOADS {
            let Scenario::Echo { connections, size } = scenario else {
                continue;
            };
            let load = Load {
                scenario,
                udp: false,
                echo: Some(size),
                n: u64::from(connections),
                c: connections,
                threads: 1,
                pinned: true,
                timeout: "5s",
                duration: ECHO_DURATION,
            };
            for server in &servers {
                rows.push(measure(tools, server, &load)?);
            }
        }
    }
    Ok(echo_summary(&rows[first..]))
}

/// Medians per load and server, and netcore's ratios to the peers (the targets: CPU per
/// request at most 1.0x mio's and 0.85x tokio's).
fn echo_summary(rows: &[Row]) -> EchoSummary {
    let mut loads = Vec::new();
    let (mut worst_mio, mut worst_tokio) = (None::<f64>, None::<f64>);
    for scenario in ECHO_LOADS {
        let Scenario::Echo { connections, size } = scenario else {
            continue;
        };
        let cpu =
            ECHO_SERVERS.map(|srv| median_of(rows, scenario, srv, |r| r.server_cpu_us_per_op));
        let rate = ECHO_SERVERS.map(|srv| median_of(rows, scenario, srv, |r| r.load.rate));
        let [ours, mio, tokio] = cpu;
        let vs_mio = ratio(ours, mio);
        let vs_tokio = ratio(ours, tokio);
        worst_mio = max_of(worst_mio, vs_mio);
        worst_tokio = max_of(worst_tokio, vs_tokio);
        let of_load = rows.iter().filter(|r| r.scenario == scenario);
        loads.push(EchoLoadSummary {
            scenario,
            connections,
            size,
            rate: PerEchoServer(rate),
            server_cpu_us_per_req: PerEchoServer(cpu),
            cpu_per_req_vs_mio: vs_mio,
            cpu_per_req_vs_tokio: vs_tokio,
            wrong_bytes: of_load.clone().map(|r| r.load.wrong_bytes()).sum(),
            failures: of_load.map(|r| r.load.failures()).sum(),
        });
    }
    EchoSummary {
        repetitions: ECHO_REPS,
        duration: ECHO_DURATION,
        loads,
        cpu_per_req_vs_mio_max: worst_mio,
        cpu_per_req_vs_tokio_max: worst_tokio,
        wrong_bytes: rows.iter().map(|r| r.load.wrong_bytes()).sum(),
    }
}

fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    }
}

fn max_of(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

fn print_echo_table(echo: &EchoSummary) {
    println!(
        "\n| echo load | req/s netcore | req/s mio | req/s tokio | CPU us/req netcore | mio | tokio | netcore/mio (<= 1.0x) | netcore/tokio (<= 0.85x) | wrong bytes |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    let num = |v: Option<f64>, digits: usize| {
        v.map_or_else(|| "-".to_string(), |x| format!("{x:.digits$}"))
    };
    for l in &echo.loads {
        let ([r0, r1, r2], [c0, c1, c2]) = (l.rate.0, l.server_cpu_us_per_req.0);
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {}x | {}x | {} |",
            l.scenario,
            num(r0, 0),
            num(r1, 0),
            num(r2, 0),
            num(c0, 2),
            num(c1, 2),
            num(c2, 2),
            num(l.cpu_per_req_vs_mio, 2),
            num(l.cpu_per_req_vs_tokio, 2),
            l.wrong_bytes,
        );
    }
}

/// netcore's echo must lose and corrupt nothing (the peers' faults are only reported).
fn echo_verdict(rows: &[Row]) -> Result<()> {
    let (failed, wrong) = rows
        .iter()
        .filter(|r| r.server == ServerName::NetcoreEcho)
        .fold((0, 0), |(f, w), r| {
            (f + r.load.failures(), w + r.load.wrong_bytes())
        });
    if failed > 0 || wrong > 0 {
        bail!("netcore's echo example failed {failed} requests, {wrong} wrong bytes");
    }
    Ok(())
}

/// RSS per idle connection: the echo example holding `count` connections that do nothing.
fn idle_connections(echo: &Path, count: usize) -> Result<Idle> {
    let spec = ServerSpec {
        name: ServerName::NetcoreEcho,
        argv: vec![echo.display().to_string(), "127.0.0.1:0".into()],
    };
    let (server, port) = start(&spec, None, false)?;
    let base_fds = server.open_fds();
    let rss_before = server.status_kb("VmRSS:");
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut held = Vec::with_capacity(count);
    for _ in 0..count {
        let stream = std::net::TcpStream::connect(addr)
            .with_context(|| format!("idle connection {}", held.len()))?;
        held.push(stream);
    }
    // Wait (bounded) until the server has accepted them all.
    let deadline = Instant::now() + Duration::from_secs(30);
    while server.open_fds() < base_fds + count && Instant::now() < deadline {
        std::thread::yield_now();
    }
    let accepted = server.open_fds().saturating_sub(base_fds);
    let rss_after = server.status_kb("VmRSS:");
    server.kill();
    drop(held);
    let per_conn = (rss_after.saturating_sub(rss_before)) as f64 * 1024.0 / accepted.max(1) as f64;
    eprintln!(
        "bench: idle connections: {accepted} held, RSS {rss_before} kB -> {rss_after} kB, {per_conn:.0} bytes each"
    );
    Ok(Idle {
        connections: accepted,
        rss_before_kb: rss_before,
        rss_after_kb: rss_after,
        bytes_per_connection: per_conn,
    })
}

/// The independent load generator and ours against the same server, pinned as in the CPU
/// measures: ours must reach at least 0.95x its rate while checking every byte.
fn loadgen_check(tools: &Tools) -> Result<LoadgenCheck> {
    let mut theirs = Vec::new();
    let mut ours = Vec::new();
    let spec = ServerSpec {
        name: ServerName::Greet(1),
        argv: greet_server_argv(&tools.server, 1),
    };
    let load = Load {
        scenario: Scenario::LoadgenCheck,
        udp: false,
        echo: None,
        n: 50_000,
        c: 64,
        threads: 1,
        pinned: true,
        timeout: "5s",
        duration: "60s",
    };
    for _ in 0..3 {
        let (server, port) = start(&spec, Some(0), tools.taskset)?;
        let mut cmd = match tools.taskset {
            true => {
                let mut cmd = Command::new("taskset");
                cmd.args(["-c", "1"]).arg(&tools.loadgen);
                cmd
            }
            false => Command::new(&tools.loadgen),
        };
        let out = cmd
            .args(["tcp", "--port", &port.to_string()])
            .args(["-n", &load.n.to_string(), "-c", &load.c.to_string()])
            .args(["--max-secs", "60"])
            .stderr(std::process::Stdio::inherit())
            .output()
            .context("run bench/loadgen")?;
        let measured: LoadgenOutput = serde_json::from_slice(&out.stdout).with_context(|| {
            format!(
                "bench/loadgen printed no report: {}",
                String::from_utf8_lossy(&out.stdout)
            )
        })?;
        if measured.ok != measured.conns {
            eprintln!(
                "bench: loadgen: only {} of {} connections got the greeting",
                measured.ok, measured.conns
            );
        }
        theirs.push(measured.conn_per_s);
        ours.push(run_load(tools, port, &load)?.rate);
        server.kill();
    }
    let (t, o) = (median(&theirs), median(&ours));
    eprintln!(
        "bench: loadgen {t:.0}/s vs greet-client bench {o:.0}/s: {:.3}x",
        o / t
    );
    Ok(LoadgenCheck {
        loadgen_rate: t,
        greet_client_rate: o,
        ratio: o / t,
    })
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

fn median_of(
    rows: &[Row],
    scenario: Scenario,
    server: ServerName,
    f: impl Fn(&Row) -> f64,
) -> Option<f64> {
    let v: Vec<f64> = rows
        .iter()
        .filter(|r| r.scenario == scenario && r.server == server)
        .map(f)
        .collect();
    (!v.is_empty()).then(|| median(&v))
}

fn print_table(rows: &[Row]) {
    println!(
        "\n| scenario | server | ok | failures | rate/s | p50 us | p99 us | max us | server CPU us/op | peak RSS kB |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for r in rows {
        let l = &r.load;
        println!(
            "| {} | {} | {} | {} | {:.0} | {} | {} | {} | {:.1} | {} |",
            r.scenario,
            r.server,
            l.ok,
            l.failures(),
            l.rate,
            l.latency_us.p50,
            l.latency_us.p99,
            l.latency_us.max,
            r.server_cpu_us_per_op,
            r.server_peak_rss_kb
        );
    }
}

/// The README's performance targets, as ratios measured in this run.
fn summarize(
    rows: &[Row],
    idle: Option<&Idle>,
    loadgen: &LoadgenCheck,
    echo: &EchoSummary,
) -> Summary {
    use ServerName::{CGreet, Greet, Python};
    let cpu = |s, srv| median_of(rows, s, srv, |r| r.server_cpu_us_per_op);
    let rate = |s, srv| median_of(rows, s, srv, |r| r.load.rate);
    let ours = || rows.iter().filter(|r| matches!(r.server, Greet(_)));
    Summary {
        tcp_cpu_per_conn_vs_c: ratio(
            cpu(Scenario::TcpPinned, Greet(1)),
            cpu(Scenario::TcpPinned, CGreet(1)),
        ),
        udp_cpu_per_req_vs_c: ratio(
            cpu(Scenario::UdpPinned, Greet(1)),
            cpu(Scenario::UdpPinned, CGreet(1)),
        ),
        tcp_cpu_per_conn_vs_python: ratio(
            cpu(Scenario::TcpPinned, Greet(1)),
            cpu(Scenario::TcpPinned, Python),
        ),
        tcp_rate_lg2_vs_c: ratio(
            rate(Scenario::TcpLg2, Greet(2)),
            rate(Scenario::TcpLg2, CGreet(2)),
        ),
        peak_rss_kb: ours().map(|r| r.server_peak_rss_kb).max(),
        greet_server_failures: ours().map(|r| r.load.failures()).sum(),
        scale_rate_200k_vs_10k: ratio(
            rate(Scenario::Scale200k, Greet(1)),
            rate(Scenario::Scale10k, Greet(1)),
        ),
        idle_bytes_per_connection: idle.map(|i| i.bytes_per_connection),
        greet_client_vs_loadgen: Some(loadgen.ratio),
        echo_cpu_per_req_vs_mio_max: echo.cpu_per_req_vs_mio_max,
        echo_cpu_per_req_vs_tokio_max: echo.cpu_per_req_vs_tokio_max,
        echo_wrong_bytes: echo.wrong_bytes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary() -> Summary {
        Summary {
            tcp_cpu_per_conn_vs_c: Some(1.0),
            udp_cpu_per_req_vs_c: Some(1.04),
            tcp_cpu_per_conn_vs_python: None,
            tcp_rate_lg2_vs_c: Some(0.88),
            peak_rss_kb: Some(3500),
            greet_server_failures: 0,
            scale_rate_200k_vs_10k: Some(0.91),
            idle_bytes_per_connection: None,
            greet_client_vs_loadgen: Some(0.95),
            echo_cpu_per_req_vs_mio_max: None,
            echo_cpu_per_req_vs_tokio_max: Some(0.86),
            echo_wrong_bytes: 0,
        }
    }

    #[test]
    fn verdict_holds_bounds_inclusive_and_misses_what_was_not_measured() {
        let lines: Vec<String> = verdicts(&summary(), None)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            lines,
            [
                "TCP greeting, server CPU per connection vs C (<= 1.0x), 1.00x, pass",
                "UDP greeting, server CPU per request vs C (<= 1.0x), 1.04x, miss",
                "greet-server peak RSS (<= 2 MB = 2048 kB), 3500 kB, miss",
                "TCP rate, two-thread load, vs C (>= 1.0x), 0.88x, miss",
                "greet-server connections hung or truncated (= 0), 0, pass",
                "rate at 200k vs 10k connections (within 10%), 0.91x, pass",
                "greet-client bench vs bench/loadgen (>= 0.95x), 0.95x, pass",
                "echo, CPU per request vs raw mio, worst load (<= 1.0x), not measured, miss",
                "echo, CPU per request vs tokio, worst load (<= 0.85x), 0.86x, miss",
            ]
        );
        assert!(!Bound::Within(0.10).holds(1.11));
        assert!(!Bound::Within(0.10).holds(0.89));
    }

    #[test]
    fn scenario_and_server_names_are_the_documented_ones() {
        let names: Vec<String> = ECHO_LOADS.iter().map(ToString::to_string).collect();
        assert_eq!(
            names,
            [
                "echo c=50 64 B",
                "echo c=50 4 KiB",
                "echo c=500 64 B",
                "echo c=500 4 KiB"
            ]
        );
        assert_eq!(Scenario::TcpPinned.to_string(), "tcp c=64 pinned");
        assert_eq!(ServerName::Greet(2).to_string(), "greet-server/2");
        assert_eq!(ServerName::CGreet(1).to_string(), "c-greet/1");
        let json = serde_json::to_string(&PerEchoServer([Some(1.5), None, Some(2.0)])).unwrap();
        assert_eq!(
            json,
            r#"{"netcore-echo":1.5,"mio-echo":null,"tokio-echo":2.0}"#
        );
        assert_eq!(
            serde_json::to_string(&Scenario::Scale10k).unwrap(),
            r#""scale 10k""#
        );
    }
}
