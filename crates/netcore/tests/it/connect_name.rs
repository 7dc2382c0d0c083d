//! Connects by name (`Control::connect_name`, `EventLoop::connect_name`) and what
//! `on_connect` hears of every outgoing connect: numeric forms connect at once without a
//! thread; a name is looked up on the worker pool; every address's error, or the
//! resolver's with its Python number, comes back; a connection waiting for its lookup
//! keeps what was sent to it, and ends cleanly when aborted or shut down first.
//!
//! No case asks DNS: names come from `/etc/hosts` (`localhost`), and failing names fail
//! before any query (a host that is no address, an unknown service).

use crate::util;

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use netcore::{
    CloseReason, Closed, Config, Conn, ConnId, ConnectError, Control, CounterSnapshot, EventLoop,
    Handler, PeerAddr, TimerId,
};
use util::{Greeter, BOUND};

/// What a client heard of its connections (each tagged by the test), in order.
#[derive(Debug, Clone, PartialEq)]
enum Heard {
    Connected(u32, PeerAddr),
    Failed(u32, Failure),
    Closed(u32, CloseReason, PeerAddr),
    /// The test's bound passed before the connections it expected had closed.
    BoundPassed,
}

/// A failed connect, as `on_connect` got it.
#[derive(Debug, Clone, PartialEq)]
struct Failure {
    /// Each address tried, with its error's kind.
    attempts: Vec<(PeerAddr, io::ErrorKind)>,
    /// The resolver's error number (Python's `gaierror.errno`).
    resolve_code: Option<i32>,
    shown: String,
    reason: CloseReason,
}

impl Failure {
    fn of(err: &ConnectError) -> Failure {
        Failure {
            attempts: err
                .attempts()
                .iter()
                .map(|(addr, e)| (addr.clone(), e.kind()))
                .collect(),
            resolve_code: err.resolve_error().and_then(|e| e.code()),
            shown: err.to_string(),
            reason: err.reason(),
        }
    }
}

/// What the client does once its loop runs.
enum Step {
    Name(&'static str, String, u32),
    Addr(SocketAddr, u32),
    /// Holds one worker of the pool until the test sends on the gate.
    Block(mpsc::Receiver<()>),
    /// Sends to the connection tagged so, then shuts its sending side.
    Send(u32, &'static [u8]),
    Abort(u32),
}

/// Carries out its steps from its loop's first timer, records what it hears, and stops
/// its loop once `expect` connections have closed (or the test's bound passed).
struct Client {
    steps: Vec<Step>,
    ids: HashMap<u32, ConnId>,
    heard: Arc<Mutex<Vec<Heard>>>,
    received: HashMap<u32, Vec<u8>>,
    expect: usize,
    closes: usize,
    ran: Arc<AtomicBool>,
    bound: Option<TimerId>,
}

impl Handler<(), u32> for Client {
    fn on_timer(&mut self, ctl: &mut Control<'_, u32>, timer: TimerId) {
        if Some(timer) == self.bound {
            self.heard.lock().unwrap().push(Heard::BoundPassed);
            return ctl.stop();
        }
        for step in std::mem::take(&mut self.steps) {
            match step {
                Step::Name(host, port, tag) => {
                    self.ids.insert(tag, ctl.connect_name(host, &port, tag));
                }
                Step::Addr(addr, tag) => {
                    self.ids.insert(tag, ctl.connect(addr, tag));
                }
                Step::Block(gate) => {
                    let hold = move || gate.recv_timeout(BOUND).is_ok();
                    ctl.spawn_blocking(hold, |_, _| {})
                        .expect("room in the pool");
                }
                Step::Send(tag, data) => {
                    assert!(ctl.send(self.ids[&tag], data));
                    ctl.shutdown_write(self.ids[&tag]);
                }
                Step::Abort(tag) => {
                    assert!(ctl.abort(self.ids[&tag]));
                }
            }
        }
        self.ran.store(true, Ordering::Release);
    }

    fn on_connect(&mut self, conn: &mut Conn<'_, u32>, outcome: Result<&PeerAddr, &ConnectError>) {
        let tag = *conn.state();
        let heard = match outcome {
            Ok(addr) => Heard::Connected(tag, addr.clone()),
            Err(err) => Heard::Failed(tag, Failure::of(err)),
        };
        self.heard.lock().unwrap().push(heard);
    }

    fn on_data(&mut self, conn: &mut Conn<'_, u32>, input: &[u8]) -> usize {
        let tag = *conn.state();
        self.received
            .entry(tag)
            .or_default()
            .extend_from_slice(input);
        input.len()
    }

    fn on_close(&mut self, ctl: &mut Control<'_, u32>, closed: &Closed<'_, u32>) {
        let heard = Heard::Closed(closed.state, closed.reason, closed.peer.clone());
        self.heard.lock().unwrap().push(heard);
        self.closes += 1;
        if self.closes == self.expect {
            ctl.stop();
        }
    }
}

/// A client loop running `steps` on a thread of its own.
struct Started {
    running: util::Running<Client, (), u32>,
    heard: Arc<Mutex<Vec<Heard>>>,
    ran: Arc<AtomicBool>,
}

/// What a client's run came to.
struct Finished {
    heard: Vec<Heard>,
    received: HashMap<u32, Vec<u8>>,
    counters: CounterSnapshot,
}

fn start(config: Config, steps: Vec<Step>, expect: usize) -> Started {
    let mut event_loop = EventLoop::new(config).unwrap();
    let now = Instant::now();
    event_loop.set_timer(now);
    let bound = event_loop.set_timer(now + BOUND);
    let heard = Arc::new(Mutex::new(Vec::new()));
    let ran = Arc::new(AtomicBool::new(false));
    let client = Client {
        steps,
        ids: HashMap::new(),
        heard: Arc::clone(&heard),
        received: HashMap::new(),
        expect,
        closes: 0,
        ran: Arc::clone(&ran),
        bound: Some(bound),
    };
    Started {
        running: util::spawn(event_loop, client),
        heard,
        ran,
    }
}

impl Started {
    fn finish(self) -> Finished {
        let counters = Arc::clone(&self.running.counters);
        let (client, _) = self.running.join_within(BOUND * 2);
        Finished {
            heard: self.heard.lock().unwrap().clone(),
            received: client.received,
            counters: counters.snapshot(),
        }
    }
}

fn run(config: Config, steps: Vec<Step>, expect: usize) -> Finished {
    start(config, steps, expect).finish()
}

/// A connect by name to `host` and `port` that fails before any address is tried: what
/// the run came to, and the failure, close reason and peer it heard, in that order.
fn name_not_resolved(host: &'static str, port: &str) -> (Finished, Failure, CloseReason, PeerAddr) {
    let done = run(util::config(), vec![Step::Name(host, port.into(), 1)], 1);
    let [Heard::Failed(1, failure), Heard::Closed(1, reason, peer)] = &done.heard[..] else {
        panic!("heard {:?}", done.heard);
    };
    let (failure, reason, peer) = (failure.clone(), *reason, peer.clone());
    (done, failure, reason, peer)
}

/// A port on 127.0.0.1 nothing listens on.
fn refusing_port() -> u16 {
    let (listener, addr) = util::tcp_listener();
    drop(listener);
    addr.port()
}

/// What `resolver` (and so `connect_name`) makes of `host` and `port`, in order.
fn addresses(host: &str, port: u16) -> Vec<PeerAddr> {
    resolver::socket_addrs(
        host,
        &port.to_string(),
        resolver::Family::Any,
        resolver::Transport::Tcp,
    )
    .expect("resolves from /etc/hosts")
    .into_iter()
    .map(PeerAddr::Inet)
    .collect()
}

fn unresolved() -> PeerAddr {
    PeerAddr::Inet("0.0.0.0:0".parse().unwrap())
}

#[test]
fn numeric_forms_connect_at_once_without_a_thread() {
    let (server_loop, addr) = util::tcp_loop(util::config());
    let server = util::spawn(server_loop, Greeter::new(b"hello"));
    let port = addr.port().to_string();
    let done = run(
        util::config(),
        vec![
            Step::Name("127.0.0.1", port.clone(), 1),
            // glibc's short form, as Python's socket takes it.
            Step::Name("127.1", port, 2),
        ],
        2,
    );
    for tag in [1, 2] {
        let heard: Vec<&Heard> = done
            .heard
            .iter()
            .filter(|h| tag_of(h) == Some(tag))
            .collect();
        assert_eq!(
            heard,
            [
                &Heard::Connected(tag, PeerAddr::Inet(addr)),
                &Heard::Closed(tag, CloseReason::Done, PeerAddr::Inet(addr)),
            ]
        );
        assert_eq!(done.received[&tag], b"hello");
    }
    assert_eq!(done.counters.blocking_jobs, 0, "no lookup");
    assert_eq!(done.counters.blocking_threads, 0, "no thread started");
    server.stop();
}

#[test]
fn localhost_is_looked_up_on_the_worker_pool_and_its_address_that_answers_connects() {
    let (server_loop, addr) = util::tcp_loop(util::config());
    let server = util::spawn(server_loop, Greeter::new(b"hello"));
    // `localhost` may be ::1 before 127.0.0.1: the server is on 127.0.0.1 only, so any
    // address before it is refused and the next one tried.
    assert!(addresses("localhost", addr.port()).contains(&PeerAddr::Inet(addr)));
    let done = run(
        util::config(),
        vec![Step::Name("localhost", addr.port().to_string(), 1)],
        1,
    );
    assert_eq!(
        done.heard,
        [
            Heard::Connected(1, PeerAddr::Inet(addr)),
            Heard::Closed(1, CloseReason::Done, PeerAddr::Inet(addr)),
        ]
    );
    assert_eq!(done.received[&1], b"hello");
    assert_eq!(done.counters.blocking_jobs, 1, "one lookup, on the pool");
    server.stop();
}

#[test]
fn a_refused_port_reports_every_address_with_its_error() {
    let port = refusing_port();
    let want = addresses("localhost", port);
    let done = run(
        util::config(),
        vec![Step::Name("localhost", port.to_string(), 1)],
        1,
    );
    let [Heard::Failed(1, failure), Heard::Closed(1, reason, last)] = &done.heard[..] else {
        panic!("heard {:?}", done.heard);
    };
    let refused: Vec<(PeerAddr, io::ErrorKind)> = want
        .iter()
        .map(|a| (a.clone(), io::ErrorKind::ConnectionRefused))
        .collect();
    assert_eq!(failure.attempts, refused);
    assert_eq!(failure.resolve_code, None);
    assert_eq!(
        (failure.reason, *reason),
        (CloseReason::Refused, CloseReason::Refused)
    );
    assert_eq!(
        Some(last),
        want.last(),
        "on_close's peer: the last address tried"
    );
    // Every address, with its error, after the target the handler asked for.
    let text = io::Error::from_raw_os_error(libc::ECONNREFUSED).to_string();
    let each: Vec<String> = want
        .iter()
        .map(|a| match a {
            PeerAddr::Inet(a) => format!("{a}: {text}"),
            PeerAddr::Unix(_) => unreachable!("TCP"),
        })
        .collect();
    assert_eq!(
        failure.shown,
        format!("connect localhost:{port}: {}", each.join("; "))
    );
}

#[test]
fn an_unknown_service_reports_the_resolvers_error_with_its_python_number() {
    let (done, failure, reason, peer) = name_not_resolved("127.0.0.1", "nosuchservice");
    // Python: socket.gaierror: [Errno -8] Servname not supported for ai_socktype
    assert_eq!(failure.resolve_code, Some(libc::EAI_SERVICE));
    assert_eq!(failure.resolve_code, Some(-8));
    assert!(failure.attempts.is_empty(), "{failure:?}");
    assert_eq!(
        failure.shown,
        "connect 127.0.0.1:nosuchservice: port \"nosuchservice\": \
         [Errno -8] Servname not supported for ai_socktype"
    );
    assert!(
        matches!(reason, CloseReason::ConnectFailed(_)),
        "{reason:?}"
    );
    assert_eq!(failure.reason, reason);
    assert_eq!(peer, unresolved(), "never resolved");
    assert_eq!(
        done.counters.blocking_jobs, 1,
        "the service was looked up on the pool"
    );
}

#[test]
fn a_host_that_is_no_address_fails_with_eai_noname_without_a_lookup() {
    let (done, failure, reason, _) = name_not_resolved("no:such:host", "80");
    // Python: socket.gaierror: [Errno -2] Name or service not known
    assert_eq!(failure.resolve_code, Some(libc::EAI_NONAME));
    assert_eq!(failure.resolve_code, Some(-2));
    assert!(
        failure
            .shown
            .starts_with("connect [no:such:host]:80: host \"no:such:host\": [Errno -2]"),
        "{}",
        failure.shown
    );
    assert!(
        matches!(reason, CloseReason::ConnectFailed(_)),
        "{reason:?}"
    );
    assert_eq!(done.counters.blocking_jobs, 0, "refused before any lookup");
}

#[test]
fn a_plain_connect_hears_its_failure_in_on_connect_then_on_close() {
    let refused: SocketAddr = format!("127.0.0.1:{}", refusing_port()).parse().unwrap();
    let done = run(util::config(), vec![Step::Addr(refused, 1)], 1);
    let peer = PeerAddr::Inet(refused);
    let text = io::Error::from_raw_os_error(libc::ECONNREFUSED).to_string();
    assert_eq!(
        done.heard,
        [
            Heard::Failed(
                1,
                Failure {
                    attempts: vec![(peer.clone(), io::ErrorKind::ConnectionRefused)],
                    resolve_code: None,
                    shown: format!("connect {refused}: {text}"),
                    reason: CloseReason::Refused,
                }
            ),
            Heard::Closed(1, CloseReason::Refused, peer),
        ]
    );
}

#[test]
fn a_connect_waiting_for_a_busy_pool_keeps_what_was_sent_to_it_and_the_half_close() {
    let (server_loop, addr) = util::tcp_loop(util::config());
    let server = util::spawn(server_loop, util::Echo::default());
    let (release, gate) = mpsc::channel();
    let config = Config {
        blocking_threads: 1,
        ..util::config()
    };
    let started = start(
        config,
        vec![
            // The pool's one thread is busy: the lookup waits behind it, and the
            // connection with its placeholder socket meanwhile.
            Step::Block(gate),
            Step::Name("localhost", addr.port().to_string(), 1),
            Step::Send(1, b"queued before the name was resolved"),
        ],
        1,
    );
    util::wait_for("the client's steps", BOUND, || {
        started.ran.load(Ordering::Acquire)
    });
    util::holds_for(
        "nothing heard while the lookup waits",
        Duration::from_millis(200),
        || started.heard.lock().unwrap().is_empty(),
    );
    release.send(()).unwrap();
    let done = started.finish();
    assert_eq!(
        done.heard,
        [
            Heard::Connected(1, PeerAddr::Inet(addr)),
            Heard::Closed(1, CloseReason::Done, PeerAddr::Inet(addr)),
        ]
    );
    assert_eq!(done.received[&1], b"queued before the name was resolved");
    server.stop();
}

#[test]
fn a_connect_ended_before_its_name_resolved_hears_why() {
    let port = refusing_port().to_string();
    let (release, gate) = mpsc::channel();
    let config = Config {
        blocking_threads: 1,
        ..util::config()
    };
    let started = start(
        config,
        vec![
            Step::Block(gate),
            Step::Name("localhost", port.clone(), 1),
            Step::Name("localhost", port.clone(), 2),
            Step::Abort(1),
        ],
        // The loop stops once both ended: the second by the shutdown below.
        2,
    );
    util::wait_for("the client's steps", BOUND, || {
        started.ran.load(Ordering::Acquire)
    });
    util::wait_for("the aborted one's close", BOUND, || {
        started.heard.lock().unwrap().len() == 2
    });
    started.running.shutdown.shutdown();
    let done = started.finish();
    release.send(()).ok();
    let ended = |tag, reason, why: &str| {
        [
            Heard::Failed(
                tag,
                Failure {
                    attempts: Vec::new(),
                    resolve_code: None,
                    shown: format!("connect localhost:{port}: {why}"),
                    reason,
                },
            ),
            Heard::Closed(tag, reason, unresolved()),
        ]
    };
    let mut want = ended(1, CloseReason::Aborted, "aborted").to_vec();
    want.extend(ended(2, CloseReason::Shutdown, "the event loop shut down"));
    assert_eq!(done.heard, want);
}

#[test]
fn a_full_pool_fails_a_connect_by_name_at_once() {
    let (release, gate) = mpsc::channel();
    let config = Config {
        blocking_threads: 1,
        blocking_queue: 1,
        ..util::config()
    };
    let done = run(
        config,
        vec![Step::Block(gate), Step::Name("localhost", "80".into(), 1)],
        1,
    );
    release.send(()).ok();
    let [Heard::Failed(1, failure), Heard::Closed(1, reason, _)] = &done.heard[..] else {
        panic!("heard {:?}", done.heard);
    };
    assert_eq!(
        *reason,
        CloseReason::ConnectFailed(io::ErrorKind::WouldBlock)
    );
    assert_eq!(
        failure.shown,
        "connect localhost:80: the event loop's worker pool is full"
    );
    assert_eq!(done.counters.blocking_refused, 1);
}

/// The connection `heard` is about; `None` for the test's bound.
fn tag_of(heard: &Heard) -> Option<u32> {
    match heard {
        Heard::Connected(tag, _) | Heard::Failed(tag, _) | Heard::Closed(tag, _, _) => Some(*tag),
        Heard::BoundPassed => None,
    }
}
