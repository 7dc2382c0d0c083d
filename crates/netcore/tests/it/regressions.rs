//! Bugs that were found once, each with the test that found it.

use crate::util;

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
    fn on_data(&mut self, _: &mut Conn<'_>, data: &[u8]) -> usize {
        self.read.lock().unwrap().extend_from_slice(data);
        data.len()
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
    client_loop.connect(addr, ()).unwrap();
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

/// Sends one large message at accept, then closes.
struct Download(Arc<[u8]>, util::Closes);

impl Handler for Download {
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        conn.send_shared(&self.0);
        conn.close();
    }

    fn on_close(&mut self, _: &mut Control<'_>, closed: &Closed<'_>) {
        self.1.record(closed);
    }
}

/// The write deadline was set when output was first queued and never moved, so a peer
/// that reads steadily but takes longer than `write_timeout` for the whole download was cut
/// off mid-transfer. The deadline is for a peer that stops taking output, not a slow one.
#[test]
fn a_slow_reader_that_keeps_reading_is_not_cut_off() {
    use std::io::Read;
    use std::time::{Duration, Instant};

    let message: Arc<[u8]> = (0..2u32 << 20).map(|i| (i % 249) as u8).collect();
    let config = netcore::Config {
        write_timeout: Some(Duration::from_millis(500)),
        ..util::config()
    };
    let (listener, addr) = util::tcp_listener();
    socket2::SockRef::from(&listener)
        .set_send_buffer_size(16 << 10)
        .unwrap();
    let mut event_loop = EventLoop::new(config).unwrap();
    event_loop.add_tcp_listener(listener).unwrap();
    let closes = util::Closes::default();
    let server = util::spawn(event_loop, Download(Arc::clone(&message), closes.clone()));

    let started = Instant::now();
    let mut client = util::connect(addr);
    let mut got = Vec::new();
    let mut buf = vec![0; 32 << 10];
    loop {
        let n = client.read(&mut buf).expect("read");
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
        std::thread::sleep(Duration::from_millis(15)); // a slow reader, not a wait
    }
    assert!(
        started.elapsed() > Duration::from_millis(500),
        "the download took longer than the write timeout"
    );
    assert_eq!(got.len(), message.len());
    assert!(got[..] == message[..]);
    util::wait_for("the close", BOUND, || closes.len() == 1);
    assert_eq!(closes.get(), vec![(CloseReason::Done, 0)]);
    server.stop();
}

/// Answers the first bytes and closes; counts every `on_data` call.
#[derive(Default)]
struct AnswerOnce {
    calls: Arc<std::sync::atomic::AtomicUsize>,
}

impl Handler for AnswerOnce {
    fn on_data(&mut self, conn: &mut Conn<'_>, data: &[u8]) -> usize {
        self.calls
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        conn.send(b"enough");
        conn.close();
        data.len()
    }
}

/// After `Conn::close`, what the peer still sends is read and dropped, as documented; the
/// loop went on handing it to `on_data` until the end of that read burst.
#[test]
fn input_after_close_is_not_handed_to_the_handler() {
    let (event_loop, addr) = util::tcp_loop(util::config());
    let mut client = util::connect(addr);
    // Several reads' worth, waiting before the loop runs.
    client.write_all(&vec![b'x'; 256 << 10]).unwrap();
    let handler = AnswerOnce::default();
    let calls = Arc::clone(&handler.calls);
    let server = util::spawn(event_loop, handler);
    assert_eq!(util::read_all(&mut client), b"enough");
    drop(client);
    util::wait_for("the orderly close", BOUND, || {
        server.counters.snapshot().completed == 1
    });
    assert_eq!(calls.load(std::sync::atomic::Ordering::Relaxed), 1);
    assert_eq!(server.counters.snapshot().bytes_in, 256 << 10);
    server.stop();
}

/// Records the id of every connection it opens, greets and closes.
#[derive(Default)]
struct Ids {
    ids: Arc<Mutex<Vec<netcore::ConnId>>>,
}

impl Handler for Ids {
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        self.ids.lock().unwrap().push(conn.id());
        conn.send(b"hi");
        conn.close();
    }
}

/// A connection closed on the fast path (never registered) left its slot's generation
/// unchanged, so the next connection got the same `ConnId`: "a stale id never reaches a
/// new connection" did not hold for them.
#[test]
fn fast_path_connections_never_share_an_id() {
    let (event_loop, addr) = util::tcp_loop(util::config());
    let handler = Ids::default();
    let ids = Arc::clone(&handler.ids);
    let server = util::spawn(event_loop, handler);
    for _ in 0..10 {
        assert_eq!(util::read_all(&mut util::connect(addr)), b"hi");
    }
    server.stop();
    let ids = ids.lock().unwrap();
    assert_eq!(ids.len(), 10);
    let distinct: std::collections::HashSet<_> = ids.iter().collect();
    assert_eq!(distinct.len(), 10, "an id was given to two connections");
}

/// The first connection is paused from its `on_open`; the second's input, word by word,
/// acts on the first through `Control` from the second's `on_data`: `resume` resumes
/// reading it, `close` sends it `bye` and closes it.
#[derive(Default)]
struct ActOnFirst {
    first: Option<netcore::ConnId>,
    /// What the first connection sent, as `on_data` saw it.
    read: Arc<Mutex<Vec<u8>>>,
    closes: util::Closes,
}

impl Handler for ActOnFirst {
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        if self.first.is_none() {
            self.first = Some(conn.id());
            conn.pause_reading();
        }
    }

    fn on_data(&mut self, conn: &mut Conn<'_>, data: &[u8]) -> usize {
        let Some(first) = self.first else {
            return data.len();
        };
        if conn.id() == first {
            self.read.lock().unwrap().extend_from_slice(data);
            return data.len();
        }
        let ctl = conn.control();
        match data {
            b"resume" => assert!(ctl.resume_reading(first)),
            b"close" => assert!(ctl.send(first, b"bye") && ctl.close(first)),
            other => panic!("unexpected {other:?}"),
        }
        data.len()
    }

    fn on_close(&mut self, _: &mut Control<'_>, closed: &Closed<'_>) {
        self.closes.record(closed);
    }
}

/// Both clients, the running loop, what the first connection's `on_data` saw, its closes.
type ActingOnFirst = (
    [std::net::TcpStream; 2],
    util::Running<ActOnFirst>,
    Arc<Mutex<Vec<u8>>>,
    util::Closes,
);

/// Two clients of an [`ActOnFirst`] loop: the first has written `first_says` (unread, as
/// its connection is paused), the second then sends `command` (and stays open, so that the
/// only close a test sees is the first connection's).
fn act_on_first(first_says: &[u8], command: &[u8]) -> ActingOnFirst {
    let (event_loop, addr) = util::tcp_loop(util::config());
    let handler = ActOnFirst::default();
    let (read, closes) = (Arc::clone(&handler.read), handler.closes.clone());
    let server = util::spawn(event_loop, handler);
    let mut first = util::connect(addr);
    util::wait_for("the first on_open", BOUND, || {
        server.counters.snapshot().accepted == 1
    });
    first.write_all(first_says).unwrap();
    let mut second = util::connect(addr);
    second.write_all(command).unwrap();
    ([first, second], server, read, closes)
}

/// A read owed to a connection resumed through `Control` from *another* connection's
/// `on_data` ran while that `on_data`'s read still held the loop's shared read buffer: it
/// read into an empty buffer, took `Ok(0)` for the peer's EOF, and closed the connection,
/// losing the input that had waited.
#[test]
fn a_read_owed_to_another_connection_is_not_taken_for_eof() {
    let (clients, server, read, closes) = act_on_first(b"waiting", b"resume");
    util::wait_for("the input that waited", BOUND, || {
        *read.lock().unwrap() == b"waiting"
    });
    assert_eq!(closes.len(), 0, "the first connection is still open");
    drop(clients);
    server.stop();
}

/// The same empty buffer in the orderly close of another connection: its unread input
/// was taken for EOF, and the socket closed with that input unread, which makes the kernel
/// reset the connection instead of closing it in order.
#[test]
fn closing_another_connection_with_unread_input_is_orderly() {
    let ([mut first, _second], server, _, closes) = act_on_first(b"unread", b"close");
    let mut got = Vec::new();
    let result = std::io::Read::read_to_end(&mut first, &mut got);
    assert!(result.is_ok(), "the first client's read: {result:?}");
    assert_eq!(got, b"bye");
    drop(first);
    util::wait_for("the close", BOUND, || closes.len() == 1);
    assert_eq!(closes.get(), vec![(CloseReason::Done, 0)]);
    server.stop();
}

/// The first connection is paused from its `on_open`; a datagram `resume` resumes it from
/// `on_datagram` (whose receive loop holds the shared read buffer, as `on_data`'s does).
#[derive(Default)]
struct ResumeByDatagram {
    first: Option<netcore::ConnId>,
    read: Arc<Mutex<Vec<u8>>>,
}

impl Handler for ResumeByDatagram {
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        self.first = Some(conn.id());
        conn.pause_reading();
    }

    fn on_data(&mut self, _: &mut Conn<'_>, data: &[u8]) -> usize {
        self.read.lock().unwrap().extend_from_slice(data);
        data.len()
    }

    fn on_datagram(
        &mut self,
        socket: &mut netcore::Datagram<'_>,
        _: &[u8],
        _: std::net::SocketAddr,
    ) {
        if let Some(first) = self.first {
            assert!(socket.control().resume_reading(first));
        }
    }
}

/// As above, from `on_datagram`: the owed read of a connection resumed there found the
/// shared read buffer empty and took `Ok(0)` for EOF.
#[test]
fn a_read_owed_to_a_connection_resumed_from_on_datagram_is_not_taken_for_eof() {
    let (mut event_loop, addr) = util::tcp_loop(util::config());
    let udp = netcore::udp_socket(util::localhost(), &Default::default()).unwrap();
    let udp_addr = udp.local_addr().unwrap();
    event_loop.add_udp_socket(udp).unwrap();
    let handler = ResumeByDatagram::default();
    let read = Arc::clone(&handler.read);
    let server = util::spawn(event_loop, handler);
    let mut client = util::connect(addr);
    util::wait_for("the on_open", BOUND, || {
        server.counters.snapshot().accepted == 1
    });
    client.write_all(b"waiting").unwrap();
    let prod = std::net::UdpSocket::bind(util::localhost()).unwrap();
    prod.send_to(b"resume", udp_addr).unwrap();
    util::wait_for("the input that waited", BOUND, || {
        *read.lock().unwrap() == b"waiting"
    });
    assert_eq!(server.counters.snapshot().completed, 0, "still open");
    server.stop();
}

/// Queues `size` bytes on an outgoing connection while its connect is in progress (from a
/// timer), and records each `on_flushed` for it.
struct QueueWhileConnecting {
    target: std::net::SocketAddr,
    size: usize,
    flushed: Arc<Mutex<Vec<usize>>>,
}

impl Handler for QueueWhileConnecting {
    fn on_timer(&mut self, ctl: &mut Control<'_>, _: netcore::TimerId) {
        let id = ctl.connect(self.target, ());
        assert!(ctl.send(id, &vec![b'q'; self.size]));
        assert!(ctl.pending(id).unwrap_or(0) > 64 << 10, "above the mark");
    }

    fn on_flushed(&mut self, conn: &mut Conn<'_>) {
        self.flushed.lock().unwrap().push(conn.pending());
    }
}

/// Output queued while a connect was in progress waited for the peer too; when the connect
/// completes, the loop writes it (in `settle`, not in a writable event), and when that
/// takes it from above the low-water mark to or below it, `on_flushed` must fire: a
/// forwarder that paused its client because the target's pending output was high resumes
/// it there, and would otherwise wait for the idle timeout.
#[test]
fn output_queued_while_connecting_reports_on_flushed() {
    const SIZE: usize = (64 << 10) + 4096;
    let listener = std::net::TcpListener::bind(util::localhost()).unwrap();
    let target = listener.local_addr().unwrap();
    let config = netcore::Config {
        low_water: 64 << 10,
        ..util::config()
    };
    let mut event_loop = EventLoop::new(config).unwrap();
    event_loop.set_timer(std::time::Instant::now());
    let handler = QueueWhileConnecting {
        target,
        size: SIZE,
        flushed: Arc::default(),
    };
    let flushed = Arc::clone(&handler.flushed);
    let server = util::spawn(event_loop, handler);
    let (mut peer, _) = listener.accept().unwrap();
    peer.set_read_timeout(Some(BOUND)).unwrap();
    let mut got = vec![0; SIZE];
    std::io::Read::read_exact(&mut peer, &mut got).unwrap();
    util::wait_for("on_flushed", BOUND, || !flushed.lock().unwrap().is_empty());
    assert!(flushed.lock().unwrap()[0] <= 64 << 10);
    server.stop();
}
