//! Fairness and giving up: one peer that keeps its socket full cannot starve the others,
//! and a connection the loop gives up on with output unsent ends with a reset, never a FIN.

use crate::util;

use std::io::{ErrorKind, Read, Write};
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use netcore::{Config, Conn, Control, Handler};
use util::{Closes, BOUND};

/// Reads a flood that never runs dry: each time the loop hands it data, the handler writes
/// as much again into the flooding client's end of a Unix socket, whose bytes are in the
/// loop's receive queue before the write returns. A loop that reads a socket until it is
/// empty would never leave it (until `quota` ran out); records the most the flooding
/// connection was handed in one turn.
struct Flood {
    feeder: UnixStream,
    quota: usize,
    this_turn: usize,
    most_in_one_turn: Arc<AtomicUsize>,
    total: Arc<AtomicUsize>,
    /// How much of the flood was read when a timer due at the start fired.
    read_at_timer: Arc<AtomicUsize>,
}

impl Flood {
    fn feed(&mut self, mut n: usize) {
        let chunk = [7u8; 1 << 16];
        while n > 0 && self.quota > 0 {
            let want = n.min(chunk.len()).min(self.quota);
            match self.feeder.write(&chunk[..want]) {
                Ok(k) => {
                    n -= k;
                    self.quota -= k;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) => panic!("feed the flood: {e}"),
            }
        }
        if self.quota == 0 {
            let _ = self.feeder.shutdown(Shutdown::Write);
        }
    }
}

impl Handler for Flood {
    fn on_data(&mut self, _: &mut Conn<'_>, data: &[u8]) -> usize {
        self.this_turn += data.len();
        self.total.fetch_add(data.len(), Ordering::SeqCst);
        self.feed(data.len());
        data.len()
    }

    fn on_read_closed(&mut self, conn: &mut Conn<'_>) {
        conn.close();
    }

    fn on_timer(&mut self, _: &mut Control<'_>, _: netcore::TimerId) {
        let read = self.total.load(Ordering::SeqCst);
        self.read_at_timer.store(read, Ordering::SeqCst);
    }

    fn on_turn_end(&mut self, _: &mut Control<'_>) {
        let n = std::mem::take(&mut self.this_turn);
        self.most_in_one_turn.fetch_max(n, Ordering::SeqCst);
    }
}

#[test]
fn a_peer_that_keeps_its_socket_full_is_read_in_turns() {
    const QUOTA: usize = 64 << 20;
    let dir = util::TempDir::new("fairness");
    let path = dir.0.join("flood.sock");
    let listener = netcore::unix_listener(&path, &netcore::ListenOptions::default()).unwrap();
    let mut event_loop = netcore::EventLoop::new(util::config()).unwrap();
    event_loop.add_unix_listener(listener).unwrap();
    let feeder = UnixStream::connect(&path).unwrap();
    feeder.set_nonblocking(true).unwrap();
    let mut flood = Flood {
        feeder,
        quota: QUOTA,
        this_turn: 0,
        most_in_one_turn: Arc::default(),
        total: Arc::default(),
        read_at_timer: Arc::new(AtomicUsize::new(usize::MAX)),
    };
    flood.feed(1 << 20);
    let (most, total, read_at_timer) = (
        Arc::clone(&flood.most_in_one_turn),
        Arc::clone(&flood.total),
        Arc::clone(&flood.read_at_timer),
    );
    event_loop.set_timer(std::time::Instant::now());
    let running = util::spawn(event_loop, flood);
    util::wait_for("the whole flood to be read", BOUND, || {
        total.load(Ordering::SeqCst) == QUOTA
    });
    let most = most.load(Ordering::SeqCst);
    // The budget (4 MiB) and what the first read found: far from the whole flood.
    assert!(
        most <= 8 << 20,
        "one connection was handed {most} of {QUOTA} bytes in one turn"
    );
    let at_timer = read_at_timer.load(Ordering::SeqCst);
    assert!(
        at_timer < QUOTA / 2,
        "a timer due at once fired only after {at_timer} of {QUOTA} flood bytes were read"
    );
    running.stop();
}

/// Sends a large message at accept and leaves the connection open; records closes.
struct Sender {
    message: Arc<[u8]>,
    closes: Closes,
}

impl Handler for Sender {
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        conn.send_shared(&self.message);
    }

    fn on_close(&mut self, _: &mut Control<'_>, closed: &netcore::Closed<'_>) {
        self.closes.record(closed);
    }
}

/// Reads until the end: `Ok(bytes)` for an orderly EOF, `Err((bytes, kind))` for an error.
fn read_to_end_or_error(stream: &mut std::net::TcpStream) -> Result<usize, (usize, ErrorKind)> {
    let mut buf = vec![0; 1 << 16];
    let mut total = 0;
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => total += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err((total, e.kind())),
        }
    }
}

fn sender(size: usize) -> Sender {
    Sender {
        message: (0..size).map(|i| (i % 241) as u8).collect(),
        closes: Closes::default(),
    }
}

#[test]
fn a_reply_cut_by_the_write_timeout_ends_with_a_reset_not_an_eof() {
    const SIZE: usize = 16 << 20;
    let config = Config {
        write_timeout: Some(Duration::from_millis(200)),
        ..util::config()
    };
    let (event_loop, addr) = util::tcp_loop(config);
    let handler = sender(SIZE);
    let closes = handler.closes.clone();
    let running = util::spawn(event_loop, handler);
    let mut client = util::connect(addr);
    util::wait_for("the write timeout", BOUND, || closes.len() == 1);
    let (reason, unsent) = closes.get()[0];
    assert_eq!(reason, netcore::CloseReason::Timeout);
    assert!(unsent > 0);
    match read_to_end_or_error(&mut client) {
        Ok(n) => panic!("{n} of {SIZE} bytes, then an orderly EOF: the cut looks whole"),
        Err((n, kind)) => {
            assert!(n < SIZE);
            assert_eq!(kind, ErrorKind::ConnectionReset);
        }
    }
    assert_eq!(running.counters.snapshot().reset_sent, 1);
    running.stop();
}

#[test]
fn output_left_when_the_drain_time_ends_is_reset() {
    const SIZE: usize = 16 << 20;
    let config = Config {
        drain_timeout: Duration::from_millis(200),
        ..util::config()
    };
    let (event_loop, addr) = util::tcp_loop(config);
    let handler = sender(SIZE);
    let closes = handler.closes.clone();
    let running = util::spawn(event_loop, handler);
    let mut stuck = util::connect(addr);
    util::wait_for("the connection to be open", BOUND, || {
        running.counters.snapshot().accepted == 1
    });
    running.shutdown.shutdown();
    util::wait_for("the drain time to end", BOUND, || closes.len() == 1);
    assert_eq!(closes.get()[0].0, netcore::CloseReason::Shutdown);
    match read_to_end_or_error(&mut stuck) {
        Ok(n) => panic!("{n} of {SIZE} bytes, then an orderly EOF: the cut looks whole"),
        Err((_, kind)) => assert_eq!(kind, ErrorKind::ConnectionReset),
    }
    running.stop();
}
