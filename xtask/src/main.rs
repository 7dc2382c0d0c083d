//! The project's automation: `cargo xtask demo | test | bench | dist | fuzz`.
//!
//! Run through the `xtask` alias in `.cargo/config.toml`; cargo itself is found through the
//! `CARGO` environment variable that cargo sets for the programs it runs.

mod bench;
mod demo;
mod dist;
mod fuzz;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{bail, Context, Result};

/// Every task and what it does, for `--help`.
const TASKS: [(&str, &str); 5] = [
    (
        "demo",
        "build, start greet-server in the background, run the client over TCP, UDP and a\n\
         Unix socket and the lookup, check every output, stop the server with SIGTERM",
    ),
    (
        "bench",
        "release build, then the README's performance scenarios against the tutorial's Python server\n\
         and the C epoll server of bench/c-greet, checked by bench/loadgen: a table, a verdict\n\
         per README target, and JSON under target/bench/ (the echo, pairs and flood sections\n\
         included);\n\
         `bench echo`: only the echo section (netcore's echo example vs raw mio and tokio,\n\
         CPU per request and the kernel's share of it);\n\
         `bench pairs`: only netcore's http, redis and proxy examples vs their tokio twins\n\
         under wrk and redis-benchmark (JSON in target/bench/pairs-latest.json);\n\
         `bench flood`: only bench/flood_latency.py against netcore's echo example, 3 runs:\n\
         a small client's latency while two others flood it (about 20 s; JSON in\n\
         target/bench/flood-latest.json);\n\
         `bench operator`: greet-server's user-space and total CPU per connection with the\n\
         default access log, --log-format json, --metrics, and over UDP, 5 rounds (about\n\
         90 s; not part of the full run; JSON in target/bench/operator-latest.json);\n\
         `bench ir [--record|--check]`: user-space instructions (callgrind) and system calls\n\
         (strace) per request, one at a time and 16-deep pipelined: echo (netcore, raw mio, tokio, C\n\
         epoll) and netcore's http and redis examples vs their tokio twins (needs valgrind and\n\
         strace; not part of the full run); --record writes netcore's echo figures to\n\
         bench/ir-baseline.json, which `test` holds it to (fails 10% above); --check runs only\n\
         that gate;\n\
         `bench fleet [RUNS]`: the HAProxy fleet test (tests/tests/fleet.rs) RUNS times (default\n\
         5), its failed connections per phase in a table (needs haproxy; not part of the full\n\
         run)",
    ),
    (
        "test",
        "what CI runs: cargo fmt --check, clippy -D warnings, cargo test --workspace (the\n\
         benchmark peers are left to `bench`), netcore without its `resolver` feature (clippy,\n\
         unit tests, docs), netcore's instructions per echo request against\n\
         bench/ir-baseline.json (`bench ir --check`; skipped without valgrind), cargo doc\n\
         (warnings denied), cargo package of netcore and sockaddr-resolver (each archive\n\
         builds on its own), then the demo",
    ),
    (
        "dist",
        "release binaries (stripped), shell completions (bash, zsh, fish) and man pages\n\
         under target/dist/",
    ),
    (
        "fuzz",
        "[--seconds N] [TARGET...]: every fuzz target of fuzz/ under libFuzzer for N seconds\n\
         each (default 60), one after the other; needs nightly and cargo-fuzz. Not part of `test`",
    ),
];

/// `usage: ...` for every task, or for one.
fn usage(only: Option<&str>) -> String {
    let mut text = format!(
        "usage: cargo xtask {}\n\ntasks:\n",
        only.unwrap_or("<task>")
    );
    for (name, what) in TASKS {
        if only.is_none_or(|t| t == name) {
            let what = what.replace('\n', "\n          ");
            text.push_str(&format!("  {name:<8}{what}\n"));
        }
    }
    text
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let task = args.first().map(String::as_str);
    let rest = args.get(1..).unwrap_or_default();
    let known = task.is_some_and(|t| TASKS.iter().any(|(name, _)| *name == t));
    // `cargo xtask demo --help` prints the task's help; it must never run the task.
    if known && rest.iter().any(|a| a == "-h" || a == "--help") {
        print!("{}", usage(task));
        return ExitCode::SUCCESS;
    }
    let bench_ir = task == Some("bench") && rest.first().is_some_and(|a| a == "ir");
    let bench_fleet = task == Some("bench") && rest.first().is_some_and(|a| a == "fleet");
    let bench_section = task == Some("bench")
        && matches!(rest, [s] if ["echo", "pairs", "operator", "flood"].contains(&s.as_str()));
    let takes_arguments = bench_section || bench_ir || bench_fleet || task == Some("fuzz");
    if known && !rest.is_empty() && !takes_arguments {
        let takes = if task == Some("bench") {
            "a section (echo, pairs, flood, operator, ir [--record|--check], fleet [RUNS]) or \
             nothing"
        } else {
            "no arguments"
        };
        eprintln!(
            "xtask: {} takes {takes}, got {rest:?}\n\n{}",
            task.unwrap_or_default(),
            usage(task)
        );
        return ExitCode::from(2);
    }
    let result = match task {
        Some("demo") => demo::run(),
        Some("test") => test(),
        // `bench ir` takes its own flags (`--record`, `--check`).
        Some("bench") if bench_ir => bench::ir::run(rest.get(1..).unwrap_or_default()),
        // `bench fleet` takes a number of runs.
        Some("bench") if bench_fleet => bench::fleet::run(rest.get(1..).unwrap_or_default()),
        Some("bench") => bench::run(std::env::args().nth(2).as_deref()),
        Some("dist") => dist::run(),
        Some("fuzz") => fuzz::run(rest).map_err(anyhow::Error::msg),
        Some("-h" | "--help") => {
            print!("{}", usage(None));
            return ExitCode::SUCCESS;
        }
        None => {
            eprint!("{}", usage(None));
            return ExitCode::from(2);
        }
        Some(other) => {
            eprintln!("xtask: unknown task {other:?}\n\n{}", usage(None));
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // The error and its causes on one line: `xtask: context: cause: OS error`.
            eprintln!("xtask: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The workspace root: the parent of this crate's directory.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// `cargo` as cargo itself was invoked.
pub fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.current_dir(root());
    cmd
}

/// Runs a command to completion, echoing it first; a non-zero exit is an error.
pub fn run_step(title: &str, cmd: &mut Command) -> Result<()> {
    eprintln!("\n==> {title}");
    let started = std::time::Instant::now();
    let status = cmd
        .status()
        .with_context(|| format!("{title}: cannot start"))?;
    if !status.success() {
        bail!("{title}: failed ({status})");
    }
    // Where a slow run spent its time, step by step.
    eprintln!("==> {title}: {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}

/// `cargo clippy` over `which` (packages, features), every target, warnings denied.
fn clippy(which: &[&str]) -> Command {
    let mut cmd = cargo();
    cmd.arg("clippy")
        .args(which)
        .args(["--all-targets", "--", "-D", "warnings"]);
    cmd
}

fn test() -> Result<()> {
    run_step(
        "cargo fmt --check",
        cargo().args(["fmt", "--all", "--", "--check"]),
    )?;
    run_step("cargo clippy", &mut clippy(&["--workspace"]))?;
    // The benchmark peers bench/mio-echo and bench/tokio-* have no tests, and only the
    // benchmarks run them, built in release: a debug build of tokio here would cost time and
    // nothing else. clippy still checks them. bench/loadgen (libc only, cheap to build) is
    // tested: it is the yardstick greet-client bench is held against.
    let mut cargo_test = cargo();
    // Most tests wait (on sockets, on servers, on deadlines) rather than compute: two per
    // core overlap those waits. On the 2-core machine the netcore and end-to-end binaries
    // take 20 and 17 s this way instead of 31 and 31 s, and pass the same, also while
    // both run at once. RUST_TEST_THREADS, when set, is left as it is.
    if std::env::var_os("RUST_TEST_THREADS").is_none() {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        cargo_test.env("RUST_TEST_THREADS", (2 * cores).to_string());
    }
    run_step(
        "cargo test",
        cargo_test.args([
            "test",
            "--workspace",
            "--exclude",
            "mio-echo",
            "--exclude",
            "tokio-echo",
            "--exclude",
            "tokio-http",
            "--exclude",
            "tokio-redis",
            "--exclude",
            "tokio-proxy",
            "--exclude",
            "tokio-connect-proxy",
        ]),
    )?;
    // netcore stays usable without sockaddr-resolver: it builds, lints, tests and documents
    // without the feature (connects by name, and what needs them, compile out). These
    // builds are variants nothing else reuses: no incremental state for them, which would
    // add a few hundred MB to target/ for no faster re-run.
    run_step(
        "cargo clippy -p netcore --no-default-features",
        clippy(&["-p", "netcore", "--no-default-features"]).env("CARGO_INCREMENTAL", "0"),
    )?;
    run_step(
        "cargo test -p netcore --no-default-features --lib",
        cargo()
            .args(["test", "-p", "netcore", "--no-default-features", "--lib"])
            .env("CARGO_INCREMENTAL", "0"),
    )?;
    run_step(
        "cargo doc -p netcore --no-default-features",
        cargo()
            .args(["doc", "-p", "netcore", "--no-deps", "--no-default-features"])
            .env("RUSTDOCFLAGS", "-D warnings"),
    )?;
    // Deterministic instruction counts: netcore's echo against bench/ir-baseline.json.
    bench::ir::gate()?;
    run_step(
        "cargo doc",
        cargo()
            .args(["doc", "--workspace", "--no-deps", "--lib"])
            .env("RUSTDOCFLAGS", "-D warnings"),
    )?;
    // The two published libraries: the archive holds what the crate needs (README, licences,
    // no path-only dependency) and builds on its own. `--allow-dirty` because this checks
    // the archive, not the commit: work in progress is packaged as it is (CI runs on a clean
    // checkout, and `cargo publish` itself still refuses a dirty tree).
    run_step(
        "cargo package (netcore, sockaddr-resolver)",
        cargo().args([
            "package",
            "--allow-dirty",
            "-p",
            "netcore",
            "-p",
            "sockaddr-resolver",
        ]),
    )?;
    demo::run()
}
