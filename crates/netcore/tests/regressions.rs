//! Bugs that were found once, each with the test that found it.

mod util;

use std::io::Write;
use std::sync::{Arc, Mutex};

use netcore::{CloseReason, Closed, Conn, Control, EventLoop, Handler};
use util::BOUND;

/// Collects what one outgoing connection reads, and stops when it closes.
#[derive(Default)]
struct Collect {
    read: Arc<Mutex<Vec<u8>>>,
    reason: Arc<Mutex<Option<CloseReason>>>,
}

impl Handler for Collect {
    fn on_data(&mut self, _: &mut Conn<'_>, data: &[u8]) {
        self.read.lock().unwrap().extend_from_slice(data);
    }

    fn on_close(&mut self, ctl: &mut Control<'_>, closed: &Closed<'_>) {
        *self.reason.lock().unwrap() = Some(closed.reason);
        ctl.stop();
    }
}

/// The connect's writable edge, the peer's greeting and its FIN can all arrive before the
/// loop polls, as one event. The loop finished the connect and waited for a readable edge
/// that never came: the client hung until its idle deadline.
#[test]
fn greeting_that_arrives_with_the_handshake_is_read() {
    let (listener, addr) = util::tcp_listener();
    let mut client_loop = EventLoop::new(util::config()).unwrap();
    client_loop.connect(addr, 0).unwrap();
    // Accept, greet and close before the client's loop ever polls.
    std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        stream.write_all(b"Thank you for connecting").unwrap();
    })
    .join()
    .unwrap();

    let client = Collect::default();
    let (read, reason) = (Arc::clone(&client.read), Arc::clone(&client.reason));
    util::spawn(client_loop, client).join_within(BOUND);
    assert_eq!(*read.lock().unwrap(), b"Thank you for connecting");
    assert_eq!(*reason.lock().unwrap(), Some(CloseReason::Done));
}
