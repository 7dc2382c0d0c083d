//! A bench peer: a subset of the Redis protocol on tokio's current-thread runtime, the twin of
//! netcore's `redis` example, written as a tokio user would: a task per connection that reads
//! into a `Vec<u8>`, runs every complete command buffered (pipelining) and answers them in
//! order with one `write_all` per batch. Not part of the product.
//!
//! ```text
//! tokio-redis [ADDR]    # ADDR defaults to 127.0.0.1:0; prints `Listening on ADDR` first
//! ```
//!
//! Commands come as RESP arrays of bulk strings (`*2\r\n$3\r\nGET\r\n$1\r\nk\r\n`) or inline
//! (`PING\r\n`, words separated by spaces); names are case-insensitive:
//!
//! - `PING` → `+PONG`, `PING msg` and `ECHO msg` → `msg` as a bulk string;
//! - `SET key value` → `+OK`, `GET key` → the value as a bulk string, or `$-1` if unset;
//! - `CONFIG GET save` → `["save", ""]`, `CONFIG GET appendonly` → `["appendonly", "no"]`
//!   (nothing is persisted: true answers to what redis-benchmark asks at start), any other
//!   `CONFIG GET name` → an empty array;
//! - a known command with other arguments → `-ERR wrong number of arguments for 'get'
//!   command`, any other → `-ERR unknown command 'NAME'`.
//!
//! A protocol error (a bad length, a bulk string over 512 MiB as Redis's `proto-max-bulk-len`,
//! an inline command over 64 KiB, or more than 64 MiB buffered for one unfinished command) is
//! answered with `-ERR Protocol error: ...`, then the connection is closed.

use std::collections::HashMap;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The keyspace, shared by every connection's task. `Arc<Mutex<..>>` with `tokio::spawn`, as
/// tokio's tutorial ("Shared state") and mini-redis write it: it would run unchanged on the
/// multi-thread runtime, and the lock is never held across an `.await`, so std's `Mutex` is
/// the right one. On this one-thread runtime it is never contended.
type Store = Arc<Mutex<HashMap<Vec<u8>, Vec<u8>>>>;

/// A command's arguments, borrowed from the input buffer.
type Args<'a> = Vec<&'a [u8]>;

/// Redis's `proto-max-bulk-len`.
const MAX_BULK: usize = 512 * 1024 * 1024;
/// Redis's limit on the number of arguments of one command.
const MAX_ARGS: usize = 1024 * 1024;
/// Redis's limit on an inline command's length.
const MAX_INLINE: usize = 64 * 1024;
/// The most one connection may buffer for an unfinished command: below `MAX_BULK`, so a
/// client cannot make the server hold 512 MiB per connection.
const MAX_INPUT: usize = 64 * 1024 * 1024;
/// Each connection's initial read buffer.
const READ_CHUNK: usize = 16 * 1024;

/// The commands that exist here, for telling "wrong number of arguments" from "unknown".
const COMMANDS: [&[u8]; 5] = [b"PING", b"ECHO", b"SET", b"GET", b"CONFIG"];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = std::env::args().nth(1);
    let addr: SocketAddr = addr.as_deref().unwrap_or("127.0.0.1:0").parse()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    runtime.block_on(serve(addr))
}

async fn serve(addr: SocketAddr) -> Result<(), Box<dyn std::error::Error>> {
    let listener = TcpListener::bind(addr).await?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "Listening on {}", listener.local_addr()?)?;
    out.flush()?;
    drop(out);
    let store = Store::default();
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(serve_connection(stream, store.clone()));
            }
            // Out of descriptors and the like: say so and go on accepting.
            Err(e) => eprintln!("tokio-redis: accept: {e}"),
        }
    }
}

/// Runs the peer's commands until it closes, an error, or a protocol error.
async fn serve_connection(mut stream: TcpStream, store: Store) {
    // As Redis itself: a pipelined batch's last replies would otherwise wait for the client's
    // delayed ACK of the first ones (Nagle).
    let _ = stream.set_nodelay(true);
    let mut input = Vec::with_capacity(READ_CHUNK);
    let mut output = Vec::new();
    loop {
        match stream.read_buf(&mut input).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let mut parsed = 0;
        let mut failed = None;
        loop {
            match parse_command(&input[parsed..]) {
                Ok(Some((args, len))) => {
                    parsed += len;
                    // Redis skips empty commands (`*0`, blank inline lines) without a reply.
                    if !args.is_empty() {
                        execute(&args, &store, &mut output);
                    }
                }
                Ok(None) => break,
                Err(reason) => {
                    failed = Some(reason);
                    break;
                }
            }
        }
        if failed.is_none() && input.len() - parsed > MAX_INPUT {
            failed = Some("too big request");
        }
        if let Some(reason) = failed {
            let _ = write!(output, "-ERR Protocol error: {reason}\r\n");
        }
        input.drain(..parsed);
        if !output.is_empty() {
            if stream.write_all(&output).await.is_err() {
                return;
            }
            output.clear();
        }
        if failed.is_some() {
            return;
        }
    }
}

/// Reads the command at the front of `buf`: its arguments and the bytes it takes, or
/// `Ok(None)` if it is not all there yet.
fn parse_command(buf: &[u8]) -> Result<Option<(Args<'_>, usize)>, &'static str> {
    if buf.first() != Some(&b'*') {
        return parse_inline(buf);
    }
    let Some((count, mut pos)) = parse_line(buf, 1) else {
        return Ok(None);
    };
    let count = parse_len(count, MAX_ARGS).ok_or("invalid multibulk length")?;
    // Not `with_capacity(count)`: the count is the client's word until the arguments arrive.
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
            None => return Ok(None),
            Some(b"\r\n") => {}
            Some(_) => return Err("bulk string not followed by CRLF"),
        }
        args.push(&buf[start..end]);
        pos = end + 2;
    }
    Ok(Some((args, pos)))
}

/// Reads an inline command: one line of words separated by spaces.
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

/// The line that starts at `from` (without its `\r\n`) and where the next one starts.
fn parse_line(buf: &[u8], from: usize) -> Option<(&[u8], usize)> {
    let newline = from + buf.get(from..)?.iter().position(|&b| b == b'\n')?;
    let line = &buf[from..newline];
    Some((line.strip_suffix(b"\r").unwrap_or(line), newline + 1))
}

fn parse_len(digits: &[u8], max: usize) -> Option<usize> {
    let len = std::str::from_utf8(digits).ok()?.parse().ok()?;
    (len <= max).then_some(len)
}

/// Runs one command and appends its reply to `out`.
fn execute(args: &[&[u8]], store: &Store, out: &mut Vec<u8>) {
    let is = |arg: &[u8], name: &str| arg.eq_ignore_ascii_case(name.as_bytes());
    match args {
        [cmd] if is(cmd, "PING") => out.extend_from_slice(b"+PONG\r\n"),
        [cmd, msg] if is(cmd, "PING") || is(cmd, "ECHO") => write_bulk(out, msg),
        [cmd, key, value] if is(cmd, "SET") => {
            store.lock().unwrap().insert(key.to_vec(), value.to_vec());
            out.extend_from_slice(b"+OK\r\n");
        }
        [cmd, key] if is(cmd, "GET") => match store.lock().unwrap().get(*key) {
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

/// A client's bytes, fit to quote in a one-line error reply: a `\r\n` in them would end it.
fn printable(arg: &[u8]) -> String {
    arg.iter()
        .map(|&b| if b.is_ascii_graphic() { b as char } else { '?' })
        .collect()
}
