//! netcore's integration tests: one test binary (one link), a module per capability,
//! as mio's `tests/` has a file per type; `util` holds the shared helpers.

mod util;

mod backpressure;
mod blocking;
#[cfg(feature = "resolver")]
mod connect_name;
mod cross_connection;
mod examples;
mod fairness;
mod fd_exhaustion;
mod flow_control;
mod kept_input;
mod messages;
mod multi_loop;
mod real_clients;
mod regressions;
mod settings;
mod shutdown;
mod state;
mod tcp_connect;
mod tcp_listener;
mod timers;
mod udp;
mod unix;
mod unix_connect;
