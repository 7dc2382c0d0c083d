//! The greeting service: what the tutorial's server does for each client, as a netcore
//! handler.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;

use netcore::{CloseReason, Closed, Conn, Control, Datagram, Handler, PeerAddr};
use resolver::PyAddr;

use crate::ratelimit::ReplyLimiter;

/// Per-loop totals, added up for the summary line at exit.
#[derive(Debug, Default, Clone, Copy)]
pub struct Stats {
    pub accepted: u64,
    pub greeted: u64,
    pub errors: u64,
    pub datagrams: u64,
    /// Datagrams not answered because their source passed its reply rate.
    pub limited: u64,
}

impl std::ops::AddAssign for Stats {
    fn add_assign(&mut self, other: Stats) {
        self.accepted += other.accepted;
        self.greeted += other.greeted;
        self.errors += other.errors;
        self.datagrams += other.datagrams;
        self.limited += other.limited;
    }
}

/// Greets every connection and answers every datagram with one shared message.
pub struct GreetService {
    message: Arc<[u8]>,
    /// Output for stdout, written once per loop turn so that printing never bounds the rate.
    log: Option<Vec<u8>>,
    limiter: Option<ReplyLimiter>,
    pub stats: Stats,
}

impl GreetService {
    pub fn new(message: Arc<[u8]>, quiet: bool, limiter: Option<ReplyLimiter>) -> GreetService {
        GreetService {
            message,
            log: if quiet { None } else { Some(Vec::new()) },
            limiter,
            stats: Stats::default(),
        }
    }

    fn print_peer(&mut self, what: &str, peer: &PeerAddr) {
        let Some(log) = &mut self.log else { return };
        // Writing into a Vec cannot fail.
        let _ = match peer {
            PeerAddr::Inet(addr) => writeln!(log, "Got {what} from {}", PyAddr(addr)),
            PeerAddr::Unix(Some(path)) => writeln!(log, "Got {what} from '{}'", path.display()),
            PeerAddr::Unix(None) => writeln!(log, "Got {what} from ''"),
        };
    }
}

impl Handler for GreetService {
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        self.stats.accepted += 1;
        self.print_peer("connection", conn.peer());
        conn.send_shared(&self.message);
        conn.close();
    }

    fn on_data(&mut self, _conn: &mut Conn<'_>, _data: &[u8]) {
        // The protocol has the server speak first and only; what a client sends is ignored.
    }

    fn on_close(&mut self, _ctl: &mut Control<'_>, closed: &Closed<'_>) {
        // Greeted: every byte went to the kernel before an orderly shutdown. A peer that then
        // lingers past a deadline, or a server shutdown, does not undo that; a reset can.
        let in_order = matches!(
            closed.reason,
            CloseReason::Done | CloseReason::Timeout | CloseReason::Shutdown
        );
        if in_order && closed.unsent == 0 {
            self.stats.greeted += 1;
        } else {
            self.stats.errors += 1;
        }
    }

    fn on_datagram(&mut self, socket: &mut Datagram<'_>, _data: &[u8], from: SocketAddr) {
        self.stats.datagrams += 1;
        let now = socket.control().now();
        if let Some(false) = self.limiter.as_mut().map(|l| l.allow(from.ip(), now)) {
            self.stats.limited += 1;
            return;
        }
        self.print_peer("datagram", &PeerAddr::Inet(from));
        socket.send_to(&self.message, from);
    }

    fn on_turn_end(&mut self, _ctl: &mut Control<'_>) {
        let Some(log) = &mut self.log else { return };
        if log.is_empty() {
            return;
        }
        let mut out = std::io::stdout().lock();
        if let Err(err) = out.write_all(log).and_then(|()| out.flush()) {
            // A closed stdout (a pipe whose reader left) must not stop the service.
            log::debug!("stdout: {err}; no more connection lines");
            self.log = None;
            return;
        }
        log.clear();
    }
}
