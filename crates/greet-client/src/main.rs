//! `greet-client`: the socket tutorial's client, its lookup script, and a load generator.

mod client;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

const EXAMPLES: &str = "\
Examples:
  greet-client                              the tutorial: this host's name, port 12345
  greet-client --host 127.0.0.1 --port 5000 --udp
  greet-client --unix /tmp/greet.sock
  greet-client --udp --host '<broadcast>' --port 5000   (sets SO_BROADCAST)";

/// The socket tutorial's client: connect, print what the server sends, close.
#[derive(Debug, Parser)]
#[command(version, after_help = EXAMPLES, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(flatten)]
    client: client::ClientArgs,

    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let cli = Cli::parse();
    match cli.command {
        None => client::run(&cli.client),
    }
}
