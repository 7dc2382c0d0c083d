//! The flood section (`cargo xtask bench flood`): one client that keeps its socket full must
//! not starve the others.
//!
//! `bench/flood_latency.py` is the client: it starts netcore's echo example (release,
//! unpinned) itself, floods it from [`FLOODERS`] clients writing 1 MiB chunks and reading
//! their echo for [`DURATION`] seconds, times a probe's 5-byte echo every 20 ms and a new
//! client's first echo every 100 ms, and prints one JSON line ([`FloodRun`]). [`RUNS`] runs;
//! medians and ranges.

use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use super::stats::Spread;
use crate::root;

/// The client, relative to the workspace root.
const SCRIPT: &str = "bench/flood_latency.py";
/// Runs, each against a fresh server.
const RUNS: usize = 3;
/// Seconds each run floods, and the flooding clients.
const DURATION: &str = "5";
const FLOODERS: &str = "2";
/// Bound on one run, in seconds (`timeout`, then SIGKILL 5 s later).
const RUN_TIMEOUT: &str = "60";

/// What the script prints for one run.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, Serialize)]
struct FloodRun {
    /// The probe's worst and median echo, in ms.
    probe_max_ms: f64,
    probe_median_ms: f64,
    probes: u64,
    /// A new client's worst and median connect and first echo, in ms.
    new_client_max_ms: f64,
    new_client_median_ms: f64,
    /// The flood's echoed bytes per second, all flooders together.
    flood_mib_per_s: f64,
    /// The server's CPU (user + system) per echoed MiB.
    server_cpu_ms_per_mib: f64,
}

/// What the section found: `target/bench/flood-latest.json`.
#[derive(Serialize)]
pub(super) struct FloodSummary {
    /// The script's command line, `ECHO` standing for the echo example's path.
    command: String,
    runs: Vec<FloodRun>,
    probe_max_ms: Option<Spread>,
    probe_median_ms: Option<Spread>,
    new_client_max_ms: Option<Spread>,
    new_client_median_ms: Option<Spread>,
    flood_mib_per_s: Option<Spread>,
    server_cpu_ms_per_mib: Option<Spread>,
}

/// Builds netcore's echo example (release), the one server this section needs.
pub(super) fn build() -> Result<()> {
    crate::run_step(
        "cargo build --release -p netcore --example echo",
        crate::cargo().args(["build", "--release", "-p", "netcore", "--example", "echo"]),
    )
}

/// [`RUNS`] runs of the script against `echo`, netcore's echo example.
pub(super) fn section(echo: &Path) -> Result<FloodSummary> {
    let runs = (0..RUNS)
        .map(|_| run(echo))
        .collect::<Result<Vec<FloodRun>>>()?;
    let spread = |f: fn(&FloodRun) -> f64| Spread::of(runs.iter().map(f));
    Ok(FloodSummary {
        command: command("ECHO").join(" "),
        probe_max_ms: spread(|r| r.probe_max_ms),
        probe_median_ms: spread(|r| r.probe_median_ms),
        new_client_max_ms: spread(|r| r.new_client_max_ms),
        new_client_median_ms: spread(|r| r.new_client_median_ms),
        flood_mib_per_s: spread(|r| r.flood_mib_per_s),
        server_cpu_ms_per_mib: spread(|r| r.server_cpu_ms_per_mib),
        runs,
    })
}

/// `python3 bench/flood_latency.py ECHO DURATION FLOODERS`.
fn command(echo: &str) -> Vec<String> {
    ["python3", SCRIPT, echo, DURATION, FLOODERS]
        .map(String::from)
        .into()
}

/// One run of the script, under `timeout`, and the JSON line it printed last.
fn run(echo: &Path) -> Result<FloodRun> {
    let argv = command(&echo.display().to_string());
    let out = Command::new("timeout")
        .args(["-k", "5", RUN_TIMEOUT])
        .args(&argv)
        .current_dir(root())
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("run {SCRIPT}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!(
            "{SCRIPT} exited with {} (124: timed out): {}",
            out.status,
            stdout.trim()
        );
    }
    let run = parse(&stdout)?;
    eprintln!(
        "bench: flood: probe worst {:.1} ms, new client worst {:.1} ms, {:.0} MiB/s, {:.2} ms CPU per MiB",
        run.probe_max_ms, run.new_client_max_ms, run.flood_mib_per_s, run.server_cpu_ms_per_mib
    );
    Ok(run)
}

/// The script's report: its last line that is not blank.
fn parse(stdout: &str) -> Result<FloodRun> {
    let line = stdout.lines().rfind(|l| !l.trim().is_empty()).unwrap_or("");
    serde_json::from_str(line).with_context(|| format!("{SCRIPT} printed no report: {stdout}"))
}

/// A row per run, then the medians with their ranges.
pub(super) fn print(flood: &FloodSummary) {
    println!(
        "\n| flood ({FLOODERS} clients, {DURATION} s) | probe worst ms | probe median ms | new client worst ms | new client median ms | flood MiB/s | server CPU ms/MiB |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (i, r) in flood.runs.iter().enumerate() {
        println!(
            "| run {} | {:.1} | {:.3} | {:.1} | {:.3} | {:.0} | {:.3} |",
            i + 1,
            r.probe_max_ms,
            r.probe_median_ms,
            r.new_client_max_ms,
            r.new_client_median_ms,
            r.flood_mib_per_s,
            r.server_cpu_ms_per_mib
        );
    }
    let s = |s: &Option<Spread>, digits: usize| {
        s.map_or_else(|| "-".to_string(), |s| format!("{s:.digits$}"))
    };
    println!(
        "| median (min-max) | {} | {} | {} | {} | {} | {} |",
        s(&flood.probe_max_ms, 1),
        s(&flood.probe_median_ms, 3),
        s(&flood.new_client_max_ms, 1),
        s(&flood.new_client_median_ms, 3),
        s(&flood.flood_mib_per_s, 0),
        s(&flood.server_cpu_ms_per_mib, 3),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scripts_report_is_read_and_its_command_is_the_documented_one() {
        let out = "\n{\"server\": \"target/release/examples/echo\", \"probe_max_ms\": 12.5, \"probe_median_ms\": 0.21, \"probes\": 230, \"new_client_max_ms\": 20.1, \"new_client_median_ms\": 1.5, \"flood_mib_per_s\": 1539.2, \"server_cpu_ms_per_mib\": 0.6}\n";
        let run = parse(out).unwrap();
        assert_eq!(run.probes, 230);
        assert_eq!(run.flood_mib_per_s, 1539.2);
        assert!(parse("Traceback (most recent call last):\n").is_err());
        assert_eq!(
            command("ECHO").join(" "),
            "python3 bench/flood_latency.py ECHO 5 2"
        );
    }
}
