//! TCP listeners and the connections they accept: accept draining, the greeting fast path,
//! close after flush, half-close, orderly close, counters.

use crate::util;

use std::io::{Read, Write};
use std::net::Shutdown;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use netcore::{CloseReason, Closed, Config, Conn, Control, Handler};
use util::{Greeter, BOUND};

#[test]
fn every_client_gets_the_greeting() {
    let (event_loop, addr) = util::tcp_loop(util::config());
    let server = util::spawn(event_loop, Greeter::new(b"Thank you for connecting"));
    for _ in 0..50 {
        assert_eq!(
            util::read_all(&mut util::connect(addr)),
            b"Thank you for connecting"
        );
    }
    let counters = Arc::clone(&server.counters);
    let greeter = server.stop();
    let snap = counters.snapshot();
    assert_eq!((snap.accepted, snap.closed, snap.completed), (50, 50, 50));
    assert_eq!(snap.bytes_out, 50 * 24);
    assert!(greeter
        .closes
        .get()
        .iter()
        .all(|c| *c == (CloseReason::Done, 0)));
}

/// Clients that connected before the loop ran wait in the backlog behind a single
/// readable edge: the loop must accept until `WouldBlock`, or all but the first starve.
#[test]
fn accept_drains_the_backlog() {
    let (event_loop, addr) = util::tcp_loop(util::config());
    let mut clients: Vec<_> = (0..64).map(|_| util::connect(addr)).collect();
    let server = util::spawn(event_loop, Greeter::new(b"hi"));
    for client in &mut clients {
        assert_eq!(util::read_all(client), b"hi");
    }
    assert_eq!(server.counters.snapshot().accepted, 64);
    server.stop();
}

/// Sends `size` bytes at accept, then closes: the close must wait for all of it.
struct SendThenClose {
    message: Arc<[u8]>,
    pending_at_open: Arc<AtomicUsize>,
}

impl Handler for SendThenClose {
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        conn.send_shared(&self.message);
        self.pending_at_open
            .store(conn.pending(), Ordering::Relaxed);
        conn.close();
    }
}

#[test]
fn close_waits_until_everything_is_flushed() {
    let message: Arc<[u8]> = (0..8 << 20).map(|i: u32| (i % 251) as u8).collect();
    let (event_loop, addr) = util::tcp_loop(util::config());
    let pending = Arc::new(AtomicUsize::new(0));
    let server = util::spawn(
        event_loop,
        SendThenClose {
            message: Arc::clone(&message),
            pending_at_open: Arc::clone(&pending),
        },
    );
    let mut client = util::connect(addr);
    // Before reading anything: the socket took only part of it, the rest waits.
    util::wait_for("the server to queue output", BOUND, || {
        pending.load(Ordering::Relaxed) > 0
    });
    assert_eq!(&util::read_all(&mut client)[..], &message[..]);
    let counters = Arc::clone(&server.counters);
    server.stop();
    let snap = counters.snapshot();
    assert_eq!(snap.bytes_out, 8 << 20);
    assert_eq!(snap.completed, 1);
}

/// Echoes, and half-closes after the first read: the peer sees EOF and goes on sending.
#[derive(Default)]
struct HalfClose {
    after_shut: Arc<AtomicUsize>,
    shut: bool,
}

impl Handler for HalfClose {
    fn on_data(&mut self, conn: &mut Conn<'_>, data: &[u8]) -> usize {
        if self.shut {
            self.after_shut.fetch_add(data.len(), Ordering::Relaxed);
            return data.len();
        }
        conn.send(data);
        conn.shutdown_write();
        self.shut = true;
        data.len()
    }
}

#[test]
fn half_close_sends_eof_and_keeps_reading() {
    let (event_loop, addr) = util::tcp_loop(util::config());
    let handler = HalfClose::default();
    let after_shut = Arc::clone(&handler.after_shut);
    let server = util::spawn(event_loop, handler);

    let mut client = util::connect(addr);
    client.write_all(b"first").unwrap();
    assert_eq!(util::read_all(&mut client), b"first", "EOF after the echo");
    client.write_all(b"still talking").unwrap();
    util::wait_for("the server to read after its half-close", BOUND, || {
        after_shut.load(Ordering::Relaxed) == 13
    });
    client.shutdown(Shutdown::Write).unwrap();
    util::wait_for("the connection to close in order", BOUND, || {
        server.counters.snapshot().completed == 1
    });
    assert_eq!(server.counters.snapshot().closed, 1);
    server.stop();
}

/// A client that sends before the greeting is written: closing with its bytes unread would
/// send a reset, and the client's read would fail with `ECONNRESET` instead of ending with
/// the greeting and EOF.
#[test]
fn orderly_close_keeps_the_greeting_when_the_client_spoke_first() {
    let (event_loop, addr) = util::tcp_loop(util::config());
    // Connected and written before the loop runs: the bytes are waiting at accept.
    let mut clients: Vec<_> = (0..20)
        .map(|_| {
            let mut c = util::connect(addr);
            c.write_all(b"hello? hello? is anybody there?").unwrap();
            c
        })
        .collect();
    let server = util::spawn(event_loop, Greeter::new(b"Thank you for connecting"));
    for client in &mut clients {
        assert_eq!(util::read_all(client), b"Thank you for connecting");
    }
    drop(clients);
    util::wait_for("every connection to close in order", BOUND, || {
        server.counters.snapshot().completed == 20
    });
    let snap = server.counters.snapshot();
    assert_eq!((snap.closed, snap.resets), (20, 0));
    server.stop();
}

/// Records close reasons, keeps every connection open until the peer closes.
#[derive(Default)]
struct Quiet {
    reasons: util::Closes,
}

impl Handler for Quiet {
    fn on_data(&mut self, conn: &mut Conn<'_>, data: &[u8]) -> usize {
        conn.send(data);
        data.len()
    }

    fn on_close(&mut self, _: &mut Control<'_>, closed: &Closed<'_>) {
        self.reasons.record(closed);
    }
}

/// Counters move while the loop runs, read from another thread: accepted, bytes, resets.
#[test]
fn counters_are_readable_while_running() {
    let (event_loop, addr) = util::tcp_loop(util::config());
    let server = util::spawn(event_loop, Quiet::default());
    let counters = Arc::clone(&server.counters);

    let mut client = util::connect(addr);
    util::wait_for("accepted == 1", BOUND, || counters.snapshot().accepted == 1);
    client.write_all(b"0123456789").unwrap();
    let mut echo = [0; 10];
    client.read_exact(&mut echo).unwrap();
    // The loop counts a write after it returns, so the client can see the echo first.
    util::wait_for("bytes out == 10", BOUND, || {
        counters.snapshot().bytes_out == 10
    });
    let snap = counters.snapshot();
    assert_eq!((snap.bytes_in, snap.bytes_out, snap.closed), (10, 10, 0));

    // A reset: close with SO_LINGER 0.
    socket2::SockRef::from(&client)
        .set_linger(Some(std::time::Duration::ZERO))
        .unwrap();
    drop(client);
    util::wait_for("resets == 1", BOUND, || counters.snapshot().resets == 1);
    assert_eq!(counters.snapshot().closed, 1);
    let quiet = server.stop();
    assert_eq!(quiet.reasons.get(), vec![(CloseReason::Reset, 0)]);
}

/// At `max_connections` the loop stops accepting; a close lets the next client in.
#[test]
fn max_connections_pauses_accepting() {
    let config = Config {
        max_connections: 2,
        ..util::config()
    };
    let (event_loop, addr) = util::tcp_loop(config);
    let server = util::spawn(event_loop, Quiet::default());
    let counters = Arc::clone(&server.counters);
    let mut a = util::connect(addr);
    let _b = util::connect(addr);
    let mut c = util::connect(addr);
    util::wait_for("two accepted", BOUND, || counters.snapshot().accepted == 2);
    // The third waits in the backlog; the first one's echo proves the loop is running.
    a.write_all(b"x").unwrap();
    a.read_exact(&mut [0]).unwrap();
    assert_eq!(counters.snapshot().accepted, 2);
    drop(a);
    c.write_all(b"y").unwrap();
    let mut got = [0];
    c.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"y");
    assert_eq!(counters.snapshot().accepted, 3);
    server.stop();
}
