//! `cargo xtask bench ir`: user-space instructions per echo request, counted by valgrind's
//! callgrind. Wall-clock CPU cannot see a few hundred instructions through this machine's
//! noise (the kernel's share of a request dominates); an instruction count can, and it is
//! the same from run to run for the same binary and load.
//!
//! Each echo server (netcore's `examples/echo.rs`, `bench/mio-echo`, `bench/tokio-echo` and
//! the C epoll server `bench/c-echo`) runs under callgrind twice, under
//! `greet-client bench --echo` with 10 connections of 64-byte requests: 200 and then 1,200
//! requests per connection. The difference of the two totals divided by the 10,000 extra
//! requests is the cost per request; start-up and shutdown cancel out.

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};
use bench_report::BenchReport;
use proc_harness::{Process, Stderr};
use serde::Serialize;

use super::{report_of, target_dir};

/// Connections of the load, each with one request outstanding at a time.
const CONNECTIONS: u32 = 10;
/// Requests per connection of the two runs whose difference is measured.
const RUNS: [u32; 2] = [200, 1200];

/// One server's figure.
#[derive(Debug, Serialize)]
pub(super) struct IrRow {
    pub(super) server: String,
    /// User-space instructions per request.
    pub(super) instructions_per_request: f64,
    /// The same over raw mio's.
    pub(super) vs_mio: Option<f64>,
}

/// Whether valgrind is there to count with.
pub(super) fn valgrind_present() -> bool {
    Command::new("valgrind")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// The section: every server's instructions per request, netcore's first.
pub(super) fn section(release: &Path, client: &Path) -> Result<Vec<IrRow>> {
    let servers = [
        ("netcore-echo", release.join("examples").join("echo")),
        ("mio-echo", release.join("mio-echo")),
        ("tokio-echo", release.join("tokio-echo")),
        ("c-echo", super::build_c("c-echo", &[])?),
    ];
    let mut rows = Vec::new();
    for (name, path) in &servers {
        let [small, large] = RUNS.map(|per| count(name, path, client, per));
        let (small, large) = (small?, large?);
        let extra = f64::from(CONNECTIONS * (RUNS[1] - RUNS[0]));
        let per_request = large.saturating_sub(small) as f64 / extra;
        eprintln!("bench: ir {name}: {per_request:.0} instructions per request");
        rows.push(IrRow {
            server: name.to_string(),
            instructions_per_request: per_request,
            vs_mio: None,
        });
    }
    let mio = rows
        .iter()
        .find(|r| r.server == "mio-echo")
        .map(|r| r.instructions_per_request);
    for row in &mut rows {
        row.vs_mio = mio
            .filter(|m| *m > 0.0)
            .map(|m| row.instructions_per_request / m);
    }
    Ok(rows)
}

/// Runs `server` under callgrind for `per_connection` requests on each connection and
/// returns the instructions it executed in all.
fn count(name: &str, server: &Path, client: &Path, per_connection: u32) -> Result<u64> {
    let out = target_dir()
        .join("bench")
        .join(format!("callgrind-{name}-{per_connection}.out"));
    let mut cmd = Command::new("valgrind");
    cmd.arg("--tool=callgrind")
        .arg(format!("--callgrind-out-file={}", out.display()))
        .arg(server)
        .arg("127.0.0.1:0");
    let process = Process::start_with(name, cmd, Stderr::Null)?;
    let port = process
        .port()
        .with_context(|| format!("{name}: no port in {:?}", process.ready()))?;
    let report = load(client, port, per_connection)?;
    let want = u64::from(CONNECTIONS * per_connection);
    if report.ok != want {
        bail!("{name}: {} of {want} echoes came back intact", report.ok);
    }
    // callgrind writes its totals when the program ends, on SIGTERM too.
    process.stop().with_context(|| format!("stop {name}"))?;
    let text = std::fs::read_to_string(&out).with_context(|| format!("read {}", out.display()))?;
    total(&text).with_context(|| format!("no totals in {}", out.display()))
}

/// `greet-client bench --echo` against `port`: `per_connection` 64-byte requests on each
/// of the connections, one at a time.
fn load(client: &Path, port: u16, per_connection: u32) -> Result<BenchReport> {
    let out = Command::new(client)
        .args(["bench", "--json", "--echo", "--size", "64", "--port"])
        .arg(port.to_string())
        .args([
            "-n",
            &CONNECTIONS.to_string(),
            "-c",
            &CONNECTIONS.to_string(),
        ])
        .args(["--requests", &per_connection.to_string()])
        .args(["--timeout", "60s", "--duration", "300s"])
        .output()
        .context("run greet-client bench --echo")?;
    report_of(&out.stdout)
}

/// The instruction total of a callgrind output file (its `summary:` or `totals:` line).
fn total(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix("summary:").or(l.strip_prefix("totals:")))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

/// The table `cargo xtask bench ir` prints.
pub(super) fn print(rows: &[IrRow]) {
    println!();
    println!("| echo server (10 connections x 64 B) | instructions per request | vs raw mio |");
    println!("|---|---|---|");
    for row in rows {
        let ratio = row
            .vs_mio
            .map_or_else(|| "-".to_string(), |r| format!("{r:.2}x"));
        println!(
            "| {} | {:.0} | {ratio} |",
            row.server, row.instructions_per_request
        );
    }
}

#[cfg(test)]
mod tests {
    use super::total;

    #[test]
    fn the_total_comes_from_the_summary_or_totals_line() {
        let file = "events: Ir\nfn=(1) main\n3 14\nsummary: 385847\n";
        assert_eq!(total(file), Some(385_847));
        assert_eq!(total("totals: 12 0\n"), Some(12));
        assert_eq!(total("events: Ir\n"), None);
    }
}
