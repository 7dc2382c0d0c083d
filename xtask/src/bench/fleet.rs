//! `cargo xtask bench fleet [RUNS]`: the figures of the README's "Running several
//! instances". They come from the end-to-end test that runs `contrib/haproxy/greet.cfg` for
//! real (`tests/tests/fleet.rs`: three greet-server instances behind HAProxy under
//! `greet-client bench` load, a rolling SIGHUP restart, then one instance killed with
//! SIGKILL and started again), so this runs that test `RUNS` times (default 5) and gathers
//! the line it prints for each phase into one table. The test's own assertions still hold
//! every run: a run that fails them fails this command.

use std::process::Command;

use anyhow::{bail, Context, Result};
use serde::Serialize;

use super::write_json;
use crate::{cargo, run_step};

/// Runs when none are asked for: enough to see the spread of the kill phase.
const DEFAULT_RUNS: u32 = 5;

/// One run of the test: what each phase's line says.
#[derive(Debug, Serialize)]
struct FleetRun {
    /// Connections that failed through the rolling restart, and through the kill.
    restart_failed: u64,
    kill_failed: u64,
    /// The phases' lines as the test printed them.
    lines: Vec<String>,
}

/// What `cargo xtask bench fleet` writes to `target/bench/fleet-latest.json`.
#[derive(Debug, Serialize)]
struct FleetDoc {
    date: u64,
    runs: Vec<FleetRun>,
}

/// `cargo xtask bench fleet [RUNS]`.
pub(crate) fn run(args: &[String]) -> Result<()> {
    let runs = match args {
        [] => DEFAULT_RUNS,
        [n] => n
            .parse()
            .ok()
            .filter(|n| *n > 0)
            .with_context(|| format!("bench fleet takes a number of runs, got {n:?}"))?,
        other => bail!("bench fleet takes at most a number of runs, got {other:?}"),
    };
    let haproxy = Command::new("haproxy").arg("-v").output();
    if !haproxy.is_ok_and(|o| o.status.success()) {
        bail!("bench fleet runs HAProxy: apt-get install haproxy");
    }
    run_step(
        "cargo test -p e2e --no-run",
        cargo().args(["test", "-p", "e2e", "--test", "e2e", "--no-run"]),
    )?;
    let mut done = Vec::new();
    for index in 1..=runs {
        eprintln!("bench fleet: run {index} of {runs}");
        let run = once().with_context(|| format!("run {index} of {runs}"))?;
        for line in &run.lines {
            eprintln!("  {line}");
        }
        done.push(run);
    }
    print(&done);
    write_json(
        &FleetDoc {
            date: super::unix_time(),
            runs: done,
        },
        "fleet",
    )
}

/// One run of the fleet test, its phases' lines read from its output.
fn once() -> Result<FleetRun> {
    let out = cargo()
        .args(["test", "-p", "e2e", "--test", "e2e", "--", "fleet::"])
        .args(["--nocapture", "--test-threads", "1"])
        // With CI set the test fails where HAProxy is missing instead of skipping.
        .env("CI", "1")
        .output()
        .context("run the fleet test")?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        let tail: Vec<&str> = stderr.lines().rev().take(30).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        bail!("the fleet test failed:\n{}", tail.join("\n"));
    }
    parse(&stderr)
}

/// The restart's and the kill's lines (`fleet: rolling restart ...`, `fleet: one of 3
/// killed ...`) and the failures each names.
fn parse(output: &str) -> Result<FleetRun> {
    let lines: Vec<String> = output
        .lines()
        .filter(|l| l.starts_with("fleet: "))
        .map(str::to_string)
        .collect();
    let failed = |phase: &str| {
        lines
            .iter()
            .find(|l| l.starts_with(phase))
            .and_then(|l| failed_in(l))
            .with_context(|| format!("no line starting {phase:?} in the test's output"))
    };
    Ok(FleetRun {
        restart_failed: failed("fleet: rolling restart")?,
        kill_failed: failed("fleet: one of 3 killed")?,
        lines,
    })
}

/// The number before the first ` failed` in `line`.
fn failed_in(line: &str) -> Option<u64> {
    let (before, _) = line.split_once(" failed")?;
    before.rsplit(' ').next()?.parse().ok()
}

fn print(runs: &[FleetRun]) {
    let list = |f: fn(&FleetRun) -> u64| {
        runs.iter()
            .map(|r| f(r).to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!("\n| phase | failed connections, run by run |");
    println!("|---|---|");
    println!(
        "| rolling restart of all three | {} |",
        list(|r| r.restart_failed)
    );
    println!(
        "| one killed (SIGKILL), started again | {} |",
        list(|r| r.kill_failed)
    );
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn each_phase_line_gives_its_failures() {
        let output = "running 1 test\n\
            fleet: rolling restart of 3 in 41ms under load: 29999 ok of 30000, 0 failed, 4100/s\n\
            fleet: one of 3 killed (SIGKILL) and started again under load: 29996 ok of 30000, \
            4 failed ({\"wrong_payload\": 4}); HAProxy: 4 lost on the killed server (4 reset, \
            0 closed empty), 12 refused connects redispatched\n\
            test fleet::a_fleet ... ok\n";
        let run = parse(output).unwrap();
        assert_eq!((run.restart_failed, run.kill_failed), (0, 4));
        assert_eq!(run.lines.len(), 2);
    }

    #[test]
    fn a_missing_phase_is_an_error() {
        assert!(parse("fleet: rolling restart of 3: 1 ok of 1, 0 failed\n").is_err());
    }
}
