//! The event loop, as a reactor: it owns the poller, the waker and the turn (wait for
//! readiness, hand each event to the dispatcher, end the turn), and the construction of a
//! loop from its [`Config`] (`config.rs`). What an event means for a connection is the
//! dispatcher's (`dispatch/`); calls go one way, from here to there.

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use mio::{Events, Interest, Poll, Waker};

use crate::config::Config;
use crate::connection::{Limits, Stream};
use crate::control::Control;
use crate::core::{Core, Source};
use crate::counters::Counters;
use crate::dispatch::Dispatcher;
use crate::error::{Error, ErrorKind};
use crate::handler::Handler;
use crate::id::{ConnId, ListenerId, PeerAddr, SocketId, TimerId};
use crate::mailbox::{Mailbox, Sender, ShutdownHandle, Wake};
use crate::pool::WorkerPool;
use crate::token::{self, Target};
use crate::udp::UdpSource;

/// One `mio::Poll` loop serving listeners, UDP sockets and connections with one
/// [`Handler`]. It never blocks except in `poll`, and starts no thread of its own but its
/// worker pool's, on first use ([`Control::spawn_blocking`]): for several cores run one
/// loop per thread, each with its own `SO_REUSEPORT` listener.
///
/// `M` is the type of the messages other threads may post to it ([`Sender`]); a loop made
/// with [`EventLoop::new`] takes none (`M = ()`), one made with
/// [`EventLoop::with_messages`] takes `M`. `T` is the handler's state per connection
/// ([`Conn::state`](crate::Conn::state)), `()` for none; both are usually inferred from the
/// handler given to [`run`](Self::run).
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
pub struct EventLoop<M = (), T = ()> {
    /// The poller. Every socket in the loop is registered with it at most once, read and
    /// write interest together, and never modified.
    poll: Poll,
    /// The poller's event buffer, kept between runs (taken out while `run` uses it).
    events: Option<Events>,
    /// Messages from other threads; closed whenever `run` is not running it.
    mailbox: Arc<Mailbox<M>>,
    /// A batch of messages taken from the mailbox (kept for its allocation).
    inbox: VecDeque<M>,
    /// What events mean: connections, sources, deadlines, and the handler's callbacks.
    dispatch: Dispatcher<T>,
    config: Config,
}

impl<M, T> std::fmt::Debug for EventLoop<M, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let core = self.dispatch.core_ref();
        f.debug_struct("EventLoop")
            .field("sources", &core.source_count())
            .field("connections", &core.len())
            .field("stopping", &self.dispatch.is_stopping())
            .finish()
    }
}

impl<T: Default> EventLoop<(), T> {
    /// Creates a loop with no sources, that takes no messages. `T` is the handler's state
    /// per connection (`()` for none; inferred from the handler given to
    /// [`run`](Self::run)).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Poll`] when the poller or its waker cannot be created (out of
    /// descriptors).
    pub fn new(config: Config) -> Result<EventLoop<(), T>, Error> {
        EventLoop::with_messages(config)
    }
}

impl<M, T: Default> EventLoop<M, T> {
    /// Creates a loop with no sources, to which other threads post messages of type `M`
    /// through [`sender`](Self::sender).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Poll`] when the poller or its waker cannot be created (out of
    /// descriptors).
    pub fn with_messages(config: Config) -> Result<EventLoop<M, T>, Error> {
        let poll = Poll::new().map_err(|e| Error::new(ErrorKind::Poll, "create poller", e))?;
        let waker = Waker::new(poll.registry(), token::encode(Target::Waker))
            .map_err(|e| Error::new(ErrorKind::Poll, "create waker", e))?;
        let registry = poll
            .registry()
            .try_clone()
            .map_err(|e| Error::new(ErrorKind::Poll, "clone poller registry", e))?;
        let wake = Arc::new(Wake::new(waker));
        let limits = Limits {
            idle_timeout: config.idle_timeout,
            read_budget: config.read_budget.max(1),
            write_timeout: config.write_timeout,
            linger: config.linger,
            max_pending: config.max_pending_output,
            low_water: config.low_water,
        };
        let pool = WorkerPool::new(
            Arc::clone(&wake),
            config.blocking_threads,
            config.blocking_queue,
        );
        let core = Core::new(registry, limits, pool);
        Ok(EventLoop {
            poll,
            events: Some(Events::with_capacity(config.events_capacity.max(1))),
            mailbox: Arc::new(Mailbox::new(wake, config.message_capacity)),
            inbox: VecDeque::new(),
            dispatch: Dispatcher::new(core, &config),
            config,
        })
    }

    /// Uses `counters` instead of the loop's own, so that several loops can add up into one.
    pub fn with_counters(mut self, counters: Arc<Counters>) -> EventLoop<M, T> {
        self.dispatch.core().set_counters(counters);
        self
    }

    /// The loop's counters, readable from any thread while it runs.
    pub fn counters(&self) -> Arc<Counters> {
        Arc::clone(self.dispatch.core_ref().counters())
    }

    /// A handle that stops this loop from another thread.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        ShutdownHandle::new(Arc::clone(&self.mailbox.wake))
    }

    /// A handle through which any thread posts messages to this loop
    /// ([`Handler::on_message`]).
    pub fn sender(&self) -> Sender<M> {
        Sender::new(Arc::clone(&self.mailbox))
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
        let what = inet_name(listener.local_addr(), "TCP listener");
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

    /// Serves a UDP socket: each datagram goes to [`Handler::on_datagram`], and any
    /// callback may send from it ([`Control::send_datagram`]).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Poll`] when it cannot be registered.
    pub fn add_udp_socket(&mut self, socket: std::net::UdpSocket) -> Result<SocketId, Error> {
        let what = inet_name(socket.local_addr(), "UDP socket");
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
    pub fn connect(&mut self, addr: SocketAddr, state: T) -> Result<ConnId, Error> {
        let stream = mio::net::TcpStream::connect(addr)
            .map_err(|e| Error::new(ErrorKind::Connect, format!("connect {addr}"), e))?;
        Ok(self.add_connecting(Stream::Tcp(stream), PeerAddr::Inet(addr), state))
    }

    /// Starts a connect to a Unix-domain stream socket before (or outside) `run`; see
    /// [`Control::connect_unix`].
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Connect`] when the connect fails at once (no such socket, refused, a
    /// full listen queue).
    pub fn connect_unix(&mut self, path: impl AsRef<Path>, state: T) -> Result<ConnId, Error> {
        let path = path.as_ref();
        let stream = mio::net::UnixStream::connect(path).map_err(|e| {
            Error::new(ErrorKind::Connect, format!("connect {}", path.display()), e)
        })?;
        let peer = PeerAddr::Unix(Some(path.to_path_buf()));
        Ok(self.add_connecting(Stream::Unix(stream), peer, state))
    }

    /// Starts a connect to `host` and `port` before (or outside) `run`, resolved off the
    /// loop once it runs; see [`Control::connect_name`]. Every failure, a name that does not
    /// resolve included, arrives as [`Handler::on_connect`].
    #[cfg(feature = "resolver")]
    pub fn connect_name(&mut self, host: &str, port: &str, state: T) -> ConnId {
        Control::new(self.dispatch.core()).connect_name(host, port, state)
    }

    /// Calls [`Handler::on_timer`] at `at`, once `run` has started; see
    /// [`Control::set_timer`]. A loop with nothing else to wake it (a client whose first
    /// requests all vanished) can bound its own run this way.
    pub fn set_timer(&mut self, at: Instant) -> TimerId {
        Control::new(self.dispatch.core()).set_timer(at)
    }

    fn add_connecting(&mut self, stream: Stream, peer: PeerAddr, state: T) -> ConnId {
        // Registered when `run` settles it.
        self.dispatch.core().start_connect(Ok(stream), peer, state)
    }

    fn add_source(&mut self, source: Source, what: &str) -> Result<usize, Error> {
        let registered = self
            .dispatch
            .core()
            .add_source(source, |source, registry, token| match source {
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
            });
        registered.map_err(|e| Error::new(ErrorKind::Poll, format!("register {what}"), e))
    }

    /// Runs until [`ShutdownHandle::shutdown`] or [`Control::stop`] is called and the
    /// drain is over. Messages posted while it runs are delivered; once it returns, posts
    /// fail with [`PostError::Closed`](crate::PostError::Closed).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Poll`] when waiting on the poller fails (it never does in practice);
    /// I/O errors on sockets are handled inside the loop, counted, and never end it.
    pub fn run<H: Handler<M, T>>(&mut self, handler: &mut H) -> Result<(), Error> {
        let mut events = self
            .events
            .take()
            .unwrap_or_else(|| Events::with_capacity(self.config.events_capacity.max(1)));
        self.mailbox.open();
        let result = self.run_with(handler, &mut events);
        // Every post that was accepted is delivered: the last ones after the loop stopped
        // (their `Control` finds no connection or socket left).
        self.mailbox.close();
        self.deliver_messages(handler);
        self.events = Some(events);
        result
    }

    /// The turns: wait for readiness (not at all while connections are carried over, else
    /// until the next deadline), hand each event to the dispatcher, end the turn.
    fn run_with<H: Handler<M, T>>(
        &mut self,
        handler: &mut H,
        events: &mut Events,
    ) -> Result<(), Error> {
        self.dispatch.start(handler);
        loop {
            let stop = self.mailbox.wake.shutdown_requested() || self.dispatch.stop_requested();
            if stop && !self.dispatch.is_stopping() {
                self.dispatch.begin_stop(handler);
            }
            if self.dispatch.is_done() {
                return Ok(());
            }
            if let Err(err) = self.poll.poll(events, self.dispatch.poll_timeout()) {
                if err.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(Error::new(ErrorKind::Poll, "poll", err));
            }
            self.dispatch.read_clock();
            for event in events.iter() {
                match token::decode(event.token()) {
                    Target::Waker => {
                        self.deliver_messages(handler);
                        self.dispatch.finish_blocking(handler);
                    }
                    Target::Source(key) => self.dispatch.source_event(key, event, handler),
                    Target::Conn(id) => self.dispatch.conn_event(id, event, handler),
                }
            }
            self.dispatch.end_turn(handler);
        }
    }

    /// The waker fired: a shutdown request (seen at the top of the turn) or messages.
    fn deliver_messages<H: Handler<M, T>>(&mut self, handler: &mut H) {
        let mut inbox = std::mem::take(&mut self.inbox);
        self.mailbox.take_all(&mut inbox);
        for message in inbox.drain(..) {
            self.dispatch.message(handler, message);
        }
        self.inbox = inbox;
    }
}

impl<M, T> Drop for EventLoop<M, T> {
    /// Senders of a loop that is gone (or never ran) get `PostError::Closed`.
    fn drop(&mut self) {
        self.mailbox.close();
        self.mailbox.clear();
    }
}

/// What a TCP listener or UDP socket being added is called in errors: its address, or
/// `kind` when it has none.
fn inet_name(addr: io::Result<SocketAddr>, kind: &str) -> String {
    addr.map_or_else(|_| kind.to_string(), |a| a.to_string())
}

fn set_nonblocking(result: io::Result<()>, what: &str) -> Result<(), Error> {
    result.map_err(|e| Error::new(ErrorKind::Socket, format!("set {what} non-blocking"), e))
}
