//! The shutdown handle: from another thread, stop accepting, let in-flight output finish
//! within `drain_timeout`, and return from `run`.

use crate::util;

use std::io::ErrorKind;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use netcore::{CloseReason, Closed, Config, Conn, Control, EventLoop, Handler};
use util::{Closes, BOUND};

/// Sends a large message at accept and leaves the connection open.
struct Sender {
    message: Arc<[u8]>,
    pending: Arc<AtomicUsize>,
    closes: Closes,
}

impl Sender {
    fn new(size: usize) -> Sender {
        Sender {
            message: (0..size).map(|i| (i % 241) as u8).collect(),
            pending: Arc::default(),
            closes: Closes::default(),
        }
    }
}

impl Handler for Sender {
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        conn.send_shared(&self.message);
        self.pending.store(conn.pending(), Ordering::Relaxed);
    }

    fn on_close(&mut self, _: &mut Control<'_>, closed: &Closed<'_>) {
        self.closes.record(closed);
    }
}

/// A loop whose accepted sockets have small send buffers, so output waits in the loop.
fn small_buffer_loop(config: Config) -> (EventLoop, std::net::SocketAddr) {
    let (listener, addr) = util::tcp_listener();
    socket2::SockRef::from(&listener)
        .set_send_buffer_size(16 << 10)
        .unwrap();
    let mut event_loop = EventLoop::new(config).unwrap();
    event_loop.add_tcp_listener(listener).unwrap();
    (event_loop, addr)
}

#[test]
fn shutdown_from_another_thread_finishes_in_flight_writes() {
    let (event_loop, addr) = small_buffer_loop(util::config());
    let sender = Sender::new(4 << 20);
    let (message, pending, closes) = (
        Arc::clone(&sender.message),
        Arc::clone(&sender.pending),
        sender.closes.clone(),
    );
    let server = util::spawn(event_loop, sender);
    let mut client = util::connect(addr);
    util::wait_for("output in flight", BOUND, || {
        pending.load(Ordering::Relaxed) > 0
    });

    // From this thread, while the loop still has most of the message to write.
    server.shutdown.shutdown();
    assert_eq!(&util::read_all(&mut client)[..], &message[..]);
    drop(client);
    let (_, event_loop) = server.join_within(BOUND);

    assert_eq!(closes.get(), vec![(CloseReason::Done, 0)]);
    // The loop still exists, but its listener is closed: no new client is accepted.
    let refused = std::net::TcpStream::connect(addr).unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::ConnectionRefused);
    assert_eq!(event_loop.counters().snapshot().accepted, 1);
}

#[test]
fn shutdown_is_bounded_by_the_drain_timeout_when_a_peer_never_reads() {
    let drain = Duration::from_millis(300);
    let config = Config {
        drain_timeout: drain,
        ..util::config()
    };
    let (event_loop, addr) = small_buffer_loop(config);
    let sender = Sender::new(4 << 20);
    let (pending, closes) = (Arc::clone(&sender.pending), sender.closes.clone());
    let server = util::spawn(event_loop, sender);
    let _client = util::connect(addr); // never reads
    util::wait_for("output in flight", BOUND, || {
        pending.load(Ordering::Relaxed) > 0
    });

    let started = Instant::now();
    server.shutdown.shutdown();
    server.join_within(BOUND);
    assert!(
        started.elapsed() >= drain,
        "returned before the drain timeout"
    );
    let closes = closes.get();
    assert_eq!(closes.len(), 1);
    assert_eq!(closes[0].0, CloseReason::Shutdown);
    assert!(closes[0].1 > 0, "output left unsent");
}

#[test]
fn shutdown_before_run_makes_run_return() {
    let (mut event_loop, _) = util::tcp_loop(util::config());
    let handle = event_loop.shutdown_handle();
    handle.shutdown();
    handle.shutdown(); // twice is fine
    event_loop.run(&mut util::Echo::default()).unwrap();
}

/// Greets, and stops its own loop after the first connection.
struct GreetOnce;

impl Handler for GreetOnce {
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        conn.send(b"bye");
        conn.close();
        conn.control().stop();
    }
}

#[test]
fn a_handler_can_stop_its_own_loop() {
    let (event_loop, addr) = util::tcp_loop(util::config());
    let server = util::spawn(event_loop, GreetOnce);
    assert_eq!(util::read_all(&mut util::connect(addr)), b"bye");
    server.join_within(BOUND);
}

/// Answers one line per connection, then closes; at shutdown it leaves open a connection
/// whose line is not complete yet, so that it is still answered.
struct LineServer {
    stops: Arc<AtomicUsize>,
}

impl Handler for LineServer {
    fn on_data(&mut self, conn: &mut Conn<'_>, input: &[u8]) -> usize {
        let Some(end) = input.iter().position(|&b| b == b'\n') else {
            return 0;
        };
        conn.send(b"answered\n");
        conn.close();
        end + 1
    }

    fn on_stop(&mut self, _conn: &mut Conn<'_>) {
        self.stops.fetch_add(1, Ordering::Relaxed);
    }
}

#[test]
fn a_handler_may_let_a_connection_finish_its_exchange_after_shutdown() {
    use std::io::{Read, Write};
    let (event_loop, addr) = util::tcp_loop(util::config());
    let stops = Arc::new(AtomicUsize::new(0));
    let server = util::spawn(
        event_loop,
        LineServer {
            stops: Arc::clone(&stops),
        },
    );
    let mut client = util::connect(addr);
    client.write_all(b"half a li").unwrap();
    util::wait_for("the connection is open", BOUND, || {
        server.counters.snapshot().accepted == 1
    });
    server.shutdown.shutdown();
    util::wait_for("on_stop", BOUND, || stops.load(Ordering::Relaxed) == 1);
    // Stopped, and the connection still served: the rest of the line gets its answer.
    client.write_all(b"ne\n").unwrap();
    let mut got = Vec::new();
    client.read_to_end(&mut got).unwrap();
    assert_eq!(got, b"answered\n");
    server.join_within(BOUND);
    let refused = std::net::TcpStream::connect_timeout(&addr, BOUND)
        .is_err_and(|e| e.kind() == ErrorKind::ConnectionRefused);
    assert!(refused, "the listener closed at shutdown");
}
