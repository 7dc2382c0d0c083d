//! The greeting service: what the tutorial's server does for each client, as a netcore
//! handler.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use netcore::{CloseReason, Closed, Conn, Control, Datagram, Handler, PeerAddr};
use resolver::PyAddr;

use crate::logsink::LogSink;
use crate::ratelimit::ReplyLimiter;
use crate::stats::{Published, Stats};
use greet_server::proxy::{self, Parsed};

/// Greets every connection and answers every datagram with one shared message.
pub struct GreetService {
    message: Arc<[u8]>,
    /// Output for stdout, handed to the log writer once per loop turn so that printing never
    /// bounds the rate nor blocks the loop.
    log: Option<Vec<u8>>,
    /// Lines in `log`.
    log_lines: u64,
    sink: Option<LogSink>,
    /// Where `stats` is published at the end of each turn, for reports while running.
    published: Arc<Published>,
    limiter: Option<ReplyLimiter>,
    /// With `--proxy-protocol`: how long a TCP connection has to send its PROXY header
    /// before it is greeted. `None` keeps the fast path: greet in `on_open`, never
    /// registered.
    proxy_timeout: Option<Duration>,
    pub stats: Stats,
}

/// Where a connection is, as the service sees it: its state, which the loop keeps.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Greeted in `on_open` (or about to be): the common case.
    #[default]
    Greeted,
    /// Waiting for its PROXY header; the connection's deadline bounds the wait, and the
    /// loop keeps what arrived so far (kept input).
    AwaitingHeader,
    /// Its header was refused: closing, counted as a proxy error.
    Refused,
}

impl GreetService {
    /// Greets with `message`; logs through `sink` (`None`: `--quiet`).
    pub fn new(
        message: Arc<[u8]>,
        sink: Option<LogSink>,
        limiter: Option<ReplyLimiter>,
        published: Arc<Published>,
    ) -> GreetService {
        GreetService {
            message,
            log: sink.as_ref().map(|_| Vec::new()),
            log_lines: 0,
            sink,
            published,
            limiter,
            proxy_timeout: None,
            stats: Stats::default(),
        }
    }

    /// Requires a PROXY protocol header (v1 or v2) first on every TCP connection, within
    /// `timeout` of the accept; Unix-domain connections are greeted directly.
    pub fn with_proxy_protocol(mut self, timeout: Duration) -> GreetService {
        self.proxy_timeout = Some(timeout);
        self
    }

    fn greet(&mut self, conn: &mut Conn<'_, Stage>, client: Option<SocketAddr>) {
        match client {
            Some(addr) => self.print_peer("connection", &PeerAddr::Inet(addr)),
            None => self.print_peer("connection", conn.peer()),
        }
        conn.send_shared(&self.message);
        conn.close();
    }

    fn print_peer(&mut self, what: &str, peer: &PeerAddr) {
        let Some(log) = &mut self.log else { return };
        self.log_lines += 1;
        // Writing into a Vec cannot fail.
        let _ = match peer {
            PeerAddr::Inet(addr) => writeln!(log, "Got {what} from {}", PyAddr(addr)),
            PeerAddr::Unix(Some(path)) => writeln!(log, "Got {what} from '{}'", path.display()),
            PeerAddr::Unix(None) => writeln!(log, "Got {what} from ''"),
        };
    }
}

impl Handler<(), Stage> for GreetService {
    fn on_open(&mut self, conn: &mut Conn<'_, Stage>) {
        // A PROXY header comes from a load balancer in front of a TCP listener; a Unix
        // listener's clients are local, and greeted directly (as with --unix on the command
        // line, so with a Unix socket handed over too).
        let tcp = matches!(conn.peer(), PeerAddr::Inet(_));
        if let (Some(timeout), true) = (self.proxy_timeout, tcp) {
            let deadline = conn.control().now() + timeout;
            conn.set_deadline(Some(deadline));
            *conn.state() = Stage::AwaitingHeader;
            return;
        }
        self.print_peer("connection", conn.peer());
        conn.send_shared(&self.message);
        conn.close();
    }

    fn on_data(&mut self, conn: &mut Conn<'_, Stage>, input: &[u8]) -> usize {
        // The protocol has the server speak first and only; what a client sends is ignored,
        // except for the PROXY header a load balancer sends before its client's bytes.
        if *conn.state() != Stage::AwaitingHeader {
            return input.len();
        }
        // The parser decides within the protocol's maximum header length, so what the loop
        // keeps while it waits is bounded.
        match proxy::parse(input) {
            Ok(Parsed::Incomplete) => return 0,
            Ok(Parsed::Header { header, .. }) => {
                *conn.state() = Stage::Greeted;
                conn.set_deadline(None);
                self.greet(conn, header.source);
            }
            Err(why) => {
                log::info!("{}: {why}; closing", PeerText(conn.peer()));
                *conn.state() = Stage::Refused;
                conn.close();
            }
        }
        input.len()
    }

    fn on_close(&mut self, _ctl: &mut Control<'_, Stage>, closed: &Closed<'_, Stage>) {
        match closed.state {
            Stage::AwaitingHeader => {
                let why = match closed.reason {
                    CloseReason::Timeout => "no complete PROXY header in time",
                    _ => "closed before sending a complete PROXY header",
                };
                log::info!("{}: {why} ({:?})", PeerText(closed.peer), closed.reason);
                self.stats.proxy_errors += 1;
            }
            Stage::Refused => self.stats.proxy_errors += 1,
            Stage::Greeted => {
                // Every byte went to the kernel before an orderly shutdown. A peer that then
                // lingers past a deadline, or a server shutdown, does not undo that; a reset
                // can.
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
        }
    }

    fn on_datagram(&mut self, socket: &mut Datagram<'_, Stage>, _data: &[u8], from: SocketAddr) {
        let now = socket.control().now();
        if let Some(false) = self.limiter.as_mut().map(|l| l.allow(from.ip(), now)) {
            self.stats.limited += 1;
            return;
        }
        self.print_peer("datagram", &PeerAddr::Inet(from));
        socket.send_to(&self.message, from);
    }

    fn on_turn_end(&mut self, _ctl: &mut Control<'_, Stage>) {
        self.published.publish(&self.stats);
        let (Some(log), Some(sink)) = (&mut self.log, &self.sink) else {
            return;
        };
        if !log.is_empty() {
            // Never blocks: a full queue drops (and counts) this turn's lines.
            sink.submit(log, self.log_lines);
            self.log_lines = 0;
        }
    }
}

/// A peer as log lines name it.
struct PeerText<'a>(&'a PeerAddr);

impl std::fmt::Display for PeerText<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            PeerAddr::Inet(addr) => write!(f, "{addr}"),
            PeerAddr::Unix(Some(path)) => write!(f, "{}", path.display()),
            PeerAddr::Unix(None) => write!(f, "unnamed Unix peer"),
        }
    }
}
