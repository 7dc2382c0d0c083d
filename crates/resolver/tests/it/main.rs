//! sockaddr-resolver's integration tests: one test binary (one link). Most compare
//! with `python3` run at test time (`common`); `invariants` is shared with `fuzz/`.

mod common;
mod invariants;

mod deliberate_differences;
mod getaddrinfo_oracle;
mod getnameinfo_oracle;
mod no_panic;
mod properties;
mod socket_addr_oracle;
