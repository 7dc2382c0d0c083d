//! The parts of `greet-server` that read input it does not control: the PROXY protocol
//! header a peer sends first ([`proxy`]), the socket-activation environment ([`activation`])
//! and the command line ([`cli`], with its address blocks, [`cidr`]).
//!
//! They are a library so that the fuzz targets (`fuzz/`) and the property tests
//! (`tests/properties.rs`) call the very functions the server runs, not copies; the binary
//! (`main.rs`, with the event-loop service and the UDP rate limiter) stays a thin user of
//! them.

pub mod activation;
pub mod cidr;
pub mod cli;
pub mod proxy;
