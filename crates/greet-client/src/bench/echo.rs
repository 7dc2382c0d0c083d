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

use std::sync::Arc;
use std::time::Instant;

use anyhow::Result;
use netcore::{Closed, Conn, ConnectError, Control, Handler, PeerAddr, TimerId};

use super::{
    count_close, count_io_error, print_progress, Plan, Tally, PROGRESS_AFTER, PROGRESS_EVERY,
};

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

/// One connection slot.
#[derive(Debug, Clone, Copy)]
struct Slot {
    /// Requests started on this connection (the outstanding one included).
    sent: u64,
    /// When the outstanding request was sent.
    start: Instant,
    /// Where the outstanding request's message starts in the pattern.
    offset: usize,
    /// Bytes of its echo received so far.
    got: usize,
    /// A byte of its echo differed.
    wrong: bool,
    /// A request is outstanding: its outcome is not counted yet.
    waiting: bool,
}

struct EchoLoad {
    plan: Plan,
    echo: EchoPlan,
    /// Connections started (out of `plan.total`).
    started_conns: u64,
    /// Connections open or connecting.
    in_flight: u64,
    /// Requests started (the first of a connection when its connect starts).
    started_requests: u64,
    slots: Vec<Slot>,
    free: Vec<u64>,
    tally: Tally,
    end_timer: Option<TimerId>,
    progress_timer: Option<TimerId>,
    over: bool,
}

pub(super) fn run(plan: Plan, echo: EchoPlan) -> Result<Tally> {
    let mut event_loop = plan.event_loop()?;
    let concurrency = plan.concurrency;
    let now = Instant::now();
    let idle = Slot {
        sent: 0,
        start: now,
        offset: 0,
        got: 0,
        wrong: false,
        waiting: false,
    };
    let mut load = EchoLoad {
        slots: vec![idle; concurrency as usize],
        free: (0..concurrency).rev().collect(),
        plan,
        echo,
        started_conns: 0,
        in_flight: 0,
        started_requests: 0,
        tally: Tally::default(),
        end_timer: None,
        progress_timer: None,
        over: false,
    };
    load.end_timer = Some(event_loop.set_timer(load.plan.deadline));
    if load.plan.report_progress {
        load.progress_timer = Some(event_loop.set_timer(now + PROGRESS_AFTER));
    }
    for _ in 0..concurrency.min(load.plan.total) {
        if let Some(tag) = load.take_slot(Instant::now()) {
            if let Err(e) = event_loop.connect(load.plan.addr, tag) {
                load.connect_failed(tag, e.io_error().kind(), Instant::now());
            }
        }
    }
    if load.in_flight > 0 {
        event_loop.run(&mut load)?;
    }
    if load.echo.requests > 0 {
        let planned = load.plan.total.saturating_mul(load.echo.requests);
        load.tally.not_started = planned.saturating_sub(load.started_requests);
    }
    Ok(load.tally)
}

impl EchoLoad {
    /// Starts a connection in a free slot; its first request counts as started.
    fn take_slot(&mut self, now: Instant) -> Option<u64> {
        let tag = self.free.pop()?;
        self.slots[tag as usize] = Slot {
            sent: 1,
            start: now,
            offset: EchoPlan::offset(0, tag),
            got: 0,
            wrong: false,
            waiting: true,
        };
        self.started_conns += 1;
        self.started_requests += 1;
        self.in_flight += 1;
        Some(tag)
    }

    fn connect_failed(&mut self, tag: u64, kind: std::io::ErrorKind, now: Instant) {
        self.slots[tag as usize].waiting = false;
        self.in_flight -= 1;
        self.free.push(tag);
        count_io_error(&mut self.tally.errors, kind);
        self.record_done(now);
    }

    fn start_next(&mut self, ctl: &mut Control<'_, u64>) {
        if self.over || self.started_conns >= self.plan.total {
            return;
        }
        if let Some(tag) = self.take_slot(ctl.now()) {
            ctl.connect(self.plan.addr, tag);
        }
    }

    /// Sends the next message on `conn`, or closes it when its requests are done.
    fn next_request(&mut self, conn: &mut Conn<'_, u64>) {
        let tag = *conn.state();
        let slot = &mut self.slots[tag as usize];
        let more = self.echo.requests == 0 || slot.sent < self.echo.requests;
        if self.over || !more {
            conn.close();
            return;
        }
        slot.offset = EchoPlan::offset(slot.sent, tag);
        slot.sent += 1;
        slot.start = conn.control().now();
        slot.got = 0;
        slot.wrong = false;
        slot.waiting = true;
        self.started_requests += 1;
        conn.set_deadline(Some(slot.start + self.plan.timeout));
        let message = &self.echo.pattern[slot.offset..slot.offset + self.echo.size];
        conn.send(message);
    }

    fn record_done(&mut self, now: Instant) {
        self.plan.record_done(&mut self.tally, now);
    }

    fn maybe_stop(&mut self, ctl: &mut Control<'_, u64>) {
        if self.in_flight == 0 && (self.over || self.started_conns >= self.plan.total) {
            ctl.stop();
        }
    }
}

impl Handler<(), u64> for EchoLoad {
    fn on_connect(&mut self, conn: &mut Conn<'_, u64>, outcome: Result<&PeerAddr, &ConnectError>) {
        if outcome.is_err() {
            return; // counted in on_close, which follows
        }
        let tag = *conn.state();
        let slot = &mut self.slots[tag as usize];
        slot.start = conn.control().now();
        // The loop's idle deadline restarts with every read, so an echo that trickles back
        // would never time out: each request gets one deadline from its send.
        conn.set_deadline(Some(slot.start + self.plan.timeout));
        let message = &self.echo.pattern[slot.offset..slot.offset + self.echo.size];
        conn.send(message);
    }

    fn on_data(&mut self, conn: &mut Conn<'_, u64>, data: &[u8]) -> usize {
        let now = conn.control().now();
        let size = self.echo.size;
        let slot = &mut self.slots[*conn.state() as usize];
        if !slot.waiting {
            // Bytes nobody asked for (after the last echo, or while closing).
            self.tally.wrong_bytes += data.len() as u64;
            self.tally.errors.wrong_payload += 1;
            self.record_done(now);
            conn.abort();
            return data.len();
        }
        let n = (size - slot.got).min(data.len());
        let start = slot.offset + slot.got;
        let sent = &self.echo.pattern[start..start + n];
        if sent != &data[..n] {
            let differ = sent.iter().zip(&data[..n]).filter(|(a, b)| a != b).count();
            self.tally.wrong_bytes += differ as u64;
            slot.wrong = true;
        }
        slot.got += n;
        if slot.got < size {
            return data.len();
        }
        // More than was sent: the echo is wrong, and this connection's framing broken.
        let surplus = data.len() - n;
        if surplus > 0 {
            self.tally.wrong_bytes += surplus as u64;
            slot.wrong = true;
        }
        slot.waiting = false;
        if slot.wrong {
            self.tally.errors.wrong_payload += 1;
        } else {
            self.tally.ok += 1;
            let us = now.duration_since(slot.start).as_micros();
            self.tally
                .latencies_us
                .push(u32::try_from(us).unwrap_or(u32::MAX));
        }
        self.record_done(now);
        if surplus > 0 {
            conn.abort();
            return data.len();
        }
        self.next_request(conn);
        data.len()
    }

    fn on_read_closed(&mut self, conn: &mut Conn<'_, u64>) {
        let now = conn.control().now();
        let slot = &mut self.slots[*conn.state() as usize];
        if slot.waiting {
            // The server closed before the whole echo came back: a truncated reply.
            slot.waiting = false;
            self.tally.errors.wrong_payload += 1;
            self.record_done(now);
        }
        conn.close();
    }

    fn on_close(&mut self, ctl: &mut Control<'_, u64>, closed: &Closed<'_, u64>) {
        let tag = closed.state;
        let slot = &mut self.slots[tag as usize];
        if slot.waiting {
            slot.waiting = false;
            if slot.got > 0 {
                // Some bytes, then a reset or a deadline: a truncated reply.
                self.tally.errors.wrong_payload += 1;
            } else {
                count_close(&mut self.tally.errors, &closed.reason);
            }
            self.record_done(ctl.now());
        }
        self.in_flight -= 1;
        self.free.push(tag);
        self.start_next(ctl);
        self.maybe_stop(ctl);
    }

    fn on_timer(&mut self, ctl: &mut Control<'_, u64>, timer: TimerId) {
        if Some(timer) == self.end_timer {
            // Requests still outstanding: with a fixed count they are late (timed out); a
            // run until the deadline simply ends them, uncounted.
            self.over = true;
            let open_ended = self.echo.requests == 0;
            for slot in &mut self.slots {
                if slot.waiting {
                    slot.waiting = false;
                    if open_ended {
                        self.tally.unfinished += 1;
                    } else {
                        self.tally.errors.timeout += 1;
                    }
                }
            }
            ctl.stop();
        } else if Some(timer) == self.progress_timer {
            print_progress(&self.plan, ctl.now());
            self.progress_timer = Some(ctl.set_timer(ctl.now() + PROGRESS_EVERY));
        }
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
