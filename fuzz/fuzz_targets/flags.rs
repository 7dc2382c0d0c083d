//! greet-server's duration flags (--idle-timeout, --write-timeout, --proxy-timeout,
//! --restart-timeout) through its own clap definitions, and its address flags (--host,
//! --port) through the resolver they are handed to, numeric hosts only: the invariants of
//! `crates/greet-server/tests/invariants` and `crates/resolver/tests/it/invariants`.
#![no_main]

#[path = "../../crates/greet-server/tests/invariants/mod.rs"]
mod invariants;
#[path = "../../crates/resolver/tests/it/invariants/mod.rs"]
mod resolver_invariants;

use clap::Parser;
use greet_server::cli::Args;
use resolver::{Family, Transport};

libfuzzer_sys::fuzz_target!(|input: (&str, &str, &str, bool)| {
    let (duration, host, port, v6) = input;
    invariants::duration_flags(duration);
    let argv = [
        "greet-server".to_owned(),
        format!("--host={host}"),
        format!("--port={port}"),
    ];
    let args = Args::try_parse_from(&argv).expect("--host and --port take any text");
    assert_eq!(args.host.as_deref(), Some(host));
    assert_eq!(args.port, port);
    let family = Family::from_flags(!v6 && args.ipv4, v6);
    let _ = resolver_invariants::check_socket_addr(host, &args.port, family, Transport::Tcp);
});
