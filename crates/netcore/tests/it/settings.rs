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
    // Small send buffers, so that output drains in small steps (one flush cannot take the
    // queue from above the mark to empty).
    let (listener, addr) = util::tcp_listener();
    socket2::SockRef::from(&listener)
        .set_send_buffer_size(16 << 10)
        .unwrap();
    let mut event_loop = netcore::EventLoop::new(util::config()).unwrap();
    event_loop.add_tcp_listener(listener).unwrap();
    let flushed_at = Arc::default();
    let handler = Bulk {
        message: vec![7u8; SIZE].into(),
        opened: 0,
        flushed_at: Arc::clone(&flushed_at),
    };
    let running = util::spawn(event_loop, handler);
    for _ in 0..2 {
        let mut client = util::connect(addr);
        let mut got = vec![0; SIZE];
        client.read_exact(&mut got).unwrap();
    }
    util::wait_for("both drains", BOUND, || {
        flushed_at.lock().unwrap().len() >= 2
    });
    let flushed_at = flushed_at.lock().unwrap().clone();
    let own = flushed_at.iter().find(|(which, _)| *which == 0).unwrap();
    let loops = flushed_at.iter().find(|(which, _)| *which == 1).unwrap();
    assert!(
        own.1 > 0 && own.1 <= 1 << 20,
        "its own mark (1 MiB): heard with {} bytes pending",
        own.1
    );
    assert_eq!(
        loops.1, 0,
        "the loop's mark (0): heard once all was written"
    );
    running.stop();
}
