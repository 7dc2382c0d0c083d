//! `cargo xtask bench ir`: user-space instructions and system calls per request.
//! Wall-clock CPU cannot see a few hundred instructions through this machine's noise (the
//! kernel's share of a request dominates); an instruction count can, and with a load that
//! meets the server the same way every time it is the same from run to run.
//!
//! Each echo server (netcore's `examples/echo.rs`, `bench/mio-echo`, `bench/tokio-echo` and
//! the C epoll server `bench/c-echo`) serves two workloads, 10 connections of 64-byte
//! requests one at a time and the same 16-deep pipelined, from the client in [`load`];
//! netcore's `http` and `redis` examples and their tokio twins (`bench/tokio-http`,
//! `bench/tokio-redis`) serve the same two shapes of load in their protocols (`GET /`;
//! Redis `GET` of a missing key), the workloads of `bench pairs` without the kernel's
//! noise. Each workload runs twice under valgrind's callgrind (instructions) and twice under
//! `strace -c -f` (system calls), a small and a large run; the difference of the two
//! totals over the difference of their requests is the cost per request, start-up and
//! shutdown cancelling out.
//!
//! `cargo xtask test` runs [`gate`]: netcore's two instruction figures against the ones
//! recorded in [`BASELINE`] (`cargo xtask bench ir --record` rewrites it).

mod baseline;
mod load;
mod parse;

use std::fmt;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use proc_harness::{Process, Stderr};
use serde::{Deserialize, Serialize};

use self::baseline::{Verdict, BASELINE};
use self::load::{Load, Protocol};
use self::parse::StraceSummary;
use super::{build_c, target_dir, write_json};
use crate::{cargo, root, run_step};

/// The longest one run's load may take (a 12,000-request run under callgrind takes a few
/// seconds).
const LOAD_LIMIT: Duration = Duration::from_secs(300);

/// A load the servers are measured under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Workload {
    /// 10 connections, 64-byte requests, one at a time on each.
    Echo,
    /// The same, 16 requests written at once, then their 16 echoes read.
    Pipelined,
    /// 10 connections, `GET /` one at a time on each.
    Http,
    /// The same, 16 pipelined.
    HttpPipelined,
    /// 10 connections, Redis `GET` one at a time on each.
    Redis,
    /// The same, 16 pipelined.
    RedisPipelined,
}

impl Workload {
    /// The echo servers' workloads: the ones the gate holds netcore to.
    const ECHO: [Workload; 2] = [Workload::Echo, Workload::Pipelined];
    const ALL: [Workload; 6] = [
        Workload::Echo,
        Workload::Pipelined,
        Workload::Http,
        Workload::HttpPipelined,
        Workload::Redis,
        Workload::RedisPipelined,
    ];

    fn load(self) -> Load {
        let protocol = match self {
            Workload::Echo | Workload::Pipelined => Protocol::Echo { size: 64 },
            Workload::Http | Workload::HttpPipelined => Protocol::Http,
            Workload::Redis | Workload::RedisPipelined => Protocol::Redis,
        };
        Load {
            connections: 10,
            protocol,
            depth: if self.pipelined() { 16 } else { 1 },
        }
    }

    fn pipelined(self) -> bool {
        matches!(
            self,
            Workload::Pipelined | Workload::HttpPipelined | Workload::RedisPipelined
        )
    }

    /// Rounds (a batch on every connection) of the small and the large run: 2,000 and
    /// 12,000 requests for one at a time, 1,920 and 12,000 pipelined.
    fn rounds(self) -> [u32; 2] {
        if self.pipelined() {
            [12, 75]
        } else {
            [200, 1200]
        }
    }

    /// The servers measured under this workload; the first is netcore's, the second the
    /// one the others are compared with.
    fn servers(self) -> &'static [&'static str] {
        match self {
            Workload::Echo | Workload::Pipelined => {
                &["netcore-echo", "mio-echo", "tokio-echo", "c-echo"]
            }
            Workload::Http | Workload::HttpPipelined => &["netcore-http", "tokio-http"],
            Workload::Redis | Workload::RedisPipelined => &["netcore-redis", "tokio-redis"],
        }
    }
}

impl fmt::Display for Workload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Workload::Echo => "10 conns x 64 B",
            Workload::Pipelined => "10 conns x 64 B, 16 pipelined",
            Workload::Http => "10 conns x GET /",
            Workload::HttpPipelined => "10 conns x GET /, 16 pipelined",
            Workload::Redis => "10 conns x redis GET",
            Workload::RedisPipelined => "10 conns x redis GET, 16 pipelined",
        })
    }
}

/// A server: `PATH [ADDR]`, printing `Listening on ADDR` first.
struct Server {
    name: &'static str,
    path: PathBuf,
}

/// One server's figures under one workload.
#[derive(Debug, Serialize)]
struct IrRow {
    server: &'static str,
    workload: Workload,
    /// User-space instructions per request (callgrind).
    instructions_per_request: f64,
    /// System calls per request (`strace -c -f`), and by call.
    syscalls_per_request: f64,
    syscalls: std::collections::BTreeMap<String, f64>,
    /// The server the two below compare with: raw mio for an echo, the tokio twin for
    /// HTTP and Redis.
    reference: &'static str,
    /// The two above over the reference's under the same workload.
    instructions_vs_reference: Option<f64>,
    syscalls_vs_reference: Option<f64>,
}

/// What `cargo xtask bench ir` writes to `target/bench/ir-latest.json`.
#[derive(Debug, Serialize)]
struct IrDoc {
    date: u64,
    rows: Vec<IrRow>,
}

/// `cargo xtask bench ir [--record | --check]`: every server under every workload, a
/// table, JSON in `target/bench/`, and with `--record` netcore's figures written to
/// [`BASELINE`]; `--check` is only [`gate`], as `cargo xtask test` runs it.
pub(crate) fn run(args: &[String]) -> Result<()> {
    let record = match args {
        [] => false,
        [flag] if flag == "--record" => true,
        [flag] if flag == "--check" => return gate(),
        other => bail!("bench ir takes --record or --check, got {other:?}"),
    };
    for (tool, package) in [("valgrind", "valgrind"), ("strace", "strace")] {
        if !present(tool) {
            bail!("bench ir counts with {tool}: apt-get install {package}");
        }
    }
    run_step(
        "cargo build --release (the servers)",
        cargo().args([
            "build",
            "--release",
            "-p",
            "netcore",
            "--example",
            "echo",
            "--example",
            "http",
            "--example",
            "redis",
            "-p",
            "mio-echo",
            "-p",
            "tokio-echo",
            "-p",
            "tokio-http",
            "-p",
            "tokio-redis",
            "--bins",
        ]),
    )?;
    let release = target_dir().join("release");
    let example = |name: &str| release.join("examples").join(name);
    let servers = [
        Server {
            name: "netcore-echo",
            path: example("echo"),
        },
        Server {
            name: "mio-echo",
            path: release.join("mio-echo"),
        },
        Server {
            name: "tokio-echo",
            path: release.join("tokio-echo"),
        },
        Server {
            name: "c-echo",
            path: build_c("c-echo", &[])?,
        },
        Server {
            name: "netcore-http",
            path: example("http"),
        },
        Server {
            name: "tokio-http",
            path: release.join("tokio-http"),
        },
        Server {
            name: "netcore-redis",
            path: example("redis"),
        },
        Server {
            name: "tokio-redis",
            path: release.join("tokio-redis"),
        },
    ];
    let mut rows = Vec::new();
    for workload in Workload::ALL {
        for name in workload.servers() {
            let server = servers
                .iter()
                .find(|s| s.name == *name)
                .with_context(|| format!("no server named {name}"))?;
            rows.push(measure(server, workload)?);
        }
    }
    set_ratios(&mut rows);
    print(&rows);
    if record {
        let figures = rows
            .iter()
            .filter(|r| r.server == "netcore-echo")
            .map(|r| baseline::Figure {
                workload: r.workload,
                instructions_per_request: (r.instructions_per_request * 10.0).round() / 10.0,
                syscalls_per_request: (r.syscalls_per_request * 1e4).round() / 1e4,
            })
            .collect();
        baseline::write(&root().join(BASELINE), figures)?;
    }
    write_json(
        &IrDoc {
            date: super::unix_time(),
            rows,
        },
        "ir",
    )
}

/// One server under one workload: callgrind and strace, each a small and a large run.
fn measure(server: &Server, workload: Workload) -> Result<IrRow> {
    let extra = extra_requests(workload);
    let instructions = instructions_per_request(server, workload)?;
    let [small, large] = workload
        .rounds()
        .map(|rounds| strace(server, workload, rounds));
    let (small, large) = (small?, large?);
    let syscalls_per_request = parse::per_request(small.total, large.total, extra)
        .with_context(|| format!("{}: fewer system calls in the larger run", server.name))?;
    let syscalls = parse::calls_per_request(&small, &large, extra);
    let by_call: Vec<String> = syscalls
        .iter()
        .map(|(name, n)| format!("{name} {n:.3}"))
        .collect();
    eprintln!(
        "bench ir: {} under {workload}: {} instructions, {syscalls_per_request:.3} system calls \
         per request ({})",
        server.name,
        self::instructions(instructions),
        by_call.join(", ")
    );
    Ok(IrRow {
        server: server.name,
        workload,
        instructions_per_request: instructions,
        syscalls_per_request,
        syscalls,
        reference: workload.servers()[1],
        instructions_vs_reference: None,
        syscalls_vs_reference: None,
    })
}

/// The requests the large run of `workload` serves beyond the small one.
fn extra_requests(workload: Workload) -> u64 {
    let [small, large] = workload.rounds();
    let load = workload.load();
    load.requests(large) - load.requests(small)
}

/// `server`'s user-space instructions per request under `workload`, by callgrind.
fn instructions_per_request(server: &Server, workload: Workload) -> Result<f64> {
    let [small, large] = workload
        .rounds()
        .map(|rounds| callgrind(server, workload, rounds));
    let (small, large) = (small?, large?);
    parse::per_request(small, large, extra_requests(workload))
        .with_context(|| format!("{}: fewer instructions in the larger run", server.name))
}

/// Fills in the ratios to the reference's figures under the same workload.
fn set_ratios(rows: &mut [IrRow]) {
    let references: Vec<(Workload, f64, f64)> = rows
        .iter()
        .filter(|r| r.server == r.reference)
        .map(|r| {
            (
                r.workload,
                r.instructions_per_request,
                r.syscalls_per_request,
            )
        })
        .collect();
    for row in rows {
        if let Some(&(_, instructions, syscalls)) = references.iter().find(|m| m.0 == row.workload)
        {
            row.instructions_vs_reference =
                (instructions > 0.0).then(|| row.instructions_per_request / instructions);
            row.syscalls_vs_reference =
                (syscalls > 0.0).then(|| row.syscalls_per_request / syscalls);
        }
    }
}

/// Whether `tool --version` runs.
fn present(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Runs `server` under callgrind for `rounds` rounds of `workload`: the instructions it
/// executed in all. The output file stays in `target/bench/` for `callgrind_annotate`.
fn callgrind(server: &Server, workload: Workload, rounds: u32) -> Result<u64> {
    let out = output_file(server, workload, rounds, "callgrind");
    let mut cmd = Command::new("valgrind");
    cmd.arg("--tool=callgrind")
        .arg(format!("--callgrind-out-file={}", out.display()));
    counted_run(server, cmd, workload, rounds)?;
    let text = std::fs::read_to_string(&out).with_context(|| format!("read {}", out.display()))?;
    parse::callgrind_instructions(&text).with_context(|| format!("no totals in {}", out.display()))
}

/// Runs `server` under `strace -c -f` for `rounds` rounds of `workload`: its summary.
fn strace(server: &Server, workload: Workload, rounds: u32) -> Result<StraceSummary> {
    let out = output_file(server, workload, rounds, "strace");
    let mut cmd = Command::new("strace");
    // `-I 2`: with `-o FILE PROG` strace otherwise ignores SIGTERM (its `-I 3`), and the
    // run never ends; this way it passes the signal on and writes its table.
    cmd.args(["-c", "-f", "-I", "2", "-o"]).arg(&out);
    counted_run(server, cmd, workload, rounds)?;
    let text = std::fs::read_to_string(&out).with_context(|| format!("read {}", out.display()))?;
    parse::strace_summary(&text).with_context(|| format!("no strace -c table in {}", out.display()))
}

/// `target/bench/ir-TOOL-SERVER-WORKLOAD-ROUNDS.out`.
fn output_file(server: &Server, workload: Workload, rounds: u32, tool: &str) -> PathBuf {
    let workload = serde_json::to_value(workload)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    target_dir()
        .join("bench")
        .join(format!("ir-{tool}-{}-{workload}-{rounds}.out", server.name))
}

/// Starts `server` under `counter` (the counting tool and its flags), drives `rounds`
/// rounds of `workload` through it, and stops it; the tool writes its figures at the
/// server's end, SIGTERM included.
fn counted_run(
    server: &Server,
    mut counter: Command,
    workload: Workload,
    rounds: u32,
) -> Result<()> {
    std::fs::create_dir_all(target_dir().join("bench")).context("create target/bench")?;
    counter.arg(&server.path).arg("127.0.0.1:0");
    let process = Process::start_with(server.name, counter, Stderr::Piped)?;
    let port = process
        .port()
        .with_context(|| format!("{}: no port in {:?}", server.name, process.ready()))?;
    let answered = load::drive(port, &workload.load(), rounds, LOAD_LIMIT)
        .with_context(|| format!("{} under {workload}", server.name))?;
    let want = workload.load().requests(rounds);
    if answered != want {
        bail!("{}: {answered} of {want} requests answered", server.name);
    }
    process
        .stop()
        .with_context(|| format!("stop {}", server.name))?;
    Ok(())
}

/// The table `cargo xtask bench ir` prints.
fn print(rows: &[IrRow]) {
    let ratio = |r: Option<f64>| r.map_or_else(|| "-".to_string(), |r| format!("{r:.2}x"));
    println!();
    println!(
        "| server | workload | instructions per request | system calls per request | \
         vs (instructions, system calls) |"
    );
    println!("|---|---|---|---|---|");
    for row in rows {
        println!(
            "| {} | {} | {} | {:.3} | {}: {}, {} |",
            row.server,
            row.workload,
            instructions(row.instructions_per_request),
            row.syscalls_per_request,
            row.reference,
            ratio(row.instructions_vs_reference),
            ratio(row.syscalls_vs_reference),
        );
    }
}

/// The regression gate of `cargo xtask test`: netcore's echo example under both
/// workloads, by callgrind, against [`BASELINE`]. More than 10% above the recorded figure
/// fails; more than 10% below is a note to record the gain. Without valgrind it says so and
/// passes, except under CI (`CI` set, as the end-to-end tests treat their tools), where
/// `.ci/run` installs it.
pub(crate) fn gate() -> Result<()> {
    eprintln!("\n==> bench ir gate: netcore's instructions per echo request against {BASELINE}");
    if !present("valgrind") {
        if std::env::var_os("CI").is_some() {
            bail!("bench ir gate: valgrind not found, and CI is set (apt-get install valgrind)");
        }
        eprintln!("bench ir gate: skipped: valgrind not found (apt-get install valgrind)");
        return Ok(());
    }
    let started = Instant::now();
    let recorded = baseline::read(&root().join(BASELINE))?;
    run_step(
        "cargo build --release -p netcore --example echo",
        cargo().args(["build", "--release", "-p", "netcore", "--example", "echo"]),
    )?;
    let server = Server {
        name: "netcore-echo",
        path: target_dir().join("release").join("examples").join("echo"),
    };
    let mut grew = Vec::new();
    for workload in Workload::ECHO {
        let figure = recorded.figure(workload).with_context(|| {
            format!("{BASELINE} has no figure for {workload}: cargo xtask bench ir --record")
        })?;
        let measured = instructions_per_request(&server, workload)?;
        let recorded = figure.instructions_per_request;
        let change = (measured / recorded - 1.0) * 100.0;
        let line = format!(
            "netcore echo, {workload}: {} instructions per request, recorded {} ({change:+.1}%)",
            instructions(measured),
            instructions(recorded)
        );
        match baseline::verdict(recorded, measured) {
            Verdict::Held => eprintln!("bench ir gate: {line}: ok"),
            Verdict::Dropped => eprintln!(
                "bench ir gate: {line}: note: more than 10% below the recorded figure; \
                 record the gain with cargo xtask bench ir --record"
            ),
            Verdict::Grew => {
                eprintln!("bench ir gate: {line}: FAILED, more than 10% above");
                grew.push(line);
            }
        }
    }
    eprintln!(
        "bench ir gate: {:.1} s, the release build included",
        started.elapsed().as_secs_f64()
    );
    if !grew.is_empty() {
        bail!(
            "bench ir gate: netcore's instructions per request grew by more than 10% over \
             {BASELINE}: {}",
            grew.join("; ")
        );
    }
    Ok(())
}

/// Instructions per request as the table and the gate print them: whole numbers, with one
/// decimal below 100 (a pipelined request costs tens).
fn instructions(n: f64) -> String {
    if n < 100.0 {
        format!("{n:.1}")
    } else {
        format!("{n:.0}")
    }
}
