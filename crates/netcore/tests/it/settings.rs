//! Per-connection settings: a connection's own idle timeout and low-water mark, where the
//! others keep the loop's.

use std::io::{Read, Write};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use netcore::{CloseReason, Closed, Conn, Control, Handler};

use crate::util::{self, Closes, BOUND};

/// A client whose first byte is `q` gets a short idle timeout of its own.
struct Impatient {
    closes: Closes,
}

impl Handler for Impatient {
    fn on_data(&mut self, conn: &mut Conn<'_>, input: &[u8]) -> usize {
        if input.first() == Some(&b'q') {
            conn.set_idle_timeout(Some(Duration::from_millis(150)));
        }
        input.len()
    }

    fn on_close(&mut self, _: &mut Control<'_>, closed: &Closed<'_>) {
        self.closes.record(closed);
    }
}

#[test]
fn a_connection_with_its_own_idle_timeout_is_closed_and_the_others_are_not() {
    // The loop's idle timeout is long (util::config): only the quick one may time out.
    let (event_loop, addr) = util::tcp_loop(util::config());
    let closes = Closes::default();
    let running = util::spawn(
        event_loop,
        Impatient {
            closes: closes.clone(),
        },
    );
    let mut quick = util::connect(addr);
    let mut patient = util::connect(addr);
    quick.write_all(b"q").unwrap();
    patient.write_all(b"p").unwrap();
    util::wait_for("the quick one's timeout", BOUND, || closes.len() == 1);
    assert_eq!(closes.get()[0].0, CloseReason::Timeout);
    assert_eq!(quick.read(&mut [0; 1]).unwrap(), 0, "closed");
    util::holds_for(
        "the patient one to stay",
        Duration::from_millis(300),
        || closes.len() == 1,
    );
    patient.write_all(b"still here").unwrap();
    running.stop();
}

/// Sends 2 MiB at open; the first connection gets its own low-water mark (1 MiB).
/// Records how much was pending when each one's `on_flushed` fired.
struct Bulk {
    message: Arc<[u8]>,
    opened: usize,
    flushed_at: Arc<Mutex<Vec<(usize, usize)>>>,
}

impl Handler<(), usize> for Bulk {
    fn on_open(&mut self, conn: &mut Conn<'_, usize>) {
        *conn.state() = self.opened;
        if self.opened == 0 {
            conn.set_low_water(1 << 20);
        }
        self.opened += 1;
        conn.send_shared(&self.message);
    }

    fn on_flushed(&mut self, conn: &mut Conn<'_, usize>) {
        let which = *conn.state();
        let pending = conn.pending();
        self.flushed_at.lock().unwrap().push((which, pending));
    }
}

#[test]
fn a_connection_with_its_own_low_water_mark_hears_of_the_drain_at_its_mark() {
    const SIZE: usize = 2 << 20;
    // What the first client leaves unread until the loop has reported its drain: more than
    // the kernel's buffers hold (small ones, set below), less than the mark. Its output can
    // then fall to the mark but never to empty before the report, however fast the loop
    // writes; a client that read everything at once could take the whole queue in one
    // write step, and the report would come at 0.
    const HELD_BACK: usize = 768 << 10;
    let (listener, addr) = util::tcp_listener();
    socket2::SockRef::from(&listener)
        .set_send_buffer_size(16 << 10)
        .unwrap();
    let mut event_loop = netcore::EventLoop::new(util::config()).unwrap();
    event_loop.add_tcp_listener(listener).unwrap();
    let flushed_at: Arc<Mutex<Vec<(usize, usize)>>> = Arc::default();
    let handler = Bulk {
        message: vec![7u8; SIZE].into(),
        opened: 0,
        flushed_at: Arc::clone(&flushed_at),
    };
    let running = util::spawn(event_loop, handler);
    let heard = |which: usize| {
        util::wait_for("a drain", BOUND, || {
            flushed_at.lock().unwrap().iter().any(|(w, _)| *w == which)
        });
        let flushed_at = flushed_at.lock().unwrap();
        flushed_at.iter().find(|(w, _)| *w == which).unwrap().1
    };
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(16 << 10).unwrap();
    socket.connect(&addr.into()).unwrap();
    let mut own_mark: std::net::TcpStream = socket.into();
    let mut got = vec![0; SIZE];
    own_mark.read_exact(&mut got[..SIZE - HELD_BACK]).unwrap();
    let pending = heard(0);
    assert!(
        pending > 0 && pending <= 1 << 20,
        "its own mark (1 MiB): heard with {pending} bytes pending"
    );
    own_mark.read_exact(&mut got[SIZE - HELD_BACK..]).unwrap();
    let mut loops_mark = util::connect(addr);
    loops_mark.read_exact(&mut got).unwrap();
    assert_eq!(
        heard(1),
        0,
        "the loop's mark (0): heard once all was written"
    );
    running.stop();
}
