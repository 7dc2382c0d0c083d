//! greet-server's PROXY protocol parser on any bytes: the invariants of
//! `crates/greet-server/tests/invariants` (bounded request, no reading past the input, the
//! same verdict prefix by prefix as whole).
#![no_main]

#[path = "../../crates/greet-server/tests/invariants/mod.rs"]
mod invariants;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    invariants::proxy(data);
});
