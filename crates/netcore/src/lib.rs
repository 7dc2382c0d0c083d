//! A small `mio` event-loop engine for TCP, UDP and Unix-domain sockets, with no async
//! runtime.
//!
//! One [`EventLoop`] owns one `mio::Poll`, and serves listeners, UDP sockets and
//! connections with one [`Handler`]: the service's callbacks. The loop does the socket work
//! every service needs and most get wrong: accept until `WouldBlock`, resume partial
//! writes, stop reading a peer that does not read its replies (back-pressure), close in
//! order without destroying the last reply, give every connection deadlines, pause instead
//! of spinning when descriptors run out, and stop cleanly from another thread.
//!
//! # A complete greeting server
//!
//! ```
//! use std::sync::Arc;
//! use netcore::{Conn, EventLoop, Handler, ListenOptions};
//!
//! struct Greeter {
//!     message: Arc<[u8]>,
//! }
//!
//! impl Handler for Greeter {
//!     fn on_open(&mut self, conn: &mut Conn<'_>) {
//!         conn.send_shared(&self.message);
//!         conn.close();
//!     }
//! }
//!
//! let listener = netcore::tcp_listener("127.0.0.1:0".parse()?, &ListenOptions::default())?;
//! let addr = listener.local_addr()?;
//! let mut event_loop = EventLoop::new(netcore::Config::default())?;
//! event_loop.add_tcp_listener(listener)?;
//! let shutdown = event_loop.shutdown_handle();
//!
//! let server = std::thread::spawn(move || {
//!     let mut greeter = Greeter { message: Arc::from(&b"Thank you for connecting"[..]) };
//!     event_loop.run(&mut greeter)
//! });
//!
//! let mut reply = String::new();
//! std::io::Read::read_to_string(&mut std::net::TcpStream::connect(addr)?, &mut reply)?;
//! assert_eq!(reply, "Thank you for connecting");
//!
//! shutdown.shutdown();
//! server.join().expect("server thread")?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Several cores
//!
//! A loop runs on the thread that calls [`EventLoop::run`] (its worker pool aside, which
//! only blocking work starts). Give each thread its own loop and its own listener on the
//! same port; the kernel spreads connections between them:
//!
//! ```
//! use netcore::{Conn, EventLoop, Handler, ListenOptions};
//!
//! struct Greeter;
//!
//! impl Handler for Greeter {
//!     fn on_open(&mut self, conn: &mut Conn<'_>) {
//!         conn.send(b"hello");
//!         conn.close();
//!     }
//! }
//!
//! let listeners =
//!     netcore::tcp_listeners_reuse_port("127.0.0.1:0".parse()?, 2, &ListenOptions::default())?;
//! let addr = listeners[0].local_addr()?;
//! let mut handles = Vec::new();
//! let mut threads = Vec::new();
//! for listener in listeners {
//!     let mut event_loop = EventLoop::new(netcore::Config::default())?;
//!     event_loop.add_tcp_listener(listener)?;
//!     handles.push(event_loop.shutdown_handle());
//!     threads.push(std::thread::spawn(move || event_loop.run(&mut Greeter)));
//! }
//!
//! let mut reply = String::new();
//! std::io::Read::read_to_string(&mut std::net::TcpStream::connect(addr)?, &mut reply)?;
//! assert_eq!(reply, "hello");
//!
//! handles.iter().for_each(netcore::ShutdownHandle::shutdown);
//! for thread in threads {
//!     thread.join().expect("loop thread")?;
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # The contract
//!
//! - **Callbacks never block.** They run on the loop's thread, one at a time. Output is
//!   queued with [`Conn::send`] and written as the peer takes it.
//! - **Readiness is edge-triggered underneath.** The loop reads until `WouldBlock` (or a
//!   read that did not fill its buffer, which empties the socket just as surely: later
//!   data raises a new edge) and writes until the output is gone or `WouldBlock`, so a
//!   handler never sees a half-handled event; spurious wake-ups are harmless.
//! - **Each connection has the handler's state.** `Handler<M, T>`: the loop keeps a `T`
//!   per connection (`T::default()` when accepted, the value given to
//!   [`Control::connect`] otherwise), hands it to every callback for that connection
//!   ([`Conn::state`]), lets other callbacks reach it by id ([`Control::state`]), and
//!   gives it to [`Handler::on_close`] ([`Closed::state`]). No map keyed by [`ConnId`].
//! - **Input is kept until consumed.** [`Handler::on_data`] sees everything its
//!   connection received that earlier calls did not consume, and returns how much it
//!   consumed; it is called again at once while it consumes something and input is left,
//!   except while the connection's output is over [`Config::max_pending_output`] (then
//!   once the output drained). So a handler may parse one frame per call, and an
//!   amplifying protocol stays bounded. A connection that keeps more than
//!   [`Config::max_input`] unconsumed is closed ([`CloseReason::InputLimit`]).
//! - **Any callback may act on any connection.** [`Control`] (every callback has one)
//!   sends to, closes, aborts, half-closes, pauses and resumes reading, and sets deadlines
//!   on any live connection by its [`ConnId`], and sends datagrams from any UDP socket by
//!   its [`SocketId`]. A stale id (its connection closed) is reported by the return value
//!   and touches nothing. Changes that need the loop (a close, reading input that waited)
//!   happen as soon as the callback returns, so no connection disappears during a callback.
//! - **Other threads post messages.** [`EventLoop::sender`] hands out a cloneable `Send`
//!   [`Sender`]; each message reaches [`Handler::on_message`] with a [`Control`]. The queue
//!   is bounded ([`Config::message_capacity`]): a post to a full queue, or after `run`
//!   returned, fails at once and hands the message back.
//! - **The fast path registers nothing.** A connection whose whole reply is written in
//!   [`Handler::on_open`] and that has nothing unread is closed at once: `accept4`, `write`,
//!   one `read` that finds nothing, `close`. Only a connection that must wait (a partial
//!   write, input to drain) is registered with the poller.
//! - **A peer sets the pace.** Output is written as the peer takes it; a connection whose
//!   pending output passes [`Config::max_pending_output`] is not read until half of it is
//!   written (back-pressure), so a peer that sends and never reads cannot make the server
//!   buffer without bound. Between two connections the handler keeps the bound:
//!   [`Control::pending`] tells how much waits on the other side, [`Conn::pause_reading`]
//!   stops the producer, and [`Handler::on_flushed`] (at [`Config::low_water`]) says when to
//!   resume it; [`CounterSnapshot::buffered`] shows what the loop holds.
//! - **Pauses are the loop's or the handler's.** The loop pauses reading for
//!   back-pressure and for a pipe, and lifts those pauses itself; the handler's
//!   ([`Conn::pause_reading`]) holds until the handler calls
//!   [`resume_reading`](Conn::resume_reading). [`Conn::read_pause`] tells which hold a
//!   connection ([`ReadPause`]).
//! - **Closing is orderly.** [`Conn::close`] flushes, shuts our side, reads and drops the
//!   peer's input until EOF or [`Config::linger`], then closes: closing with unread input
//!   would send a reset that can destroy a reply the peer has not read yet.
//! - **Giving up is not orderly.** A connection the loop gives up on with output still
//!   queued (its write or idle deadline passed, or a shutdown's drain time ended), and
//!   one the handler aborts, ends with a TCP reset (`SO_LINGER` 0), never a FIN: the peer
//!   sees an error, never a cut reply that looks whole, and the kernel frees the socket's
//!   send buffer at once. [`CounterSnapshot::reset_sent`] counts them. (A Unix-domain
//!   stream has no reset: its peer reads what was delivered, then EOF.)
//! - **One peer cannot starve the others.** A connection is read at most 64 times
//!   (4 MiB) per turn of the loop; one that still has input is read again next turn,
//!   after every other ready connection, the listeners, timers and messages had theirs.
//! - **Nothing lives forever.** Registered connections have an idle deadline, and queued
//!   output a write deadline that moves whenever the peer takes some of it ([`Config`]): a
//!   peer that stops reading is closed and its buffer freed; a slow one is not. Each
//!   connection may have its own timeouts, water marks and read budget
//!   ([`Conn::set_idle_timeout`] and its siblings); the others keep the loop's.
//! - **Ids are generational.** A [`ConnId`] is valid until [`Handler::on_close`] for it;
//!   its slot is then reused under a new generation, and stale events for the old one are
//!   dropped.
//! - **Shutdown is bounded.** [`ShutdownHandle::shutdown`] (from any thread) stops
//!   accepting, lets every connection flush and close within [`Config::drain_timeout`],
//!   and makes [`EventLoop::run`] return.
//! - **Outgoing connects follow mio's recipe.** [`Control::connect`],
//!   [`Control::connect_unix`], [`Control::connect_name`] and their [`EventLoop`] twins
//!   return the new connection's id at once; output sent before the connect completes is
//!   queued; the outcome arrives as [`Handler::on_connect`], once: `Ok` with the address
//!   connected to, or `Err` with every address's error ([`ConnectError`]), then
//!   [`Handler::on_close`].
//! - **Connects by name.** [`Control::connect_name`] takes a host and a port or service in
//!   every form the `resolver` crate takes (Python's); a name is looked up on the worker
//!   pool, a numeric address at once, and the addresses are tried in order. This needs the
//!   `resolver` feature (on by default); without it netcore connects to addresses and
//!   paths, and depends on no resolver.
//! - **Blocking work runs off the loop.** [`Control::spawn_blocking`] runs a closure on the
//!   loop's worker pool and its continuation, with the result, back on the loop's thread.
//!   The pool starts its threads on first use, at most [`Config::blocking_threads`], and
//!   takes at most [`Config::blocking_queue`] jobs in flight: one more is refused at
//!   submit ([`SpawnError::Full`]), and an accepted one's result is always delivered.
//! - **Datagrams never block the loop.** Receive is drained until `WouldBlock`; a reply that
//!   meets a full send buffer waits in a bounded queue ([`Config::udp_queue`]) or is dropped
//!   and counted.
//! - **I/O errors never end the loop.** Resets, refused datagrams, `ECONNABORTED` and
//!   descriptor exhaustion are counted in [`Counters`], readable from any thread.
//! - **No threads of its own, but the worker pool's.** A loop that never asks for blocking
//!   work (or a name lookup) never starts a thread. For several cores, run one loop per
//!   thread, each with its own listener built with [`ListenOptions::reuse_port`]
//!   ([`tcp_listeners_reuse_port`] builds them).
//!
//! # Examples to read
//!
//! `examples/greeter.rs` (the fast path), `examples/echo.rs` (back-pressure),
//! `examples/chat.rs` (acting on other connections; dropping a client that does not read;
//! one line per call, kept input), `examples/http.rs` (HTTP/1.1 keep-alive and pipelining
//! on kept input), `examples/redis.rs` (a Redis-protocol subset: kept input, owned sends),
//! `examples/proxy.rs` ([`Control::pipe`]: a whole proxy in one call),
//! `examples/forward.rs` (the same pipe by hand, with bounded memory and half-close) and
//! `examples/connect_proxy.rs` (an HTTP `CONNECT` proxy: [`Conn::connect_name`], then a
//! pipe). Each takes its listen address as its first argument and prints `Listening on
//! ADDR` first.

#![deny(missing_docs)]
// The docs describe connects by name wherever they apply; built without the `resolver`
// feature, `connect_name` does not exist and those links have nothing to point at.
#![cfg_attr(not(feature = "resolver"), allow(rustdoc::broken_intra_doc_links))]

mod buffer;
mod clock;
mod config;
mod connection;
mod control;
mod core;
mod counters;
mod dispatch;
mod error;
mod event_loop;
mod handler;
mod id;
mod mailbox;
mod pause;
mod pool;
mod slots;
mod socket;
mod timers;
mod token;
mod udp;

pub use crate::core::connects::ConnectError;
pub use config::Config;
pub use control::Control;
pub use counters::{CounterSnapshot, Counters};
pub use error::{Error, ErrorKind};
pub use event_loop::EventLoop;
pub use handler::{Closed, Conn, Datagram, Handler};
pub use id::{CloseReason, ConnId, ListenerId, PeerAddr, SocketId, TimerId};
pub use mailbox::{PostError, Sender, ShutdownHandle};
pub use pause::ReadPause;
pub use pool::SpawnError;
pub use socket::{
    max_backlog, tcp_listener, tcp_listeners_reuse_port, udp_socket, unix_listener, ListenOptions,
};
