//! Outgoing TCP connections: mio's non-blocking connect recipe (writable, `take_error`,
//! `peer_addr`), success and refusal, from outside `run` and from a callback.

use crate::util;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use netcore::{CloseReason, Closed, Conn, ConnectError, Control, EventLoop, Handler, PeerAddr};
use util::{Greeter, BOUND};

/// (tag, bytes read, close reason) of one connection.
type Done = (u64, Vec<u8>, CloseReason);

/// Each connection's state: the test's number for it, and what it has read.
#[derive(Debug, Default)]
struct Reads {
    tag: u64,
    bytes: Vec<u8>,
}

fn tagged(tag: u64) -> Reads {
    Reads {
        tag,
        bytes: Vec::new(),
    }
}

/// A client: collects what each connection reads (in its state: no map), and stops the
/// loop once `expect` connections have closed.
#[derive(Default)]
struct Client {
    expect: usize,
    /// (tag, bytes read, close reason) per connection.
    done: Arc<Mutex<Vec<Done>>>,
    send_on_open: Option<Vec<u8>>,
    /// Addresses to connect to from the first `on_connect`, with their tags.
    later: Vec<(SocketAddr, u64)>,
}

impl Handler<(), Reads> for Client {
    fn on_connect(
        &mut self,
        conn: &mut Conn<'_, Reads>,
        outcome: Result<&PeerAddr, &ConnectError>,
    ) {
        if outcome.is_err() {
            return;
        }
        for (addr, tag) in self.later.drain(..) {
            conn.control().connect(addr, tagged(tag));
        }
        if let Some(data) = &self.send_on_open {
            conn.send(data);
            conn.shutdown_write();
        }
    }

    fn on_data(&mut self, conn: &mut Conn<'_, Reads>, data: &[u8]) -> usize {
        conn.state().bytes.extend_from_slice(data);
        data.len()
    }

    fn on_close(&mut self, ctl: &mut Control<'_, Reads>, closed: &Closed<'_, Reads>) {
        let mut done = self.done.lock().unwrap();
        done.push((closed.state.tag, closed.state.bytes.clone(), closed.reason));
        if done.len() == self.expect {
            ctl.stop();
        }
    }
}

/// A port with nothing listening on it.
fn closed_port() -> SocketAddr {
    let (listener, addr) = util::tcp_listener();
    drop(listener);
    addr
}

#[test]
fn connect_reads_the_greeting_then_eof() {
    let (server_loop, addr) = util::tcp_loop(util::config());
    let server = util::spawn(server_loop, Greeter::new(b"Thank you for connecting"));

    let mut client_loop = EventLoop::new(util::config()).unwrap();
    client_loop.connect(addr, tagged(7)).unwrap();
    let client = Client {
        expect: 1,
        ..Client::default()
    };
    let done = Arc::clone(&client.done);
    let client = util::spawn(client_loop, client);
    let counters = Arc::clone(&client.counters);
    client.join_within(BOUND);

    let done = done.lock().unwrap();
    assert_eq!(
        *done,
        vec![(7, b"Thank you for connecting".to_vec(), CloseReason::Done)]
    );
    let snap = counters.snapshot();
    assert_eq!((snap.connected, snap.closed, snap.completed), (1, 1, 1));
    assert_eq!(snap.bytes_in, 24);
    server.stop();
}

#[test]
fn connect_to_a_closed_port_is_refused_and_not_fatal() {
    let refused = closed_port();
    let (server_loop, addr) = util::tcp_loop(util::config());
    let server = util::spawn(server_loop, Greeter::new(b"hello"));

    let mut client_loop = EventLoop::new(util::config()).unwrap();
    client_loop.connect(refused, tagged(1)).unwrap();
    client_loop.connect(addr, tagged(2)).unwrap();
    client_loop.connect(refused, tagged(3)).unwrap();
    let client = Client {
        expect: 3,
        ..Client::default()
    };
    let done = Arc::clone(&client.done);
    let client = util::spawn(client_loop, client);
    let counters = Arc::clone(&client.counters);
    client.join_within(BOUND);

    let mut done = done.lock().unwrap().clone();
    done.sort_by_key(|d| d.0);
    assert_eq!(
        done,
        vec![
            (1, vec![], CloseReason::Refused),
            (2, b"hello".to_vec(), CloseReason::Done),
            (3, vec![], CloseReason::Refused),
        ]
    );
    let snap = counters.snapshot();
    assert_eq!((snap.refused, snap.connected, snap.closed), (2, 1, 3));
    server.stop();
}

#[test]
fn control_connect_from_a_callback() {
    let (server_loop, addr) = util::tcp_loop(util::config());
    let server = util::spawn(server_loop, util::Echo::default());

    // The first connection's `on_open` starts the others from inside the loop.
    let mut client_loop = EventLoop::new(util::config()).unwrap();
    client_loop.connect(addr, tagged(10)).unwrap();
    let client = Client {
        expect: 3,
        send_on_open: Some(b"ping".to_vec()),
        later: vec![(closed_port(), 11), (addr, 12)],
        ..Client::default()
    };
    let done = Arc::clone(&client.done);
    util::spawn(client_loop, client).join_within(BOUND);

    let mut done = done.lock().unwrap().clone();
    done.sort_by_key(|d| d.0);
    assert_eq!(
        done,
        vec![
            (10, b"ping".to_vec(), CloseReason::Done),
            (11, vec![], CloseReason::Refused),
            (12, b"ping".to_vec(), CloseReason::Done),
        ]
    );
    server.stop();
}
