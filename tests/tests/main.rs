//! The end-to-end tests: the real greet-server and greet-client binaries (and the real
//! HAProxy, systemd-socket-activate, shell completions and groff), in one test binary (one
//! link) with a module per concern. The helpers are the `e2e` library (`tests/src/lib.rs`).

mod access_log;
mod activation;
mod bench;
mod completion;
mod edges;
mod errors;
mod flags;
mod fleet;
mod haproxy;
mod hostile_input;
mod limits;
mod lookup;
mod man_pages;
mod metrics;
mod operations;
mod reliability;
mod reliability_client;
mod reliability_server;
mod server;
