//! [`Control`]: what any callback may ask of its loop, for any connection or socket by id.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::connection::{Connection, Stream};
use crate::core::{Continuation, Core, Env, Output, Source, Work};
use crate::id::{ConnId, PeerAddr, SocketId, TimerId};
use crate::pool::SpawnError;

/// What any callback may ask of its loop: act on any live connection by its [`ConnId`],
/// send datagrams, start connections, set timers, stop.
///
/// Changes to connections take effect at once as far as the connection's state goes (a
/// [`send`](Control::send) writes to the socket at once when it can); anything that needs
/// the loop (closing a connection and its [`Handler::on_close`](crate::Handler::on_close),
/// reading input that waited while reading was paused) happens as soon as the callback
/// returns. So a connection never disappears during a callback: an id that was live when
/// the callback began stays live until it returns.
///
/// Every method that takes a [`ConnId`] reports a stale one (its connection has closed)
/// by returning `false`, `None` or an error, and never touches another connection.
///
/// # Examples
///
/// A client that connects, reads the greeting, and stops its loop; a timer bounds the
/// whole exchange.
///
/// ```
/// use std::io::Write;
/// use std::time::Duration;
/// use netcore::{Closed, Conn, ConnectError, Control, EventLoop, Handler, PeerAddr, TimerId};
///
/// #[derive(Default)]
/// struct Client {
///     greeting: Vec<u8>,
/// }
///
/// impl Handler for Client {
///     fn on_connect(&mut self, conn: &mut Conn<'_>, _: Result<&PeerAddr, &ConnectError>) {
///         let at = conn.control().now() + Duration::from_secs(10);
///         conn.control().set_timer(at);
///     }
///     fn on_data(&mut self, _: &mut Conn<'_>, input: &[u8]) -> usize {
///         self.greeting.extend_from_slice(input);
///         input.len()
///     }
///     fn on_close(&mut self, ctl: &mut Control<'_>, _: &Closed<'_>) {
///         ctl.stop();
///     }
///     fn on_timer(&mut self, ctl: &mut Control<'_>, _: TimerId) {
///         ctl.stop(); // the server never answered
///     }
/// }
///
/// let server = std::net::TcpListener::bind("127.0.0.1:0")?;
/// let addr = server.local_addr()?;
/// std::thread::spawn(move || server.accept()?.0.write_all(b"hello"));
///
/// let mut event_loop = EventLoop::new(netcore::Config::default())?;
/// event_loop.connect(addr, ())?;
/// let mut client = Client::default();
/// event_loop.run(&mut client)?;
/// assert_eq!(client.greeting, b"hello");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Control<'a, T = ()> {
    core: &'a mut Core<T>,
    /// The connection whose callback is running, if any: the loop settles it once the
    /// callback returns, so changes to it need no entry in the work queue.
    current: Option<ConnId>,
}

impl<T> std::fmt::Debug for Control<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Control")
            .field("now", &self.core.now())
            .field("connections", &self.core.len())
            .finish()
    }
}

impl<'a, T> Control<'a, T> {
    pub(crate) fn new(core: &'a mut Core<T>) -> Control<'a, T> {
        Control {
            core,
            current: None,
        }
    }

    /// A `Control` for the callback of connection `id`.
    pub(crate) fn for_conn(core: &'a mut Core<T>, id: ConnId) -> Control<'a, T> {
        Control {
            core,
            current: Some(id),
        }
    }
}

impl<T> Control<'_, T> {
    /// The time this batch of events was taken from the poller (cheaper than
    /// `Instant::now()` per callback, and the same for every callback of the batch).
    pub fn now(&self) -> Instant {
        self.core.now_instant()
    }

    /// Whether `id` is a live connection.
    pub fn is_open(&self, id: ConnId) -> bool {
        self.core.conn(id).is_some()
    }

    /// Queues a copy of `data` on connection `id` and writes what its socket takes at once.
    /// Returns `false`, sending nothing, when `id` is stale or its sending side is shut.
    ///
    /// Nothing stops a handler from queueing without bound: watch
    /// [`pending`](Self::pending) (or [`Handler::on_flushed`](crate::Handler::on_flushed))
    /// and pause the producer, as `examples/forward.rs` does.
    #[inline]
    pub fn send(&mut self, id: ConnId, data: &[u8]) -> bool {
        let Some(sent) = self.core.send_copy(id, data) else {
            return false;
        };
        self.settle_later(id);
        sent
    }

    /// Sends `data`, which the caller gives up, on connection `id`: what the socket does
    /// not take at once is kept as it is, never copied; see [`send`](Self::send).
    pub fn send_owned(&mut self, id: ConnId, data: Vec<u8>) -> bool {
        self.send_output(id, Output::Owned(data))
    }

    /// Queues `data` on connection `id` without copying it; see [`send`](Self::send). One
    /// message sent to many connections is held in memory once.
    pub fn send_shared(&mut self, id: ConnId, data: &Arc<[u8]>) -> bool {
        self.send_output(id, Output::Shared(data))
    }

    /// Bytes queued on connection `id` and not yet taken by its socket; `None` when `id` is
    /// stale.
    pub fn pending(&self, id: ConnId) -> Option<usize> {
        self.core.pending(id)
    }

    /// Closes connection `id` in order once its output is written (see
    /// [`Conn::close`](crate::Conn::close)). Returns `false` when `id` is stale.
    pub fn close(&mut self, id: ConnId) -> bool {
        self.touch(id, |c, _| c.close()).is_some()
    }

    /// Closes connection `id` now, dropping its queued output; a TCP peer sees a reset
    /// (`SO_LINGER` 0), never an orderly EOF.
    /// Returns `false` when `id` is stale.
    pub fn abort(&mut self, id: ConnId) -> bool {
        self.touch(id, |c, _| c.abort()).is_some()
    }

    /// Half-close: shuts the sending side of connection `id` once its output is written,
    /// and goes on reading it. Returns `false` when `id` is stale.
    pub fn shutdown_write(&mut self, id: ConnId) -> bool {
        self.touch(id, |c, _| c.shutdown_write()).is_some()
    }

    /// Joins connections `a` and `b` (accepted or connected, TCP or Unix, a connect still
    /// in progress included) so that what one receives the other sends, both ways, without
    /// the handler: [`Handler::on_data`](crate::Handler::on_data) and
    /// [`on_read_closed`](crate::Handler::on_read_closed) are no longer called for them.
    ///
    /// What the pipe guarantees:
    /// - **Bounded memory.** A side whose output passes
    ///   [`Config::max_pending_output`](crate::Config::max_pending_output) stops the other
    ///   side's reading until it falls to half of that, so a peer that does not read holds
    ///   the sender back through TCP's own window.
    /// - **Half-close passed on.** One side's EOF shuts the other's sending side once its
    ///   output is written; when both sides have sent EOF, both close in order.
    /// - **Errors passed on.** When one side ends any other way (a reset, a failed connect,
    ///   a timeout, an abort), the other is aborted: its peer sees a reset, never an EOF
    ///   that would make a cut stream look whole.
    /// - Input either side had kept unconsumed is sent on at once.
    /// - [`Handler::on_close`](crate::Handler::on_close) is called for each side, with its
    ///   byte counts ([`Closed::received`](crate::Closed::received), `sent`).
    ///
    /// Returns `false`, changing nothing, when either id is stale, they are the same, or
    /// either is piped already.
    ///
    /// The bytes go through the loop's read buffer: one copy in, one copy out (a kernel
    /// `splice` would need a pipe pair per connection pair, two more descriptors each).
    pub fn pipe(&mut self, a: ConnId, b: ConnId) -> bool {
        let free = |c: Option<&Connection<T>>| c.is_some_and(|c| c.piped_to().is_none());
        if a == b || !free(self.core.conn(a)) || !free(self.core.conn(b)) {
            return false;
        }
        for (from, to) in [(a, b), (b, a)] {
            let Some(kept) = self.touch(from, |c, _| {
                c.set_pipe(to);
                c.take_kept()
            }) else {
                return false;
            };
            if !kept.is_empty() {
                self.send(to, &kept);
            }
        }
        true
    }

    /// Stops reading connection `id`: its input waits in the kernel, and once that buffer
    /// fills, TCP's window holds the peer back. Returns `false` when `id` is stale.
    ///
    /// A paused connection still gets its EOF and errors once reading resumes, and its idle
    /// deadline still runs (a connection paused for good times out). This pause is the
    /// handler's own: only [`resume_reading`](Self::resume_reading) lifts it, while the
    /// loop's pauses (back-pressure, a pipe) come and go by themselves;
    /// [`read_pause`](Self::read_pause) tells which hold a connection.
    pub fn pause_reading(&mut self, id: ConnId) -> bool {
        self.touch(id, |c, _| c.pause_reading()).is_some()
    }

    /// Reads connection `id` again after [`pause_reading`](Self::pause_reading); input that
    /// waited is read as soon as the callback returns. Back-pressure on the connection's own
    /// output may still hold it. Returns `false` when `id` is stale.
    pub fn resume_reading(&mut self, id: ConnId) -> bool {
        let Some(actions) = self.touch(id, |c, _| c.resume_reading()) else {
            return false;
        };
        self.core.owe(id, actions);
        true
    }

    /// Connection `id`'s own idle timeout, in place of
    /// [`Config::idle_timeout`](crate::Config::idle_timeout): closed after this long with
    /// nothing read or written (`None`: never, for a pooled connection that may idle for
    /// hours while the loop keeps a short timeout for everyone else). Returns `false`
    /// when `id` is stale. The connection's other settings stay the loop's.
    pub fn set_idle_timeout(&mut self, id: ConnId, timeout: Option<Duration>) -> bool {
        self.touch(id, |c, env| {
            c.limits_mut(&env.limits).idle_timeout = timeout
        })
        .is_some()
    }

    /// Connection `id`'s own write timeout, in place of
    /// [`Config::write_timeout`](crate::Config::write_timeout). Returns `false` when `id`
    /// is stale.
    pub fn set_write_timeout(&mut self, id: ConnId, timeout: Option<Duration>) -> bool {
        self.touch(id, |c, env| {
            c.limits_mut(&env.limits).write_timeout = timeout
        })
        .is_some()
    }

    /// Connection `id`'s own back-pressure bound, in place of
    /// [`Config::max_pending_output`](crate::Config::max_pending_output). Returns `false`
    /// when `id` is stale.
    pub fn set_max_pending_output(&mut self, id: ConnId, bytes: usize) -> bool {
        self.touch(id, |c, env| c.limits_mut(&env.limits).max_pending = bytes)
            .is_some()
    }

    /// Connection `id`'s own low-water mark, in place of
    /// [`Config::low_water`](crate::Config::low_water): where
    /// [`Handler::on_flushed`](crate::Handler::on_flushed) fires for it. Returns `false`
    /// when `id` is stale.
    pub fn set_low_water(&mut self, id: ConnId, bytes: usize) -> bool {
        self.touch(id, |c, env| c.limits_mut(&env.limits).low_water = bytes)
            .is_some()
    }

    /// Connection `id`'s own read budget, in place of
    /// [`Config::read_budget`](crate::Config::read_budget) (at least 1). Returns `false`
    /// when `id` is stale.
    pub fn set_read_budget(&mut self, id: ConnId, reads: usize) -> bool {
        self.touch(id, |c, env| {
            c.limits_mut(&env.limits).read_budget = reads.max(1);
        })
        .is_some()
    }

    /// Closes connection `id` with [`CloseReason::Timeout`](crate::CloseReason::Timeout) if it is still open at `at`
    /// (`None` removes the deadline); see [`Conn::set_deadline`](crate::Conn::set_deadline).
    /// Returns `false` when `id` is stale.
    pub fn set_deadline(&mut self, id: ConnId, at: Option<Instant>) -> bool {
        let at = at.map(|at| self.core.tick_of(at));
        self.touch(id, |c, _| c.set_deadline(at)).is_some()
    }

    /// The handler's state for connection `id` (the `T` of
    /// [`Handler<M, T>`](crate::Handler)); `None` when `id` is stale, and for the connection
    /// whose callback is running (its state is that callback's [`Conn::state`](crate::Conn::state)).
    pub fn state(&mut self, id: ConnId) -> Option<&mut T> {
        // The running callback's own state is lent to its `Conn`: what is left in the slot
        // meanwhile is a stand-in.
        if self.current == Some(id) {
            return None;
        }
        self.core.conn_mut(id).map(Connection::state_mut)
    }

    /// Our end's address of connection `id` (`getsockname`, asked when called).
    ///
    /// # Errors
    ///
    /// `NotConnected` when `id` is stale; the system call's error otherwise.
    pub fn local_addr(&self, id: ConnId) -> io::Result<PeerAddr> {
        self.live(id)?.stream().local_addr()
    }

    /// Sets `TCP_NODELAY` on connection `id`: small writes go out at once instead of
    /// waiting for the previous one's acknowledgement (Nagle's algorithm).
    ///
    /// # Errors
    ///
    /// `NotConnected` when `id` is stale, `Unsupported` on a Unix-domain connection.
    pub fn set_nodelay(&self, id: ConnId, on: bool) -> io::Result<()> {
        self.live(id)?.stream().set_nodelay(on)
    }

    /// Sends a datagram from UDP socket `socket` to `to`, from any callback (a timer, a
    /// message, a stream's data). Like [`Datagram::send_to`](crate::Datagram::send_to), it
    /// never blocks: a datagram that meets a full socket buffer waits in a bounded queue or
    /// is dropped and counted. Returns `false` when the loop has no such socket (it has
    /// stopped).
    pub fn send_datagram(&mut self, socket: SocketId, data: &[u8], to: SocketAddr) -> bool {
        match self.core.source_env(socket.0) {
            Some((Source::Udp(udp), env)) => {
                udp.send_to(data, to, &env.counters);
                true
            }
            _ => false,
        }
    }

    /// Starts a non-blocking TCP connect to `addr` and returns the new connection's id at
    /// once. The outcome arrives as [`Handler::on_connect`](crate::Handler::on_connect),
    /// `Ok` or `Err` (after this callback returns, even when the connect fails at once); a
    /// failure is followed by [`Handler::on_close`](crate::Handler::on_close) with
    /// [`CloseReason::Refused`](crate::CloseReason::Refused) or
    /// [`CloseReason::ConnectFailed`](crate::CloseReason::ConnectFailed). For a host name
    /// rather than an address, see `connect_name` (the `resolver` feature). `state` is the
    /// connection's state from then on ([`Conn::state`](crate::Conn::state),
    /// [`Closed::state`](crate::Closed::state)). Output sent before the connect completes
    /// is queued and written once it does.
    ///
    /// The loop follows mio's recipe: `connect` returns at once (`EINPROGRESS`); the socket
    /// is registered; on its first event, readiness without an error means connected (other
    /// events are checked with `take_error` and `peer_addr`). Bytes the peer sent with its
    /// handshake are read in that same event. Until it completes the connection is under
    /// the idle deadline, so a connect that hangs ends with [`CloseReason::Timeout`](crate::CloseReason::Timeout).
    pub fn connect(&mut self, addr: SocketAddr, state: T) -> ConnId {
        self.core.connect_tcp(addr, state)
    }

    /// Starts a connect to the Unix-domain stream socket at `path`; see
    /// [`connect`](Self::connect). A listener whose queue is full refuses at once
    /// (`EAGAIN`, [`CloseReason::ConnectFailed`](crate::CloseReason::ConnectFailed)) instead of making the caller wait.
    pub fn connect_unix(&mut self, path: impl AsRef<Path>, state: T) -> ConnId {
        let path = path.as_ref();
        let result = mio::net::UnixStream::connect(path).map(Stream::Unix);
        let peer = PeerAddr::Unix(Some(PathBuf::from(path)));
        self.core.start_connect(result, peer, state)
    }

    /// Starts a TCP connect to `host` and `port` and returns the new connection's id at
    /// once, as [`connect`](Self::connect) does for an address: the name is resolved off
    /// the loop, and each of its addresses tried in turn until one connects.
    ///
    /// - `host` and `port` take every form the `resolver` crate (`sockaddr-resolver`)
    ///   takes, as Python's `socket` does: a name, an IPv4 or IPv6 address (`127.1`,
    ///   `::1`, `fe80::1%eth0`; no brackets), a port number or a service name (`"http"`).
    /// - A numeric host with a numeric port is resolved at once, on the loop's thread,
    ///   which starts no thread; anything else is looked up (`getaddrinfo`) on the loop's
    ///   worker pool ([`spawn_blocking`](Self::spawn_blocking)).
    /// - The addresses are tried in the order `getaddrinfo` gives them (`localhost`: `::1`,
    ///   then `127.0.0.1`), as Python's `socket.create_connection` does: the next one when
    ///   a connect is refused, fails or times out (each attempt under the idle deadline,
    ///   [`Config::idle_timeout`](crate::Config::idle_timeout) or the connection's own).
    /// - The outcome arrives as [`Handler::on_connect`](crate::Handler::on_connect): `Ok`
    ///   with the address that connected, or `Err` with every address's error, or the
    ///   resolver's ([`ConnectError::resolve_error`](crate::ConnectError::resolve_error)); then, for a failure,
    ///   [`Handler::on_close`](crate::Handler::on_close), as for any connect.
    ///
    /// The connection exists from this call on, with `state` as its state: output sent to
    /// it is queued, and it may be piped, paused, aborted or given a deadline before its
    /// name is resolved. Until then its [`Conn::peer`](crate::Conn::peer) is the unspecified address
    /// `0.0.0.0:0` (so is [`Closed::peer`](crate::Closed::peer) when the name never
    /// resolved). A pool that is full ([`Config::blocking_queue`](crate::Config::blocking_queue))
    /// fails the connect at once, with [`CloseReason::ConnectFailed`](crate::CloseReason::ConnectFailed)`(WouldBlock)`.
    ///
    /// # Examples
    ///
    /// A client that connects to `localhost`, whatever address it is.
    ///
    /// ```
    /// use std::io::Write;
    /// use netcore::{Closed, Conn, ConnectError, Control, EventLoop, Handler, PeerAddr};
    ///
    /// #[derive(Default)]
    /// struct Client {
    ///     greeting: Vec<u8>,
    /// }
    ///
    /// impl Handler for Client {
    ///     fn on_connect(&mut self, conn: &mut Conn<'_>, outcome: Result<&PeerAddr, &ConnectError>) {
    ///         if let Err(err) = outcome {
    ///             eprintln!("{err}"); // on_close comes next, and stops the loop
    ///         }
    ///         let _ = conn;
    ///     }
    ///     fn on_data(&mut self, _: &mut Conn<'_>, input: &[u8]) -> usize {
    ///         self.greeting.extend_from_slice(input);
    ///         input.len()
    ///     }
    ///     fn on_close(&mut self, ctl: &mut Control<'_>, _: &Closed<'_>) {
    ///         ctl.stop();
    ///     }
    /// }
    ///
    /// let server = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// let port = server.local_addr()?.port().to_string();
    /// std::thread::spawn(move || server.accept()?.0.write_all(b"hello"));
    ///
    /// let mut event_loop = EventLoop::new(netcore::Config::default())?;
    /// event_loop.connect_name("localhost", &port, ());
    /// let mut client = Client::default();
    /// event_loop.run(&mut client)?;
    /// assert_eq!(client.greeting, b"hello");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[cfg(feature = "resolver")]
    pub fn connect_name(&mut self, host: &str, port: &str, state: T) -> ConnId {
        self.core.connect_name(host, port, state)
    }

    /// Calls [`Handler::on_timer`](crate::Handler::on_timer) at `at` (at once if it has
    /// passed).
    pub fn set_timer(&mut self, at: Instant) -> TimerId {
        self.core.set_timer(at)
    }

    /// Cancels a timer; a timer that already fired or was cancelled is ignored.
    pub fn cancel_timer(&mut self, id: TimerId) {
        self.core.cancel_timer(id);
    }

    /// Runs `work` on one of the loop's worker threads, then `then` with its result on the
    /// loop's thread, with a [`Control`]: the way to do something that blocks (a file
    /// read, a password hash, a lookup) without stalling every connection of the loop.
    ///
    /// - **Started on first use.** The pool has no thread until its first job, and starts
    ///   one whenever a job finds none idle, up to
    ///   [`Config::blocking_threads`](crate::Config::blocking_threads); a worker ends after
    ///   10 s without work. A loop that never calls this (nor
    ///   [`connect_name`](Self::connect_name) with a name to look up) never has a thread.
    /// - **Bounded, and refused at once.** At most
    ///   [`Config::blocking_queue`](crate::Config::blocking_queue) jobs are in flight, from
    ///   this call until `then` has run; one more is refused here, with
    ///   [`SpawnError::Full`], while the caller can still answer its peer.
    /// - **Never lost.** A job accepted here has its place among the results already, so
    ///   `then` runs, exactly once, as soon as the loop's waker (the one
    ///   [`Sender`](crate::Sender)s use) reports it: during this `run`, or the next one if
    ///   this one returns first; only a loop that is dropped drops what is still running.
    ///   A `work` that panics panics the loop's thread there, in place of `then`.
    /// - `then` runs like any callback: what it does to connections takes effect as with
    ///   any [`Control`], and a connection may have closed meanwhile (its id is then
    ///   stale, and reported so).
    ///
    /// # Errors
    ///
    /// [`SpawnError::Full`] with `blocking_queue` jobs in flight,
    /// [`SpawnError::Thread`] when the pool has no thread and cannot start one.
    ///
    /// # Examples
    ///
    /// A server that answers each client with a file, read off the loop.
    ///
    /// ```
    /// use std::io::Read;
    /// use std::path::PathBuf;
    /// use netcore::{Conn, EventLoop, Handler, ListenOptions};
    ///
    /// struct FileServer {
    ///     path: PathBuf,
    /// }
    ///
    /// impl Handler for FileServer {
    ///     fn on_open(&mut self, conn: &mut Conn<'_>) {
    ///         let (id, path) = (conn.id(), self.path.clone());
    ///         let read = move || std::fs::read(path);
    ///         let submitted = conn.control().spawn_blocking(read, move |ctl, contents| {
    ///             match contents {
    ///                 Ok(bytes) => ctl.send_owned(id, bytes),
    ///                 Err(_) => ctl.send(id, b"cannot read it\n"),
    ///             };
    ///             ctl.close(id);
    ///         });
    ///         if submitted.is_err() {
    ///             conn.send(b"busy, try again\n");
    ///             conn.close();
    ///         }
    ///     }
    /// }
    ///
    /// let path = std::env::temp_dir().join(format!("netcore-doc-{}.txt", std::process::id()));
    /// std::fs::write(&path, "read on a worker thread\n")?;
    /// let listener = netcore::tcp_listener("127.0.0.1:0".parse()?, &ListenOptions::default())?;
    /// let addr = listener.local_addr()?;
    /// let mut event_loop = EventLoop::new(netcore::Config::default())?;
    /// event_loop.add_tcp_listener(listener)?;
    /// let shutdown = event_loop.shutdown_handle();
    /// let server_path = path.clone();
    /// let server = std::thread::spawn(move || {
    ///     event_loop.run(&mut FileServer { path: server_path })
    /// });
    ///
    /// let mut reply = String::new();
    /// std::net::TcpStream::connect(addr)?.read_to_string(&mut reply)?;
    /// assert_eq!(reply, "read on a worker thread\n");
    ///
    /// shutdown.shutdown();
    /// server.join().expect("server thread")?;
    /// std::fs::remove_file(&path)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn spawn_blocking<R, W, F>(&mut self, work: W, then: F) -> Result<(), SpawnError>
    where
        R: Send + 'static,
        W: FnOnce() -> R + Send + 'static,
        F: FnOnce(&mut Control<'_, T>, R) + Send + 'static,
    {
        let then: Continuation<T> = Box::new(move |core, value| match value.downcast::<R>() {
            Ok(value) => then(&mut Control::new(core), *value),
            // The pool hands each job's value to the continuation submitted with it.
            Err(_) => log::error!("a worker job's value is not of its continuation's type"),
        });
        self.core.submit_blocking(work, then)
    }

    /// Stops the loop as [`ShutdownHandle::shutdown`](crate::ShutdownHandle::shutdown) does.
    pub fn stop(&mut self) {
        self.core.request_stop();
    }

    // ---- For `Conn`, which acts on its own connection through these.

    pub(crate) fn conn(&self, id: ConnId) -> Option<&Connection<T>> {
        self.core.conn(id)
    }

    /// The core, for `Conn` (its corked send).
    pub(crate) fn core_mut(&mut self) -> &mut Core<T> {
        self.core
    }

    fn send_output(&mut self, id: ConnId, output: Output<'_>) -> bool {
        let Some(sent) = self.core.send(id, output) else {
            return false;
        };
        self.settle_later(id);
        sent
    }

    /// The loop settles the connection whose callback runs once it returns; any other
    /// goes to the work queue.
    fn settle_later(&mut self, id: ConnId) {
        if self.current != Some(id) {
            self.core.push(Work::Settle(id));
        }
    }

    /// Changes connection `id` (`None` when it is stale) and makes sure the loop settles
    /// it once the callback returns.
    fn touch<R>(
        &mut self,
        id: ConnId,
        change: impl FnOnce(&mut Connection<T>, &Env) -> R,
    ) -> Option<R> {
        let (c, env) = self.core.conn_env(id)?;
        let result = change(c, env);
        self.settle_later(id);
        Some(result)
    }

    fn live(&self, id: ConnId) -> io::Result<&Connection<T>> {
        self.core.conn(id).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotConnected,
                format!("connection {id:?} has closed"),
            )
        })
    }
}
