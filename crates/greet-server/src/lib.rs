//! The parts of `greet-server` that read input it does not control: the PROXY protocol
//! header a peer sends first ([`proxy`]), the socket-activation environment ([`activation`])
//! and the command line ([`cli`], with its address blocks, [`cidr`]); and the sockets they lead to ([`listen`]: bound,
//! handed over by systemd or by a restart, one type for all; [`socket_file`]: the Unix
//! socket file a server may remove at exit).
//!
//! They are a library so that the fuzz targets (`fuzz/`) and the property tests
//! (`tests/properties.rs`) call the very functions the server runs, not copies; the binary
//! (`main.rs`, with the event loops, the service, signals, restarts and the stats) stays a
//! thin user of them.

pub mod activation;
pub mod cidr;
pub mod cli;
pub mod listen;
mod man_page;
pub mod proxy;
pub mod socket_file;
#[cfg(test)]
mod test_dir;
