//! The project's automation: `cargo xtask demo | test | bench | dist | fuzz`.
//!
//! Run through the `xtask` alias in `.cargo/config.toml`; cargo itself is found through the
//! `CARGO` environment variable that cargo sets for the programs it runs.

mod bench;
mod demo;
mod dist;
mod fuzz;
mod process;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

const USAGE: &str = "\
usage: cargo xtask <task>

tasks:
  demo    build, start greet-server in the background, run the client over TCP, UDP and a
          Unix socket and the lookup, check every output, stop the server with SIGTERM
  bench   release build, then SPEC section 5's scenarios against the tutorial's Python server
          (and ../shared/peers where built): a table, and JSON under target/bench/
  test    what CI runs: cargo fmt --check, clippy -D warnings, cargo test --workspace,
          cargo doc (warnings denied), then the demo
  dist    release binaries, shell completions (bash, zsh, fish) and man pages under
          target/dist/
  fuzz [--seconds N] [TARGET...]
          every fuzz target of fuzz/ under libFuzzer for N seconds each (default 60), one
          after the other; needs nightly and cargo-fuzz. Not part of `test`";

fn main() -> ExitCode {
    let task = std::env::args().nth(1);
    let result = match task.as_deref() {
        Some("demo") => demo::run(),
        Some("test") => test(),
        Some("bench") => bench::run(),
        Some("dist") => dist::run(),
        Some("fuzz") => fuzz::run(&std::env::args().skip(2).collect::<Vec<_>>()),
        Some("-h" | "--help") | None => {
            println!("{USAGE}");
            return if task.is_some() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(2)
            };
        }
        Some(other) => Err(format!("unknown task {other:?}\n\n{USAGE}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask: {message}");
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
pub fn run_step(title: &str, cmd: &mut Command) -> Result<(), String> {
    eprintln!("\n==> {title}");
    let status = cmd
        .status()
        .map_err(|e| format!("{title}: cannot start: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{title}: failed ({status})"))
    }
}

fn test() -> Result<(), String> {
    run_step(
        "cargo fmt --check",
        cargo().args(["fmt", "--all", "--", "--check"]),
    )?;
    run_step(
        "cargo clippy",
        cargo().args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ]),
    )?;
    run_step("cargo test", cargo().args(["test", "--workspace"]))?;
    run_step(
        "cargo doc",
        cargo()
            .args(["doc", "--workspace", "--no-deps", "--lib"])
            .env("RUSTDOCFLAGS", "-D warnings"),
    )?;
    demo::run()
}
