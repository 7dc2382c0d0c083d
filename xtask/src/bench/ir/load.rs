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
//! script send theirs), so the server finds all of it in one read. Every echoed byte is
//! compared with what was sent.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// How long one reply may take. A server under valgrind answers in well under a
/// millisecond; this only turns a hung server into an error instead of a hung task.
const REPLY_TIMEOUT: Duration = Duration::from_secs(30);

/// What a run sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Load {
    /// Connections, opened before the first round, each kept to the end.
    pub(crate) connections: u32,
    /// Bytes per request.
    pub(crate) size: usize,
    /// Requests per batch: written at once, then all their echoes read.
    pub(crate) depth: u32,
}

impl Load {
    /// Requests in a run of `rounds` rounds (one batch on every connection per round).
    pub(crate) fn requests(&self, rounds: u32) -> u64 {
        u64::from(self.connections) * u64::from(rounds) * u64::from(self.depth)
    }
}

/// Connects to `127.0.0.1:port` and runs `rounds` rounds of `load`, each a batch on every
/// connection in turn; returns the requests echoed. A wrong byte, a short echo, or more
/// than `limit` in all is an error.
pub(crate) fn drive(port: u16, load: &Load, rounds: u32, limit: Duration) -> Result<u64> {
    let started = Instant::now();
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let batch = load.size * load.depth as usize;
    let mut sent = vec![0u8; batch];
    let mut echoed = vec![0u8; batch];
    let mut conns = Vec::new();
    // Opened one at a time, each with one batch before the next connect, so that accepting
    // takes the same wake-ups in every run too. These batches are the `rounds`' first.
    for index in 0..load.connections {
        let mut conn = TcpStream::connect(addr).with_context(|| format!("connect to {addr}"))?;
        conn.set_nodelay(true).context("TCP_NODELAY")?;
        conn.set_read_timeout(Some(REPLY_TIMEOUT))
            .context("SO_RCVTIMEO")?;
        if rounds > 0 {
            exchange(&mut conn, index, 0, &mut sent, &mut echoed)?;
        }
        conns.push(conn);
    }
    for round in 1..rounds {
        if started.elapsed() > limit {
            bail!("the load took more than {limit:?} (round {round} of {rounds})");
        }
        for (index, conn) in (0..).zip(conns.iter_mut()) {
            exchange(conn, index, round, &mut sent, &mut echoed)?;
        }
    }
    Ok(load.requests(rounds))
}

/// One batch on one connection: `sent` (its length is the batch's) written at once, then
/// read back in full and compared.
fn exchange(
    conn: &mut TcpStream,
    index: u32,
    round: u32,
    sent: &mut [u8],
    echoed: &mut [u8],
) -> Result<()> {
    fill(sent, index, round);
    conn.write_all(sent)
        .with_context(|| format!("connection {index}, round {round}: write"))?;
    conn.read_exact(echoed)
        .with_context(|| format!("connection {index}, round {round}: read the echo"))?;
    if sent != echoed {
        bail!("connection {index}, round {round}: the echo differs from what was sent");
    }
    Ok(())
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
    use super::{fill, Load};

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
            size: 64,
            depth: 16,
        };
        assert_eq!(load.requests(75), 12_000);
    }
}
