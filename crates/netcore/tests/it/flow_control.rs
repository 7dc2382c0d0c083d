//! Flow control between connections: `on_flushed` fires when a connection's pending output
//! falls to `Config::low_water`, so a producer paused for its sake resumes; a forwarder
//! that pauses a fast sender while the receiver's output is full holds the loop's buffered
//! bytes (the `buffered_peak` gauge) bounded however much the sender pushes; `read_pause`
//! tells the handler's pause from the loop's back-pressure and from a pipe's.

use crate::util;

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use netcore::{Conn, ConnId, Control, EventLoop, Handler, ReadPause, TimerId};
use socket2::{Domain, SockRef, Socket, Type};
use util::BOUND;

const LOW_WATER: usize = 64 << 10;

/// A client with a small receive buffer, so output to it backs up in the loop.
fn small_buffer_client(addr: SocketAddr) -> TcpStream {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(16 << 10).unwrap();
    socket.connect(&addr.into()).unwrap();
    let stream: TcpStream = socket.into();
    stream.set_read_timeout(Some(BOUND)).unwrap();
    stream
}

/// Streams `chunks` to each client, one more whenever its pending output is at or below
/// the low-water mark: in `on_open`, then in `on_flushed`. Records the pending output at
/// each `on_flushed`.
struct Producer {
    chunks: Vec<Arc<[u8]>>,
    next: usize,
    flushed_at: Arc<Mutex<Vec<usize>>>,
}

impl Producer {
    fn pump(&mut self, conn: &mut Conn<'_>) {
        while conn.pending() <= LOW_WATER {
            let Some(chunk) = self.chunks.get(self.next) else {
                conn.close();
                return;
            };
            conn.send_shared(chunk);
            self.next += 1;
        }
    }
}

impl Handler for Producer {
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        self.pump(conn);
    }

    fn on_flushed(&mut self, conn: &mut Conn<'_>) {
        self.flushed_at.lock().unwrap().push(conn.pending());
        self.pump(conn);
    }
}

/// `on_flushed` fires each time a slow reader takes the pending output down to the
/// low-water mark (not to zero), and a producer that refills there streams everything with
/// no more than one chunk above the mark ever buffered.
#[test]
fn on_flushed_fires_at_the_low_water_mark_as_a_slow_reader_drains() {
    const CHUNK: usize = 1 << 20;
    const CHUNKS: usize = 8;
    let config = netcore::Config {
        low_water: LOW_WATER,
        ..util::config()
    };
    let (listener, addr) = util::tcp_listener();
    // Small kernel buffers on the loop's side too, so each writable event takes little.
    SockRef::from(&listener)
        .set_send_buffer_size(16 << 10)
        .unwrap();
    let mut event_loop = EventLoop::new(config).unwrap();
    event_loop.add_tcp_listener(listener).unwrap();
    let data = util::pattern(CHUNK * CHUNKS);
    let producer = Producer {
        chunks: data.chunks(CHUNK).map(Arc::from).collect(),
        next: 0,
        flushed_at: Arc::default(),
    };
    let flushed_at = Arc::clone(&producer.flushed_at);
    let server = util::spawn(event_loop, producer);

    let mut client = small_buffer_client(addr);
    let mut got = Vec::with_capacity(data.len());
    let mut buf = vec![0; 16 << 10];
    loop {
        let n = client.read(&mut buf).expect("read");
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
        if got.len() % (256 << 10) < n {
            std::thread::sleep(Duration::from_millis(2)); // a slow reader
        }
    }
    assert_eq!(got.len(), data.len());
    assert_eq!(
        util::first_difference(&got, &data),
        None,
        "the stream is intact"
    );

    let flushed_at = flushed_at.lock().unwrap().clone();
    println!("pending at each on_flushed: {flushed_at:?}");
    assert!(
        flushed_at.len() >= CHUNKS - 1,
        "one on_flushed per refill: {flushed_at:?}"
    );
    assert!(
        flushed_at.iter().all(|&p| p <= LOW_WATER),
        "on_flushed above the mark: {flushed_at:?}"
    );
    assert!(
        flushed_at.iter().any(|&p| p > 0),
        "on_flushed waited for the mark, not for an empty buffer: {flushed_at:?}"
    );
    let peak = server.counters.snapshot().buffered_peak;
    assert!(
        peak as usize <= CHUNK + LOW_WATER,
        "buffered peak {peak}: more than one chunk above the mark"
    );
    assert!(
        peak as usize >= CHUNK / 2,
        "buffered peak {peak}: output did back up"
    );
    server.stop();
}

/// The receiver's pending output past which the forwarder stops reading the sender.
const PAUSE_ABOVE: usize = 256 << 10;

/// The forwarder's two connections and what it did.
#[derive(Default)]
struct Forwarder {
    /// The first connection: output only.
    receiver: Option<ConnId>,
    /// The second connection: input only, relayed to the receiver.
    sender: Option<ConnId>,
    pauses: Arc<AtomicUsize>,
    resumes: Arc<AtomicUsize>,
}

impl Handler for Forwarder {
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        if self.receiver.is_none() {
            self.receiver = Some(conn.id());
        } else {
            self.sender = Some(conn.id());
        }
    }

    fn on_data(&mut self, conn: &mut Conn<'_>, data: &[u8]) -> usize {
        let (Some(receiver), Some(sender)) = (self.receiver, self.sender) else {
            return data.len();
        };
        if conn.id() != sender {
            return data.len();
        }
        let ctl = conn.control();
        assert!(ctl.send(receiver, data), "the receiver is open");
        if ctl.pending(receiver).unwrap_or(0) > PAUSE_ABOVE {
            conn.pause_reading();
            self.pauses.fetch_add(1, Ordering::Relaxed);
        }
        data.len()
    }

    fn on_flushed(&mut self, conn: &mut Conn<'_>) {
        if Some(conn.id()) == self.receiver {
            if let Some(sender) = self.sender {
                if conn.control().resume_reading(sender) {
                    self.resumes.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }

    fn on_read_closed(&mut self, conn: &mut Conn<'_>) {
        // The sender's EOF is passed on as a half-close once its bytes are written.
        if Some(conn.id()) == self.sender {
            if let Some(receiver) = self.receiver {
                conn.control().shutdown_write(receiver);
            }
        }
        conn.close();
    }
}

/// A forwarder-shaped loop: the first client receives, the second sends.
fn forwarder() -> (
    util::Running<Forwarder>,
    SocketAddr,
    Arc<AtomicUsize>,
    Arc<AtomicUsize>,
) {
    let config = netcore::Config {
        low_water: LOW_WATER,
        // A sender held back is not read, and a starved test thread may leave it so for a
        // long time on a loaded machine: the test bounds itself, not the loop's deadlines.
        idle_timeout: None,
        write_timeout: None,
        ..util::config()
    };
    let (event_loop, addr) = util::tcp_loop(config);
    let forwarder = Forwarder::default();
    let (pauses, resumes) = (
        Arc::clone(&forwarder.pauses),
        Arc::clone(&forwarder.resumes),
    );
    (util::spawn(event_loop, forwarder), addr, pauses, resumes)
}

/// Connects the receiver, then the sender (non-blocking), each once the loop has it.
fn receiver_and_sender(
    server: &util::Running<Forwarder>,
    addr: SocketAddr,
    receiver: impl FnOnce() -> TcpStream,
) -> (TcpStream, TcpStream) {
    let receiver = receiver();
    util::wait_for("the receiver's accept", BOUND, || {
        server.counters.snapshot().accepted == 1
    });
    let sender = util::connect(addr);
    sender.set_nonblocking(true).unwrap();
    util::wait_for("the sender's accept", BOUND, || {
        server.counters.snapshot().accepted == 2
    });
    (receiver, sender)
}

/// Everything a sender pushes, in total.
const TOTAL: usize = 64 << 20;
/// What the loop may hold for the pair, at most.
const PEAK_BOUND: u64 = 2 << 20;

/// Writes `data[*sent..]` to the non-blocking `sender` until it is all written, then
/// shuts its sending side; panics when nothing is taken for [`BOUND`].
fn write_rest(sender: &mut TcpStream, data: &[u8], sent: &mut usize) {
    let mut deadline = Instant::now() + BOUND;
    while *sent < data.len() {
        match sender.write(&data[*sent..]) {
            Ok(n) => {
                *sent += n;
                deadline = Instant::now() + BOUND;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                assert!(
                    Instant::now() < deadline,
                    "the forwarder stopped taking input at {sent} bytes"
                );
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(e) => panic!("write: {e}"),
        }
    }
    sender.shutdown(Shutdown::Write).unwrap();
}

/// Reads `stream` to EOF on a thread.
fn read_on_thread(
    mut stream: TcpStream,
    pause_every: Option<Duration>,
) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut got = Vec::with_capacity(TOTAL);
        let mut buf = vec![0; 64 << 10];
        loop {
            let n = stream.read(&mut buf).expect("the receiver's read");
            if n == 0 {
                return got;
            }
            got.extend_from_slice(&buf[..n]);
            if let Some(pause) = pause_every {
                std::thread::sleep(pause);
            }
        }
    })
}

/// With the receiver not reading at all, the sender is held back: its writes stop being
/// taken long before 64 MiB, and the loop's buffered bytes stay under 2 MiB. Then the
/// receiver reads, the sender finishes, and all 64 MiB arrive intact, followed by the
/// sender's EOF passed on as a half-close.
#[test]
fn a_forwarder_holds_a_sender_back_while_its_receiver_does_not_read() {
    let data = util::pattern(TOTAL);
    let (server, addr, pauses, resumes) = forwarder();
    let (receiver, mut sender) = receiver_and_sender(&server, addr, || util::connect(addr));
    let counters = Arc::clone(&server.counters);

    // Push until the loop stops taking: paused, and no progress through a run of refused
    // writes (a loop merely starved of CPU on a loaded machine has not paused).
    let deadline = Instant::now() + BOUND;
    let mut sent = 0;
    let mut stalled = 0;
    let mut last_in = u64::MAX;
    while stalled < 20 {
        assert!(
            Instant::now() < deadline,
            "the sender was never held back ({sent} bytes taken)"
        );
        match sender.write(&data[sent..(sent + (256 << 10)).min(TOTAL)]) {
            Ok(n) => {
                sent += n;
                stalled = 0;
                assert!(sent < TOTAL, "the forwarder took all {TOTAL} bytes unread");
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                let now_in = counters.snapshot().bytes_in;
                let paused = pauses.load(Ordering::Relaxed) >= 1;
                stalled = if paused && now_in == last_in {
                    stalled + 1
                } else {
                    0
                };
                last_in = now_in;
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => panic!("write: {e}"),
        }
    }
    let held = counters.snapshot();
    println!(
        "held back after {sent} bytes; buffered peak {}; {} read by the loop",
        held.buffered_peak, held.bytes_in
    );
    assert!(pauses.load(Ordering::Relaxed) >= 1, "the sender was paused");
    assert!(
        held.buffered_peak < PEAK_BOUND,
        "the loop buffered up to {} bytes for a receiver that does not read",
        held.buffered_peak
    );
    assert!(
        held.bytes_in < sent as u64,
        "input waits in the kernel, not in the loop ({} read, {sent} sent)",
        held.bytes_in
    );

    let reader = read_on_thread(receiver, None);
    write_rest(&mut sender, &data, &mut sent);
    let got = reader.join().expect("the receiver's thread");
    assert_eq!(got.len(), TOTAL);
    assert_eq!(
        util::first_difference(&got, &data),
        None,
        "the relayed bytes are intact"
    );
    assert!(
        resumes.load(Ordering::Relaxed) >= 1,
        "the sender was resumed"
    );
    let end = counters.snapshot();
    assert!(
        end.buffered_peak < PEAK_BOUND,
        "buffered peak {} over the whole transfer",
        end.buffered_peak
    );
    assert_eq!(end.bytes_in, TOTAL as u64);

    // The sender's connection closed in order after its EOF; it reads EOF too.
    let mut rest = Vec::new();
    sender.set_nonblocking(false).unwrap();
    sender.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty());
    server.stop();
}

/// A receiver that reads slowly throughout: the sender is paused and resumed over and
/// over, the loop never holds more than the bound, and the bytes arrive intact.
#[test]
fn a_forwarder_paces_a_sender_to_a_slow_receiver() {
    const SLOW_TOTAL: usize = 16 << 20;
    let data = util::pattern(SLOW_TOTAL);
    let (server, addr, pauses, resumes) = forwarder();
    let (receiver, mut sender) = receiver_and_sender(&server, addr, || small_buffer_client(addr));
    let reader = read_on_thread(receiver, Some(Duration::from_micros(500)));
    let mut sent = 0;
    write_rest(&mut sender, &data, &mut sent);
    let got = reader.join().expect("the receiver's thread");
    assert_eq!(got.len(), SLOW_TOTAL);
    assert_eq!(
        util::first_difference(&got, &data),
        None,
        "the relayed bytes are intact"
    );
    assert!(pauses.load(Ordering::Relaxed) >= 2, "paused more than once");
    assert!(
        resumes.load(Ordering::Relaxed) >= 2,
        "resumed more than once"
    );
    let peak = server.counters.snapshot().buffered_peak;
    println!("buffered peak {peak}");
    assert!(peak < PEAK_BOUND, "buffered peak {peak}");
    server.stop();
}

/// What [`PauseInspector`] saw of one connection's pauses, in order.
type PauseLog = Arc<Mutex<Vec<(&'static str, Option<ReadPause>)>>>;

/// On a client's first input: pauses it and reads back its pause through `Conn` and
/// `Control`, resumes it and reads again, then sends it more than its back-pressure bound
/// and, from a timer (once the loop has acted on the output), reads the loop's pause.
struct PauseInspector {
    log: PauseLog,
    client: Option<ConnId>,
}

impl Handler for PauseInspector {
    fn on_data(&mut self, conn: &mut Conn<'_>, input: &[u8]) -> usize {
        if self.client.is_some() {
            return input.len();
        }
        let id = conn.id();
        self.client = Some(id);
        let mut log = self.log.lock().unwrap();
        log.push(("open", Some(conn.read_pause())));
        conn.pause_reading();
        log.push(("paused", Some(conn.read_pause())));
        log.push(("paused, by id", conn.control().read_pause(id)));
        conn.resume_reading();
        log.push(("resumed", Some(conn.read_pause())));
        conn.send_owned(vec![b'x'; 8 << 20]);
        let now = conn.control().now();
        conn.control().set_timer(now);
        input.len()
    }

    fn on_timer(&mut self, ctl: &mut Control<'_>, _: TimerId) {
        let id = self.client.expect("set before the timer");
        let mut log = self.log.lock().unwrap();
        log.push(("output over the bound", ctl.read_pause(id)));
        ctl.abort(id);
    }
}

#[test]
fn read_pause_tells_the_handlers_pause_from_the_loops() {
    let (event_loop, addr) = util::tcp_loop(netcore::Config {
        max_pending_output: 64 << 10,
        ..util::config()
    });
    let log = PauseLog::default();
    let server = util::spawn(
        event_loop,
        PauseInspector {
            log: Arc::clone(&log),
            client: None,
        },
    );
    // A client that sends and never reads: its output backs up past the bound.
    let mut client = small_buffer_client(addr);
    client.write_all(b"hello").unwrap();
    util::wait_for("the timer's look", BOUND, || log.lock().unwrap().len() == 5);
    let handler = ReadPause::default();
    let mut by_handler = ReadPause::default();
    by_handler.by_handler = true;
    let mut by_backpressure = ReadPause::default();
    by_backpressure.by_backpressure = true;
    assert_eq!(
        *log.lock().unwrap(),
        [
            ("open", Some(handler)),
            ("paused", Some(by_handler)),
            ("paused, by id", Some(by_handler)),
            ("resumed", Some(ReadPause::default())),
            ("output over the bound", Some(by_backpressure)),
        ]
    );
    assert!(by_handler.is_paused() && by_backpressure.is_paused());
    assert!(!handler.is_paused());
    server.stop();
}

/// Pipes the first two clients to each other; from a timer every 5 ms, records the first
/// client's pause once the pipe holds it.
#[derive(Default)]
struct PipePauseInspector {
    clients: Vec<ConnId>,
    seen: Arc<Mutex<Option<ReadPause>>>,
}

impl Handler for PipePauseInspector {
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        self.clients.push(conn.id());
        if let [a, b] = self.clients[..] {
            assert!(conn.control().pipe(a, b));
            let now = conn.control().now();
            conn.control().set_timer(now);
        }
    }

    fn on_timer(&mut self, ctl: &mut Control<'_>, _: TimerId) {
        let pause = ctl.read_pause(self.clients[0]);
        if pause.is_some_and(|p| p.by_pipe) {
            *self.seen.lock().unwrap() = pause;
            return;
        }
        let later = ctl.now() + Duration::from_millis(5);
        ctl.set_timer(later);
    }
}

#[test]
fn read_pause_tells_a_pipes_pause() {
    let (event_loop, addr) = util::tcp_loop(netcore::Config {
        max_pending_output: 64 << 10,
        ..util::config()
    });
    let seen = Arc::new(Mutex::new(None));
    let server = util::spawn(
        event_loop,
        PipePauseInspector {
            clients: Vec::new(),
            seen: Arc::clone(&seen),
        },
    );
    let mut sender = TcpStream::connect(addr).unwrap();
    // The receiving end never reads, so what the pipe sends it backs up past the bound.
    let receiver = small_buffer_client(addr);
    sender.set_write_timeout(Some(BOUND)).unwrap();
    let flood = std::thread::spawn(move || {
        let chunk = vec![b'x'; 64 << 10];
        // Bounded: 64 MiB at most; the write blocks, then times out, once the pipe pauses.
        for _ in 0..1024 {
            if sender.write_all(&chunk).is_err() {
                break;
            }
        }
    });
    util::wait_for("the pipe's pause", BOUND, || seen.lock().unwrap().is_some());
    let pause = seen.lock().unwrap().expect("seen");
    assert!(
        pause.by_pipe && !pause.by_handler && !pause.by_backpressure,
        "{pause:?}"
    );
    // The receiver's close ends the pipe, and with it the sender's blocked write.
    drop(receiver);
    flood.join().unwrap();
    drop(server.stop());
}
