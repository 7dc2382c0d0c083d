//! TCP load: N connections, C in flight; each is read to EOF and compared with the expected
//! greeting, then the next one starts in its slot. A connection's netcore state is its slot
//! number in the [`SlotPool`]. `--timeout` bounds a connection from its connect to its EOF;
//! a reply that differs or runs past the expected one is counted wrong as soon as it does,
//! and the connection aborted.

use anyhow::Result;
use netcore::{Closed, Conn, ConnectError, Control, Handler, PeerAddr, TimerId};

use super::pool::{Slot, SlotPool};
use super::{count_close, Plan, RunTimers, Tally, TimedFrom};

struct TcpLoad {
    plan: Plan,
    pool: SlotPool<Reply>,
    tally: Tally,
    timers: RunTimers,
}

/// What a connection has received: bytes matched so far, and whether it is counted.
#[derive(Debug, Clone, Copy, Default)]
struct Reply {
    got: usize,
    finished: bool,
}

pub(super) fn run(plan: Plan) -> Result<Tally> {
    let mut event_loop = plan.event_loop()?;
    let mut load = TcpLoad {
        pool: SlotPool::new(plan.concurrency as usize, plan.total),
        timers: RunTimers::set(&plan, &mut event_loop),
        plan,
        tally: Tally::default(),
    };
    let (plan, pool, tally) = (&load.plan, &mut load.pool, &mut load.tally);
    plan.connect_first(&mut event_loop, pool, tally, |_| Reply::default());
    if load.pool.in_flight() > 0 {
        event_loop.run(&mut load)?;
    }
    load.tally.not_started = load.pool.not_started();
    Ok(load.tally)
}

impl Handler<(), usize> for TcpLoad {
    fn on_connect(
        &mut self,
        conn: &mut Conn<'_, usize>,
        outcome: Result<&PeerAddr, &ConnectError>,
    ) {
        // The whole exchange, from the connect's start to the EOF, gets one deadline.
        self.plan
            .connected(&mut self.pool, conn, outcome, TimedFrom::Connect);
    }

    fn on_data(&mut self, conn: &mut Conn<'_, usize>, data: &[u8]) -> usize {
        let now = conn.control().now();
        let Some(slot) = self.pool.get_mut(*conn.state()) else {
            return data.len();
        };
        let reply = &mut slot.state;
        if reply.finished {
            return data.len();
        }
        let end = reply.got + data.len();
        if self.plan.expected.get(reply.got..end) == Some(data) {
            reply.got = end;
            return data.len();
        }
        // A byte that differs or one past the end: the verdict cannot change, and a server
        // that streams on must not hold the slot until the deadline.
        reply.finished = true;
        self.tally.errors.wrong_payload += 1;
        self.plan.record_done(&mut self.tally, now);
        conn.abort();
        data.len()
    }

    fn on_read_closed(&mut self, conn: &mut Conn<'_, usize>) {
        let now = conn.control().now();
        let Some(slot) = self.pool.get_mut(*conn.state()) else {
            conn.close();
            return;
        };
        if slot.state.finished {
            return;
        }
        slot.state.finished = true;
        if slot.state.got != self.plan.expected.len() {
            self.tally.errors.wrong_payload += 1;
        } else {
            self.tally.succeeded(slot.since, now);
        }
        self.plan.record_done(&mut self.tally, now);
        conn.close();
    }

    fn on_close(&mut self, ctl: &mut Control<'_, usize>, closed: &Closed<'_, usize>) {
        if let Some(Slot { state: reply, .. }) = self.pool.finish(closed.state) {
            if !reply.finished && reply.got > 0 {
                // Some bytes, then a reset or a deadline: a truncated reply, whatever the cause.
                self.tally.errors.wrong_payload += 1;
                self.plan.record_done(&mut self.tally, ctl.now());
            } else if !reply.finished {
                count_close(&mut self.tally.errors, &closed.reason);
                self.plan.record_done(&mut self.tally, ctl.now());
            }
        }
        if let Some(slot) = self.pool.start(ctl.now(), |_| Reply::default()) {
            ctl.connect(self.plan.addr, slot);
        }
        if self.pool.drained() {
            ctl.stop();
        }
    }

    fn on_timer(&mut self, ctl: &mut Control<'_, usize>, timer: TimerId) {
        if self.timers.is_end(&self.plan, ctl, timer) {
            self.pool.end();
            ctl.stop();
        }
    }
}
