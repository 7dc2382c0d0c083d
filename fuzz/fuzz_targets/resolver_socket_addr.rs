//! The resolver's host and port forms, numeric hosts only (no input waits for DNS): the
//! invariants of `crates/resolver/tests/it/invariants`.
#![no_main]

#[path = "../../crates/resolver/tests/it/invariants/mod.rs"]
mod invariants;

use resolver::{Family, Transport};

libfuzzer_sys::fuzz_target!(|input: (u8, &str, &str)| {
    let (selector, host, port) = input;
    let family = match selector % 3 {
        0 => Family::Any,
        1 => Family::V4,
        _ => Family::V6,
    };
    let transport = if selector & 0x80 == 0 {
        Transport::Tcp
    } else {
        Transport::Udp
    };
    let _ = invariants::check_socket_addr(host, port, family, transport);
});
