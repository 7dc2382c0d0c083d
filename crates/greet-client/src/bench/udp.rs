//! UDP load: C connected sockets with one request outstanding each (C source ports, as
//! real clients would be).

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use netcore::{Control, Datagram, Handler, TimerId};

use super::pool::SlotPool;
use super::{count_io_error, Plan, RunTimers, Tally};

struct UdpLoad {
    plan: Plan,
    /// A slot per socket, busy while its request is outstanding.
    pool: SlotPool<()>,
    slot_of: HashMap<netcore::SocketId, usize>,
    sockets: Vec<UdpSocket>,
    tally: Tally,
    timers: RunTimers,
    sweep_timer: Option<TimerId>,
}

pub(super) fn run(plan: Plan) -> Result<Tally> {
    let mut event_loop = plan.event_loop()?;
    let local: SocketAddr = if plan.addr.is_ipv4() {
        (std::net::Ipv4Addr::LOCALHOST, 0).into()
    } else {
        (std::net::Ipv6Addr::LOCALHOST, 0).into()
    };
    let count = plan.concurrency.min(plan.total) as usize;
    let mut sockets = Vec::with_capacity(count);
    let mut slot_of = HashMap::with_capacity(count);
    for slot in 0..count {
        let socket = UdpSocket::bind(local).with_context(|| format!("bind {local}"))?;
        socket
            .connect(plan.addr)
            .with_context(|| format!("connect {}", plan.addr))?;
        let for_loop = socket.try_clone().context("dup socket")?;
        let id = event_loop.add_udp_socket(for_loop)?;
        slot_of.insert(id, slot);
        sockets.push(socket);
    }
    let mut load = UdpLoad {
        pool: SlotPool::new(count, plan.total),
        timers: RunTimers::set(&plan, &mut event_loop),
        slot_of,
        sockets,
        tally: Tally::default(),
        sweep_timer: None,
        plan,
    };
    load.sweep_timer = Some(event_loop.set_timer(Instant::now() + load.sweep_every()));
    for _ in 0..count {
        load.send_next(Instant::now());
    }
    if load.pool.in_flight() > 0 {
        event_loop.run(&mut load)?;
    }
    load.tally.errors.timeout += load.pool.in_flight();
    load.tally.not_started = load.pool.not_started();
    Ok(load.tally)
}

impl UdpLoad {
    fn sweep_every(&self) -> Duration {
        (self.plan.timeout / 4).max(Duration::from_millis(10))
    }

    /// Sends the next request on a free socket (the one whose request just ended, if any),
    /// through the std handle: a connected socket, so `send` needs no address.
    fn send_next(&mut self, now: Instant) {
        if now >= self.plan.deadline {
            return;
        }
        let Some(slot) = self.pool.start(now, |_| ()) else {
            return;
        };
        if let Err(e) = self.sockets[slot].send(b"") {
            // The socket stays idle, as after a reply nobody asks for.
            self.pool.finish(slot);
            count_io_error(&mut self.tally.errors, e.kind());
            self.plan.record_done(&mut self.tally, now);
        }
    }
}

impl Handler for UdpLoad {
    fn on_datagram(&mut self, socket: &mut Datagram<'_>, data: &[u8], _from: SocketAddr) {
        let now = socket.control().now();
        let Some(&slot) = self.slot_of.get(&socket.id()) else {
            return;
        };
        let Some(request) = self.pool.finish(slot) else {
            self.tally.stray += 1;
            return;
        };
        if *data == *self.plan.expected {
            self.tally.succeeded(request.since, now);
        } else {
            self.tally.errors.wrong_payload += 1;
        }
        self.plan.record_done(&mut self.tally, now);
        self.send_next(now);
        if self.pool.in_flight() == 0 {
            socket.control().stop();
        }
    }

    fn on_timer(&mut self, ctl: &mut Control<'_>, timer: TimerId) {
        let now = ctl.now();
        if self.timers.is_end(&self.plan, ctl, timer) {
            ctl.stop();
            return;
        }
        if Some(timer) != self.sweep_timer {
            return;
        }
        // Requests past their deadline are lost; their socket sends the next one.
        for slot in self.pool.overdue(now, self.plan.timeout) {
            self.pool.finish(slot);
            self.tally.errors.timeout += 1;
            self.plan.record_done(&mut self.tally, now);
            self.send_next(now);
        }
        if self.pool.in_flight() == 0 {
            ctl.stop();
        } else {
            self.sweep_timer = Some(ctl.set_timer(now + self.sweep_every()));
        }
    }
}
