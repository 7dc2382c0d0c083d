//! `cargo xtask bench`: SPEC section 5's scenarios in one run, as ratios against peers
//! measured in the same run.
//!
//! Every server is started fresh per measurement and waited for through its readiness line.
//! The load is `greet-client bench` (every reply checked byte for byte). Per run we read the
//! server's on-CPU time from `/proc/PID/task/*/schedstat` before and after the load (so start-up
//! is not counted) and its peak RSS (`VmHWM`). Where `../shared/peers` is built, its C and tokio
//! servers run as extra rows and its independent load generator checks ours.
//!
//! The echo section (also alone: `cargo xtask bench echo`) measures the engine's own overhead:
//! netcore's `examples/echo.rs` against `bench/mio-echo` (raw mio) and `bench/tokio-echo`, each
//! pinned to one core, loaded by `greet-client bench --echo` on the other.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::{cargo, root, run_step};

/// One server under test.
#[derive(Clone)]
struct ServerSpec {
    name: String,
    argv: Vec<String>,
}

/// One load: what `greet-client bench` is asked to do.
#[derive(Clone)]
struct Load {
    scenario: &'static str,
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

struct Row {
    scenario: &'static str,
    server: String,
    load: Value,
    cpu_us_per_op: f64,
    rss_kb: u64,
}

struct Tools {
    server: PathBuf,
    client: PathBuf,
    echo: Option<PathBuf>,
    /// The echo peers, `bench/mio-echo` and `bench/tokio-echo`.
    mio_echo: PathBuf,
    tokio_echo: PathBuf,
    python: PathBuf,
    peers: Option<PathBuf>,
    taskset: bool,
}

/// `section`: `None` for everything, `Some("echo")` for the echo section alone.
pub fn run(section: Option<&str>) -> Result<(), String> {
    let echo_only = match section {
        None => false,
        Some("echo") => true,
        Some(other) => return Err(format!("unknown bench section {other:?} (known: echo)")),
    };
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
            "tokio-echo",
            "--examples",
            "--bins",
        ]),
    )?;
    raise_fd_limit();
    let release = target_dir().join("release");
    let peers = root().join("..").join("shared").join("peers");
    let tools = Tools {
        server: release.join("greet-server"),
        client: release.join("greet-client"),
        echo: Some(release.join("examples").join("echo")).filter(|p| p.exists()),
        mio_echo: release.join("mio-echo"),
        tokio_echo: release.join("tokio-echo"),
        python: root().join("bench").join("seed_server.py"),
        peers: Some(peers).filter(|p| p.join("c-greet").join("c-greet").exists()),
        taskset: Command::new("taskset")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success()),
    };
    let started = Instant::now();
    if echo_only {
        let mut rows = Vec::new();
        let echo = echo_section(&tools, &mut rows)?;
        print_echo_table(&echo);
        let doc = json!({
            "date": unix_time(),
            "cores": std::thread::available_parallelism().map_or(1, |n| n.get()),
            "seconds": started.elapsed().as_secs_f64(),
            "rows": rows.iter().map(row_json).collect::<Vec<_>>(),
            "echo": echo,
        });
        write_json(&doc, "echo")?;
        return echo_verdict(&rows);
    }
    let mut rows = Vec::new();
    let ours = |threads: u16| ServerSpec {
        name: format!("greet-server/{threads}"),
        argv: vec![
            tools.server.display().to_string(),
            "--host".into(),
            "127.0.0.1".into(),
            "--port".into(),
            "0".into(),
            "--quiet".into(),
            "--threads".into(),
            threads.to_string(),
        ],
    };
    let python = |udp: bool| ServerSpec {
        name: "python-tutorial".into(),
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
    let peer = |name: &str, threads: u16, udp: bool| -> Option<ServerSpec> {
        let dir = tools.peers.as_ref()?;
        let bin = match name {
            "c" => dir.join("c-greet").join("c-greet"),
            _ => dir.join("tokio-greet").join("target/release/tokio-greet"),
        };
        bin.exists().then(|| ServerSpec {
            name: format!("peer-{name}/{threads}"),
            argv: [
                bin.display().to_string(),
                "--threads".into(),
                threads.to_string(),
                "--quiet".into(),
            ]
            .into_iter()
            .chain(udp.then(|| "--udp".to_string()))
            .chain(["127.0.0.1".to_string(), "0".to_string()])
            .collect(),
        })
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
    let reps = 3;
    // The CPU-per-operation measures: server pinned to one core, load on the other.
    for _ in 0..reps {
        let load = tcp("tcp c=64 pinned", 50_000, 64, 1, true);
        measure_each(
            &tools,
            [Some(ours(1)), peer("c", 1, false), peer("tokio", 1, false)],
            &load,
            &mut rows,
        )?;
        let udp_load = Load {
            udp: true,
            scenario: "udp c=64 pinned",
            ..tcp("", 200_000, 64, 1, true)
        };
        measure_each(
            &tools,
            [
                Some(with_udp(ours(1))),
                peer("c", 1, true),
                peer("tokio", 1, true),
            ],
            &udp_load,
            &mut rows,
        )?;
    }
    // The tutorial's server, once per load: it is the slow baseline.
    rows.push(measure(
        &tools,
        &python(false),
        &tcp("tcp c=64 pinned", 20_000, 64, 1, true),
    )?);
    let py_udp = Load {
        udp: true,
        scenario: "udp c=64 pinned",
        ..tcp("", 200_000, 64, 1, true)
    };
    rows.push(measure(&tools, &python(true), &py_udp)?);
    for (scenario, n, c, timeout, duration) in [
        ("tcp c=1", 5_000, 1, "5s", "60s"),
        ("tcp c=1000", 50_000, 1000, "2s", "30s"),
    ] {
        let load = Load {
            timeout,
            duration,
            ..tcp(scenario, n, c, 1, false)
        };
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get() as u16);
        rows.push(measure(&tools, &ours(cores), &load)?);
        rows.push(measure(&tools, &python(false), &load)?);
    }
    // Rate with a two-thread load generator, unpinned.
    let lg2 = tcp("tcp unpinned lg2", 50_000, 64, 2, false);
    measure_each(
        &tools,
        [
            Some(ours(2)),
            Some(ours(1)),
            peer("c", 2, false),
            peer("tokio", 2, false),
        ],
        &lg2,
        &mut rows,
    )?;
    // Scale: rate and RSS at 10k and 200k connections.
    rows.push(measure(
        &tools,
        &ours(1),
        &tcp("scale 10k", 10_000, 64, 1, false),
    )?);
    rows.push(measure(
        &tools,
        &ours(1),
        &tcp("scale 200k", 200_000, 64, 1, false),
    )?);

    let idle = match &tools.echo {
        Some(echo) => Some(idle_connections(echo, 10_000)?),
        None => None,
    };
    let loadgen = match &tools.peers {
        Some(dir) => Some(loadgen_check(&tools, dir)?),
        None => None,
    };
    let echo = echo_section(&tools, &mut rows)?;

    let mut summary = summarize(&rows, idle.as_ref(), loadgen.as_ref());
    summary["echo_cpu_per_req_vs_mio_max"] = echo["cpu_per_req_vs_mio_max"].clone();
    summary["echo_cpu_per_req_vs_tokio_max"] = echo["cpu_per_req_vs_tokio_max"].clone();
    summary["echo_wrong_bytes"] = echo["wrong_bytes"].clone();
    print_table(&rows);
    print_echo_table(&echo);
    println!("\n{summary}");
    let doc = json!({
        "date": unix_time(),
        "cores": std::thread::available_parallelism().map_or(1, |n| n.get()),
        "kernel": std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim(),
        "seconds": started.elapsed().as_secs_f64(),
        "rows": rows.iter().map(row_json).collect::<Vec<_>>(),
        "idle_connections": idle,
        "loadgen_check": loadgen,
        "echo": echo,
        "summary": summary,
    });
    write_json(&doc, "bench")?;
    echo_verdict(&rows)?;
    let ours_failed: u64 = rows
        .iter()
        .filter(|r| r.server.starts_with("greet-server"))
        .map(|r| failures(&r.load))
        .sum();
    if ours_failed > 0 {
        return Err(format!(
            "greet-server lost or truncated {ours_failed} operations"
        ));
    }
    Ok(())
}

fn row_json(r: &Row) -> Value {
    json!({
        "scenario": r.scenario, "server": r.server, "load": r.load,
        "server_cpu_us_per_op": r.cpu_us_per_op, "server_peak_rss_kb": r.rss_kb,
    })
}

/// Writes `doc` as `target/bench/PREFIX-TIME.json` and `PREFIX`'s latest (`latest.json` for
/// the whole bench, `echo-latest.json` for the echo section alone).
fn write_json(doc: &Value, prefix: &str) -> Result<(), String> {
    let dir = target_dir().join("bench");
    std::fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    let text = serde_json::to_string_pretty(doc).map_err(|e| e.to_string())?;
    let latest = match prefix {
        "bench" => "latest.json".to_string(),
        other => format!("{other}-latest.json"),
    };
    for name in [format!("{prefix}-{}.json", unix_time()), latest.clone()] {
        let path = dir.join(name);
        std::fs::write(&path, &text).map_err(|e| format!("write {}: {e}", path.display()))?;
    }
    println!("wrote {}", dir.join(latest).display());
    Ok(())
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root().join("target"), PathBuf::from)
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

/// A started server: its child process and port.
struct Running {
    child: Child,
    port: u16,
}

fn start(tools: &Tools, spec: &ServerSpec, pin_cpu: Option<u32>) -> Result<Running, String> {
    let mut cmd = match pin_cpu.filter(|_| tools.taskset) {
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
    if let Some(dir) = &tools.peers {
        cmd.current_dir(dir);
    }
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("start {}: {e}", spec.name))?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| format!("{}: no stdout", spec.name))?;
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .map_err(|e| format!("{}: {e}", spec.name))?;
    let port = parse_port(&line).ok_or_else(|| format!("{}: no port in {line:?}", spec.name))?;
    Ok(Running { child, port })
}

/// `Listening on ('127.0.0.1', 41765) tcp`, `LISTENING 41765`, or `Listening on 127.0.0.1:41765`.
fn parse_port(line: &str) -> Option<u16> {
    let line = line.trim();
    if let Some(rest) = line.strip_prefix("LISTENING ") {
        return rest.trim().parse().ok();
    }
    if let Some((_, rest)) = line.split_once("', ") {
        return rest
            .split(|c: char| !c.is_ascii_digit())
            .next()?
            .parse()
            .ok();
    }
    line.rsplit(':').next()?.parse().ok()
}

fn stop(mut running: Running) {
    // SAFETY: kill(2) on our own child, not yet waited for.
    unsafe {
        libc::kill(running.child.id() as libc::pid_t, libc::SIGKILL);
    }
    let _ = running.child.wait();
}

fn cpu_ns(pid: u32) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

fn status_kb(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))?
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

/// Measures `load` against each server that exists (a peer that is not built is `None`).
fn measure_each<const N: usize>(
    tools: &Tools,
    specs: [Option<ServerSpec>; N],
    load: &Load,
    rows: &mut Vec<Row>,
) -> Result<(), String> {
    for spec in specs.into_iter().flatten() {
        rows.push(measure(tools, &spec, load)?);
    }
    Ok(())
}

fn measure(tools: &Tools, spec: &ServerSpec, load: &Load) -> Result<Row, String> {
    let running = start(tools, spec, load.pinned.then_some(0))?;
    let pid = running.child.id();
    let before = cpu_ns(pid);
    let result = run_load(tools, running.port, load);
    let cpu = cpu_ns(pid).saturating_sub(before);
    let rss_kb = status_kb(pid, "VmHWM:");
    stop(running);
    let load_json = result?;
    let ok = load_json["ok"].as_u64().unwrap_or(0);
    let row = Row {
        scenario: load.scenario,
        server: spec.name.clone(),
        cpu_us_per_op: if ok > 0 {
            cpu as f64 / 1000.0 / ok as f64
        } else {
            0.0
        },
        rss_kb,
        load: load_json,
    };
    eprintln!(
        "bench: {:<18} {:<18} {:>8.0}/s  cpu {:>5.1} us/op  rss {:>6} kB  failures {}",
        row.scenario,
        row.server,
        row.load["rate"].as_f64().unwrap_or(0.0),
        row.cpu_us_per_op,
        row.rss_kb,
        failures(&row.load)
    );
    Ok(row)
}

fn run_load(tools: &Tools, port: u16, load: &Load) -> Result<Value, String> {
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
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("run greet-client bench: {e}"))?;
    serde_json::from_slice(&out.stdout).map_err(|e| {
        format!(
            "greet-client bench printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

fn failures(load: &Value) -> u64 {
    load["errors"]["total"].as_u64().unwrap_or(0) + load["not_started"].as_u64().unwrap_or(0)
}

/// The echo loads: connections at once, message size.
const ECHO_LOADS: [(&str, u32, u32); 4] = [
    ("echo c=50 64 B", 50, 64),
    ("echo c=50 4 KiB", 50, 4096),
    ("echo c=500 64 B", 500, 64),
    ("echo c=500 4 KiB", 500, 4096),
];
const ECHO_REPS: usize = 3;
/// How long each echo measurement runs: 4 loads x 3 servers x 3 repetitions of this, plus
/// start-up, keep the section under a minute.
const ECHO_DURATION: &str = "1s";
const ECHO_SERVERS: [&str; 3] = ["netcore-echo", "mio-echo", "tokio-echo"];

/// The echo section: each server started fresh per measurement, pinned to core 0, the load
/// on core 1, every load repeated [`ECHO_REPS`] times (servers interleaved, so a disturbance
/// of the shared machine spreads over all three). Returns the per-load comparison.
fn echo_section(tools: &Tools, rows: &mut Vec<Row>) -> Result<Value, String> {
    let Some(netcore_echo) = &tools.echo else {
        return Err("netcore's echo example was not built".into());
    };
    let spec = |name: &str, bin: &Path| ServerSpec {
        name: name.to_string(),
        argv: vec![bin.display().to_string(), "127.0.0.1:0".into()],
    };
    let servers = [
        spec(ECHO_SERVERS[0], netcore_echo),
        spec(ECHO_SERVERS[1], &tools.mio_echo),
        spec(ECHO_SERVERS[2], &tools.tokio_echo),
    ];
    let first = rows.len();
    for _ in 0..ECHO_REPS {
        for (scenario, c, size) in ECHO_LOADS {
            let load = Load {
                scenario,
                udp: false,
                echo: Some(size),
                n: u64::from(c),
                c,
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

fn wrong_bytes(load: &Value) -> u64 {
    load["echo"]["wrong_bytes"].as_u64().unwrap_or(0)
}

/// Medians per load and server, and netcore's ratios to the peers (SPEC 5's targets: CPU per
/// request at most 1.0x mio's and 0.85x tokio's).
fn echo_summary(rows: &[Row]) -> Value {
    let mut loads = Vec::new();
    let (mut worst_mio, mut worst_tokio) = (None::<f64>, None::<f64>);
    for (scenario, c, size) in ECHO_LOADS {
        let cpu = |srv| median_of(rows, scenario, srv, |r| r.cpu_us_per_op);
        let rate = |srv| {
            median_of(rows, scenario, srv, |r| {
                r.load["rate"].as_f64().unwrap_or(0.0)
            })
        };
        let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) if b > 0.0 => Some(a / b),
            _ => None,
        };
        let [ours, mio, tokio] = ECHO_SERVERS;
        let vs_mio = ratio(cpu(ours), cpu(mio));
        let vs_tokio = ratio(cpu(ours), cpu(tokio));
        worst_mio = max_of(worst_mio, vs_mio);
        worst_tokio = max_of(worst_tokio, vs_tokio);
        let of_load = rows.iter().filter(|r| r.scenario == scenario);
        let wrong: u64 = of_load.clone().map(|r| wrong_bytes(&r.load)).sum();
        let failed: u64 = of_load.map(|r| failures(&r.load)).sum();
        loads.push(json!({
            "scenario": scenario, "connections": c, "size": size,
            "rate": per_server(rate),
            "server_cpu_us_per_req": per_server(cpu),
            "cpu_per_req_vs_mio": vs_mio,
            "cpu_per_req_vs_tokio": vs_tokio,
            "wrong_bytes": wrong,
            "failures": failed,
        }));
    }
    let wrong: u64 = rows.iter().map(|r| wrong_bytes(&r.load)).sum();
    json!({
        "repetitions": ECHO_REPS,
        "duration": ECHO_DURATION,
        "loads": loads,
        "cpu_per_req_vs_mio_max": worst_mio,
        "cpu_per_req_vs_tokio_max": worst_tokio,
        "wrong_bytes": wrong,
    })
}

fn max_of(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

/// `{"netcore-echo": f(..), "mio-echo": f(..), "tokio-echo": f(..)}`.
fn per_server(f: impl Fn(&'static str) -> Option<f64>) -> Value {
    ECHO_SERVERS
        .iter()
        .map(|&name| (name.to_string(), json!(f(name))))
        .collect::<serde_json::Map<_, _>>()
        .into()
}

fn print_echo_table(echo: &Value) {
    println!(
        "\n| echo load | req/s netcore | req/s mio | req/s tokio | CPU us/req netcore | mio | tokio | netcore/mio (<= 1.0x) | netcore/tokio (<= 0.85x) | wrong bytes |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    let num = |v: &Value, digits: usize| {
        v.as_f64()
            .map_or_else(|| "-".to_string(), |x| format!("{x:.digits$}"))
    };
    for l in echo["loads"].as_array().into_iter().flatten() {
        let [ours, mio, tokio] = ECHO_SERVERS;
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {}x | {}x | {} |",
            l["scenario"].as_str().unwrap_or(""),
            num(&l["rate"][ours], 0),
            num(&l["rate"][mio], 0),
            num(&l["rate"][tokio], 0),
            num(&l["server_cpu_us_per_req"][ours], 2),
            num(&l["server_cpu_us_per_req"][mio], 2),
            num(&l["server_cpu_us_per_req"][tokio], 2),
            num(&l["cpu_per_req_vs_mio"], 2),
            num(&l["cpu_per_req_vs_tokio"], 2),
            l["wrong_bytes"],
        );
    }
}

/// netcore's echo must lose and corrupt nothing (the peers' faults are only reported).
fn echo_verdict(rows: &[Row]) -> Result<(), String> {
    let (failed, wrong) = rows
        .iter()
        .filter(|r| r.server == ECHO_SERVERS[0])
        .fold((0, 0), |(f, w), r| {
            (f + failures(&r.load), w + wrong_bytes(&r.load))
        });
    if failed > 0 || wrong > 0 {
        return Err(format!(
            "netcore's echo example failed {failed} requests, {wrong} wrong bytes"
        ));
    }
    Ok(())
}

/// RSS per idle connection: the echo example holding `count` connections that do nothing.
fn idle_connections(echo: &Path, count: usize) -> Result<Value, String> {
    let tools_less = Tools {
        server: PathBuf::new(),
        client: PathBuf::new(),
        echo: None,
        mio_echo: PathBuf::new(),
        tokio_echo: PathBuf::new(),
        python: PathBuf::new(),
        peers: None,
        taskset: false,
    };
    let spec = ServerSpec {
        name: "echo".into(),
        argv: vec![echo.display().to_string(), "127.0.0.1:0".into()],
    };
    let running = start(&tools_less, &spec, None)?;
    let pid = running.child.id();
    let base_fds = open_fds(pid);
    let rss_before = status_kb(pid, "VmRSS:");
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], running.port));
    let mut held = Vec::with_capacity(count);
    for _ in 0..count {
        match std::net::TcpStream::connect(addr) {
            Ok(s) => held.push(s),
            Err(e) => {
                stop(running);
                return Err(format!("idle connection {}: {e}", held.len()));
            }
        }
    }
    // Wait (bounded) until the server has accepted them all.
    let deadline = Instant::now() + Duration::from_secs(30);
    while open_fds(pid) < base_fds + count && Instant::now() < deadline {
        std::thread::yield_now();
    }
    let accepted = open_fds(pid).saturating_sub(base_fds);
    let rss_after = status_kb(pid, "VmRSS:");
    stop(running);
    drop(held);
    let per_conn = (rss_after.saturating_sub(rss_before)) as f64 * 1024.0 / accepted.max(1) as f64;
    eprintln!(
        "bench: idle connections: {accepted} held, RSS {rss_before} kB -> {rss_after} kB, {per_conn:.0} bytes each"
    );
    Ok(json!({
        "connections": accepted, "rss_before_kb": rss_before, "rss_after_kb": rss_after,
        "bytes_per_connection": per_conn,
    }))
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// The independent load generator and ours against the same server: ours must reach at
/// least 0.95x its rate while checking every byte.
fn loadgen_check(tools: &Tools, peers: &Path) -> Result<Value, String> {
    let loadgen = peers.join("loadgen/target/release/loadgen");
    if !loadgen.exists() {
        return Ok(Value::Null);
    }
    let mut theirs = Vec::new();
    let mut ours = Vec::new();
    let spec = ServerSpec {
        name: "greet-server/1".into(),
        argv: vec![
            tools.server.display().to_string(),
            "--host".into(),
            "127.0.0.1".into(),
            "--port".into(),
            "0".into(),
            "--quiet".into(),
            "--threads".into(),
            "1".into(),
        ],
    };
    for _ in 0..3 {
        let running = start(tools, &spec, Some(0))?;
        let out = Command::new("taskset")
            .args(["-c", "1"])
            .arg(&loadgen)
            .args([
                "tcp",
                "--port",
                &running.port.to_string(),
                "-n",
                "50000",
                "-c",
                "64",
            ])
            .output()
            .map_err(|e| format!("run loadgen: {e}"))?;
        let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        theirs.push(v["conn_per_s"].as_f64().unwrap_or(0.0));
        let load = run_load(
            tools,
            running.port,
            &Load {
                scenario: "",
                udp: false,
                echo: None,
                n: 50_000,
                c: 64,
                threads: 1,
                pinned: true,
                timeout: "5s",
                duration: "60s",
            },
        )?;
        ours.push(load["rate"].as_f64().unwrap_or(0.0));
        stop(running);
    }
    let (t, o) = (median(&theirs), median(&ours));
    eprintln!(
        "bench: loadgen {t:.0}/s vs greet-client bench {o:.0}/s: {:.3}x",
        o / t
    );
    Ok(json!({ "loadgen_rate": t, "greet_client_rate": o, "ratio": o / t }))
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

fn median_of(rows: &[Row], scenario: &str, server: &str, f: impl Fn(&Row) -> f64) -> Option<f64> {
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
            l["ok"],
            failures(l),
            l["rate"].as_f64().unwrap_or(0.0),
            l["latency_us"]["p50"],
            l["latency_us"]["p99"],
            l["latency_us"]["max"],
            r.cpu_us_per_op,
            r.rss_kb
        );
    }
}

/// The targets of SPEC section 5, as ratios measured in this run.
fn summarize(rows: &[Row], idle: Option<&Value>, loadgen: Option<&Value>) -> Value {
    let cpu = |s, srv| median_of(rows, s, srv, |r| r.cpu_us_per_op);
    let rate = |s, srv| median_of(rows, s, srv, |r| r.load["rate"].as_f64().unwrap_or(0.0));
    let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    };
    let ours_rss = rows
        .iter()
        .filter(|r| r.server.starts_with("greet-server"))
        .map(|r| r.rss_kb)
        .max();
    let ours_failures: u64 = rows
        .iter()
        .filter(|r| r.server.starts_with("greet-server"))
        .map(|r| failures(&r.load))
        .sum();
    let scale = ratio(
        rate("scale 200k", "greet-server/1"),
        rate("scale 10k", "greet-server/1"),
    );
    json!({
        "tcp_cpu_per_conn_vs_c": ratio(cpu("tcp c=64 pinned", "greet-server/1"), cpu("tcp c=64 pinned", "peer-c/1")),
        "udp_cpu_per_req_vs_c": ratio(cpu("udp c=64 pinned", "greet-server/1"), cpu("udp c=64 pinned", "peer-c/1")),
        "tcp_cpu_per_conn_vs_python": ratio(cpu("tcp c=64 pinned", "greet-server/1"), cpu("tcp c=64 pinned", "python-tutorial")),
        "tcp_rate_lg2_vs_c": ratio(rate("tcp unpinned lg2", "greet-server/2"), rate("tcp unpinned lg2", "peer-c/2")),
        "peak_rss_kb": ours_rss,
        "greet_server_failures": ours_failures,
        "scale_rate_200k_vs_10k": scale,
        "idle_bytes_per_connection": idle.map(|v| v["bytes_per_connection"].clone()),
        "greet_client_vs_loadgen": loadgen.map(|v| v["ratio"].clone()),
    })
}
