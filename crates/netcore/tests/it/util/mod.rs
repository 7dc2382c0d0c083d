//! Helpers shared by the integration tests: run a loop on a thread, wait for a condition
//! with a deadline, stock handlers.
//!
//! No test sleeps a fixed time to wait for a server: each polls for the condition it needs,
//! with a deadline generous enough for a loaded two-core machine.

#![allow(dead_code)]

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use netcore::{
    CloseReason, Closed, Config, Conn, Control, Counters, EventLoop, Handler, ListenOptions,
};

/// How long any single wait in a test may take before it counts as a failure.
pub const BOUND: Duration = Duration::from_secs(20);

/// What a loop thread hands back: its handler, the loop, and what `run` returned.
type Finished<H, M, T> = (H, EventLoop<M, T>, Result<(), netcore::Error>);

/// A loop running on its own thread (`M`: the type of the messages it takes; `T`: its
/// handler's state per connection).
pub struct Running<H, M = (), T = ()> {
    pub shutdown: netcore::ShutdownHandle,
    pub counters: Arc<Counters>,
    thread: Option<JoinHandle<Finished<H, M, T>>>,
}

/// Runs `event_loop` with `handler` on a new thread.
pub fn spawn<M, T, H>(mut event_loop: EventLoop<M, T>, mut handler: H) -> Running<H, M, T>
where
    M: Send + 'static,
    T: Default + Send + 'static,
    H: Handler<M, T> + Send + 'static,
{
    let shutdown = event_loop.shutdown_handle();
    let counters = event_loop.counters();
    let thread = std::thread::Builder::new()
        .name("netcore-test-loop".into())
        .spawn(move || {
            let result = event_loop.run(&mut handler);
            (handler, event_loop, result)
        })
        .expect("spawn loop thread");
    Running {
        shutdown,
        counters,
        thread: Some(thread),
    }
}

impl<H, M, T> Running<H, M, T> {
    /// Waits (at most `bound`) for `run` to return by itself, and checks it returned `Ok`.
    pub fn join_within(mut self, bound: Duration) -> (H, EventLoop<M, T>) {
        let thread = self.thread.take().expect("joined once");
        let deadline = Instant::now() + bound;
        while !thread.is_finished() {
            assert!(
                Instant::now() < deadline,
                "the event loop did not return within {bound:?}"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
        let (handler, event_loop, result) = thread.join().expect("loop thread panicked");
        result.expect("EventLoop::run failed");
        (handler, event_loop)
    }

    /// Asks the loop to stop and waits (at most [`BOUND`]) for it.
    pub fn stop(self) -> H {
        self.shutdown.shutdown();
        self.join_within(BOUND).0
    }

    pub fn is_finished(&self) -> bool {
        match &self.thread {
            Some(thread) => thread.is_finished(),
            None => true,
        }
    }
}

impl<H, M, T> Drop for Running<H, M, T> {
    fn drop(&mut self) {
        // A failed assertion must not leave a loop serving in the background.
        if self.thread.is_some() {
            self.shutdown.shutdown();
        }
    }
}

/// Polls `cond` until it holds; panics naming `what` after `bound`.
pub fn wait_for(what: &str, bound: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + bound;
    let mut pause = Duration::from_micros(100);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(10));
    }
}

/// Checks that `cond` holds throughout `window` (a bounded negative check: something that
/// must not happen, such as input read from a paused connection, would happen within
/// microseconds on loopback).
pub fn holds_for(what: &str, window: Duration, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + window;
    while Instant::now() < end {
        assert!(cond(), "{what} stopped holding");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(cond(), "{what} stopped holding");
}

/// A configuration whose deadlines are long enough never to fire by accident in a test
/// that does not mean them to.
pub fn config() -> Config {
    Config {
        idle_timeout: Some(BOUND * 2),
        write_timeout: Some(BOUND * 2),
        linger: BOUND,
        drain_timeout: BOUND,
        ..Config::default()
    }
}

pub fn localhost() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// A loopback TCP listener on an ephemeral port.
pub fn tcp_listener() -> (std::net::TcpListener, SocketAddr) {
    let listener = netcore::tcp_listener(localhost(), &ListenOptions::default()).unwrap();
    let addr = listener.local_addr().unwrap();
    (listener, addr)
}

/// A loop with `config` serving one fresh loopback TCP listener.
pub fn tcp_loop<T: Default>(config: Config) -> (EventLoop<(), T>, SocketAddr) {
    let (listener, addr) = tcp_listener();
    let mut event_loop = EventLoop::new(config).unwrap();
    event_loop.add_tcp_listener(listener).unwrap();
    (event_loop, addr)
}

/// A blocking client with read and write timeouts, so that no test can hang on it.
pub fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(BOUND)).unwrap();
    stream.set_write_timeout(Some(BOUND)).unwrap();
    stream
}

/// Reads until EOF; an error (a reset, a timeout) fails the test.
pub fn read_all<R: Read>(stream: &mut R) -> Vec<u8> {
    let mut got = Vec::new();
    stream.read_to_end(&mut got).expect("read until EOF");
    got
}

/// A unique, short directory for Unix sockets (removed on drop).
pub struct TempDir(pub std::path::PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "netcore-{name}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Why each connection closed, as the handler saw it.
#[derive(Debug, Clone, Default)]
pub struct Closes(pub Arc<Mutex<Vec<(CloseReason, usize)>>>);

impl Closes {
    pub fn record(&self, closed: &Closed<'_>) {
        self.0.lock().unwrap().push((closed.reason, closed.unsent));
    }

    pub fn get(&self) -> Vec<(CloseReason, usize)> {
        self.0.lock().unwrap().clone()
    }

    pub fn len(&self) -> usize {
        self.0.lock().unwrap().len()
    }
}

/// Sends one shared message to every client and closes.
pub struct Greeter {
    pub message: Arc<[u8]>,
    pub closes: Closes,
}

impl Greeter {
    pub fn new(message: &[u8]) -> Greeter {
        Greeter {
            message: Arc::from(message),
            closes: Closes::default(),
        }
    }
}

impl Handler for Greeter {
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        conn.send_shared(&self.message);
        conn.close();
    }

    fn on_close(&mut self, _: &mut Control<'_>, closed: &Closed<'_>) {
        self.closes.record(closed);
    }
}

/// Sends back what it reads; records the largest pending output it has seen.
#[derive(Default)]
pub struct Echo {
    pub max_pending: Arc<AtomicUsize>,
    pub closes: Closes,
}

impl Handler for Echo {
    fn on_data(&mut self, conn: &mut Conn<'_>, data: &[u8]) -> usize {
        conn.send(data);
        self.max_pending
            .fetch_max(conn.pending(), Ordering::Relaxed);
        data.len()
    }

    fn on_close(&mut self, _: &mut Control<'_>, closed: &Closed<'_>) {
        self.closes.record(closed);
    }
}

/// `len` bytes that show a loss, a repeat or a reordering anywhere: the little-endian
/// `u32`s 0, 1, 2... (built a word at a time: a debug build is slow per byte).
pub fn pattern(len: usize) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(len + 4);
    for word in 0..len.div_ceil(4) {
        bytes.extend_from_slice(&(word as u32).to_le_bytes());
    }
    bytes.truncate(len);
    bytes
}

/// Where `got` first differs from `want` (or the shorter one ends); `None` when equal.
pub fn first_difference(got: &[u8], want: &[u8]) -> Option<usize> {
    if got == want {
        return None;
    }
    let common = got.iter().zip(want).position(|(a, b)| a != b);
    Some(common.unwrap_or(got.len().min(want.len())))
}

/// Writes `data` completely to a non-blocking socket, retrying on `WouldBlock`.
pub fn write_all_nonblocking<W: Write>(w: &mut W, mut data: &[u8]) {
    let deadline = Instant::now() + BOUND;
    while !data.is_empty() {
        match w.write(data) {
            Ok(n) => data = &data[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                assert!(Instant::now() < deadline, "peer stopped reading");
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(e) => panic!("write: {e}"),
        }
    }
}
