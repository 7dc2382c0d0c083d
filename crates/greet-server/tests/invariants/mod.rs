//! What must hold for every input of greet-server's parsers, checked by the property tests
//! (`tests/properties.rs`, on stable, a bounded number of cases) and by the fuzz targets
//! (`fuzz/fuzz_targets/`, which include this file by path): one definition, two drivers.
#![allow(dead_code)]

use std::time::Duration;

use clap::Parser;
use greet_server::activation::{self, Handed};
use greet_server::cli::Args;
use greet_server::proxy::{self, Parsed, V1_MAX, V2_MAX};

/// The most a PROXY header may take by the protocol: v1's line, v2's 16 fixed bytes and a
/// 16-bit length.
pub const V1_PROTOCOL_MAX: usize = 107;
/// See [`V1_PROTOCOL_MAX`].
pub const V2_PROTOCOL_MAX: usize = 16 + 65535;

/// The PROXY parser given `buf`:
///
/// - it never waits for more than the protocol allows: `Incomplete` only while fewer bytes
///   than the maximum of the version begun (v1: 107, v2: 16 + 65535; ours is tighter, 16 +
///   2048) have arrived, and a header is never longer;
/// - it never reads past what it was given: a header's verdict depends on its own `len`
///   bytes only (the same from `buf[..len]`), and an answer, once given, is the same for
///   every longer input;
/// - split at every byte boundary, as a connection receives it, the prefixes answer
///   `Incomplete` until the first one that decides, and from there the same answer as the
///   whole input.
pub fn proxy(buf: &[u8]) {
    const { assert!(V1_MAX <= V1_PROTOCOL_MAX && V2_MAX <= V2_PROTOCOL_MAX) };
    let whole = proxy::parse(buf);
    let max = if buf.first() == Some(&b'P') {
        V1_MAX
    } else {
        V2_MAX
    };
    match &whole {
        Ok(Parsed::Incomplete) => {
            assert!(
                buf.len() < max,
                "Incomplete after {} bytes (max {max})",
                buf.len()
            );
        }
        Ok(Parsed::Header { len, .. }) => {
            assert!(
                *len > 0 && *len <= buf.len(),
                "len {len} of {} bytes",
                buf.len()
            );
            assert!(*len <= max, "a {len}-byte header (max {max})");
            assert_eq!(proxy::parse(&buf[..*len]), whole, "the header alone");
        }
        Err(e) => {
            let text = e.to_string();
            assert!(!text.is_empty() && !text.contains('\n'), "{text:?}");
        }
    }
    let mut decided = None;
    for cut in 0..=buf.len() {
        let part = proxy::parse(&buf[..cut]);
        match &decided {
            None if part == Ok(Parsed::Incomplete) => {}
            None => decided = Some((cut, part)),
            Some((at, first)) => assert_eq!(
                &part,
                first,
                "decided at {at} bytes, changed at {cut} of {}",
                buf.len()
            ),
        }
    }
    match decided {
        Some((_, first)) => assert_eq!(first, whole),
        None => assert_eq!(whole, Ok(Parsed::Incomplete)),
    }
}

/// The socket-activation environment: only the process it names takes anything; then as
/// many descriptors as `LISTEN_FDS` says (at most 4096), 3, 4, ... in order, each label
/// naming its descriptor on one line; an error is one line naming a variable.
pub fn activation(pid: Option<&str>, fds: Option<&str>, names: Option<&str>, our_pid: u32) {
    let got = activation::parse_env(pid, fds, names, our_pid);
    let input = format!("{pid:?} {fds:?} {names:?} {our_pid}");
    match got {
        Ok(None) => {
            // Nothing for us: no LISTEN_FDS, no LISTEN_PID, another process, or zero.
            let for_us = pid.and_then(|p| p.trim().parse::<u32>().ok()) == Some(our_pid);
            let count = fds.and_then(|f| f.trim().parse::<usize>().ok());
            assert!(!for_us || fds.is_none() || count == Some(0), "{input}");
        }
        Ok(Some(handed)) => {
            assert_eq!(
                pid.map(|p| p.trim().parse::<u32>()),
                Some(Ok(our_pid)),
                "{input}"
            );
            assert_eq!(
                fds.map(|f| f.trim().parse::<usize>()),
                Some(Ok(handed.len())),
                "{input}"
            );
            assert!(
                !handed.is_empty() && handed.len() <= activation::MAX_FDS,
                "{input}"
            );
            let names: Vec<&str> = names.map_or_else(Vec::new, |n| n.split(':').collect());
            for (i, Handed { fd, label }) in handed.iter().enumerate() {
                assert_eq!(
                    usize::try_from(*fd).ok(),
                    Some(i + activation::FIRST_FD as usize),
                    "{input}"
                );
                assert!(label.starts_with(&format!("fd {fd}")), "{input}: {label}");
                assert!(!label.chars().any(char::is_control), "{input}: {label:?}");
                let named = names.get(i).is_some_and(|n| !n.is_empty());
                assert_eq!(
                    label.len() > format!("fd {fd}").len(),
                    named,
                    "{input}: {label}"
                );
            }
        }
        Err(e) => {
            assert!(e.starts_with("LISTEN_"), "{input}: {e}");
            assert!(!e.chars().any(char::is_control), "{input}: {e:?}");
        }
    }
}

/// The duration flags, as greet-server parses its command line: a value is accepted exactly
/// when humantime reads it as more than zero (a zero timeout would close every connection
/// as it opens), the flag then holds humantime's duration, that duration written back reads
/// as itself, and a refusal names the flag. The address flags are taken as text here and
/// resolved later, so `--host` and `--port` are checked with the resolver's invariants by
/// the callers.
pub fn duration_flags(text: &str) -> Option<Duration> {
    let expected = humantime::parse_duration(text)
        .ok()
        .filter(|d| !d.is_zero());
    for flag in [
        "--idle-timeout",
        "--write-timeout",
        "--proxy-timeout",
        "--restart-timeout",
    ] {
        let arg = format!("{flag}={text}");
        match Args::try_parse_from(["greet-server", arg.as_str()]) {
            Ok(args) => {
                let got = match flag {
                    "--idle-timeout" => args.idle_timeout,
                    "--write-timeout" => args.write_timeout,
                    "--proxy-timeout" => args.proxy_timeout,
                    _ => args.restart_timeout,
                };
                assert_eq!(Some(got), expected, "{arg:?}");
            }
            Err(e) => {
                assert_eq!(expected, None, "{arg:?} refused: {e}");
                assert!(e.to_string().contains(flag), "{arg:?}: {e}");
            }
        }
    }
    if let Some(d) = expected {
        let shown = humantime::format_duration(d).to_string();
        assert_eq!(
            humantime::parse_duration(&shown).ok(),
            Some(d),
            "{text:?} shown as {shown:?}"
        );
    }
    expected
}
