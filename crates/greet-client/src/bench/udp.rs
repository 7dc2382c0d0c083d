//! UDP load: C connected sockets with one request outstanding each (C source ports, as
//! real clients would be).

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use netcore::{Control, Datagram, Handler, TimerId};

use super::{count_io_error, print_progress, Plan, Tally, PROGRESS_AFTER, PROGRESS_EVERY};

struct UdpLoad {
    plan: Plan,
    sent: u64,
    /// Per socket: when its outstanding request was sent.
    outstanding: Vec<Option<Instant>>,
    slot_of: HashMap<netcore::SocketId, usize>,
    in_flight: u64,
    tally: Tally,
    end_timer: Option<TimerId>,
    sweep_timer: Option<TimerId>,
    next_progress: Instant,
    sockets: Vec<UdpSocket>,
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
    let now = Instant::now();
    let mut load = UdpLoad {
        outstanding: vec![None; count],
        slot_of,
        sent: 0,
        in_flight: 0,
        tally: Tally::default(),
        end_timer: None,
        sweep_timer: None,
        next_progress: now + PROGRESS_AFTER,
        sockets,
        plan,
    };
    load.end_timer = Some(event_loop.set_timer(load.plan.deadline));
    load.sweep_timer = Some(event_loop.set_timer(now + load.sweep_every()));
    for slot in 0..count {
        load.send(slot, Instant::now());
    }
    if load.in_flight > 0 {
        event_loop.run(&mut load)?;
    }
    load.tally.errors.timeout += load.in_flight;
    load.tally.not_started = load.plan.total - load.sent;
    Ok(load.tally)
}

impl UdpLoad {
    fn sweep_every(&self) -> Duration {
        (self.plan.timeout / 4).max(Duration::from_millis(10))
    }

    /// Sends the next request on `slot`'s socket (through the std handle: a connected
    /// socket, so `send` needs no address).
    fn send(&mut self, slot: usize, now: Instant) {
        if self.sent >= self.plan.total || now >= self.plan.deadline {
            return;
        }
        self.sent += 1;
        match self.sockets[slot].send(b"") {
            Ok(_) => {
                self.outstanding[slot] = Some(now);
                self.in_flight += 1;
            }
            Err(e) => {
                count_io_error(&mut self.tally.errors, e.kind());
                self.record_done(now);
            }
        }
    }

    fn record_done(&mut self, now: Instant) {
        self.plan.record_done(&mut self.tally, now);
    }
}

impl Handler for UdpLoad {
    fn on_datagram(&mut self, socket: &mut Datagram<'_>, data: &[u8], _from: SocketAddr) {
        let now = socket.control().now();
        let Some(&slot) = self.slot_of.get(&socket.id()) else {
            return;
        };
        let Some(sent_at) = self.outstanding[slot].take() else {
            self.tally.stray += 1;
            return;
        };
        self.in_flight -= 1;
        if *data == *self.plan.expected {
            self.tally.ok += 1;
            let us = now.duration_since(sent_at).as_micros();
            self.tally
                .latencies_us
                .push(u32::try_from(us).unwrap_or(u32::MAX));
        } else {
            self.tally.errors.wrong_payload += 1;
        }
        self.record_done(now);
        self.send(slot, now);
        if self.in_flight == 0 {
            socket.control().stop();
        }
    }

    fn on_timer(&mut self, ctl: &mut Control<'_>, timer: TimerId) {
        let now = ctl.now();
        if Some(timer) == self.end_timer {
            ctl.stop();
            return;
        }
        if Some(timer) != self.sweep_timer {
            return;
        }
        // Requests past their deadline are lost; their slot sends the next one.
        for slot in 0..self.outstanding.len() {
            if let Some(sent_at) = self.outstanding[slot] {
                if now.duration_since(sent_at) >= self.plan.timeout {
                    self.outstanding[slot] = None;
                    self.in_flight -= 1;
                    self.tally.errors.timeout += 1;
                    self.record_done(now);
                    self.send(slot, now);
                }
            }
        }
        if self.plan.report_progress && now >= self.next_progress {
            print_progress(&self.plan, now);
            self.next_progress = now + PROGRESS_EVERY;
        }
        if self.in_flight == 0 {
            ctl.stop();
        } else {
            self.sweep_timer = Some(ctl.set_timer(now + self.sweep_every()));
        }
    }
}
