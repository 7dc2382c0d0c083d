//! `greet-client`: the socket tutorial's client, its lookup script, and a load generator.

mod bench;
mod client;
mod lookup;
mod man_page;
mod output;
mod pyjson;

use std::process::ExitCode;

use anyhow::Context;
use clap::{CommandFactory, Parser, Subcommand};

/// The socket tutorial's client: connect, print what the server sends, close.
#[derive(Debug, Parser)]
#[command(
    version,
    after_help = clap_dist::examples_help(man_page::EXAMPLES),
    args_conflicts_with_subcommands = true,
    disable_help_subcommand = true
)]
struct Cli {
    #[command(flatten)]
    client: client::ClientArgs,

    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The tutorial's lookup script: getaddrinfo(HOST, SERVICE) printed as Python's pprint
    /// shows it, then gethostname().
    Lookup(lookup::LookupArgs),
    /// A load generator: N connections (or UDP requests) with C in flight, or with --echo
    /// requests to an echo server over kept-alive connections; every reply checked byte for
    /// byte; prints the rate, latency percentiles and errors by kind.
    Bench(bench::BenchArgs),
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    match run() {
        Ok(code) => code,
        Err(e) => clap_dist::exit_status("greet-client", &e),
    }
}

fn run() -> anyhow::Result<ExitCode> {
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if let Some(request) = clap_dist::request(&argv, "greet-client") {
        let dir = request.map_err(anyhow::Error::msg)?;
        clap_dist::generate(Cli::command(), "greet-client", &dir, &man_page::MAN_PAGE)?;
        return Ok(ExitCode::SUCCESS);
    }
    let cli = Cli::try_parse_from(argv)?;
    match cli.command {
        None => client::run(&cli.client).map(|()| ExitCode::SUCCESS),
        // lookup prints its own failure line (and JSON document) and gives its status.
        Some(Command::Lookup(args)) => Ok(lookup::run(&args)),
        Some(Command::Bench(args)) => bench::run(&args).context("bench"),
    }
}
