//! The event loop: one `mio::Poll`, its sources, its connections, its timers.

use std::io::{self, Read};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::{Events, Interest, Poll, Token, Waker};
use slab::Slab;

use crate::connection::{advance, Connection, Limits, PeerAddr, Step, Stream};
use crate::counters::Counters;
use crate::error::{Error, ErrorKind};
use crate::handler::{
    CloseReason, Closed, Command, Conn, ConnId, Control, ControlState, Datagram, Handler,
    ListenerId, SocketId, TimerId,
};
use crate::timers::{TimerKey, Timers};
use crate::udp::{self, UdpSource};

/// How a loop treats its connections. The defaults suit a public server.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
///
/// let config = netcore::Config {
///     idle_timeout: Some(Duration::from_secs(5)),
///     ..netcore::Config::default()
/// };
/// let event_loop = netcore::EventLoop::new(config)?;
/// # drop(event_loop);
/// # Ok::<(), netcore::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Config {
    /// Close a registered connection after this long with nothing read or written, so no
    /// connection lives forever by doing nothing. Default 60 s.
    pub idle_timeout: Option<Duration>,
    /// Close a connection whose queued output has waited this long with none of it taken
    /// by the peer (a peer that stopped reading). A slow peer that keeps reading is not cut
    /// off. Default 30 s.
    pub write_timeout: Option<Duration>,
    /// When closing with input still arriving: how long to read and drop it while waiting
    /// for the peer's EOF. Default 2 s.
    pub linger: Duration,
    /// On shutdown: how long in-flight connections may take to finish. Default 5 s.
    pub drain_timeout: Duration,
    /// Stop reading a connection whose queued output passes this many bytes, until half of
    /// it is written (back-pressure). Default 1 MiB.
    pub max_pending_output: usize,
    /// Stop accepting while this many connections are open. Default: no limit.
    pub max_connections: usize,
    /// How long a listener pauses after `accept()` fails for lack of descriptors or memory
    /// (`EMFILE`, `ENFILE`, `ENOBUFS`, `ENOMEM`) instead of retrying in a busy loop.
    /// Default 100 ms; at least 1 ms, whatever is set.
    pub accept_backoff: Duration,
    /// Replies a UDP socket queues when its send buffer is full; more are dropped and
    /// counted. Default 1024.
    pub udp_queue: usize,
    /// Events taken from the poller per turn. Default 1024.
    pub events_capacity: usize,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            idle_timeout: Some(Duration::from_secs(60)),
            write_timeout: Some(Duration::from_secs(30)),
            linger: Duration::from_secs(2),
            drain_timeout: Duration::from_secs(5),
            max_pending_output: 1 << 20,
            max_connections: usize::MAX,
            accept_backoff: Duration::from_millis(100),
            udp_queue: 1024,
            events_capacity: 1024,
        }
    }
}

/// Stops a running [`EventLoop`] from any thread.
///
/// `shutdown()` makes the loop stop accepting, close its UDP sockets, let every open
/// connection flush its output and close in order within
/// [`Config::drain_timeout`], close what is left, and return from [`EventLoop::run`].
///
/// It wakes the loop through its one `mio::Waker`; it may be cloned and used from any
/// number of threads (a signal-handling thread, say).
///
/// # Examples
///
/// ```
/// use netcore::{EventLoop, Handler};
///
/// struct Nothing;
/// impl Handler for Nothing {}
///
/// let mut event_loop = EventLoop::new(netcore::Config::default())?;
/// let shutdown = event_loop.shutdown_handle();
/// let server = std::thread::spawn(move || event_loop.run(&mut Nothing));
/// shutdown.shutdown();
/// server.join().expect("server thread")?;
/// # Ok::<(), netcore::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct ShutdownHandle {
    requested: Arc<AtomicBool>,
    waker: Arc<Waker>,
}

impl ShutdownHandle {
    /// Asks the loop to stop. Safe to call more than once, and before `run` starts.
    pub fn shutdown(&self) {
        self.requested.store(true, Ordering::Release);
        if let Err(err) = self.waker.wake() {
            log::warn!("waking the event loop for shutdown: {err}");
        }
    }
}

/// One `mio::Poll` loop serving listeners, UDP sockets and connections with one
/// [`Handler`]. It never blocks except in `poll`, and never starts a thread: for several
/// cores run one loop per thread, each with its own `SO_REUSEPORT` listener.
///
/// # Examples
///
/// One loop serving TCP, UDP and a Unix socket with one handler:
///
/// ```
/// use netcore::{EventLoop, Handler, ListenOptions};
///
/// struct Service;
/// impl Handler for Service {}
///
/// let opts = ListenOptions::default();
/// let path = std::env::temp_dir().join(format!("netcore-doc-{}.sock", std::process::id()));
/// let mut event_loop = EventLoop::new(netcore::Config::default())?;
/// event_loop.add_tcp_listener(netcore::tcp_listener("127.0.0.1:0".parse()?, &opts)?)?;
/// event_loop.add_udp_socket(netcore::udp_socket("127.0.0.1:0".parse()?, &opts)?)?;
/// event_loop.add_unix_listener(netcore::unix_listener(&path, &opts)?)?;
/// event_loop.shutdown_handle().shutdown();
/// event_loop.run(&mut Service)?;
/// std::fs::remove_file(&path)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct EventLoop {
    poll: Poll,
    events: Option<Events>,
    sources: Slab<Source>,
    conns: Slab<Connection>,
    gens: Vec<u32>,
    timers: Timers,
    user_timers: std::collections::HashMap<u64, Instant>,
    control: ControlState,
    scratch: Vec<u8>,
    counters: Arc<Counters>,
    config: Config,
    limits: Limits,
    requested: Arc<AtomicBool>,
    waker: Arc<Waker>,
    stopping: bool,
    /// Listeners paused because `max_connections` was reached.
    full: bool,
    now: Instant,
}

impl std::fmt::Debug for EventLoop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventLoop")
            .field("sources", &self.sources.len())
            .field("connections", &self.conns.len())
            .field("stopping", &self.stopping)
            .finish()
    }
}

enum Source {
    TcpListener {
        listener: mio::net::TcpListener,
        paused: bool,
    },
    UnixListener {
        listener: mio::net::UnixListener,
        paused: bool,
    },
    Udp(UdpSource),
}

const WAKER: Token = Token(usize::MAX);
/// Tokens of listeners and UDP sockets have this bit set; connection tokens carry their
/// slot in the low 31 bits and the slot's generation in the high 32.
const SOURCE_BIT: usize = 1 << 31;
const READ_CHUNK: usize = 64 * 1024;
/// A zero back-off would be the busy loop it exists to prevent.
const MIN_ACCEPT_BACKOFF: Duration = Duration::from_millis(1);

fn conn_token(index: usize, gen: u32) -> Token {
    Token(((gen as usize) << 32) | index)
}

impl EventLoop {
    /// Creates a loop with no sources.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Poll`] when the poller or its waker cannot be created (out of
    /// descriptors).
    pub fn new(config: Config) -> Result<EventLoop, Error> {
        let poll = Poll::new().map_err(|e| Error::new(ErrorKind::Poll, "create poller", e))?;
        let waker = Waker::new(poll.registry(), WAKER)
            .map_err(|e| Error::new(ErrorKind::Poll, "create waker", e))?;
        let limits = Limits {
            write_timeout: config.write_timeout,
            linger: config.linger,
        };
        Ok(EventLoop {
            poll,
            events: Some(Events::with_capacity(config.events_capacity.max(1))),
            sources: Slab::new(),
            conns: Slab::new(),
            gens: Vec::new(),
            timers: Timers::default(),
            user_timers: std::collections::HashMap::new(),
            control: ControlState::default(),
            scratch: vec![0; READ_CHUNK],
            counters: Arc::new(Counters::default()),
            config,
            limits,
            requested: Arc::new(AtomicBool::new(false)),
            waker: Arc::new(waker),
            stopping: false,
            full: false,
            now: Instant::now(),
        })
    }

    /// Uses `counters` instead of the loop's own, so that several loops can add up into one.
    pub fn with_counters(mut self, counters: Arc<Counters>) -> EventLoop {
        self.counters = counters;
        self
    }

    /// The loop's counters, readable from any thread while it runs.
    pub fn counters(&self) -> Arc<Counters> {
        Arc::clone(&self.counters)
    }

    /// A handle that stops this loop from another thread.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        ShutdownHandle {
            requested: Arc::clone(&self.requested),
            waker: Arc::clone(&self.waker),
        }
    }

    /// Serves a TCP listener (see [`tcp_listener`](crate::tcp_listener) to build one with
    /// a chosen backlog). It is set non-blocking here.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Poll`] when it cannot be registered.
    pub fn add_tcp_listener(
        &mut self,
        listener: std::net::TcpListener,
    ) -> Result<ListenerId, Error> {
        let what = listener
            .local_addr()
            .map_or_else(|_| "TCP listener".to_string(), |a| a.to_string());
        set_nonblocking(listener.set_nonblocking(true), &what)?;
        let listener = mio::net::TcpListener::from_std(listener);
        self.add_source(
            Source::TcpListener {
                listener,
                paused: false,
            },
            &what,
        )
        .map(ListenerId)
    }

    /// Serves a Unix-domain stream listener (see [`unix_listener`](crate::unix_listener)).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Poll`] when it cannot be registered.
    pub fn add_unix_listener(
        &mut self,
        listener: std::os::unix::net::UnixListener,
    ) -> Result<ListenerId, Error> {
        let what = "Unix listener";
        set_nonblocking(listener.set_nonblocking(true), what)?;
        let listener = mio::net::UnixListener::from_std(listener);
        self.add_source(
            Source::UnixListener {
                listener,
                paused: false,
            },
            what,
        )
        .map(ListenerId)
    }

    /// Serves a UDP socket: each datagram goes to [`Handler::on_datagram`].
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Poll`] when it cannot be registered.
    pub fn add_udp_socket(&mut self, socket: std::net::UdpSocket) -> Result<SocketId, Error> {
        let what = socket
            .local_addr()
            .map_or_else(|_| "UDP socket".to_string(), |a| a.to_string());
        set_nonblocking(socket.set_nonblocking(true), &what)?;
        let socket = mio::net::UdpSocket::from_std(socket);
        self.add_source(
            Source::Udp(UdpSource::new(socket, self.config.udp_queue)),
            &what,
        )
        .map(SocketId)
    }

    /// Starts a non-blocking TCP connect before (or outside) `run`; see
    /// [`Control::connect`].
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Connect`] when the connect fails at once (no route, no descriptors).
    pub fn connect(&mut self, addr: std::net::SocketAddr, tag: u64) -> Result<ConnId, Error> {
        let stream = mio::net::TcpStream::connect(addr)
            .map_err(|e| Error::new(ErrorKind::Connect, format!("connect {addr}"), e))?;
        let mut conn = Connection::new(
            Stream::Tcp(stream),
            PeerAddr::Inet(addr),
            None,
            0,
            Instant::now(),
        );
        conn.connecting = true;
        conn.tag = tag;
        self.insert(conn)
            .map_err(|b| Error::new(ErrorKind::Poll, format!("register {addr}"), b.1))
    }

    /// Calls [`Handler::on_timer`] at `at`, once `run` has started; see
    /// [`Control::set_timer`]. A loop with nothing else to wake it (a client whose first
    /// requests all vanished) can bound its own run this way.
    pub fn set_timer(&mut self, at: Instant) -> TimerId {
        Control {
            state: &mut self.control,
            now: self.now,
        }
        .set_timer(at)
    }

    fn add_source(&mut self, mut source: Source, what: &str) -> Result<usize, Error> {
        let entry = self.sources.vacant_entry();
        let token = Token(SOURCE_BIT | entry.key());
        let registry = self.poll.registry();
        let result = match &mut source {
            Source::TcpListener { listener, .. } => {
                registry.register(listener, token, Interest::READABLE)
            }
            Source::UnixListener { listener, .. } => {
                registry.register(listener, token, Interest::READABLE)
            }
            Source::Udp(udp) => registry.register(
                &mut udp.socket,
                token,
                Interest::READABLE | Interest::WRITABLE,
            ),
        };
        result.map_err(|e| Error::new(ErrorKind::Poll, format!("register {what}"), e))?;
        let key = entry.key();
        entry.insert(source);
        Ok(key)
    }

    /// Runs until [`ShutdownHandle::shutdown`] or [`Control::stop`] is called and the
    /// drain is over.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Poll`] when waiting on the poller fails (it never does in practice);
    /// I/O errors on sockets are handled inside the loop, counted, and never end it.
    pub fn run<H: Handler>(&mut self, handler: &mut H) -> Result<(), Error> {
        let mut events = self
            .events
            .take()
            .unwrap_or_else(|| Events::with_capacity(self.config.events_capacity.max(1)));
        let result = self.run_with(handler, &mut events);
        self.events = Some(events);
        result
    }

    fn run_with<H: Handler>(&mut self, handler: &mut H, events: &mut Events) -> Result<(), Error> {
        self.now = Instant::now();
        self.run_commands(handler);
        loop {
            if self.requested.load(Ordering::Acquire) && !self.stopping {
                self.begin_stop(handler);
            }
            if self.stopping && self.conns.is_empty() {
                return Ok(());
            }
            let timeout = self.timers.poll_timeout(Instant::now());
            if let Err(err) = self.poll.poll(events, timeout) {
                if err.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(Error::new(ErrorKind::Poll, "poll", err));
            }
            self.now = Instant::now();
            for event in events.iter() {
                let token = event.token();
                if token == WAKER {
                    continue;
                }
                if token.0 & SOURCE_BIT != 0 && token.0 >> 32 == 0 {
                    self.source_event(token.0 & !SOURCE_BIT, event, handler);
                } else {
                    self.conn_event(
                        token.0 & 0x7fff_ffff,
                        (token.0 >> 32) as u32,
                        event,
                        handler,
                    );
                }
                self.run_commands(handler);
            }
            self.fire_timers(handler);
            let mut ctl = Control {
                state: &mut self.control,
                now: self.now,
            };
            handler.on_turn_end(&mut ctl);
            self.run_commands(handler);
        }
    }

    fn source_event<H: Handler>(&mut self, key: usize, event: &mio::event::Event, handler: &mut H) {
        match self.sources.get_mut(key) {
            Some(Source::TcpListener { .. } | Source::UnixListener { .. }) => {
                self.accept_from(key, handler);
            }
            Some(Source::Udp(udp)) => {
                if event.is_writable() {
                    udp.flush(&self.counters);
                }
                if event.is_readable() || event.is_error() {
                    self.receive_datagrams(key, handler);
                }
            }
            None => {}
        }
    }

    /// Accepts until `WouldBlock`, a pause, or the connection limit.
    fn accept_from<H: Handler>(&mut self, key: usize, handler: &mut H) {
        loop {
            if self.stopping {
                return;
            }
            if self.conns.len() >= self.config.max_connections {
                self.full = true;
                return;
            }
            let accepted = match self.sources.get_mut(key) {
                Some(Source::TcpListener { listener, paused }) if !*paused => listener
                    .accept()
                    .map(|(s, a)| (Stream::Tcp(s), PeerAddr::Inet(a))),
                Some(Source::UnixListener { listener, paused }) if !*paused => {
                    listener.accept().map(|(s, a)| {
                        let path = a.as_pathname().map(std::path::Path::to_path_buf);
                        (Stream::Unix(s), PeerAddr::Unix(path))
                    })
                }
                _ => return,
            };
            match accepted {
                Ok((stream, peer)) => {
                    Counters::add(&self.counters.accepted, 1);
                    self.open(stream, peer, Some(ListenerId(key)), handler);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if is_aborted_accept(&e) => Counters::add(&self.counters.aborted, 1),
                Err(e) => {
                    // Out of descriptors or memory (or anything unknown): retrying at once
                    // fails the same way, so wait, then try again.
                    Counters::add(&self.counters.accept_errors, 1);
                    Counters::add(&self.counters.accept_pauses, 1);
                    let backoff = self.config.accept_backoff.max(MIN_ACCEPT_BACKOFF);
                    log::warn!("accept: {e}; pausing this listener for {backoff:?}");
                    if let Some(
                        Source::TcpListener { paused, .. } | Source::UnixListener { paused, .. },
                    ) = self.sources.get_mut(key)
                    {
                        *paused = true;
                    }
                    self.timers
                        .insert(self.now + backoff, TimerKey::Listener(key));
                    return;
                }
            }
        }
    }

    /// Runs `on_open` for a new connection, and registers it only if it must wait.
    fn open<H: Handler>(
        &mut self,
        stream: Stream,
        peer: PeerAddr,
        listener: Option<ListenerId>,
        handler: &mut H,
    ) {
        let index = self.conns.vacant_key();
        let gen = self.gens.get(index).copied().unwrap_or(0);
        let mut conn = Connection::new(stream, peer, listener, gen, self.now);
        {
            let mut c = Conn {
                conn: &mut conn,
                id: ConnId { index, gen },
                ctl: Control {
                    state: &mut self.control,
                    now: self.now,
                },
                counters: &self.counters,
            };
            handler.on_open(&mut c);
        }
        match advance(
            &mut conn,
            self.now,
            &self.limits,
            &mut self.scratch,
            &self.counters,
        ) {
            Step::Close(reason) => {
                self.retire(index, gen);
                self.finish(ConnId { index, gen }, conn, reason, handler);
            }
            Step::Keep => {
                if let Err(failed) = self.insert(conn) {
                    let (conn, err) = *failed;
                    self.retire(index, gen);
                    self.finish(
                        ConnId { index, gen },
                        conn,
                        CloseReason::from_io(&err),
                        handler,
                    );
                }
            }
        }
    }

    /// A connection that was given the id `(index, gen)` but never entered the slab is
    /// gone: the next one in that slot gets a new generation, as after [`Self::close`].
    fn retire(&mut self, index: usize, gen: u32) {
        if self.gens.len() <= index {
            self.gens.resize(index + 1, 0);
        }
        self.gens[index] = gen.wrapping_add(1);
    }

    /// Puts a connection in the slab and registers it with the poller.
    fn insert(&mut self, mut conn: Connection) -> Result<ConnId, Box<(Connection, io::Error)>> {
        let entry = self.conns.vacant_entry();
        let index = entry.key();
        if index >= SOURCE_BIT {
            return Err(Box::new((
                conn,
                io::Error::other("too many connections for one loop"),
            )));
        }
        if self.gens.len() <= index {
            self.gens.resize(index + 1, 0);
        }
        let gen = self.gens[index];
        conn.gen = gen;
        if let Err(e) = conn
            .stream
            .register(self.poll.registry(), conn_token(index, gen))
        {
            return Err(Box::new((conn, e)));
        }
        entry.insert(conn);
        self.schedule(index);
        Ok(ConnId { index, gen })
    }

    fn conn_event<H: Handler>(
        &mut self,
        index: usize,
        gen: u32,
        event: &mio::event::Event,
        handler: &mut H,
    ) {
        match self.conns.get(index) {
            Some(c) if c.gen == gen => {}
            _ => return, // a stale event for a slot that was closed and reused
        }
        if self.conns[index].connecting {
            // The handshake's writable edge may come in the same event as the peer's first
            // bytes (and its FIN): with edge-triggered readiness there is no second event for
            // them, so read now too.
            //
            // On Linux a socket still in SYN_SENT reports neither readable nor writable, and a
            // failed one reports an error or a hang-up: readiness without either means the
            // handshake is done, so mio's `take_error` + `peer_addr` check (two system calls
            // per connection) is needed only for the other cases.
            let established = (event.is_writable() || event.is_readable())
                && !event.is_error()
                && !event.is_write_closed();
            self.finish_connect(index, established, handler);
            if !self
                .conns
                .get(index)
                .is_some_and(|c| c.gen == gen && !c.connecting)
            {
                return;
            }
        } else if event.is_writable() {
            self.on_writable(index, handler);
        }
        if event.is_readable() || event.is_read_closed() || event.is_error() {
            self.on_readable(index, handler);
        }
    }

    fn finish_connect<H: Handler>(&mut self, index: usize, established: bool, handler: &mut H) {
        let c = &mut self.conns[index];
        let result = if established {
            Ok(true)
        } else {
            c.stream.connect_result()
        };
        match result {
            Ok(false) => return,
            Ok(true) => {
                c.connecting = false;
                c.last_active = self.now;
                Counters::add(&self.counters.connected, 1);
                self.callback(index, handler, |h, conn| h.on_open(conn));
            }
            Err(e) => {
                let reason = match CloseReason::from_io(&e) {
                    CloseReason::Refused => CloseReason::Refused,
                    _ => CloseReason::ConnectFailed(e.kind()),
                };
                c.failed = None;
                self.close(index, reason, handler);
                return;
            }
        }
        self.settle(index, handler);
    }

    fn on_writable<H: Handler>(&mut self, index: usize, handler: &mut H) {
        let c = &mut self.conns[index];
        c.write_blocked = false;
        if c.out.is_empty() {
            return;
        }
        match c.flush(&self.counters) {
            Ok(0) => {}
            Ok(_) => {
                c.last_active = self.now;
                // The peer is taking output: the write deadline is for one that stopped.
                if c.write_deadline.is_some() {
                    c.write_deadline = self.config.write_timeout.map(|d| self.now + d);
                }
            }
            Err(e) => {
                c.failed = Some(e);
                self.settle(index, handler);
                return;
            }
        }
        let resume = c.paused && c.out.len() <= self.config.max_pending_output / 2;
        if c.out.is_empty() && !c.draining {
            self.callback(index, handler, |h, conn| h.on_flushed(conn));
        }
        if resume {
            if let Some(c) = self.conns.get_mut(index) {
                c.paused = false;
            }
            self.on_readable(index, handler);
            return;
        }
        self.settle(index, handler);
    }

    /// Reads until `WouldBlock`, EOF, or back-pressure, handing data to the handler (or
    /// dropping it, when closing).
    fn on_readable<H: Handler>(&mut self, index: usize, handler: &mut H) {
        let mut scratch = std::mem::take(&mut self.scratch);
        while let Some(c) = self.conns.get_mut(index) {
            if c.read_closed || c.failed.is_some() || c.abort {
                break;
            }
            // Once the handler has closed, input is read and dropped: it cannot add output.
            let closing = c.draining || c.close_after_flush;
            if !closing && c.out.len() > self.config.max_pending_output {
                c.paused = true;
                break;
            }
            match c.stream.read(&mut scratch) {
                Ok(0) => {
                    c.read_closed = true;
                    if !closing {
                        self.callback(index, handler, |h, conn| h.on_read_closed(conn));
                    }
                    break;
                }
                Ok(n) => {
                    Counters::add(&self.counters.bytes_in, n as u64);
                    c.last_active = self.now;
                    if !closing {
                        let data = &scratch[..n];
                        self.callback(index, handler, |h, conn| h.on_data(conn, data));
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    c.failed = Some(e);
                    break;
                }
            }
        }
        self.scratch = scratch;
        self.settle(index, handler);
    }

    /// Calls `f` with the connection at `index`.
    fn callback<H, F>(&mut self, index: usize, handler: &mut H, f: F)
    where
        H: Handler,
        F: FnOnce(&mut H, &mut Conn<'_>),
    {
        let Some(conn) = self.conns.get_mut(index) else {
            return;
        };
        let id = ConnId {
            index,
            gen: conn.gen,
        };
        let mut c = Conn {
            conn,
            id,
            ctl: Control {
                state: &mut self.control,
                now: self.now,
            },
            counters: &self.counters,
        };
        f(handler, &mut c);
    }

    /// After anything happened to a registered connection: move it along, close it or
    /// update its deadline.
    fn settle<H: Handler>(&mut self, index: usize, handler: &mut H) {
        let Some(c) = self.conns.get_mut(index) else {
            return;
        };
        match advance(c, self.now, &self.limits, &mut self.scratch, &self.counters) {
            Step::Close(reason) => self.close(index, reason, handler),
            Step::Keep => self.schedule(index),
        }
    }

    /// Makes sure the connection's earliest deadline is in the timer set. A later deadline
    /// is left for the earlier entry to find when it fires (idle deadlines move on every
    /// read; moving the timer entry each time would cost more than the rare early wake-up).
    fn schedule(&mut self, index: usize) {
        let Some(c) = self.conns.get_mut(index) else {
            return;
        };
        let Some(want) = c.next_deadline(self.config.idle_timeout) else {
            return;
        };
        if c.scheduled.is_some_and(|at| at <= want) {
            return;
        }
        let key = TimerKey::Conn { index, gen: c.gen };
        self.timers.reschedule(key, c.scheduled, Some(want));
        c.scheduled = Some(want);
    }

    fn close<H: Handler>(&mut self, index: usize, reason: CloseReason, handler: &mut H) {
        let Some(conn) = self.conns.try_remove(index) else {
            return;
        };
        if let Some(at) = conn.scheduled {
            self.timers.remove(
                at,
                TimerKey::Conn {
                    index,
                    gen: conn.gen,
                },
            );
        }
        let id = ConnId {
            index,
            gen: conn.gen,
        };
        self.gens[index] = conn.gen.wrapping_add(1);
        self.finish(id, conn, reason, handler);
        if self.full && self.conns.len() < self.config.max_connections {
            self.full = false;
            self.resume_listeners(handler);
        }
    }

    /// Counts a closed connection, tells the handler, and drops the socket (closing it also
    /// removes it from the poller: no `epoll_ctl(DEL)` needed).
    fn finish<H: Handler>(
        &mut self,
        id: ConnId,
        mut conn: Connection,
        reason: CloseReason,
        handler: &mut H,
    ) {
        Counters::add(&self.counters.closed, 1);
        reason.count(&self.counters);
        if reason != CloseReason::Done {
            log::debug!("connection {:?} closed: {reason:?}", conn.peer);
        }
        let closed = Closed {
            id,
            tag: conn.tag,
            peer: &conn.peer,
            listener: conn.listener,
            reason,
            unsent: conn.out.len(),
        };
        let mut ctl = Control {
            state: &mut self.control,
            now: self.now,
        };
        handler.on_close(&mut ctl, &closed);
        conn.out.clear();
    }

    fn resume_listeners<H: Handler>(&mut self, handler: &mut H) {
        let keys: Vec<usize> = self
            .sources
            .iter()
            .filter(|(_, s)| !matches!(s, Source::Udp(_)))
            .map(|(k, _)| k)
            .collect();
        for key in keys {
            self.accept_from(key, handler);
        }
    }

    fn receive_datagrams<H: Handler>(&mut self, key: usize, handler: &mut H) {
        // Each report clears itself; the bound only guards against a socket that errs forever.
        const MAX_PEER_ERRORS: u32 = 64;
        let mut peer_errors = 0;
        let mut scratch = std::mem::take(&mut self.scratch);
        while let Some(Source::Udp(udp)) = self.sources.get_mut(key) {
            match udp.socket.recv_from(&mut scratch) {
                Ok((n, from)) => {
                    Counters::add(&self.counters.datagrams_in, 1);
                    let mut dgram = Datagram {
                        socket: udp,
                        id: SocketId(key),
                        ctl: Control {
                            state: &mut self.control,
                            now: self.now,
                        },
                        counters: &self.counters,
                    };
                    handler.on_datagram(&mut dgram, &scratch[..n], from);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // An ICMP error about an earlier reply (port unreachable, host unreachable):
                // about one peer, not us, and reported once. Datagrams may be waiting behind
                // it, and edge-triggered readiness will not say so again: go on reading.
                Err(e) if udp::is_peer_error(&e) && peer_errors < MAX_PEER_ERRORS => {
                    peer_errors += 1;
                    let field = if e.kind() == io::ErrorKind::ConnectionRefused {
                        &self.counters.refused
                    } else {
                        &self.counters.other_errors
                    };
                    Counters::add(field, 1);
                }
                Err(e) => {
                    log::debug!("recvfrom: {e}");
                    Counters::add(&self.counters.other_errors, 1);
                    break;
                }
            }
        }
        self.scratch = scratch;
    }

    fn fire_timers<H: Handler>(&mut self, handler: &mut H) {
        while let Some(key) = self.timers.pop_due(self.now) {
            match key {
                TimerKey::Conn { index, gen } => self.conn_deadline(index, gen, handler),
                TimerKey::Listener(key) => {
                    if let Some(
                        Source::TcpListener { paused, .. } | Source::UnixListener { paused, .. },
                    ) = self.sources.get_mut(key)
                    {
                        *paused = false;
                        self.accept_from(key, handler);
                    }
                }
                TimerKey::User(id) => {
                    if self.user_timers.remove(&id).is_some() {
                        let mut ctl = Control {
                            state: &mut self.control,
                            now: self.now,
                        };
                        handler.on_timer(&mut ctl, TimerId(id));
                    }
                }
                TimerKey::Shutdown => {
                    let open: Vec<usize> = self.conns.iter().map(|(k, _)| k).collect();
                    for index in open {
                        self.close(index, CloseReason::Shutdown, handler);
                    }
                }
            }
            self.run_commands(handler);
        }
    }

    fn conn_deadline<H: Handler>(&mut self, index: usize, gen: u32, handler: &mut H) {
        let Some(c) = self.conns.get_mut(index) else {
            return;
        };
        if c.gen != gen {
            return;
        }
        c.scheduled = None;
        match c.next_deadline(self.config.idle_timeout) {
            Some(at) if at <= self.now => self.close(index, CloseReason::Timeout, handler),
            _ => self.schedule(index),
        }
    }

    fn run_commands<H: Handler>(&mut self, handler: &mut H) {
        while !self.control.commands.is_empty() {
            let mut commands = std::mem::take(&mut self.control.commands);
            for command in commands.drain(..) {
                match command {
                    Command::Connect { addr, tag } => self.start_connect(addr, tag, handler),
                    Command::SetTimer { id, at } => {
                        self.user_timers.insert(id.0, at);
                        self.timers.insert(at, TimerKey::User(id.0));
                    }
                    Command::CancelTimer(id) => {
                        if let Some(at) = self.user_timers.remove(&id.0) {
                            self.timers.remove(at, TimerKey::User(id.0));
                        }
                    }
                    Command::Stop => self.requested.store(true, Ordering::Release),
                }
            }
            // Keep the allocation for the next batch (a load generator connects all the time).
            if self.control.commands.is_empty() {
                self.control.commands = commands;
            }
        }
    }

    fn start_connect<H: Handler>(&mut self, addr: std::net::SocketAddr, tag: u64, handler: &mut H) {
        let index = self.conns.vacant_key();
        let gen = self.gens.get(index).copied().unwrap_or(0);
        let id = ConnId { index, gen };
        let peer = PeerAddr::Inet(addr);
        let stream = match mio::net::TcpStream::connect(addr) {
            Ok(s) => s,
            Err(e) => {
                let reason = match CloseReason::from_io(&e) {
                    CloseReason::Refused => CloseReason::Refused,
                    _ => CloseReason::ConnectFailed(e.kind()),
                };
                Counters::add(&self.counters.closed, 1);
                reason.count(&self.counters);
                self.retire(index, gen);
                let closed = Closed {
                    id,
                    tag,
                    peer: &peer,
                    listener: None,
                    reason,
                    unsent: 0,
                };
                let mut ctl = Control {
                    state: &mut self.control,
                    now: self.now,
                };
                handler.on_close(&mut ctl, &closed);
                return;
            }
        };
        let mut conn = Connection::new(Stream::Tcp(stream), peer, None, gen, self.now);
        conn.connecting = true;
        conn.tag = tag;
        if let Err(failed) = self.insert(conn) {
            let (conn, err) = *failed;
            self.retire(index, gen);
            self.finish(id, conn, CloseReason::ConnectFailed(err.kind()), handler);
        }
    }

    /// Stop accepting, close UDP sockets, and ask every connection to finish.
    fn begin_stop<H: Handler>(&mut self, handler: &mut H) {
        self.stopping = true;
        self.sources.clear();
        self.timers
            .insert(self.now + self.config.drain_timeout, TimerKey::Shutdown);
        let open: Vec<usize> = self.conns.iter().map(|(k, _)| k).collect();
        for index in open {
            if let Some(c) = self.conns.get_mut(index) {
                if c.connecting {
                    self.close(index, CloseReason::Shutdown, handler);
                    continue;
                }
                c.close_after_flush = true;
            }
            self.settle(index, handler);
        }
        log::debug!("shutdown: {} connections draining", self.conns.len());
    }
}

fn set_nonblocking(result: io::Result<()>, what: &str) -> Result<(), Error> {
    result.map_err(|e| Error::new(ErrorKind::Socket, format!("set {what} non-blocking"), e))
}

/// The peer gave up between the handshake and `accept()`: nothing to do but count it.
fn is_aborted_accept(err: &io::Error) -> bool {
    matches!(
        err.raw_os_error(),
        Some(libc::ECONNABORTED | libc::EPROTO | libc::ECONNRESET | libc::EPERM)
    )
}
