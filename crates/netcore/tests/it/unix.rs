//! Unix-domain stream listeners and their connections, served by the same loop as TCP.

use crate::util;

use std::io::{Read, Write};
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Mutex};

use netcore::{
    CloseReason, Closed, Conn, Control, EventLoop, Handler, ListenOptions, ListenerId, PeerAddr,
};
use util::{Greeter, TempDir, BOUND};

fn unix_client(path: &std::path::Path) -> UnixStream {
    let stream = UnixStream::connect(path).unwrap();
    stream.set_read_timeout(Some(BOUND)).unwrap();
    stream.set_write_timeout(Some(BOUND)).unwrap();
    stream
}

#[test]
fn a_unix_listener_greets_its_clients() {
    let dir = TempDir::new("unix-greet");
    let path = dir.0.join("greet.sock");
    let listener = netcore::unix_listener(&path, &ListenOptions::default()).unwrap();
    let mut event_loop = EventLoop::new(util::config()).unwrap();
    event_loop.add_unix_listener(listener).unwrap();
    let server = util::spawn(event_loop, Greeter::new(b"Thank you for connecting"));
    for _ in 0..20 {
        assert_eq!(
            util::read_all(&mut unix_client(&path)),
            b"Thank you for connecting"
        );
    }
    let greeter = server.stop();
    assert_eq!(greeter.closes.len(), 20);
}

/// A connection's peer, and the listener that accepted it.
type Peer = (PeerAddr, Option<ListenerId>);

/// Records each connection's peer address and close reason; echoes.
#[derive(Default)]
struct Peers {
    peers: Arc<Mutex<Vec<Peer>>>,
    closes: util::Closes,
}

impl Handler for Peers {
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        self.peers
            .lock()
            .unwrap()
            .push((conn.peer().clone(), conn.listener()));
    }

    fn on_data(&mut self, conn: &mut Conn<'_>, data: &[u8]) -> usize {
        conn.send(data);
        data.len()
    }

    fn on_close(&mut self, _: &mut Control<'_>, closed: &Closed<'_>) {
        self.closes.record(closed);
    }
}

/// TCP and Unix listeners in one loop; a Unix client echoes through a half-close.
#[test]
fn unix_and_tcp_listeners_share_one_loop() {
    let dir = TempDir::new("unix-echo");
    let path = dir.0.join("echo.sock");
    let (mut event_loop, tcp_addr) = util::tcp_loop(util::config());
    let unix = netcore::unix_listener(&path, &ListenOptions::default()).unwrap();
    let unix_id = event_loop.add_unix_listener(unix).unwrap();
    let handler = Peers::default();
    let (peers, closes) = (Arc::clone(&handler.peers), handler.closes.clone());
    let server = util::spawn(event_loop, handler);

    let mut client = unix_client(&path);
    let big: Vec<u8> = (0..1u32 << 20).map(|i| (i % 239) as u8).collect();
    let writer = {
        let mut client = client.try_clone().unwrap();
        let big = big.clone();
        std::thread::spawn(move || {
            client.write_all(&big).unwrap();
            client.shutdown(Shutdown::Write).unwrap();
        })
    };
    let mut echoed = Vec::new();
    client.read_to_end(&mut echoed).unwrap();
    writer.join().unwrap();
    assert!(echoed == big, "the echo over a Unix socket differs");

    let mut tcp = util::connect(tcp_addr);
    tcp.write_all(b"tcp").unwrap();
    let mut got = [0; 3];
    tcp.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"tcp");
    drop(tcp);

    util::wait_for("both connections to close", BOUND, || closes.len() == 2);
    assert!(closes.get().iter().all(|c| c.0 == CloseReason::Done));
    let peers = peers.lock().unwrap();
    assert_eq!(
        peers[0],
        (PeerAddr::Unix(None), Some(unix_id)),
        "an unbound client has no path"
    );
    assert!(
        matches!(peers[1], (PeerAddr::Inet(a), Some(id)) if a.ip().is_loopback() && id != unix_id)
    );
    server.stop();
}

/// As over TCP: a Unix socket closed with unread input makes the peer's read fail with
/// `ECONNRESET`; the orderly close drains it first, so the greeting and EOF arrive.
#[test]
fn orderly_close_over_unix_keeps_the_greeting() {
    let dir = TempDir::new("unix-orderly");
    let path = dir.0.join("orderly.sock");
    let listener = netcore::unix_listener(&path, &ListenOptions::default()).unwrap();
    let mut event_loop = EventLoop::new(util::config()).unwrap();
    event_loop.add_unix_listener(listener).unwrap();
    let mut clients: Vec<_> = (0..10)
        .map(|_| {
            let mut c = unix_client(&path);
            c.write_all(b"are you there?").unwrap();
            c
        })
        .collect();
    let server = util::spawn(event_loop, Greeter::new(b"Thank you for connecting"));
    for client in &mut clients {
        assert_eq!(util::read_all(client), b"Thank you for connecting");
    }
    drop(clients);
    util::wait_for("orderly closes", BOUND, || {
        server.counters.snapshot().completed == 10
    });
    server.stop();
}
