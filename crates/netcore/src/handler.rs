//! What a service implements ([`Handler`]) and what the loop hands it in each callback.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::connection::Connection;
use crate::control::Control;
use crate::core::connects::ConnectError;
use crate::id::{CloseReason, ConnId, ListenerId, PeerAddr, SocketId, TimerId};

/// A service's callbacks. Every method has a default, so a service implements only what it
/// needs.
///
/// The contract:
/// - Callbacks run on the loop's thread, one at a time, and must not block: a handler that
///   sleeps or waits on a socket stalls every connection of its loop.
/// - Output is queued with [`Conn::send`]; the loop writes it as the peer takes it, resumes
///   partial writes on writable events, and stops reading a connection whose pending output
///   passes [`Config::max_pending_output`](crate::Config) (back-pressure) until it drains.
/// - A connection lives until the handler calls [`Conn::close`] (orderly, after its output is
///   flushed) or [`Conn::abort`], the peer resets it, or one of its deadlines passes.
///   [`Handler::on_close`] is called exactly once for every connection that was opened or
///   whose connect failed.
/// - A [`ConnId`] is never reused while its connection is open; after `on_close` its slot
///   may be reused under a new generation, so a stale id never reaches a new connection.
/// - Any callback may act on any live connection by its id through [`Control`] (send,
///   close, pause reading...), not only on the one whose event fired.
/// - `M` is the type of the messages other threads post to the loop through a
///   [`Sender`](crate::Sender); a handler that takes none implements `Handler` (that is,
///   `Handler<()>`) and never sees [`on_message`](Handler::on_message).
/// - `T` is the handler's state per connection: the loop creates it (`T::default()`) when
///   a connection is accepted, or takes it from [`Control::connect`]; every callback for
///   that connection reaches it as [`Conn::state`]; it ends in [`Closed::state`]. A
///   handler with none implements `Handler<M>` (`T = ()`).
///
/// # Examples
///
/// An echo service: what a client sends comes back; its EOF closes the connection in order
/// (the default [`on_read_closed`](Handler::on_read_closed)).
///
/// ```
/// use std::io::{Read, Write};
/// use netcore::{Conn, EventLoop, Handler, ListenOptions};
///
/// struct Echo;
///
/// impl Handler for Echo {
///     fn on_data(&mut self, conn: &mut Conn<'_>, input: &[u8]) -> usize {
///         conn.send(input);
///         input.len() // all of it consumed
///     }
/// }
///
/// let listener = netcore::tcp_listener("127.0.0.1:0".parse()?, &ListenOptions::default())?;
/// let addr = listener.local_addr()?;
/// let mut event_loop = EventLoop::new(netcore::Config::default())?;
/// event_loop.add_tcp_listener(listener)?;
/// let shutdown = event_loop.shutdown_handle();
/// let server = std::thread::spawn(move || event_loop.run(&mut Echo));
///
/// let mut client = std::net::TcpStream::connect(addr)?;
/// client.write_all(b"ping")?;
/// client.shutdown(std::net::Shutdown::Write)?;
/// let mut reply = String::new();
/// client.read_to_string(&mut reply)?;
/// assert_eq!(reply, "ping");
///
/// shutdown.shutdown();
/// server.join().expect("server thread")?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait Handler<M = (), T = ()> {
    /// A listener accepted a connection. The fast path: a handler that sends its whole
    /// reply here and calls [`Conn::close`] costs one `write` and one `close`, and the
    /// connection is never registered with the poller.
    fn on_open(&mut self, conn: &mut Conn<'_, T>) {
        let _ = conn;
    }

    /// An outgoing connect ([`Control::connect`], [`Control::connect_unix`],
    /// [`Control::connect_name`]) completed, or failed: called exactly once for each,
    /// before any other callback for its connection.
    ///
    /// - `Ok(addr)`: connected, to `addr` (for a connect by name, the address that
    ///   answered). The connection is open.
    /// - `Err(error)`: it did not connect: every address tried, with its error, or the
    ///   resolver's error for a name that did not resolve ([`ConnectError`]), or what
    ///   ended it first (a deadline, [`Conn::abort`], a shutdown). The connection is
    ///   ending: [`on_close`](Handler::on_close) follows, with [`ConnectError::reason`]
    ///   ([`CloseReason::Refused`], [`CloseReason::ConnectFailed`]...) and its state.
    fn on_connect(&mut self, conn: &mut Conn<'_, T>, outcome: Result<&PeerAddr, &ConnectError>) {
        let _ = (conn, outcome);
    }

    /// Input arrived: `input` is everything received on this connection that earlier
    /// calls did not consume. Return how many bytes from its front were consumed; the
    /// rest is kept and handed again, with what arrives next (up to
    /// [`Config::max_input`](crate::Config::max_input)).
    ///
    /// A handler that consumes something is called again at once with what is left, so
    /// it may handle one request per call: the loop stops calling it while the
    /// connection's output is over [`Config::max_pending_output`](crate::Config), and
    /// goes on once the output drained. A handler that consumes nothing (an incomplete
    /// frame) is called again when more input arrives. The default consumes and drops
    /// everything.
    fn on_data(&mut self, conn: &mut Conn<'_, T>, input: &[u8]) -> usize {
        let _ = conn;
        input.len()
    }

    /// The peer shut its sending side (EOF). The default closes our side too, after
    /// flushing; a handler that still has things to say may send them first.
    fn on_read_closed(&mut self, conn: &mut Conn<'_, T>) {
        conn.close();
    }

    /// Output that had to wait for the peer has drained: the connection's pending output
    /// fell from above [`Config::low_water`](crate::Config::low_water) (default 0: all of
    /// it written) to at or below it. The place to resume a producer paused for this
    /// connection's sake, as a forwarder resumes reading the other side.
    fn on_flushed(&mut self, conn: &mut Conn<'_, T>) {
        let _ = conn;
    }

    /// The connection is gone; `closed` says why. Called before its socket is closed, so
    /// whatever the handler records here is recorded before the peer sees the close.
    fn on_close(&mut self, ctl: &mut Control<'_, T>, closed: &Closed<'_, T>) {
        let _ = (ctl, closed);
    }

    /// A datagram arrived on a UDP socket added with
    /// [`EventLoop::add_udp_socket`](crate::EventLoop::add_udp_socket).
    fn on_datagram(&mut self, socket: &mut Datagram<'_, T>, data: &[u8], from: SocketAddr) {
        let _ = (socket, data, from);
    }

    /// A timer set with [`Control::set_timer`] is due.
    fn on_timer(&mut self, ctl: &mut Control<'_, T>, timer: TimerId) {
        let _ = (ctl, timer);
    }

    /// The loop is stopping ([`ShutdownHandle::shutdown`](crate::ShutdownHandle::shutdown)
    /// or [`Control::stop`]): no more connections are accepted, and each open one is asked
    /// to finish. The default closes it in order ([`Conn::close`]: its queued output is
    /// written first). A handler whose connection is in the middle of an exchange (a
    /// request not fully read, a header awaited) may leave it open to finish: it is read
    /// and served as before, and [`Config::drain_timeout`](crate::Config) still ends
    /// whatever is left. Not called for a connect still in progress (it ends with
    /// [`CloseReason::Shutdown`]).
    fn on_stop(&mut self, conn: &mut Conn<'_, T>) {
        conn.close();
    }

    /// The loop handled one batch of events and is about to wait again: the place to flush
    /// output buffered across callbacks (one `write` per turn, not one per connection).
    fn on_turn_end(&mut self, ctl: &mut Control<'_, T>) {
        let _ = ctl;
    }

    /// Another thread posted `message` through a [`Sender`](crate::Sender). Messages arrive
    /// in the order each thread posted them.
    fn on_message(&mut self, ctl: &mut Control<'_, T>, message: M) {
        let _ = (ctl, message);
    }
}

/// What [`Handler::on_close`] learns about a connection that ended.
#[derive(Debug)]
#[non_exhaustive]
pub struct Closed<'a, T = ()> {
    /// The connection's id (its slot may be reused from now on).
    pub id: ConnId,
    /// The handler's state for the connection ([`Conn::state`], or what was given to
    /// [`Control::connect`]), as the connection left it.
    pub state: T,
    /// The peer.
    pub peer: &'a PeerAddr,
    /// The listener that accepted it; `None` for an outgoing connection.
    pub listener: Option<ListenerId>,
    /// Why it closed.
    pub reason: CloseReason,
    /// Bytes queued but never written.
    pub unsent: usize,
    /// Bytes read from the connection, all its life.
    pub received: u64,
    /// Bytes written to the connection, all its life.
    pub sent: u64,
}

/// One connection, as a callback sees it.
///
/// # Examples
///
/// Half-close: answer, shut our sending side (the peer reads EOF), and go on reading what
/// the peer still sends. The connection's state (`T = bool` here: answered yet?) is the
/// loop's to keep: no map keyed by connection.
///
/// ```
/// use netcore::{Conn, Handler};
///
/// struct Answer;
///
/// impl Handler<(), bool> for Answer {
///     fn on_data(&mut self, conn: &mut Conn<'_, bool>, input: &[u8]) -> usize {
///         if !*conn.state() {
///             conn.send(&input.len().to_be_bytes());
///             conn.shutdown_write();
///             *conn.state() = true;
///         }
///         input.len()
///     }
/// }
/// # let _ = Answer;
/// ```
pub struct Conn<'a, T = ()> {
    /// A `Control` that knows this connection is the current one.
    pub(crate) ctl: Control<'a, T>,
    pub(crate) id: ConnId,
    /// The connection's state, out of its slot for the length of the callback.
    pub(crate) state: &'a mut T,
}

impl<T> std::fmt::Debug for Conn<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn")
            .field("id", &self.id)
            .field("peer", &self.this().map(Connection::peer))
            .finish()
    }
}

// The connection is live for the whole callback (the loop removes connections only between
// callbacks), so the lookups below find it; a miss would be a bug in the loop, and is
// handled as a stale id rather than a panic.
impl<'a, T> Conn<'a, T> {
    /// This connection's id: keep it to act on the connection later, from any callback,
    /// through [`Control`].
    pub fn id(&self) -> ConnId {
        self.id
    }

    /// The peer's address, as `accept()` (or `connect()`) gave it.
    pub fn peer(&self) -> &PeerAddr {
        static GONE: PeerAddr = PeerAddr::Unix(None);
        self.this().map_or(&GONE, Connection::peer)
    }

    /// Our end's address (`getsockname`, asked when called).
    ///
    /// # Errors
    ///
    /// The system call's error.
    pub fn local_addr(&self) -> io::Result<PeerAddr> {
        self.ctl.local_addr(self.id)
    }

    /// Sets `TCP_NODELAY`; see [`Control::set_nodelay`].
    ///
    /// # Errors
    ///
    /// `Unsupported` on a Unix-domain connection; the system call's error otherwise.
    pub fn set_nodelay(&self, on: bool) -> io::Result<()> {
        self.ctl.set_nodelay(self.id, on)
    }

    /// The listener that accepted this connection; `None` for an outgoing one.
    pub fn listener(&self) -> Option<ListenerId> {
        self.this().and_then(Connection::listener)
    }

    /// The handler's state for this connection: the `T` of [`Handler<M, T>`](Handler),
    /// created with `T::default()` when the connection was accepted, or given to
    /// [`Control::connect`]; it lives as long as the connection and ends in
    /// [`Closed::state`]. No map keyed by [`ConnId`] is needed to find it.
    pub fn state(&mut self) -> &mut T {
        self.state
    }

    /// Sends `data`: written at once as far as the socket takes it when nothing else waits
    /// to be written on this connection; the rest is copied and written as the peer takes
    /// it.
    ///
    /// Inside [`Handler::on_data`] the loop batches: what the calls for one batch of
    /// input send (the replies to pipelined requests) queues, and leaves in one `writev`
    /// once the batch is handled, so a single request still costs one write and sixteen
    /// pipelined ones one too. A handler that wants one write for replies it makes across
    /// other callbacks builds them in one `Vec` ([`send_owned`](Self::send_owned)).
    ///
    /// Replies that are slices of the input being handled (an echo, a relay of a frame's
    /// payload) are not copied while they continue one another: the batch's write takes
    /// them from the input.
    #[inline]
    pub fn send(&mut self, data: &[u8]) {
        if !self.ctl.core_mut().send_corked(self.id, data) {
            self.ctl.send(self.id, data);
        }
    }

    /// Sends `data`, which the caller gives up: written at once as far as the socket
    /// takes it, the rest kept as it is (never copied). The way to send a reply built
    /// into a `Vec<u8>`.
    pub fn send_owned(&mut self, data: Vec<u8>) {
        self.ctl.send_owned(self.id, data);
    }

    /// Queues `data` without copying it: what the socket does not take at once stays
    /// shared, so one large message sent to many slow peers is held in memory once.
    pub fn send_shared(&mut self, data: &Arc<[u8]>) {
        self.ctl.send_shared(self.id, data);
    }

    /// Bytes queued and not yet written.
    pub fn pending(&self) -> usize {
        self.ctl.pending(self.id).unwrap_or(0)
    }

    /// Closes in order once the queued output is written: flush, `shutdown(Write)`, read
    /// and drop what the peer still sends until EOF or the linger deadline, close.
    pub fn close(&mut self) {
        self.ctl.close(self.id);
    }

    /// Half-close: shuts our sending side once the queued output is written, and goes on
    /// reading.
    pub fn shutdown_write(&mut self) {
        self.ctl.shutdown_write(self.id);
    }

    /// Stops reading this connection until [`resume_reading`](Self::resume_reading): the
    /// handler's own pause, which the loop never lifts; see [`Control::pause_reading`] and
    /// [`read_pause`](Self::read_pause).
    pub fn pause_reading(&mut self) {
        self.ctl.pause_reading(self.id);
    }

    /// Reads this connection again; see [`Control::resume_reading`].
    pub fn resume_reading(&mut self) {
        self.ctl.resume_reading(self.id);
    }

    /// Closes the connection with [`CloseReason::Timeout`] if it is still open at `at`
    /// (`None` removes the deadline). For a protocol step that must finish in time, such as
    /// a header the peer has to send first; the loop's idle, write and linger deadlines
    /// still apply.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use netcore::{Conn, Handler};
    ///
    /// /// Expects the peer to say something within a second.
    /// struct Impatient;
    ///
    /// impl Handler for Impatient {
    ///     fn on_open(&mut self, conn: &mut Conn<'_>) {
    ///         let at = conn.control().now() + Duration::from_secs(1);
    ///         conn.set_deadline(Some(at));
    ///     }
    ///     fn on_data(&mut self, conn: &mut Conn<'_>, input: &[u8]) -> usize {
    ///         conn.set_deadline(None);
    ///         conn.send(b"thanks");
    ///         conn.close();
    ///         input.len()
    ///     }
    /// }
    /// ```
    pub fn set_deadline(&mut self, at: Option<Instant>) {
        self.ctl.set_deadline(self.id, at);
    }

    /// This connection's own idle timeout (`None`: never); see
    /// [`Control::set_idle_timeout`].
    pub fn set_idle_timeout(&mut self, timeout: Option<Duration>) {
        self.ctl.set_idle_timeout(self.id, timeout);
    }

    /// This connection's own write timeout; see [`Control::set_write_timeout`].
    pub fn set_write_timeout(&mut self, timeout: Option<Duration>) {
        self.ctl.set_write_timeout(self.id, timeout);
    }

    /// This connection's own back-pressure bound; see
    /// [`Control::set_max_pending_output`].
    pub fn set_max_pending_output(&mut self, bytes: usize) {
        self.ctl.set_max_pending_output(self.id, bytes);
    }

    /// This connection's own low-water mark; see [`Control::set_low_water`].
    pub fn set_low_water(&mut self, bytes: usize) {
        self.ctl.set_low_water(self.id, bytes);
    }

    /// This connection's own read budget per turn; see [`Control::set_read_budget`].
    pub fn set_read_budget(&mut self, reads: usize) {
        self.ctl.set_read_budget(self.id, reads);
    }

    /// Closes now, dropping queued output; a TCP peer sees a reset (`SO_LINGER` 0), never
    /// an orderly EOF. For a peer that broke the protocol, or one too slow to keep (`examples/chat.rs` aborts a client whose
    /// pending output passes its bound).
    pub fn abort(&mut self) {
        self.ctl.abort(self.id);
    }

    /// Starts a TCP connect to `host` and `port`, resolved off the loop and tried address
    /// by address; see [`Control::connect_name`].
    #[cfg(feature = "resolver")]
    pub fn connect_name(&mut self, host: &str, port: &str, state: T) -> ConnId {
        self.ctl.connect_name(host, port, state)
    }

    /// The loop's controls: timers, connects, and every other connection by id.
    pub fn control(&mut self) -> &mut Control<'a, T> {
        &mut self.ctl
    }

    fn this(&self) -> Option<&Connection<T>> {
        self.ctl.conn(self.id)
    }
}

/// One UDP socket, as [`Handler::on_datagram`] sees it.
///
/// # Examples
///
/// A UDP echo server.
///
/// ```
/// use std::net::{SocketAddr, UdpSocket};
/// use netcore::{Datagram, EventLoop, Handler, ListenOptions};
///
/// struct Echo;
///
/// impl Handler for Echo {
///     fn on_datagram(&mut self, socket: &mut Datagram<'_>, data: &[u8], from: SocketAddr) {
///         socket.send_to(data, from);
///     }
/// }
///
/// let socket = netcore::udp_socket("127.0.0.1:0".parse()?, &ListenOptions::default())?;
/// let addr = socket.local_addr()?;
/// let mut event_loop = EventLoop::new(netcore::Config::default())?;
/// event_loop.add_udp_socket(socket)?;
/// let shutdown = event_loop.shutdown_handle();
/// let server = std::thread::spawn(move || event_loop.run(&mut Echo));
///
/// let client = UdpSocket::bind("127.0.0.1:0")?;
/// client.set_read_timeout(Some(std::time::Duration::from_secs(10)))?;
/// client.send_to(b"ping", addr)?;
/// let mut buf = [0; 16];
/// let (n, from) = client.recv_from(&mut buf)?;
/// assert_eq!((&buf[..n], from), (&b"ping"[..], addr));
///
/// shutdown.shutdown();
/// server.join().expect("server thread")?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Datagram<'a, T = ()> {
    pub(crate) ctl: Control<'a, T>,
    pub(crate) id: SocketId,
}

impl<T> std::fmt::Debug for Datagram<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Datagram").field("id", &self.id).finish()
    }
}

impl<'a, T> Datagram<'a, T> {
    /// This socket's id (for [`Control::send_datagram`] from other callbacks).
    pub fn id(&self) -> SocketId {
        self.id
    }

    /// Sends `data` to `to`. A reply that meets a full socket buffer waits in a bounded
    /// queue until the socket is writable; when the queue is full it is dropped and counted
    /// ([`CounterSnapshot::datagrams_dropped`](crate::CounterSnapshot)). An ICMP error the
    /// socket reports late about an earlier datagram (`ECONNREFUSED`) is counted and does not
    /// cost this one. Never blocks.
    pub fn send_to(&mut self, data: &[u8], to: SocketAddr) {
        self.ctl.send_datagram(self.id, data, to);
    }

    /// The loop's controls.
    pub fn control(&mut self) -> &mut Control<'a, T> {
        &mut self.ctl
    }
}
