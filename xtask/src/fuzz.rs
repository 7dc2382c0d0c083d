//! `cargo xtask fuzz [--seconds N] [TARGET...]`: every fuzz target of `fuzz/` (or those
//! named) under libFuzzer for a bounded time each, one after the other, then a table of
//! executions per target.
//!
//! Needs a nightly toolchain and cargo-fuzz (libFuzzer instrumentation is nightly-only); each
//! missing piece is one clear error saying how to install it. Not part of `cargo xtask test`:
//! CI has no minutes for it. The same invariants run on stable as property tests under
//! `cargo test`.
//!
//! The corpus grows in `fuzz/corpus/TARGET` (not committed), seeded from `fuzz/seeds/TARGET`
//! where present. A finding stops the run: libFuzzer saves the input under
//! `fuzz/artifacts/TARGET/`, and it becomes a regression test.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use crate::root;

/// Each target with its sanitizer: AddressSanitizer where `unsafe` code and C calls are
/// reached (the resolver calls getaddrinfo), none for pure safe Rust, which runs about ten
/// times faster without it and cannot have the memory errors ASan finds.
const TARGETS: &[(&str, &str)] = &[
    ("proxy", "none"),
    ("resolver_socket_addr", "address"),
    ("activation_env", "none"),
    ("flags", "none"),
];

const DEFAULT_SECONDS: u64 = 60;

const USAGE: &str = "usage: cargo xtask fuzz [--seconds N] [TARGET...]";

/// Parses the arguments after `fuzz` and runs the targets.
pub fn run(args: &[String]) -> Result<(), String> {
    let mut seconds = DEFAULT_SECONDS;
    let mut chosen: Vec<&str> = Vec::new();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--seconds" => {
                let value = args.next().ok_or(USAGE)?;
                seconds = value
                    .parse()
                    .ok()
                    .filter(|&s| s > 0)
                    .ok_or_else(|| format!("--seconds {value:?}: a whole number above 0"))?;
            }
            "-h" | "--help" => {
                let names: Vec<&str> = TARGETS.iter().map(|(t, _)| *t).collect();
                println!("{USAGE}\n\ntargets: {}", names.join(", "));
                return Ok(());
            }
            name => match TARGETS.iter().find(|(t, _)| *t == name) {
                Some((t, _)) => chosen.push(t),
                None => return Err(format!("unknown fuzz target {name:?}\n{USAGE}")),
            },
        }
    }
    if chosen.is_empty() {
        chosen = TARGETS.iter().map(|(t, _)| *t).collect();
    }
    check_tools()?;
    let mut table = Vec::new();
    for name in chosen {
        let sanitizer = TARGETS
            .iter()
            .find(|(t, _)| *t == name)
            .map_or("address", |(_, s)| s);
        let stats = run_target(name, sanitizer, seconds)?;
        table.push((name, stats));
    }
    eprintln!(
        "\n{:<22} {:>8} {:>14} {:>10}",
        "target", "seconds", "executions", "exec/s"
    );
    for (name, s) in &table {
        eprintln!(
            "{name:<22} {:>8} {:>14} {:>10}",
            s.seconds, s.executions, s.per_second
        );
    }
    eprintln!("no finding in any target");
    Ok(())
}

/// `cargo` through rustup, so that `+nightly` selects the toolchain (the `CARGO` cargo sets
/// for xtask is the stable toolchain's own binary, which knows no `+toolchain`).
fn rustup_cargo() -> Command {
    let mut cmd = Command::new("cargo");
    cmd.current_dir(root()).env_remove("RUSTUP_TOOLCHAIN");
    cmd
}

fn check_tools() -> Result<(), String> {
    let works = |args: &[&str]| {
        rustup_cargo()
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if !works(&["+nightly", "--version"]) {
        return Err(
            "no nightly toolchain (libFuzzer needs one): rustup toolchain install nightly".into(),
        );
    }
    if !works(&["+nightly", "fuzz", "--version"]) {
        return Err("cargo-fuzz is not installed: cargo install cargo-fuzz".into());
    }
    Ok(())
}

/// What libFuzzer's final statistics say.
#[derive(Debug, Default)]
struct Stats {
    seconds: u64,
    executions: u64,
    per_second: u64,
}

fn run_target(name: &str, sanitizer: &str, seconds: u64) -> Result<Stats, String> {
    let corpus = format!("fuzz/corpus/{name}");
    std::fs::create_dir_all(root().join(&corpus)).map_err(|e| format!("create {corpus}: {e}"))?;
    let target_dir = format!("fuzz/target/{sanitizer}");
    let mut cmd = rustup_cargo();
    cmd.args([
        "+nightly",
        "fuzz",
        "run",
        "--fuzz-dir",
        "fuzz",
        "-s",
        sanitizer,
    ])
    .args(["--target-dir", &target_dir, name, &corpus]);
    let seeds = format!("fuzz/seeds/{name}");
    if root().join(&seeds).is_dir() {
        cmd.arg(&seeds);
    }
    cmd.args([
        "--",
        &format!("-max_total_time={seconds}"),
        "-print_final_stats=1",
    ]);
    eprintln!("\n==> fuzz {name} for {seconds} s (sanitizer: {sanitizer})");
    let mut child = cmd
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("fuzz {name}: cannot start cargo: {e}"))?;
    let stderr = child.stderr.take().ok_or("fuzz: no stderr")?;
    let mut stats = Stats::default();
    let started = std::time::Instant::now();
    for line in BufReader::new(stderr).lines() {
        let Ok(line) = line else { break };
        let number = |key: &str| {
            line.strip_prefix(key)
                .and_then(|v| v.trim().parse::<u64>().ok())
        };
        if let Some(n) = number("stat::number_of_executed_units:") {
            stats.executions = n;
        } else if let Some(n) = number("stat::average_exec_per_sec:") {
            stats.per_second = n;
        }
        eprintln!("{line}");
    }
    let status = child.wait().map_err(|e| format!("fuzz {name}: {e}"))?;
    stats.seconds = started.elapsed().as_secs();
    if !status.success() {
        return Err(format!(
            "fuzz {name}: a finding or a failure ({status}); a crashing input is saved under \
             fuzz/artifacts/{name}/ (reproduce: cargo +nightly fuzz run -s {sanitizer} {name} \
             FILE); make it a regression test"
        ));
    }
    Ok(stats)
}
