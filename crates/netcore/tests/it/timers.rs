//! Deadlines: idle and write timeouts close connections that would otherwise live forever,
//! and handler timers fire in order.

use crate::util;

use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use netcore::{CloseReason, Closed, Config, Conn, Control, Handler, TimerId};
use socket2::{Domain, Socket, Type};
use util::{Closes, BOUND};

/// Keeps connections open and silent; sends `message` at open if there is one.
#[derive(Default)]
struct Silent {
    message: Option<Arc<[u8]>>,
    closes: Closes,
}

impl Handler for Silent {
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        if let Some(message) = &self.message {
            conn.send_shared(message);
        }
    }

    fn on_close(&mut self, _: &mut Control<'_>, closed: &Closed<'_>) {
        self.closes.record(closed);
    }
}

#[test]
fn an_idle_connection_is_closed_after_the_idle_timeout() {
    let config = Config {
        idle_timeout: Some(Duration::from_millis(200)),
        ..util::config()
    };
    let (event_loop, addr) = util::tcp_loop(config);
    let handler = Silent::default();
    let closes = handler.closes.clone();
    let server = util::spawn(event_loop, handler);

    let started = Instant::now();
    let mut client = util::connect(addr);
    assert_eq!(util::read_all(&mut client), b"", "closed with EOF");
    assert!(started.elapsed() >= Duration::from_millis(200));
    // The socket is closed before `on_close` runs: the client may see EOF first.
    util::wait_for("the close", BOUND, || closes.len() == 1);
    assert_eq!(closes.get(), vec![(CloseReason::Timeout, 0)]);
    assert_eq!(server.counters.snapshot().timeouts, 1);
    server.stop();
}

/// A client whose receive buffer is small and which never reads.
fn never_reads(addr: SocketAddr) -> TcpStream {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(4 << 10).unwrap();
    socket.connect(&addr.into()).unwrap();
    socket.into()
}

#[test]
fn a_peer_that_never_reads_a_1_mib_message_is_closed_and_its_buffer_freed() {
    let message: Arc<[u8]> = Arc::from(vec![b'x'; 1 << 20]);
    let config = Config {
        write_timeout: Some(Duration::from_millis(300)),
        ..util::config()
    };
    // On loopback the kernel grows a socket's send buffer past 1 MiB by itself; a small one
    // (inherited by accepted sockets) keeps most of the message in our write buffer.
    let (listener, addr) = util::tcp_listener();
    socket2::SockRef::from(&listener)
        .set_send_buffer_size(16 << 10)
        .unwrap();
    let mut event_loop = netcore::EventLoop::new(config).unwrap();
    event_loop.add_tcp_listener(listener).unwrap();
    let handler = Silent {
        message: Some(Arc::clone(&message)),
        closes: Closes::default(),
    };
    let closes = handler.closes.clone();
    let server = util::spawn(event_loop, handler);

    let _client = never_reads(addr);
    // Held here, by the handler, and by the connection's write buffer.
    util::wait_for("the message to be queued", BOUND, || {
        Arc::strong_count(&message) == 3 || closes.len() == 1
    });
    util::wait_for("the write timeout", BOUND, || closes.len() == 1);
    let (reason, unsent) = closes.get()[0];
    assert_eq!(reason, CloseReason::Timeout);
    assert!(unsent > 0, "closed with output still queued");
    assert_eq!(Arc::strong_count(&message), 2, "the write buffer was freed");
    assert_eq!(server.counters.snapshot().timeouts, 1);
    server.stop();
}

/// Sets timers out of order at the first connection, cancels one, and records firings.
struct Timed {
    fired: Arc<Mutex<Vec<u64>>>,
    ids: Vec<(TimerId, u64)>,
}

impl Handler for Timed {
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        let now = conn.control().now();
        for ms in [60, 20, 40, 30] {
            let id = conn.control().set_timer(now + Duration::from_millis(ms));
            self.ids.push((id, ms));
        }
        let cancelled = self.ids[3].0;
        conn.control().cancel_timer(cancelled);
        conn.close();
    }

    fn on_timer(&mut self, ctl: &mut Control<'_>, timer: TimerId) {
        let ms = self.ids.iter().find(|(id, _)| *id == timer).unwrap().1;
        let mut fired = self.fired.lock().unwrap();
        fired.push(ms);
        if fired.len() == 3 {
            ctl.stop();
        }
    }
}

#[test]
fn timers_fire_in_deadline_order_and_cancelled_ones_never() {
    let (event_loop, addr) = util::tcp_loop(util::config());
    let fired = Arc::new(Mutex::new(Vec::new()));
    let server = util::spawn(
        event_loop,
        Timed {
            fired: Arc::clone(&fired),
            ids: Vec::new(),
        },
    );
    let started = Instant::now();
    util::read_all(&mut util::connect(addr));
    server.join_within(BOUND);
    assert!(started.elapsed() >= Duration::from_millis(60));
    assert_eq!(*fired.lock().unwrap(), vec![20, 40, 60]);
}

/// A closing connection drains the peer's input until EOF, but not forever: a peer that
/// spoke, got its greeting and EOF, and then neither closes nor stops is dropped at the
/// linger deadline.
#[test]
fn a_closing_connection_is_dropped_at_the_linger_deadline() {
    use std::io::Write;

    let config = Config {
        linger: Duration::from_millis(200),
        ..util::config()
    };
    let (event_loop, addr) = util::tcp_loop(config);
    let mut client = util::connect(addr);
    client.write_all(b"first words").unwrap(); // unread at accept: the close must linger
    let greeter = util::Greeter::new(b"hello");
    let closes = greeter.closes.clone();
    let server = util::spawn(event_loop, greeter);
    assert_eq!(util::read_all(&mut client), b"hello");
    // The client keeps its side open; the server's linger runs out.
    util::wait_for("the linger deadline", BOUND, || closes.len() == 1);
    assert_eq!(closes.get(), vec![(CloseReason::Timeout, 0)]);
    drop(client);
    server.stop();
}

/// The idle deadline counts from the last read or write: a connection that keeps talking
/// outlives its idle timeout many times over, and is closed once it falls silent.
#[test]
fn activity_moves_the_idle_deadline() {
    use std::io::{Read, Write};

    let idle = Duration::from_millis(400);
    let config = Config {
        idle_timeout: Some(idle),
        ..util::config()
    };
    let (event_loop, addr) = util::tcp_loop(config);
    let echo = util::Echo::default();
    let closes = echo.closes.clone();
    let server = util::spawn(event_loop, echo);

    let mut client = util::connect(addr);
    let started = Instant::now();
    while started.elapsed() < idle * 3 {
        client.write_all(b"!").unwrap();
        let mut got = [0];
        client
            .read_exact(&mut got)
            .expect("still open while talking");
        std::thread::sleep(Duration::from_millis(40)); // the client's pace
    }
    assert!(closes.get().is_empty());
    // Silence: the idle deadline closes it.
    assert_eq!(util::read_all(&mut client), b"");
    util::wait_for("the close", BOUND, || closes.len() == 1);
    assert_eq!(closes.get(), vec![(CloseReason::Timeout, 0)]);
    server.stop();
}

/// Stops its loop when a timer fires.
struct StopOnTimer;

impl Handler for StopOnTimer {
    fn on_timer(&mut self, ctl: &mut Control<'_>, _: TimerId) {
        ctl.stop();
    }
}

/// `EventLoop::set_timer` before `run`: a loop with nothing else to wake it still ends.
#[test]
fn a_timer_set_before_run_bounds_it() {
    let mut event_loop = netcore::EventLoop::new(util::config()).unwrap();
    let started = Instant::now();
    event_loop.set_timer(started + Duration::from_millis(50));
    util::spawn(event_loop, StopOnTimer).join_within(BOUND);
    assert!(started.elapsed() >= Duration::from_millis(50));
}

/// Gives each connection 150 ms to say something; greets and closes those that do.
#[derive(Default)]
struct Impatient {
    closes: Closes,
}

impl Handler for Impatient {
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        let at = conn.control().now() + Duration::from_millis(150);
        conn.set_deadline(Some(at));
    }

    fn on_data(&mut self, conn: &mut Conn<'_>, data: &[u8]) -> usize {
        conn.set_deadline(None);
        conn.send(b"ok");
        conn.close();
        data.len()
    }

    fn on_close(&mut self, _: &mut Control<'_>, closed: &Closed<'_>) {
        self.closes.record(closed);
    }
}

#[test]
fn a_handler_deadline_closes_a_silent_peer_and_can_be_lifted() {
    let (event_loop, addr) = util::tcp_loop(util::config());
    let handler = Impatient::default();
    let closes = handler.closes.clone();
    let server = util::spawn(event_loop, handler);

    let started = Instant::now();
    let mut silent = util::connect(addr);
    assert_eq!(
        util::read_all(&mut silent),
        b"",
        "closed by the handler's deadline"
    );
    assert!(started.elapsed() >= Duration::from_millis(150));
    assert!(
        started.elapsed() < BOUND,
        "the idle timeout (not the deadline) closed it"
    );
    // The socket is closed before `on_close` runs: the client may see EOF first.
    util::wait_for("the first close", BOUND, || closes.len() == 1);
    assert_eq!(closes.get(), vec![(CloseReason::Timeout, 0)]);

    let mut talker = util::connect(addr);
    std::io::Write::write_all(&mut talker, b"hi").unwrap();
    assert_eq!(util::read_all(&mut talker), b"ok");
    util::wait_for("the second close", BOUND, || closes.len() == 2);
    assert_eq!(closes.get()[1], (CloseReason::Done, 0));
    server.stop();
}
