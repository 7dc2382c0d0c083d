//! A subset of the Redis protocol: `PING`, `ECHO`, `SET`, `GET` (and the `CONFIG GET` that
//! redis-benchmark asks at start), over RESP arrays and inline commands, with pipelining.
//!
//! ```text
//! cargo run -p netcore --example redis [ADDR]     # ADDR defaults to 127.0.0.1:0
//! redis-cli -p PORT set greeting hello
//! redis-benchmark -p PORT -t ping,set,get -P 16 -q
//! ```
//!
//! What it shows: kept input and the two ways to send. `on_data` runs one command per call
//! and returns its length; the loop keeps a command that is not complete yet (a 1 MiB value
//! arrives in many reads) and calls again at once while whole ones are left. A reply is
//! built in one buffer the handler keeps: a small one is `send`-copied into the batch's one
//! write (no allocation per request), a large one handed over (`send_owned`: never copied
//! again). Pipelined
//! `GET`s of a large value stay bounded: the loop stops handing over commands while the
//! replies wait for the client, with no code here.
//!
//! - `PING` → `+PONG`, `PING msg` and `ECHO msg` → `msg` as a bulk string;
//! - `SET key value` → `+OK`, `GET key` → the value as a bulk string, or `$-1` if unset;
//! - `CONFIG GET save` → `["save", ""]`, `CONFIG GET appendonly` → `["appendonly", "no"]`,
//!   any other `CONFIG GET name` → an empty array;
//! - a known command with other arguments → `-ERR wrong number of arguments for 'get'
//!   command`, any other → `-ERR unknown command 'NAME'`.
//!
//! A protocol error (a bad length, a bulk string over 512 MiB, an inline command over
//! 64 KiB, or more than 64 MiB kept for one unfinished command) is answered with
//! `-ERR Protocol error: ...`, then the connection is closed.

use std::collections::HashMap;
use std::io::Write;

use netcore::{Config, Conn, EventLoop, Handler, ListenOptions};

/// A command's arguments, borrowed from the input.
type Args<'a> = Vec<&'a [u8]>;

/// Redis's `proto-max-bulk-len`.
const MAX_BULK: usize = 512 * 1024 * 1024;
/// Redis's limit on the number of arguments of one command.
const MAX_ARGS: usize = 1024 * 1024;
/// Redis's limit on an inline command's length.
const MAX_INLINE: usize = 64 * 1024;
/// The most one connection may keep for an unfinished command (`Config::max_input`).
const MAX_INPUT: usize = 64 * 1024 * 1024;

/// The commands that exist here, for telling "wrong number of arguments" from "unknown".
const COMMANDS: [&[u8]; 5] = [b"PING", b"ECHO", b"SET", b"GET", b"CONFIG"];

/// Replies longer than this are handed over rather than copied.
const LARGE_REPLY: usize = 16 * 1024;

#[derive(Default)]
struct Redis {
    store: HashMap<Vec<u8>, Vec<u8>>,
    /// Where each reply is built, kept for the next.
    reply: Vec<u8>,
}

impl Handler for Redis {
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        let _ = conn.set_nodelay(true);
    }

    fn on_data(&mut self, conn: &mut Conn<'_>, input: &[u8]) -> usize {
        match parse_command(input) {
            Ok(Some((args, len))) => {
                self.reply.clear();
                execute(&args, &mut self.store, &mut self.reply);
                if self.reply.len() > LARGE_REPLY {
                    conn.send_owned(std::mem::take(&mut self.reply));
                } else {
                    conn.send(&self.reply);
                }
                len
            }
            Ok(None) => 0,
            Err(reason) => {
                conn.send_owned(format!("-ERR Protocol error: {reason}\r\n").into_bytes());
                conn.close();
                input.len()
            }
        }
    }
}

fn parse_command(buf: &[u8]) -> Result<Option<(Args<'_>, usize)>, &'static str> {
    if buf.first() != Some(&b'*') {
        return parse_inline(buf);
    }
    let Some((count, mut pos)) = parse_line(buf, 1) else {
        return Ok(None);
    };
    let count = parse_len(count, MAX_ARGS).ok_or("invalid multibulk length")?;
    let mut args = Vec::new();
    for _ in 0..count {
        match buf.get(pos) {
            None => return Ok(None),
            Some(b'$') => {}
            Some(_) => return Err("expected '$'"),
        }
        let Some((len, start)) = parse_line(buf, pos + 1) else {
            return Ok(None);
        };
        let len = parse_len(len, MAX_BULK).ok_or("invalid bulk length")?;
        let end = start + len;
        match buf.get(end..end + 2) {
            None if end + 2 - pos > MAX_INPUT => return Err("too big request"),
            None => return Ok(None),
            Some(b"\r\n") => {}
            Some(_) => return Err("bulk string not followed by CRLF"),
        }
        args.push(&buf[start..end]);
        pos = end + 2;
    }
    Ok(Some((args, pos)))
}

fn parse_inline(buf: &[u8]) -> Result<Option<(Args<'_>, usize)>, &'static str> {
    let Some(newline) = buf.iter().position(|&b| b == b'\n') else {
        return if buf.len() > MAX_INLINE {
            Err("too big inline request")
        } else {
            Ok(None)
        };
    };
    let args = buf[..newline]
        .split(u8::is_ascii_whitespace)
        .filter(|word| !word.is_empty())
        .collect();
    Ok(Some((args, newline + 1)))
}

/// The line starting at `from`, without its `\r\n`, and where the next one starts.
fn parse_line(buf: &[u8], from: usize) -> Option<(&[u8], usize)> {
    let newline = from + buf.get(from..)?.iter().position(|&b| b == b'\n')?;
    let line = &buf[from..newline];
    Some((line.strip_suffix(b"\r").unwrap_or(line), newline + 1))
}

fn parse_len(digits: &[u8], max: usize) -> Option<usize> {
    let len = std::str::from_utf8(digits).ok()?.parse().ok()?;
    (len <= max).then_some(len)
}

fn execute(args: &[&[u8]], store: &mut HashMap<Vec<u8>, Vec<u8>>, out: &mut Vec<u8>) {
    let is = |arg: &[u8], name: &str| arg.eq_ignore_ascii_case(name.as_bytes());
    match args {
        [cmd] if is(cmd, "PING") => out.extend_from_slice(b"+PONG\r\n"),
        [cmd, msg] if is(cmd, "PING") || is(cmd, "ECHO") => write_bulk(out, msg),
        [cmd, key, value] if is(cmd, "SET") => {
            store.insert(key.to_vec(), value.to_vec());
            out.extend_from_slice(b"+OK\r\n");
        }
        [cmd, key] if is(cmd, "GET") => match store.get(*key) {
            Some(value) => write_bulk(out, value),
            None => out.extend_from_slice(b"$-1\r\n"),
        },
        [cmd, sub, name] if is(cmd, "CONFIG") && is(sub, "GET") => {
            let value: &[u8] = if is(name, "save") {
                b""
            } else if is(name, "appendonly") {
                b"no"
            } else {
                out.extend_from_slice(b"*0\r\n");
                return;
            };
            out.extend_from_slice(b"*2\r\n");
            write_bulk(out, &name.to_ascii_lowercase());
            write_bulk(out, value);
        }
        [cmd, ..] if COMMANDS.iter().any(|name| cmd.eq_ignore_ascii_case(name)) => {
            let cmd = printable(cmd).to_lowercase();
            let _ = write!(
                out,
                "-ERR wrong number of arguments for '{cmd}' command\r\n"
            );
        }
        [cmd, ..] => {
            let _ = write!(out, "-ERR unknown command '{}'\r\n", printable(cmd));
        }
        [] => {}
    }
}

fn write_bulk(out: &mut Vec<u8>, value: &[u8]) {
    let _ = write!(out, "${}\r\n", value.len());
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

fn printable(arg: &[u8]) -> String {
    arg.iter()
        .map(|&b| if b.is_ascii_graphic() { b as char } else { '?' })
        .collect()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = std::env::args().nth(1);
    let addr = addr.as_deref().unwrap_or("127.0.0.1:0").parse()?;
    let listener = netcore::tcp_listener(addr, &ListenOptions::default())?;
    let config = Config {
        max_input: MAX_INPUT,
        ..Config::default()
    };
    let mut event_loop = EventLoop::new(config)?;
    println!("Listening on {}", listener.local_addr()?);
    event_loop.add_tcp_listener(listener)?;
    event_loop.run(&mut Redis::default())?;
    Ok(())
}
