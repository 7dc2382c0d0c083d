//! greet-server's socket-activation environment (LISTEN_PID, LISTEN_FDS, LISTEN_FDNAMES) as
//! any strings: the invariants of `crates/greet-server/tests/invariants`.
#![no_main]

#[path = "../../crates/greet-server/tests/invariants/mod.rs"]
mod invariants;

libfuzzer_sys::fuzz_target!(|input: (Option<&str>, Option<&str>, Option<&str>, u32)| {
    let (pid, fds, names, our_pid) = input;
    invariants::activation(pid, fds, names, our_pid);
    // The case that matters most: the variables name this very process.
    let ours = our_pid.to_string();
    invariants::activation(Some(&ours), fds, names, our_pid);
});
