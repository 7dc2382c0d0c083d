//! The greeting service: what the tutorial's server does for each client, as a netcore
//! handler.

use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use netcore::{
    CloseReason, Closed, Conn, ConnId, Control, Datagram, Handler, ListenerId, PeerAddr, TimerId,
};
use resolver::PyAddr;

use crate::accesslog::{self, Entry, Outcome, Transport};
use crate::limits::{ConnectionLimit, SourceLimit};
use crate::logsink::LogSink;
use crate::metrics::{self, Metrics, Request};
use crate::ratelimit::ReplyLimiter;
use crate::stats::{Count, Published, Stats};
use greet_server::cidr::{self, Cidr};
use greet_server::cli::LogFormat;
use greet_server::proxy::{self, Parsed};

/// Greets every connection and answers every datagram with one shared message.
pub struct GreetService {
    message: Arc<[u8]>,
    /// Output for stdout, handed to the log writer once per loop turn so that printing never
    /// bounds the rate nor blocks the loop.
    log: Option<Vec<u8>>,
    /// Lines in `log`.
    log_lines: u64,
    /// `tutorial` writes as each client is greeted; `text` and `json` as each connection
    /// ends.
    format: LogFormat,
    sink: Option<LogSink>,
    /// Where `stats` is published at the end of each turn, for reports while running.
    published: Arc<Published>,
    limiter: Option<ReplyLimiter>,
    /// With `--proxy-protocol`: how long a TCP connection has to send its PROXY header
    /// before it is greeted. `None` keeps the fast path: greet in `on_open`, never
    /// registered.
    proxy_timeout: Option<Duration>,
    /// `--proxy-trusted`: the sources a PROXY header is honoured from (`None`: any).
    trusted: Option<Arc<[Cidr]>>,
    /// `--max-connections`, for the whole process.
    limit: Option<Arc<ConnectionLimit>>,
    /// `--max-per-source`, for the whole process.
    per_source: Option<Arc<SourceLimit>>,
    /// With `--metrics`: greeting durations are recorded.
    timed: bool,
    /// The metrics listener, in the one loop that serves it.
    endpoint: Option<Endpoint>,
    pub stats: Stats,
}

/// The metrics listener and the scrapes waiting for a predecessor's totals.
struct Endpoint {
    listener: ListenerId,
    metrics: Arc<Metrics>,
    /// Scrapes held: the connection, when it asked, and whether it asked for the head only.
    held: Vec<(ConnId, Instant, bool)>,
    /// The timer that looks at `held` again.
    retry: Option<TimerId>,
}

/// How often held scrapes look again for the predecessor's totals.
const HELD_RETRY: Duration = Duration::from_millis(20);
/// A scrape connection that has not sent its request within this long is closed.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(10);

/// What the service keeps per connection (netcore's per-connection state).
#[derive(Debug, Default, Clone, Copy)]
pub struct Session {
    pub stage: Stage,
    /// When it was accepted; only taken when a line written at the end needs the duration
    /// (the tutorial's fast path reads no clock).
    opened: Option<Instant>,
    /// The client its PROXY header named.
    client: Option<SocketAddr>,
    /// It holds a place of `--max-connections`.
    holds_place: bool,
    /// It holds a place of `--max-per-source` for this source.
    holds_source: Option<IpAddr>,
}

/// Where a connection is, as the service sees it.
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
    /// It came from outside `--proxy-trusted`: reset at once, counted.
    Untrusted,
    /// Past `--max-connections`: reset at once, counted.
    OverLimit,
    /// Past `--max-per-source`: reset at once, counted.
    OverSourceLimit,
    /// A load balancer's health check (a PROXY v2 LOCAL header): greeted, so that a check
    /// may expect the greeting, but neither logged nor counted as a client's connection.
    HealthCheck,
    /// A connection to the metrics listener: an HTTP request, neither counted nor logged.
    Scrape,
    /// The same, answered (or held for an answer): what else it sends is ignored.
    Scraped,
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
            format: LogFormat::Tutorial,
            sink,
            published,
            limiter,
            proxy_timeout: None,
            trusted: None,
            limit: None,
            per_source: None,
            timed: false,
            endpoint: None,
            stats: Stats::default(),
        }
    }

    /// Requires a PROXY protocol header (v1 or v2) first on every TCP connection, within
    /// `timeout` of the accept, from a peer in `trusted` (`None`: any peer); a connection
    /// from another peer is refused at once. Unix-domain connections are greeted directly.
    pub fn with_proxy_protocol(
        mut self,
        timeout: Duration,
        trusted: Option<Vec<Cidr>>,
    ) -> GreetService {
        self.proxy_timeout = Some(timeout);
        self.trusted = trusted.map(Arc::from);
        self
    }

    /// Refuses connections past the process's limits (shared by every loop's service).
    pub fn with_limits(
        mut self,
        limit: Option<Arc<ConnectionLimit>>,
        per_source: Option<Arc<SourceLimit>>,
    ) -> GreetService {
        self.limit = limit;
        self.per_source = per_source;
        self
    }

    /// Records greeting durations (for the metrics' histogram).
    pub fn timed(mut self, on: bool) -> GreetService {
        self.timed = on;
        self
    }

    /// Serves the metrics on `listener` (one of this loop's).
    pub fn with_metrics(mut self, listener: ListenerId, metrics: Arc<Metrics>) -> GreetService {
        self.endpoint = Some(Endpoint {
            listener,
            metrics,
            held: Vec::new(),
            retry: None,
        });
        self
    }

    /// Once the loop has ended: publishes the last counts (for the totals a restarted
    /// server hands on at exit) and returns them.
    pub fn finish(self) -> Stats {
        self.published.publish(&self.stats);
        self.stats
    }

    /// Writes the access log in `format` (`tutorial`: the tutorial's line as each client is
    /// greeted; `text`, `json`: a line as each connection ends).
    pub fn with_log_format(mut self, format: LogFormat) -> GreetService {
        self.format = format;
        self
    }

    /// Whether lines are written at the end of connections (and so need their duration).
    fn logs_endings(&self) -> bool {
        self.log.is_some() && self.format != LogFormat::Tutorial
    }

    /// Answers the scrape on `id` (asked at `asked`), or holds it while the predecessor's
    /// totals are awaited.
    fn answer_scrape(
        &mut self,
        ctl: &mut Control<'_, Session>,
        id: ConnId,
        asked: Instant,
        head: bool,
    ) {
        let Some(endpoint) = &mut self.endpoint else {
            return;
        };
        let reply = match endpoint.metrics.totals() {
            Some(totals) => metrics::response(200, &metrics::render(&totals), head),
            None if asked.elapsed() < metrics::HOLD_LIMIT => {
                endpoint.held.push((id, asked, head));
                if endpoint.retry.is_none() {
                    endpoint.retry = Some(ctl.set_timer(ctl.now() + HELD_RETRY));
                }
                return;
            }
            None => metrics::response(503, "waiting for the previous server's totals\n", head),
        };
        ctl.send_owned(id, reply);
        ctl.close(id);
    }

    fn greet(&mut self, conn: &mut Conn<'_, Session>, client: Option<SocketAddr>) {
        match client {
            Some(addr) => self.print_peer("connection", &PeerAddr::Inet(addr)),
            None => self.print_peer("connection", conn.peer()),
        }
        conn.send_shared(&self.message);
        conn.close();
    }

    /// The tutorial's line, `Got connection from (...)`.
    fn print_peer(&mut self, what: &str, peer: &PeerAddr) {
        if self.format != LogFormat::Tutorial {
            return;
        }
        let Some(log) = &mut self.log else { return };
        self.log_lines += 1;
        // Writing into a Vec cannot fail.
        let _ = match peer {
            PeerAddr::Inet(addr) => writeln!(log, "Got {what} from {}", PyAddr(addr)),
            PeerAddr::Unix(Some(path)) => writeln!(log, "Got {what} from '{}'", path.display()),
            PeerAddr::Unix(None) => writeln!(log, "Got {what} from ''"),
        };
    }

    /// Takes a place of `--max-per-source` for `source`; refuses the connection when there
    /// is none (false).
    fn take_source(&mut self, conn: &mut Conn<'_, Session>, source: IpAddr) -> bool {
        let Some(limit) = &self.per_source else {
            return true;
        };
        if !limit.try_take(source) {
            refuse(conn, Stage::OverSourceLimit);
            return false;
        }
        conn.state().holds_source = Some(source);
        true
    }

    /// A `text` or `json` line.
    fn log_ending(&mut self, entry: &Entry<'_>) {
        let Some(log) = &mut self.log else { return };
        self.log_lines += 1;
        accesslog::append(log, self.format, SystemTime::now(), entry);
    }
}

/// Ends a connection at once with a reset, to be counted as `stage` says: the peer learns
/// it is not served without waiting, and nothing it sent is read.
fn refuse(conn: &mut Conn<'_, Session>, stage: Stage) {
    conn.state().stage = stage;
    conn.abort();
}

/// How a connection that was to be greeted ended.
fn greeting_outcome(closed: &Closed<'_, Session>) -> Outcome {
    // Every byte went to the kernel before an orderly shutdown. A peer that then lingers
    // past a deadline, or a server shutdown, does not undo that; a reset can.
    let in_order = matches!(
        closed.reason,
        CloseReason::Done | CloseReason::Timeout | CloseReason::Shutdown
    );
    if in_order && closed.unsent == 0 {
        return Outcome::Greeted;
    }
    match closed.reason {
        CloseReason::Reset | CloseReason::Aborted => Outcome::Reset,
        CloseReason::Timeout => Outcome::TimedOut,
        CloseReason::Shutdown => Outcome::Shutdown,
        _ => Outcome::Error,
    }
}

impl Handler<(), Session> for GreetService {
    fn on_open(&mut self, conn: &mut Conn<'_, Session>) {
        if let Some(endpoint) = &self.endpoint {
            if conn.listener() == Some(endpoint.listener) {
                conn.state().stage = Stage::Scrape;
                let deadline = conn.control().now() + SCRAPE_TIMEOUT;
                conn.set_deadline(Some(deadline));
                return;
            }
        }
        self.stats.add(Count::Accepted);
        if self.timed || self.logs_endings() {
            conn.state().opened = Some(Instant::now());
        }
        if let Some(limit) = &self.limit {
            if !limit.try_take() {
                refuse(conn, Stage::OverLimit);
                return;
            }
            conn.state().holds_place = true;
        }
        // A PROXY header comes from a load balancer in front of a TCP listener; a Unix
        // listener's clients are local, and greeted directly (as with --unix on the command
        // line, so with a Unix socket handed over too).
        let tcp = match conn.peer() {
            PeerAddr::Inet(addr) => Some(addr.ip()),
            PeerAddr::Unix(_) => None,
        };
        if let (Some(timeout), Some(ip)) = (self.proxy_timeout, tcp) {
            if let Some(trusted) = &self.trusted {
                if !cidr::any_contains(trusted, ip) {
                    // A reset, not a greeting: whatever it would send as a header is a lie
                    // we must not log, and the peer learns at once it is not served.
                    refuse(conn, Stage::Untrusted);
                    return;
                }
            }
            let deadline = conn.control().now() + timeout;
            conn.set_deadline(Some(deadline));
            conn.state().stage = Stage::AwaitingHeader;
            return;
        }
        if let Some(ip) = tcp {
            if !self.take_source(conn, ip) {
                return;
            }
        }
        self.print_peer("connection", conn.peer());
        conn.send_shared(&self.message);
        conn.close();
    }

    fn on_data(&mut self, conn: &mut Conn<'_, Session>, input: &[u8]) -> usize {
        // The protocol has the server speak first and only; what a client sends is ignored,
        // except for the PROXY header a load balancer sends before its client's bytes.
        match conn.state().stage {
            Stage::AwaitingHeader => {}
            Stage::Scrape => {
                match metrics::parse_request(input) {
                    Request::Incomplete => return 0,
                    Request::Metrics { head } => {
                        let id = conn.id();
                        self.answer_scrape(conn.control(), id, Instant::now(), head);
                    }
                    Request::Refuse(status) => {
                        conn.send_owned(metrics::response(status, "try GET /metrics\n", false));
                        conn.close();
                    }
                }
                // Whatever else it sends is not read.
                conn.state().stage = Stage::Scraped;
                return input.len();
            }
            _ => return input.len(),
        }
        // The parser decides within the protocol's maximum header length, so what the loop
        // keeps while it waits is bounded.
        match proxy::parse(input) {
            Ok(Parsed::Incomplete) => return 0,
            Ok(Parsed::Header { header, .. }) if header.local => {
                conn.state().stage = Stage::HealthCheck;
                conn.set_deadline(None);
                conn.send_shared(&self.message);
                conn.close();
            }
            Ok(Parsed::Header { header, .. }) => {
                *conn.state() = Session {
                    stage: Stage::Greeted,
                    client: header.source,
                    ..*conn.state()
                };
                conn.set_deadline(None);
                // The client the balancer names is the source that counts; a header that
                // names none (UNKNOWN) leaves the balancer's own address.
                let source = match (header.source, conn.peer()) {
                    (Some(client), _) => Some(client.ip()),
                    (None, PeerAddr::Inet(peer)) => Some(peer.ip()),
                    (None, PeerAddr::Unix(_)) => None,
                };
                if let Some(ip) = source {
                    if !self.take_source(conn, ip) {
                        return input.len();
                    }
                }
                self.greet(conn, header.source);
            }
            Err(why) => {
                log::info!("{}: {why}; closing", PeerText(conn.peer()));
                conn.state().stage = Stage::Refused;
                conn.close();
            }
        }
        input.len()
    }

    /// Stopping (a signal, or a restart handing over): a connection still waiting for its
    /// PROXY header is left to finish, so the balancer's client is greeted rather than
    /// closed empty (which it cannot retry); the drain timeout bounds the wait.
    fn on_stop(&mut self, conn: &mut Conn<'_, Session>) {
        if conn.state().stage != Stage::AwaitingHeader {
            conn.close();
        }
    }

    fn on_close(&mut self, _ctl: &mut Control<'_, Session>, closed: &Closed<'_, Session>) {
        if matches!(closed.state.stage, Stage::Scrape | Stage::Scraped) {
            return;
        }
        if let (true, Some(limit)) = (closed.state.holds_place, &self.limit) {
            limit.release();
        }
        if let (Some(ip), Some(limit)) = (closed.state.holds_source, &self.per_source) {
            limit.release(ip);
        }
        self.stats.add(Count::Closed);
        let outcome = match closed.state.stage {
            Stage::AwaitingHeader => {
                let why = match closed.reason {
                    CloseReason::Timeout => "no complete PROXY header in time",
                    _ => "closed before sending a complete PROXY header",
                };
                log::info!("{}: {why} ({:?})", PeerText(closed.peer), closed.reason);
                self.stats.add(Count::ProxyError);
                Outcome::ProxyError
            }
            Stage::Refused => {
                self.stats.add(Count::ProxyError);
                Outcome::ProxyError
            }
            Stage::Untrusted => {
                self.stats.add(Count::ProxyUntrusted);
                Outcome::ProxyUntrusted
            }
            Stage::OverLimit => {
                self.stats.add(Count::RefusedLimit);
                Outcome::RefusedLimit
            }
            Stage::OverSourceLimit => {
                self.stats.add(Count::RefusedPerSource);
                Outcome::RefusedPerSource
            }
            Stage::HealthCheck => {
                // Checkers often reset once they know enough: never an error.
                self.stats.add(Count::HealthCheck);
                return;
            }
            Stage::Scrape | Stage::Scraped => return,
            Stage::Greeted => {
                let outcome = greeting_outcome(closed);
                if let (true, Outcome::Greeted, Some(at)) =
                    (self.timed, outcome, closed.state.opened)
                {
                    self.stats.durations.record(at.elapsed());
                }
                self.stats.add(match outcome {
                    Outcome::Greeted => Count::Greeted,
                    Outcome::Reset => Count::Reset,
                    Outcome::TimedOut => Count::TimedOut,
                    Outcome::Shutdown => Count::Shutdown,
                    _ => Count::OtherError,
                });
                outcome
            }
        };
        if self.logs_endings() {
            let duration = closed
                .state
                .opened
                .map_or(Duration::ZERO, |at| at.elapsed());
            self.log_ending(&Entry {
                transport: Transport::of(closed.peer),
                peer: closed.peer,
                client: closed.state.client,
                outcome,
                sent: closed.sent,
                duration,
            });
        }
    }

    fn on_datagram(&mut self, socket: &mut Datagram<'_, Session>, _data: &[u8], from: SocketAddr) {
        let now = socket.control().now();
        let allowed = self
            .limiter
            .as_mut()
            .is_none_or(|l| l.allow(from.ip(), now));
        if allowed {
            self.print_peer("datagram", &PeerAddr::Inet(from));
            socket.send_to(&self.message, from);
            self.stats.add(Count::DatagramsGreeted);
        } else {
            self.stats.add(Count::RateLimited);
        }
        if self.logs_endings() {
            let (outcome, sent) = if allowed {
                (Outcome::Greeted, self.message.len() as u64)
            } else {
                (Outcome::RateLimited, 0)
            };
            self.log_ending(&Entry {
                transport: Transport::Udp,
                peer: &PeerAddr::Inet(from),
                client: None,
                outcome,
                sent,
                duration: Duration::ZERO,
            });
        }
    }

    fn on_timer(&mut self, ctl: &mut Control<'_, Session>, timer: TimerId) {
        let Some(endpoint) = &mut self.endpoint else {
            return;
        };
        if endpoint.retry != Some(timer) {
            return;
        }
        endpoint.retry = None;
        for (id, asked, head) in std::mem::take(&mut endpoint.held) {
            if ctl.is_open(id) {
                self.answer_scrape(ctl, id, asked, head);
            }
        }
    }

    fn on_turn_end(&mut self, _ctl: &mut Control<'_, Session>) {
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
