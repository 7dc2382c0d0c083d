//! `greet-client bench --echo`: request/response over kept-alive connections to an echo
//! server, every echoed byte checked.
//!
//! Each connection, once open, sends a message of `--size` bytes, reads the echo back and
//! compares it byte for byte with what it sent, then sends the next on the same connection,
//! `--requests` times (or until `--duration`, with `--requests 0`), and closes; the next
//! connection then starts in its slot. Messages are windows into one pseudo-random pattern at
//! an offset that changes with every request, so a server that echoes stale, shifted or
//! another connection's bytes is caught. A request is one message and its whole echo; its
//! latency runs from the send to the last byte of the echo, and `--timeout` bounds it.

use anyhow::Result;
use netcore::{Closed, Conn, ConnectError, Control, Handler, PeerAddr, TimerId};
use std::sync::Arc;

use super::pool::{Slot, SlotPool};
use super::{count_close, Plan, RunTimers, Tally, TimedFrom};

/// Distinct message offsets into the pattern.
const SHIFTS: usize = 256;

/// What an echo load sends.
#[derive(Debug, Clone)]
pub(super) struct EchoPlan {
    /// Bytes per message.
    pub size: usize,
    /// Requests per connection; 0: until the run's deadline.
    pub requests: u64,
    /// `size + SHIFTS` bytes; message `k` of a connection is `pattern[off(k)..off(k) + size]`.
    pub pattern: Arc<[u8]>,
}

impl EchoPlan {
    pub fn new(size: usize, requests: u64) -> EchoPlan {
        EchoPlan {
            size,
            requests,
            pattern: pattern(size + SHIFTS).into(),
        }
    }

    /// Where request `k` of the connection in slot `tag` starts in the pattern.
    fn offset(k: u64, tag: u64) -> usize {
        (k.wrapping_mul(97).wrapping_add(tag.wrapping_mul(31)) % SHIFTS as u64) as usize
    }

    /// The message that starts at `offset` in the pattern.
    fn message(&self, offset: usize) -> &[u8] {
        &self.pattern[offset..offset + self.size]
    }
}

/// `len` deterministic bytes from a xorshift generator: every value occurs, no short period.
pub(super) fn pattern(len: usize) -> Vec<u8> {
    let mut x: u32 = 0x9E37_79B9;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 24) as u8
        })
        .collect()
}

/// What an echo connection keeps beside its slot; the slot's `since` is when its
/// outstanding request was sent.
#[derive(Debug, Clone, Copy)]
struct Requests {
    /// Requests started on this connection (the outstanding one included).
    sent: u64,
    /// Where the outstanding request's message starts in the pattern.
    offset: usize,
    /// Bytes of its echo received so far.
    got: usize,
    /// A byte of its echo differed.
    wrong: bool,
    /// A request is outstanding: its outcome is not counted yet.
    waiting: bool,
}

impl Requests {
    /// A new connection in slot `tag`: its first request counts as started with it.
    fn first(tag: usize) -> Requests {
        Requests {
            sent: 1,
            offset: EchoPlan::offset(0, tag as u64),
            got: 0,
            wrong: false,
            waiting: true,
        }
    }
}

struct EchoLoad {
    plan: Plan,
    echo: EchoPlan,
    /// Connections (out of `plan.total`), each in a slot whose number is its netcore state.
    pool: SlotPool<Requests>,
    /// Requests started after a connection's first (which starts with its connect).
    later_requests: u64,
    tally: Tally,
    timers: RunTimers,
}

pub(super) fn run(plan: Plan, echo: EchoPlan) -> Result<Tally> {
    let mut event_loop = plan.event_loop()?;
    let mut load = EchoLoad {
        pool: SlotPool::new(plan.concurrency as usize, plan.total),
        timers: RunTimers::set(&plan, &mut event_loop),
        plan,
        echo,
        later_requests: 0,
        tally: Tally::default(),
    };
    let (plan, pool, tally) = (&load.plan, &mut load.pool, &mut load.tally);
    plan.connect_first(&mut event_loop, pool, tally, Requests::first);
    if load.pool.in_flight() > 0 {
        event_loop.run(&mut load)?;
    }
    if load.echo.requests > 0 {
        let planned = load.plan.total.saturating_mul(load.echo.requests);
        let started = load.pool.started() + load.later_requests;
        load.tally.not_started = planned.saturating_sub(started);
    }
    Ok(load.tally)
}

impl EchoLoad {
    /// Sends the next message on `conn`, or closes it when its requests are done.
    fn next_request(&mut self, conn: &mut Conn<'_, usize>) {
        let tag = *conn.state();
        let now = conn.control().now();
        let over = self.pool.is_over();
        let Some(slot) = self.pool.get_mut(tag) else {
            conn.close();
            return;
        };
        let requests = &mut slot.state;
        let more = self.echo.requests == 0 || requests.sent < self.echo.requests;
        if over || !more {
            conn.close();
            return;
        }
        requests.offset = EchoPlan::offset(requests.sent, tag as u64);
        requests.sent += 1;
        requests.got = 0;
        requests.wrong = false;
        requests.waiting = true;
        slot.since = now;
        self.later_requests += 1;
        conn.set_deadline(Some(now + self.plan.timeout));
        conn.send(self.echo.message(requests.offset));
    }
}

impl Handler<(), usize> for EchoLoad {
    fn on_connect(
        &mut self,
        conn: &mut Conn<'_, usize>,
        outcome: Result<&PeerAddr, &ConnectError>,
    ) {
        // The first request is sent now: its latency and its deadline run from here.
        let connected = self
            .plan
            .connected(&mut self.pool, conn, outcome, TimedFrom::Connected);
        if let Some(slot) = connected {
            conn.send(self.echo.message(slot.state.offset));
        }
    }

    fn on_data(&mut self, conn: &mut Conn<'_, usize>, data: &[u8]) -> usize {
        let now = conn.control().now();
        let size = self.echo.size;
        let Some(slot) = self.pool.get_mut(*conn.state()) else {
            return data.len();
        };
        let requests = &mut slot.state;
        if !requests.waiting {
            // Bytes nobody asked for (after the last echo, or while closing).
            self.tally.wrong_bytes += data.len() as u64;
            self.tally.errors.wrong_payload += 1;
            self.plan.record_done(&mut self.tally, now);
            conn.abort();
            return data.len();
        }
        let n = (size - requests.got).min(data.len());
        let start = requests.offset + requests.got;
        let sent = &self.echo.pattern[start..start + n];
        if sent != &data[..n] {
            let differ = sent.iter().zip(&data[..n]).filter(|(a, b)| a != b).count();
            self.tally.wrong_bytes += differ as u64;
            requests.wrong = true;
        }
        requests.got += n;
        if requests.got < size {
            return data.len();
        }
        // More than was sent: the echo is wrong, and this connection's framing broken.
        let surplus = data.len() - n;
        if surplus > 0 {
            self.tally.wrong_bytes += surplus as u64;
            requests.wrong = true;
        }
        requests.waiting = false;
        if requests.wrong {
            self.tally.errors.wrong_payload += 1;
        } else {
            self.tally.succeeded(slot.since, now);
        }
        self.plan.record_done(&mut self.tally, now);
        if surplus > 0 {
            conn.abort();
            return data.len();
        }
        self.next_request(conn);
        data.len()
    }

    fn on_read_closed(&mut self, conn: &mut Conn<'_, usize>) {
        let now = conn.control().now();
        if let Some(slot) = self.pool.get_mut(*conn.state()) {
            if slot.state.waiting {
                // The server closed before the whole echo came back: a truncated reply.
                slot.state.waiting = false;
                self.tally.errors.wrong_payload += 1;
                self.plan.record_done(&mut self.tally, now);
            }
        }
        conn.close();
    }

    fn on_close(&mut self, ctl: &mut Control<'_, usize>, closed: &Closed<'_, usize>) {
        if let Some(Slot {
            state: requests, ..
        }) = self.pool.finish(closed.state)
        {
            if requests.waiting {
                if requests.got > 0 {
                    // Some bytes, then a reset or a deadline: a truncated reply.
                    self.tally.errors.wrong_payload += 1;
                } else {
                    count_close(&mut self.tally.errors, &closed.reason);
                }
                self.plan.record_done(&mut self.tally, ctl.now());
            }
        }
        if let Some(tag) = self.pool.start(ctl.now(), Requests::first) {
            ctl.connect(self.plan.addr, tag);
        }
        if self.pool.drained() {
            ctl.stop();
        }
    }

    fn on_timer(&mut self, ctl: &mut Control<'_, usize>, timer: TimerId) {
        if !self.timers.is_end(&self.plan, ctl, timer) {
            return;
        }
        // Requests still outstanding: with a fixed count they are late (timed out); a run
        // until the deadline simply ends them, uncounted.
        self.pool.end();
        let open_ended = self.echo.requests == 0;
        for slot in self.pool.in_flight_mut() {
            if slot.state.waiting {
                slot.state.waiting = false;
                if open_ended {
                    self.tally.unfinished += 1;
                } else {
                    self.tally.errors.timeout += 1;
                }
            }
        }
        ctl.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::{pattern, EchoPlan, SHIFTS};

    #[test]
    fn the_pattern_is_not_trivial() {
        let p = pattern(4096 + SHIFTS);
        let mut seen = [false; 256];
        for &b in &p {
            seen[b as usize] = true;
        }
        assert!(seen.iter().all(|&s| s), "every byte value occurs");
        // Consecutive messages differ in (nearly) every position, so a stale echo shows.
        let (a, b) = (EchoPlan::offset(0, 0), EchoPlan::offset(1, 0));
        let differ = (0..64).filter(|&i| p[a + i] != p[b + i]).count();
        assert!(differ > 50, "{differ}");
        assert_eq!(pattern(100), pattern(100), "deterministic");
    }

    #[test]
    fn offsets_stay_inside_the_pattern() {
        for k in [0, 1, 255, 256, u64::MAX] {
            for tag in [0, 1, 499, u64::MAX] {
                assert!(EchoPlan::offset(k, tag) < SHIFTS);
            }
        }
    }
}
