//! What a service implements ([`Handler`]) and what the loop hands it in each callback.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use crate::connection::{Connection, PeerAddr};
use crate::counters::Counters;
use crate::udp::UdpSource;

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
///     fn on_data(&mut self, conn: &mut Conn<'_>, data: &[u8]) {
///         conn.send(data);
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
pub trait Handler {
    /// A connection was accepted, or an outgoing connect completed. The fast path: a handler
    /// that sends its whole reply here and calls [`Conn::close`] costs one `write` and one
    /// `close`, and the connection is never registered with the poller.
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        let _ = conn;
    }

    /// Bytes arrived. `data` is only valid during the call.
    fn on_data(&mut self, conn: &mut Conn<'_>, data: &[u8]) {
        let _ = (conn, data);
    }

    /// The peer shut its sending side (EOF). The default closes our side too, after
    /// flushing; a handler that still has things to say may send them first.
    fn on_read_closed(&mut self, conn: &mut Conn<'_>) {
        conn.close();
    }

    /// Output that had to wait for the peer is now all written.
    fn on_flushed(&mut self, conn: &mut Conn<'_>) {
        let _ = conn;
    }

    /// The connection is gone; `closed` says why.
    fn on_close(&mut self, ctl: &mut Control<'_>, closed: &Closed<'_>) {
        let _ = (ctl, closed);
    }

    /// A datagram arrived on a UDP socket added with
    /// [`EventLoop::add_udp_socket`](crate::EventLoop::add_udp_socket).
    fn on_datagram(&mut self, socket: &mut Datagram<'_>, data: &[u8], from: SocketAddr) {
        let _ = (socket, data, from);
    }

    /// A timer set with [`Control::set_timer`] is due.
    fn on_timer(&mut self, ctl: &mut Control<'_>, timer: TimerId) {
        let _ = (ctl, timer);
    }

    /// The loop handled one batch of events and is about to wait again: the place to flush
    /// output buffered across callbacks (one `write` per turn, not one per connection).
    fn on_turn_end(&mut self, ctl: &mut Control<'_>) {
        let _ = ctl;
    }
}

/// Identifies a listener within its loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ListenerId(pub(crate) usize);

/// Identifies a UDP socket within its loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SocketId(pub(crate) usize);

/// Identifies a connection within its loop: a slot and that slot's generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnId {
    pub(crate) index: usize,
    pub(crate) gen: u32,
}

/// Identifies a timer set with [`Control::set_timer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TimerId(pub(crate) u64);

/// Why a connection closed.
///
/// # Examples
///
/// ```
/// use netcore::{CloseReason, Closed, Control, Handler};
///
/// struct Log;
///
/// impl Handler for Log {
///     fn on_close(&mut self, _: &mut Control<'_>, closed: &Closed<'_>) {
///         match closed.reason {
///             CloseReason::Done => {}
///             CloseReason::Timeout => eprintln!("{:?}: too slow", closed.peer),
///             other => eprintln!("{:?}: {other:?}, {} bytes unsent", closed.peer, closed.unsent),
///         }
///     }
/// }
/// # let _ = Log;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CloseReason {
    /// Orderly: everything queued was written, then the connection was closed.
    Done,
    /// The handler called [`Conn::abort`].
    Aborted,
    /// The peer reset the connection or stopped reading for good (`ECONNRESET`, `EPIPE`).
    Reset,
    /// An idle, write or linger deadline passed.
    Timeout,
    /// The loop shut down before the connection finished.
    Shutdown,
    /// An outgoing connect was refused.
    Refused,
    /// An outgoing connect failed otherwise.
    ConnectFailed(io::ErrorKind),
    /// Another I/O error.
    Error(io::ErrorKind),
}

impl CloseReason {
    pub(crate) fn from_io(err: &io::Error) -> CloseReason {
        match err.kind() {
            io::ErrorKind::ConnectionReset
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::ConnectionAborted => CloseReason::Reset,
            io::ErrorKind::ConnectionRefused => CloseReason::Refused,
            kind => CloseReason::Error(kind),
        }
    }

    pub(crate) fn count(self, counters: &Counters) {
        let field = match self {
            CloseReason::Done => &counters.completed,
            CloseReason::Aborted | CloseReason::Shutdown => return,
            CloseReason::Reset => &counters.resets,
            CloseReason::Timeout => &counters.timeouts,
            CloseReason::Refused => &counters.refused,
            CloseReason::ConnectFailed(_) => &counters.connect_failures,
            CloseReason::Error(_) => &counters.other_errors,
        };
        Counters::add(field, 1);
    }
}

/// What [`Handler::on_close`] learns about a connection that ended.
#[derive(Debug)]
#[non_exhaustive]
pub struct Closed<'a> {
    /// The connection's id (its slot may be reused from now on).
    pub id: ConnId,
    /// The tag set with [`Conn::set_tag`] or given to [`Control::connect`].
    pub tag: u64,
    /// The peer.
    pub peer: &'a PeerAddr,
    /// The listener that accepted it; `None` for an outgoing connection.
    pub listener: Option<ListenerId>,
    /// Why it closed.
    pub reason: CloseReason,
    /// Bytes queued but never written.
    pub unsent: usize,
}

pub(crate) enum Command {
    Connect { addr: SocketAddr, tag: u64 },
    SetTimer { id: TimerId, at: Instant },
    CancelTimer(TimerId),
    Stop,
}

/// Loop-wide state that callbacks may act on.
#[derive(Default)]
pub(crate) struct ControlState {
    pub(crate) commands: Vec<Command>,
    pub(crate) next_timer: u64,
}

/// What any callback may ask of its loop: outgoing connections, timers, stopping.
///
/// Requests take effect when the callback returns.
///
/// # Examples
///
/// A client that connects, reads the greeting, and stops its loop; a timer bounds the
/// whole exchange.
///
/// ```
/// use std::io::Write;
/// use std::time::Duration;
/// use netcore::{Closed, Conn, Control, EventLoop, Handler, TimerId};
///
/// #[derive(Default)]
/// struct Client {
///     greeting: Vec<u8>,
/// }
///
/// impl Handler for Client {
///     fn on_open(&mut self, conn: &mut Conn<'_>) {
///         let at = conn.control().now() + Duration::from_secs(10);
///         conn.control().set_timer(at);
///     }
///     fn on_data(&mut self, _: &mut Conn<'_>, data: &[u8]) {
///         self.greeting.extend_from_slice(data);
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
/// event_loop.connect(addr, 0)?;
/// let mut client = Client::default();
/// event_loop.run(&mut client)?;
/// assert_eq!(client.greeting, b"hello");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Control<'a> {
    pub(crate) state: &'a mut ControlState,
    pub(crate) now: Instant,
}

impl std::fmt::Debug for Control<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Control").field("now", &self.now).finish()
    }
}

impl Control<'_> {
    /// The time this batch of events was taken from the poller (cheaper than
    /// `Instant::now()` per callback, and the same for every callback of the batch).
    pub fn now(&self) -> Instant {
        self.now
    }

    /// Starts a non-blocking TCP connect to `addr`. Success arrives as
    /// [`Handler::on_open`]; failure as [`Handler::on_close`] with
    /// [`CloseReason::Refused`] or [`CloseReason::ConnectFailed`]. `tag` comes back in both.
    ///
    /// The loop follows mio's recipe: `connect` returns at once (`EINPROGRESS`); the socket
    /// is registered; on its first writable (or error) event `take_error` gives a failure,
    /// and `peer_addr` tells a finished connect (`Ok`) from a spurious event
    /// (`ENOTCONN`: wait for the next one). Bytes the peer sent with its handshake are read
    /// in that same event. Until it completes the connection is under the idle deadline, so
    /// a connect that hangs ends with [`CloseReason::Timeout`].
    pub fn connect(&mut self, addr: SocketAddr, tag: u64) {
        self.state.commands.push(Command::Connect { addr, tag });
    }

    /// Calls [`Handler::on_timer`] at `at` (at once if it has passed).
    pub fn set_timer(&mut self, at: Instant) -> TimerId {
        let id = TimerId(self.state.next_timer);
        self.state.next_timer += 1;
        self.state.commands.push(Command::SetTimer { id, at });
        id
    }

    /// Cancels a timer; a timer that already fired or was cancelled is ignored.
    pub fn cancel_timer(&mut self, id: TimerId) {
        self.state.commands.push(Command::CancelTimer(id));
    }

    /// Stops the loop as [`ShutdownHandle::shutdown`](crate::ShutdownHandle::shutdown) does.
    pub fn stop(&mut self) {
        self.state.commands.push(Command::Stop);
    }
}

/// One connection, as a callback sees it.
///
/// # Examples
///
/// Half-close: answer, shut our sending side (the peer reads EOF), and go on reading what
/// the peer still sends.
///
/// ```
/// use netcore::{Conn, Handler};
///
/// struct Answer;
///
/// impl Handler for Answer {
///     fn on_data(&mut self, conn: &mut Conn<'_>, data: &[u8]) {
///         if conn.tag() == 0 {
///             conn.send(&data.len().to_be_bytes());
///             conn.shutdown_write();
///             conn.set_tag(1);
///         }
///     }
/// }
/// # let _ = Answer;
/// ```
pub struct Conn<'a> {
    pub(crate) conn: &'a mut Connection,
    pub(crate) id: ConnId,
    pub(crate) ctl: Control<'a>,
    pub(crate) counters: &'a Counters,
}

impl std::fmt::Debug for Conn<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn")
            .field("id", &self.id)
            .field("peer", &self.conn.peer)
            .finish()
    }
}

impl<'a> Conn<'a> {
    /// This connection's id.
    pub fn id(&self) -> ConnId {
        self.id
    }

    /// The peer's address, as `accept()` (or `connect()`) gave it.
    pub fn peer(&self) -> &PeerAddr {
        &self.conn.peer
    }

    /// The listener that accepted this connection; `None` for an outgoing one.
    pub fn listener(&self) -> Option<ListenerId> {
        self.conn.listener
    }

    /// The handler's own number for this connection.
    pub fn tag(&self) -> u64 {
        self.conn.tag
    }

    /// Sets the handler's own number for this connection.
    pub fn set_tag(&mut self, tag: u64) {
        self.conn.tag = tag;
    }

    /// Queues a copy of `data` and writes what the socket takes at once.
    pub fn send(&mut self, data: &[u8]) {
        self.conn.send(data, None, self.counters);
    }

    /// Queues `data` without copying it: what the socket does not take at once stays
    /// shared, so one large message sent to many slow peers is held in memory once.
    pub fn send_shared(&mut self, data: &Arc<[u8]>) {
        self.conn.send(data, Some(data), self.counters);
    }

    /// Bytes queued and not yet written.
    pub fn pending(&self) -> usize {
        self.conn.out.len()
    }

    /// Closes in order once the queued output is written: flush, `shutdown(Write)`, read
    /// and drop what the peer still sends until EOF or the linger deadline, close.
    pub fn close(&mut self) {
        self.conn.close_after_flush = true;
    }

    /// Half-close: shuts our sending side once the queued output is written, and goes on
    /// reading.
    pub fn shutdown_write(&mut self) {
        self.conn.shutdown_after_flush = true;
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
    ///     fn on_data(&mut self, conn: &mut Conn<'_>, _data: &[u8]) {
    ///         conn.set_deadline(None);
    ///         conn.send(b"thanks");
    ///         conn.close();
    ///     }
    /// }
    /// ```
    pub fn set_deadline(&mut self, at: Option<Instant>) {
        self.conn.handler_deadline = at;
    }

    /// Closes now, dropping queued output (the peer may see a reset).
    pub fn abort(&mut self) {
        self.conn.abort = true;
    }

    /// The loop's controls.
    pub fn control(&mut self) -> &mut Control<'a> {
        &mut self.ctl
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
pub struct Datagram<'a> {
    pub(crate) socket: &'a mut UdpSource,
    pub(crate) id: SocketId,
    pub(crate) ctl: Control<'a>,
    pub(crate) counters: &'a Counters,
}

impl std::fmt::Debug for Datagram<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Datagram").field("id", &self.id).finish()
    }
}

impl<'a> Datagram<'a> {
    /// This socket's id.
    pub fn id(&self) -> SocketId {
        self.id
    }

    /// Sends `data` to `to`. A reply that meets a full socket buffer waits in a bounded
    /// queue until the socket is writable; when the queue is full it is dropped and counted
    /// ([`CounterSnapshot::datagrams_dropped`](crate::CounterSnapshot)). An ICMP error the
    /// socket reports late about an earlier datagram (`ECONNREFUSED`) is counted and does not
    /// cost this one. Never blocks.
    pub fn send_to(&mut self, data: &[u8], to: SocketAddr) {
        self.socket.send_to(data, to, self.counters);
    }

    /// The loop's controls.
    pub fn control(&mut self) -> &mut Control<'a> {
        &mut self.ctl
    }
}
