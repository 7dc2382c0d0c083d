//! The load of `bench ir`: a client whose work, and so the server's, is the same from run
//! to run.
//!
//! Counted instructions are exact, but what a server executes per request still depends on
//! how requests meet it: an `epoll_wait` that returns ten ready connections costs one
//! wake-up for ten requests, one that returns a single connection costs a wake-up per
//! request, and which happens is up to the scheduler when client and server race. So this
//! client never races: its connections take turns, and only one connection has anything in
//! flight at a time. Every request (or pipelined batch) reaches an idle server as one
//! wake-up with one ready connection, in every run and for every server.
//!
//! A batch is written with one `write` (as redis-benchmark's `-P` and wrk's pipelining
//! script send theirs), so the server finds all of it in one read. Every byte of the reply
//! is compared with what the protocol says it must be: the request itself for an echo, a
//! fixed answer for HTTP and Redis.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// How long one reply may take. A server under valgrind answers in well under a
/// millisecond; this only turns a hung server into an error instead of a hung task.
const REPLY_TIMEOUT: Duration = Duration::from_secs(30);

/// The request of [`Protocol::Http`], as wrk sends it.
const HTTP_REQUEST: &[u8] = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
/// The answer netcore's `http` example and its tokio twin give every request.
const HTTP_REPLY: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\nContent-Type: text/plain\r\n\r\nHello, World!";
/// The request of [`Protocol::Redis`]: `GET key` in RESP, as redis-benchmark's `-t get`
/// sends it (no `SET` first: the key is missing).
const REDIS_REQUEST: &[u8] = b"*2\r\n$3\r\nGET\r\n$3\r\nkey\r\n";
/// The answer to it: the null bulk string.
const REDIS_REPLY: &[u8] = b"$-1\r\n";

/// What one request is, and what answers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Protocol {
    /// `size` bytes, echoed.
    Echo { size: usize },
    /// `GET /`, answered `200 OK` with `Hello, World!`.
    Http,
    /// Redis `GET` of a missing key, answered with a null.
    Redis,
}

/// What a run sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Load {
    /// Connections, opened before the first round, each kept to the end.
    pub(crate) connections: u32,
    pub(crate) protocol: Protocol,
    /// Requests per batch: written at once, then all their replies read.
    pub(crate) depth: u32,
}

impl Load {
    /// Requests in a run of `rounds` rounds (one batch on every connection per round).
    pub(crate) fn requests(&self, rounds: u32) -> u64 {
        u64::from(self.connections) * u64::from(rounds) * u64::from(self.depth)
    }
}

/// Connects to `127.0.0.1:port` and runs `rounds` rounds of `load`, each a batch on every
/// connection in turn; returns the requests answered. A wrong byte, a short reply, or more
/// than `limit` in all is an error.
pub(crate) fn drive(port: u16, load: &Load, rounds: u32, limit: Duration) -> Result<u64> {
    let started = Instant::now();
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut batch = Batch::new(load);
    let mut conns = Vec::new();
    // Opened one at a time, each with one batch before the next connect, so that accepting
    // takes the same wake-ups in every run too. These batches are the `rounds`' first.
    for index in 0..load.connections {
        let mut conn = TcpStream::connect(addr).with_context(|| format!("connect to {addr}"))?;
        conn.set_nodelay(true).context("TCP_NODELAY")?;
        conn.set_read_timeout(Some(REPLY_TIMEOUT))
            .context("SO_RCVTIMEO")?;
        if rounds > 0 {
            batch.exchange(&mut conn, index, 0)?;
        }
        conns.push(conn);
    }
    for round in 1..rounds {
        if started.elapsed() > limit {
            bail!("the load took more than {limit:?} (round {round} of {rounds})");
        }
        for (index, conn) in (0..).zip(conns.iter_mut()) {
            batch.exchange(conn, index, round)?;
        }
    }
    Ok(load.requests(rounds))
}

/// One batch's bytes: what is sent, what must come back, and room to read it.
struct Batch {
    protocol: Protocol,
    sent: Vec<u8>,
    expected: Vec<u8>,
    received: Vec<u8>,
}

impl Batch {
    fn new(load: &Load) -> Batch {
        let depth = load.depth as usize;
        let (sent, expected) = match load.protocol {
            Protocol::Echo { size } => (vec![0; size * depth], vec![0; size * depth]),
            Protocol::Http => (HTTP_REQUEST.repeat(depth), HTTP_REPLY.repeat(depth)),
            Protocol::Redis => (REDIS_REQUEST.repeat(depth), REDIS_REPLY.repeat(depth)),
        };
        let received = vec![0; expected.len()];
        Batch {
            protocol: load.protocol,
            sent,
            expected,
            received,
        }
    }

    /// One batch on one connection: written at once, then its replies read in full and
    /// compared.
    fn exchange(&mut self, conn: &mut TcpStream, index: u32, round: u32) -> Result<()> {
        if let Protocol::Echo { .. } = self.protocol {
            fill(&mut self.sent, index, round);
            self.expected.copy_from_slice(&self.sent);
        }
        conn.write_all(&self.sent)
            .with_context(|| format!("connection {index}, round {round}: write"))?;
        conn.read_exact(&mut self.received)
            .with_context(|| format!("connection {index}, round {round}: read the replies"))?;
        if self.received != self.expected {
            bail!(
                "connection {index}, round {round}: the replies differ from {:?}",
                String::from_utf8_lossy(&self.expected)
            );
        }
        Ok(())
    }
}

/// Bytes that differ from batch to batch and connection to connection, so that a stale,
/// shifted or crossed echo cannot pass.
fn fill(buf: &mut [u8], index: u32, round: u32) {
    let seed = index.wrapping_mul(131).wrapping_add(round.wrapping_mul(7));
    for (i, byte) in (0u32..).zip(buf.iter_mut()) {
        *byte = (seed.wrapping_add(i.wrapping_mul(13)) % 251) as u8;
    }
}

#[cfg(test)]
mod tests {
    use super::{fill, Batch, Load, Protocol};

    #[test]
    fn batches_differ_between_rounds_and_connections() {
        let [mut a, mut b, mut c] = [[0u8; 64]; 3];
        fill(&mut a, 0, 1);
        fill(&mut b, 0, 2);
        fill(&mut c, 1, 1);
        assert_ne!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn requests_count_every_request_of_every_batch() {
        let load = Load {
            connections: 10,
            protocol: Protocol::Echo { size: 64 },
            depth: 16,
        };
        assert_eq!(load.requests(75), 12_000);
    }

    #[test]
    fn a_batch_sends_depth_requests_and_expects_depth_replies() {
        let load = Load {
            connections: 1,
            protocol: Protocol::Redis,
            depth: 3,
        };
        let batch = Batch::new(&load);
        assert_eq!(batch.sent.len(), 3 * super::REDIS_REQUEST.len());
        assert_eq!(batch.expected, b"$-1\r\n$-1\r\n$-1\r\n");
        assert_eq!(batch.received.len(), batch.expected.len());
    }
}
