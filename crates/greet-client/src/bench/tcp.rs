//! TCP load: N connections, C in flight; each is read to EOF and compared with the expected
//! greeting, then the next one starts. What the load knows of each connection is its
//! state, which netcore keeps (no slot table). `--timeout` bounds a connection from its
//! connect to its EOF; a reply that differs or runs past the expected one is counted wrong
//! as soon as it does, and the connection aborted.

use std::time::Instant;

use anyhow::Result;
use netcore::{Closed, Conn, ConnectError, Control, EventLoop, Handler, PeerAddr, TimerId};

use super::{
    count_close, count_io_error, print_progress, Plan, Tally, PROGRESS_AFTER, PROGRESS_EVERY,
};

struct TcpLoad {
    plan: Plan,
    started_ops: u64,
    in_flight: u64,
    tally: Tally,
    end_timer: Option<TimerId>,
    progress_timer: Option<TimerId>,
    over: bool,
}

/// Each connection's state, kept by the loop: when it started, bytes matched so far,
/// whether it is counted.
#[derive(Clone, Copy, Default)]
struct TcpSlot {
    start: Option<Instant>,
    got: usize,
    finished: bool,
}

pub(super) fn run(plan: Plan) -> Result<Tally> {
    let mut event_loop = plan.event_loop()?;
    let concurrency = plan.concurrency;
    let now = Instant::now();
    let mut load = TcpLoad {
        plan,
        started_ops: 0,
        in_flight: 0,
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
        load.start_one_direct(&mut event_loop);
    }
    if load.in_flight > 0 {
        event_loop.run(&mut load)?;
    }
    load.tally.not_started = load.plan.total - load.started_ops;
    Ok(load.tally)
}

impl TcpLoad {
    /// A new connection's state, counted as started and in flight.
    fn start(&mut self, now: Instant) -> TcpSlot {
        self.started_ops += 1;
        self.in_flight += 1;
        TcpSlot {
            start: Some(now),
            ..TcpSlot::default()
        }
    }

    fn start_one_direct(&mut self, event_loop: &mut EventLoop<(), TcpSlot>) {
        let slot = self.start(Instant::now());
        if let Err(e) = event_loop.connect(self.plan.addr, slot) {
            self.in_flight -= 1;
            count_io_error(&mut self.tally.errors, e.io_error().kind());
            self.record_done(Instant::now());
        }
    }

    fn start_next(&mut self, ctl: &mut Control<'_, TcpSlot>) {
        if self.over || self.started_ops >= self.plan.total {
            return;
        }
        let slot = self.start(ctl.now());
        ctl.connect(self.plan.addr, slot);
    }

    fn record_done(&mut self, now: Instant) {
        self.plan.record_done(&mut self.tally, now);
    }

    fn maybe_stop(&mut self, ctl: &mut Control<'_, TcpSlot>) {
        if self.in_flight == 0 && (self.over || self.started_ops >= self.plan.total) {
            ctl.stop();
        }
    }
}

impl Handler<(), TcpSlot> for TcpLoad {
    fn on_connect(
        &mut self,
        conn: &mut Conn<'_, TcpSlot>,
        outcome: Result<&PeerAddr, &ConnectError>,
    ) {
        if outcome.is_err() {
            return; // counted in on_close, which follows
        }
        // The loop's idle deadline restarts with every read, so a server that keeps sending
        // would never time out: the whole exchange gets one deadline from the connect.
        let start = conn.state().start.unwrap_or_else(|| conn.control().now());
        conn.set_deadline(Some(start + self.plan.timeout));
    }

    fn on_data(&mut self, conn: &mut Conn<'_, TcpSlot>, data: &[u8]) -> usize {
        let now = conn.control().now();
        let slot = conn.state();
        if slot.finished {
            return data.len();
        }
        let end = slot.got + data.len();
        if self.plan.expected.get(slot.got..end) == Some(data) {
            slot.got = end;
            return data.len();
        }
        // A byte that differs or one past the end: the verdict cannot change, and a server
        // that streams on must not hold the slot until the deadline.
        slot.finished = true;
        self.tally.errors.wrong_payload += 1;
        self.record_done(now);
        conn.abort();
        data.len()
    }

    fn on_read_closed(&mut self, conn: &mut Conn<'_, TcpSlot>) {
        let now = conn.control().now();
        let slot = conn.state();
        if slot.finished {
            return;
        }
        slot.finished = true;
        if slot.got != self.plan.expected.len() {
            self.tally.errors.wrong_payload += 1;
        } else {
            self.tally.ok += 1;
            let us = slot
                .start
                .map_or(0, |start| now.duration_since(start).as_micros());
            self.tally
                .latencies_us
                .push(u32::try_from(us).unwrap_or(u32::MAX));
        }
        self.record_done(now);
        conn.close();
    }

    fn on_close(&mut self, ctl: &mut Control<'_, TcpSlot>, closed: &Closed<'_, TcpSlot>) {
        let slot = closed.state;
        if !slot.finished && slot.got > 0 {
            // Some bytes, then a reset or a deadline: a truncated reply, whatever the cause.
            self.tally.errors.wrong_payload += 1;
            self.record_done(ctl.now());
        } else if !slot.finished {
            count_close(&mut self.tally.errors, &closed.reason);
            self.record_done(ctl.now());
        }
        self.in_flight -= 1;
        self.start_next(ctl);
        self.maybe_stop(ctl);
    }

    fn on_timer(&mut self, ctl: &mut Control<'_, TcpSlot>, timer: TimerId) {
        if Some(timer) == self.end_timer {
            self.over = true;
            ctl.stop();
        } else if Some(timer) == self.progress_timer {
            print_progress(&self.plan, ctl.now());
            self.progress_timer = Some(ctl.set_timer(ctl.now() + PROGRESS_EVERY));
        }
    }
}
