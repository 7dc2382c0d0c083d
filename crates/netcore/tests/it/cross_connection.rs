//! Acting on another connection by its `ConnId`, through `Control`, from any callback:
//! send, close, abort, half-close, pending output, deadlines, pausing and resuming reading,
//! local address and `TCP_NODELAY`; a stale id after its slot was reused; datagrams sent from
//! a timer.
//!
//! Most tests drive a [`Remote`] loop: its first client is a controller whose text commands
//! (`close 2`) act, from that client's `on_data`, on the connection accepted as number 2.

use crate::util;

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream, UdpSocket};
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use netcore::{
    CloseReason, Closed, Conn, ConnId, Control, EventLoop, Handler, ListenOptions, PeerAddr,
    SocketId, TimerId,
};
use socket2::{Domain, Socket, Type};
use util::{Running, BOUND};

/// What a [`Remote`] loop saw, readable from the test's thread.
#[derive(Debug, Clone, Default)]
struct Seen {
    /// Every connection's id, by number: the order in which they were accepted (number 0
    /// is the controller).
    ids: Arc<Mutex<Vec<ConnId>>>,
    /// What each connection but the controller sent, by number.
    data: Arc<Mutex<HashMap<usize, Vec<u8>>>>,
    /// How each connection closed, and how many bytes it left unsent, by number.
    closes: Arc<Mutex<HashMap<usize, (CloseReason, usize)>>>,
    /// The answers of commands run from a timer (`later OP N`), in order.
    later: Arc<Mutex<Vec<String>>>,
}

impl Seen {
    fn opened(&self) -> usize {
        self.ids.lock().unwrap().len()
    }

    fn data(&self, n: usize) -> Vec<u8> {
        self.data
            .lock()
            .unwrap()
            .get(&n)
            .cloned()
            .unwrap_or_default()
    }

    fn close(&self, n: usize) -> Option<(CloseReason, usize)> {
        self.closes.lock().unwrap().get(&n).copied()
    }
}

/// Numbers connections as they open; runs the controller's commands on other connections
/// through `Control` and answers each with its result; records everything else.
#[derive(Default)]
struct Remote {
    seen: Seen,
    /// The controller's input not yet ended by a newline.
    commands: Vec<u8>,
    /// Commands to run from a timer's callback instead of the controller's `on_data`.
    timed: HashMap<TimerId, String>,
}

impl Handler<(), u64> for Remote {
    fn on_open(&mut self, conn: &mut Conn<'_, u64>) {
        let mut ids = self.seen.ids.lock().unwrap();
        *conn.state() = ids.len() as u64;
        ids.push(conn.id());
    }

    fn on_data(&mut self, conn: &mut Conn<'_, u64>, data: &[u8]) -> usize {
        let n = *conn.state() as usize;
        if n != 0 {
            let mut seen = self.seen.data.lock().unwrap();
            seen.entry(n).or_default().extend_from_slice(data);
            return data.len();
        }
        self.commands.extend_from_slice(data);
        while let Some(end) = self.commands.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.commands.drain(..=end).collect();
            let line = String::from_utf8_lossy(&line[..end]).into_owned();
            let mut answer = self.run(conn.control(), &line);
            answer.push('\n');
            conn.send(answer.as_bytes());
        }
        data.len()
    }

    fn on_timer(&mut self, ctl: &mut Control<'_, u64>, timer: TimerId) {
        if let Some(command) = self.timed.remove(&timer) {
            let answer = self.run(ctl, &command);
            self.seen.later.lock().unwrap().push(answer);
        }
    }

    fn on_close(&mut self, _: &mut Control<'_, u64>, closed: &Closed<'_, u64>) {
        self.seen
            .closes
            .lock()
            .unwrap()
            .insert(closed.state as usize, (closed.reason, closed.unsent));
    }
}

impl Remote {
    /// Runs one command, `OP N [ARG]`, on connection number `N`; returns what `Control`
    /// returned, written out. `later OP N [ARG]` runs `OP N [ARG]` from a timer's callback
    /// (its answer goes to [`Seen::later`]).
    fn run(&mut self, ctl: &mut Control<'_, u64>, line: &str) -> String {
        if let Some(command) = line.strip_prefix("later ") {
            let timer = ctl.set_timer(ctl.now());
            self.timed.insert(timer, command.to_string());
            return "set".to_string();
        }
        let mut words = line.splitn(3, ' ');
        let op = words.next().unwrap_or("");
        let n: usize = words.next().and_then(|n| n.parse().ok()).expect("N");
        let arg = words.next().unwrap_or("");
        let id = self.seen.ids.lock().unwrap()[n];
        let io_result = |r: io::Result<String>| match r {
            Ok(s) => s,
            Err(e) => format!("Err({:?})", e.kind()),
        };
        match op {
            "send" => ctl.send(id, arg.as_bytes()).to_string(),
            "shared" => ctl.send_shared(id, &Arc::from(arg.as_bytes())).to_string(),
            "fill" => ctl
                .send(id, &util::pattern(arg.parse().expect("size")))
                .to_string(),
            "close" => ctl.close(id).to_string(),
            "abort" => ctl.abort(id).to_string(),
            "shut" => ctl.shutdown_write(id).to_string(),
            "pause" => ctl.pause_reading(id).to_string(),
            "resume" => ctl.resume_reading(id).to_string(),
            "deadline" => {
                let after = Duration::from_millis(arg.parse().expect("milliseconds"));
                ctl.set_deadline(id, Some(ctl.now() + after)).to_string()
            }
            "open" => ctl.is_open(id).to_string(),
            "pending" => format!("{:?}", ctl.pending(id)),
            "tag" => format!("{:?}", ctl.state(id).map(|n| *n)),
            "local" => io_result(ctl.local_addr(id).map(|a| format!("{a:?}"))),
            "nodelay" => io_result(ctl.set_nodelay(id, true).map(|()| "Ok".to_string())),
            other => panic!("unknown command {other:?}"),
        }
    }
}

/// A [`Remote`] loop on its own thread, and its controller.
struct Setup {
    server: Running<Remote, (), u64>,
    addr: SocketAddr,
    seen: Seen,
    controller: Controller,
}

/// The client whose lines are commands.
struct Controller {
    stream: TcpStream,
    replies: BufReader<TcpStream>,
}

impl Controller {
    /// Sends one command and returns its answer.
    fn ask(&mut self, command: &str) -> String {
        self.stream
            .write_all(format!("{command}\n").as_bytes())
            .unwrap();
        let mut answer = String::new();
        self.replies.read_line(&mut answer).expect("an answer");
        assert!(answer.ends_with('\n'), "{command:?}: no answer");
        answer.pop();
        answer
    }
}

fn setup(event_loop: EventLoop<(), u64>, addr: SocketAddr) -> Setup {
    let remote = Remote::default();
    let seen = remote.seen.clone();
    let server = util::spawn(event_loop, remote);
    let stream = util::connect(addr);
    let replies = BufReader::new(stream.try_clone().unwrap());
    util::wait_for("the controller's on_open", BOUND, || seen.opened() == 1);
    Setup {
        server,
        addr,
        seen,
        controller: Controller { stream, replies },
    }
}

fn remote_loop() -> Setup {
    let (event_loop, addr) = util::tcp_loop(util::config());
    setup(event_loop, addr)
}

impl Setup {
    /// Connects a client and waits until the loop has numbered it; returns its number.
    fn client(&self) -> (TcpStream, usize) {
        self.client_with(|| util::connect(self.addr))
    }

    fn client_with<S>(&self, connect: impl FnOnce() -> S) -> (S, usize) {
        let n = self.seen.opened();
        let stream = connect();
        util::wait_for("the client's on_open", BOUND, || {
            self.seen.opened() == n + 1
        });
        (stream, n)
    }

    /// A client with a small receive buffer that does not read yet, so that output to it
    /// backs up in the loop.
    fn slow_client(&self) -> (TcpStream, usize) {
        self.client_with(|| {
            let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
            socket.set_recv_buffer_size(16 << 10).unwrap();
            socket.connect(&self.addr.into()).unwrap();
            let stream: TcpStream = socket.into();
            stream.set_read_timeout(Some(BOUND)).unwrap();
            stream
        })
    }

    fn wait_close(&self, n: usize) -> (CloseReason, usize) {
        util::wait_for(&format!("connection {n} to close"), BOUND, || {
            self.seen.close(n).is_some()
        });
        self.seen.close(n).unwrap()
    }
}

/// Pairs the first two connections: what one sends, the other gets.
#[derive(Default)]
struct Relay {
    ids: Arc<Mutex<Vec<ConnId>>>,
}

impl Handler for Relay {
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        self.ids.lock().unwrap().push(conn.id());
    }

    fn on_data(&mut self, conn: &mut Conn<'_>, data: &[u8]) -> usize {
        let ids = self.ids.lock().unwrap();
        let other = if conn.id() == ids[0] { ids[1] } else { ids[0] };
        assert!(conn.control().send(other, data), "the other side is open");
        data.len()
    }
}

/// A client that never speaks gets what the other sends at once: a send to another
/// connection is written without waiting for an event on it.
#[test]
fn a_relay_delivers_to_a_client_that_never_spoke() {
    let (event_loop, addr) = util::tcp_loop(util::config());
    let relay = Relay::default();
    let ids = Arc::clone(&relay.ids);
    let server = util::spawn(event_loop, relay);
    let mut a = util::connect(addr);
    util::wait_for("a's on_open", BOUND, || ids.lock().unwrap().len() == 1);
    let mut b = util::connect(addr);
    util::wait_for("b's on_open", BOUND, || ids.lock().unwrap().len() == 2);

    a.write_all(b"hello, b").unwrap();
    let mut got = [0; 8];
    b.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"hello, b");

    // The other way, more than one socket buffer's worth, read while it is written.
    let big = util::pattern(4 << 20);
    let writer = {
        let big = big.clone();
        std::thread::spawn(move || b.write_all(&big).map(|()| b))
    };
    let mut echoed = vec![0; big.len()];
    a.read_exact(&mut echoed).unwrap();
    let _b = writer.join().unwrap().unwrap();
    assert!(echoed == big, "the relayed bytes differ");
    server.stop();
}

/// `Control::close` on another connection flushes what was queued, then the peer reads EOF.
#[test]
fn closing_another_connection_flushes_it_and_its_client_reads_eof() {
    let mut s = remote_loop();
    let (mut client, n) = s.client();
    assert_eq!(s.controller.ask(&format!("shared {n} goodbye")), "true");
    assert_eq!(s.controller.ask(&format!("close {n}")), "true");
    assert_eq!(util::read_all(&mut client), b"goodbye");
    assert_eq!(s.wait_close(n), (CloseReason::Done, 0));
    assert_eq!(s.controller.ask(&format!("open {n}")), "false");
    assert_eq!(
        s.controller.ask("open 0"),
        "true",
        "the caller is untouched"
    );
    s.server.stop();
}

/// `Control::abort` on another connection closes it at once: input it never read makes the
/// kernel reset the connection, and its client sees the reset.
#[test]
fn aborting_another_connection_resets_it() {
    let mut s = remote_loop();
    let (mut client, n) = s.client();
    assert_eq!(s.controller.ask(&format!("pause {n}")), "true");
    client.write_all(b"never read").unwrap();
    assert_eq!(s.controller.ask(&format!("abort {n}")), "true");
    let mut buf = [0; 16];
    let err = client.read(&mut buf).expect_err("a reset, not data or EOF");
    assert_eq!(err.kind(), io::ErrorKind::ConnectionReset);
    assert_eq!(s.wait_close(n), (CloseReason::Aborted, 0));
    assert!(s.seen.data(n).is_empty());
    s.server.stop();
}

/// `Control::abort` drops the output queued on the connection (where `close` would have
/// delivered it all), and `Control::pending` reports it while it waits.
#[test]
fn aborting_another_connection_drops_its_queued_output() {
    const SIZE: usize = 8 << 20;
    let mut s = remote_loop();
    let (mut client, n) = s.slow_client();
    assert_eq!(s.controller.ask(&format!("fill {n} {SIZE}")), "true");
    let pending = s.controller.ask(&format!("pending {n}"));
    let waiting: usize = pending
        .strip_prefix("Some(")
        .and_then(|p| p.strip_suffix(')'))
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("pending: {pending}"));
    assert!(waiting > 0 && waiting <= SIZE, "pending {waiting}");
    assert_eq!(s.controller.ask(&format!("abort {n}")), "true");
    let (reason, unsent) = s.wait_close(n);
    assert_eq!(reason, CloseReason::Aborted);
    assert!(unsent > 0, "queued output was dropped");
    assert_eq!(s.server.counters.snapshot().buffered, 0, "and freed");
    // The client gets what its kernel had taken, then EOF or a reset; never all of it.
    let mut got = 0;
    let mut buf = vec![0; 64 << 10];
    loop {
        match client.read(&mut buf) {
            Ok(0) => break,
            Ok(k) => got += k,
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("read: {e}"),
        }
    }
    assert!(got < SIZE, "an aborted connection delivered everything");
    s.server.stop();
}

/// `Control::pending` on another connection: what its slow client has not taken yet, down
/// to `Some(0)` once it has read everything.
#[test]
fn pending_output_of_another_connection() {
    const SIZE: usize = 4 << 20;
    let mut s = remote_loop();
    let (mut client, n) = s.slow_client();
    assert_eq!(s.controller.ask(&format!("pending {n}")), "Some(0)");
    assert_eq!(s.controller.ask(&format!("fill {n} {SIZE}")), "true");
    let pending = s.controller.ask(&format!("pending {n}"));
    let waiting: u64 = pending
        .strip_prefix("Some(")
        .and_then(|p| p.strip_suffix(')'))
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("pending: {pending}"));
    assert!(
        waiting > 0,
        "a 16 KiB receive buffer cannot take {SIZE} bytes"
    );
    let buffered = s.server.counters.snapshot().buffered;
    assert!(
        buffered >= waiting,
        "the buffered gauge ({buffered}) counts the pending output ({waiting})"
    );

    let mut got = vec![0; SIZE];
    client.read_exact(&mut got).unwrap();
    assert!(got == util::pattern(SIZE), "the output arrived intact");
    util::wait_for("pending to fall to 0", BOUND, || {
        s.controller.ask(&format!("pending {n}")) == "Some(0)"
    });
    assert_eq!(s.server.counters.snapshot().buffered, 0);
    s.server.stop();
}

/// `Control::shutdown_write` on another connection: its client reads what was queued, then
/// EOF, and can still send; the connection stays open until the client shuts its side too.
#[test]
fn shutting_the_write_side_of_another_connection_half_closes_it() {
    let mut s = remote_loop();
    let (mut client, n) = s.client();
    assert_eq!(s.controller.ask(&format!("send {n} last words")), "true");
    assert_eq!(s.controller.ask(&format!("shut {n}")), "true");
    assert_eq!(util::read_all(&mut client), b"last words");

    client.write_all(b"still talking").unwrap();
    util::wait_for("input after the half-close", BOUND, || {
        s.seen.data(n) == b"still talking"
    });
    assert_eq!(s.controller.ask(&format!("open {n}")), "true");
    assert_eq!(
        s.controller.ask(&format!("send {n} more")),
        "false",
        "nothing can be sent once the sending side is shut"
    );
    assert_eq!(s.seen.close(n), None);

    client.shutdown(Shutdown::Write).unwrap();
    assert_eq!(s.wait_close(n), (CloseReason::Done, 0));
    s.server.stop();
}

/// `Control::set_deadline` on another connection: it closes with `Timeout` when the
/// deadline passes, and only it does.
#[test]
fn a_deadline_set_on_another_connection_times_it_out() {
    let mut s = remote_loop();
    let (mut doomed, n) = s.client();
    let (mut other, m) = s.client();
    let set = Instant::now();
    assert_eq!(s.controller.ask(&format!("deadline {n} 300")), "true");
    assert!(util::read_all(&mut doomed).is_empty());
    let (reason, _) = s.wait_close(n);
    assert_eq!(reason, CloseReason::Timeout);
    assert!(
        set.elapsed() >= Duration::from_millis(250),
        "closed after {:?}, before its deadline",
        set.elapsed()
    );
    assert_eq!(s.server.counters.snapshot().timeouts, 1);

    assert_eq!(s.controller.ask(&format!("open {m}")), "true");
    assert_eq!(s.controller.ask(&format!("send {m} alive")), "true");
    let mut got = [0; 5];
    other.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"alive");
    assert_eq!(s.controller.ask("open 0"), "true");
    s.server.stop();
}

/// Which callback a test acts on a connection from.
#[derive(Clone, Copy)]
enum Caller {
    /// The controller's `on_data`: another connection's callback.
    ControllerData,
    /// A timer's callback.
    Timer,
}

impl Setup {
    /// Runs `command` (`OP N [ARG]`) from `caller`'s callback and returns its answer.
    fn act(&mut self, command: &str, caller: Caller) -> String {
        match caller {
            Caller::ControllerData => self.controller.ask(command),
            Caller::Timer => {
                let answers = self.seen.later.lock().unwrap().len();
                assert_eq!(self.controller.ask(&format!("later {command}")), "set");
                util::wait_for("the timer's command", BOUND, || {
                    self.seen.later.lock().unwrap().len() > answers
                });
                self.seen.later.lock().unwrap()[answers].clone()
            }
        }
    }
}

/// Closing another connection whose input waits unread (it is paused) drains that input
/// first, so the close is orderly: its client reads what was sent, then EOF, not a reset.
fn closing_with_unread_input_is_orderly(caller: Caller) {
    let mut s = remote_loop();
    let (mut client, n) = s.client();
    assert_eq!(s.controller.ask(&format!("pause {n}")), "true");
    client.write_all(b"unread").unwrap();
    assert_eq!(s.controller.ask(&format!("send {n} bye")), "true");
    assert_eq!(s.act(&format!("close {n}"), caller), "true");
    let mut got = Vec::new();
    let result = client.read_to_end(&mut got);
    assert!(result.is_ok(), "the client's read: {result:?}");
    assert_eq!(got, b"bye");
    drop(client);
    assert_eq!(s.wait_close(n), (CloseReason::Done, 0));
    assert!(s.seen.data(n).is_empty(), "input after close is dropped");
    s.server.stop();
}

#[test]
fn closing_another_connection_with_unread_input_from_a_timer_is_orderly() {
    closing_with_unread_input_is_orderly(Caller::Timer);
}

#[test]
fn closing_another_connection_with_unread_input_from_its_data_is_orderly() {
    closing_with_unread_input_is_orderly(Caller::ControllerData);
}

/// `Control::pause_reading` on another connection holds its input in the kernel;
/// `resume_reading` reads it, even though nothing more arrives to raise a new readiness
/// edge (the read the loop owes a resumed connection).
fn pause_holds_input_until_resumed(caller: Caller) {
    let mut s = remote_loop();
    let (mut client, n) = s.client();
    client.write_all(b"before ").unwrap();
    util::wait_for("input before the pause", BOUND, || {
        s.seen.data(n) == b"before "
    });

    assert_eq!(s.controller.ask(&format!("pause {n}")), "true");
    client.write_all(b"while paused").unwrap();
    util::holds_for(
        "nothing read while paused",
        Duration::from_millis(300),
        || s.seen.data(n) == b"before ",
    );
    // The loop keeps serving others meanwhile.
    assert_eq!(s.controller.ask(&format!("open {n}")), "true");
    assert_eq!(s.seen.data(n), b"before ");

    assert_eq!(s.act(&format!("resume {n}"), caller), "true");
    util::wait_for("the input that waited", BOUND, || {
        s.seen.data(n) == b"before while paused"
    });
    client.write_all(b", after").unwrap();
    util::wait_for("input after the resume", BOUND, || {
        s.seen.data(n) == b"before while paused, after"
    });
    assert_eq!(s.seen.close(n), None);
    s.server.stop();
}

#[test]
fn pausing_another_connection_holds_its_input_until_a_timer_resumes_it() {
    pause_holds_input_until_resumed(Caller::Timer);
}

#[test]
fn pausing_another_connection_holds_its_input_until_another_connection_resumes_it() {
    pause_holds_input_until_resumed(Caller::ControllerData);
}

/// A paused connection's EOF (and the data before it) waits too, and arrives once reading
/// resumes; then the connection closes in order.
fn eof_while_paused_is_seen_after_resume(caller: Caller) {
    let mut s = remote_loop();
    let (mut client, n) = s.client();
    assert_eq!(s.controller.ask(&format!("pause {n}")), "true");
    client.write_all(b"bye").unwrap();
    client.shutdown(Shutdown::Write).unwrap();
    util::holds_for(
        "nothing read while paused",
        Duration::from_millis(200),
        || s.seen.data(n).is_empty() && s.seen.close(n).is_none(),
    );
    assert_eq!(s.act(&format!("resume {n}"), caller), "true");
    assert_eq!(s.wait_close(n), (CloseReason::Done, 0));
    assert_eq!(s.seen.data(n), b"bye");
    assert!(util::read_all(&mut client).is_empty());
    s.server.stop();
}

#[test]
fn eof_that_arrived_while_paused_is_seen_after_a_timer_resumes() {
    eof_while_paused_is_seen_after_resume(Caller::Timer);
}

#[test]
fn eof_that_arrived_while_paused_is_seen_after_another_connection_resumes() {
    eof_while_paused_is_seen_after_resume(Caller::ControllerData);
}

/// An id kept after its connection closed, used once its slot has been reused: every
/// `Control` method reports it stale, and none of the live connections (one of which holds
/// the slot now) is touched.
#[test]
fn a_stale_id_is_reported_and_never_reaches_the_connection_in_its_slot() {
    let mut s = remote_loop();
    let (gone, n) = s.client();
    drop(gone);
    assert_eq!(s.wait_close(n), (CloseReason::Done, 0));

    // Slots are reused, most recently freed first: the first of these takes the old one.
    let mut live: Vec<(TcpStream, usize)> = (0..6).map(|_| s.client()).collect();
    for (client, k) in &mut live {
        client.write_all(format!("hello {k};").as_bytes()).unwrap();
    }
    for (_, k) in &live {
        let hello = format!("hello {k};").into_bytes();
        util::wait_for("each hello", BOUND, || s.seen.data(*k) == hello);
    }
    {
        let ids = s.seen.ids.lock().unwrap();
        assert!(ids[n + 1..].iter().all(|id| *id != ids[n]));
    }

    for (command, answer) in [
        ("send {n} stale", "false"),
        ("shared {n} stale", "false"),
        ("fill {n} 100000", "false"),
        ("pause {n}", "false"),
        ("shut {n}", "false"),
        ("deadline {n} 0", "false"),
        ("resume {n}", "false"),
        ("close {n}", "false"),
        ("abort {n}", "false"),
        ("open {n}", "false"),
        ("pending {n}", "None"),
        ("tag {n}", "None"),
        ("local {n}", "Err(NotConnected)"),
        ("nodelay {n}", "Err(NotConnected)"),
    ] {
        let command = command.replace("{n}", &n.to_string());
        assert_eq!(s.controller.ask(&command), answer, "{command}");
    }

    // Every live connection is as it was: open, no deadline, not paused, not shut, and
    // nothing queued on it but what is sent now.
    for (client, k) in &mut live {
        assert_eq!(s.controller.ask(&format!("open {k}")), "true");
        assert_eq!(s.controller.ask(&format!("tag {k}")), format!("Some({k})"));
        assert_eq!(s.controller.ask(&format!("pending {k}")), "Some(0)");
        assert_eq!(s.controller.ask(&format!("send {k} ping")), "true");
        let mut got = [0; 4];
        client.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"ping", "connection {k}");
        client.write_all(b"pong").unwrap();
    }
    for (_, k) in &live {
        let want = format!("hello {k};pong").into_bytes();
        util::wait_for("each pong", BOUND, || s.seen.data(*k) == want);
    }
    // One more round trip lets a deadline set at "now" fire, had it landed anywhere.
    assert_eq!(s.controller.ask("open 0"), "true");
    assert_eq!(s.controller.ask("open 0"), "true");
    let closes = s.seen.closes.lock().unwrap().clone();
    assert_eq!(
        closes.len(),
        1,
        "only the stale id's connection closed: {closes:?}"
    );
    drop(live);
    s.server.stop();
}

/// Reads `TCP_NODELAY` of the socket in this process whose ends are `local` and `peer`
/// (the loop's side of a connection: the loop gives no other way to see its sockets).
fn nodelay_of(local: SocketAddr, peer: SocketAddr) -> bool {
    fn ipv4(addr: &libc::sockaddr_in) -> SocketAddr {
        let ip = std::net::Ipv4Addr::from(u32::from_be(addr.sin_addr.s_addr));
        SocketAddr::from((ip, u16::from_be(addr.sin_port)))
    }
    for entry in std::fs::read_dir("/proc/self/fd").unwrap() {
        let Some(fd) = entry
            .ok()
            .and_then(|e| e.file_name().to_str()?.parse::<libc::c_int>().ok())
        else {
            continue;
        };
        // SAFETY: plain system calls on a descriptor number, each writing into a local
        // buffer whose size is passed with it; a descriptor closed or reused meanwhile
        // makes them fail or describe another socket, which the address check rejects.
        let (ends, on) = unsafe {
            let mut ours: libc::sockaddr_in = std::mem::zeroed();
            let mut theirs: libc::sockaddr_in = std::mem::zeroed();
            let mut len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
            let mut len2 = len;
            let mut on: libc::c_int = 0;
            let mut on_len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
            if libc::getsockname(fd, (&mut ours as *mut libc::sockaddr_in).cast(), &mut len) != 0
                || libc::getpeername(
                    fd,
                    (&mut theirs as *mut libc::sockaddr_in).cast(),
                    &mut len2,
                ) != 0
                || ours.sin_family != libc::AF_INET as libc::sa_family_t
                || libc::getsockopt(
                    fd,
                    libc::IPPROTO_TCP,
                    libc::TCP_NODELAY,
                    (&mut on as *mut libc::c_int).cast(),
                    &mut on_len,
                ) != 0
            {
                continue;
            }
            ((ipv4(&ours), ipv4(&theirs)), on)
        };
        if ends == (local, peer) {
            return on != 0;
        }
    }
    panic!("no socket {local} -> {peer} in this process");
}

/// `Control::local_addr` and `Control::set_nodelay` on another connection, TCP and Unix.
#[test]
fn local_address_and_nodelay_of_another_connection() {
    let dir = util::TempDir::new("cross-local");
    let path = dir.0.join("local.sock");
    let (mut event_loop, addr) = util::tcp_loop(util::config());
    let unix = netcore::unix_listener(&path, &ListenOptions::default()).unwrap();
    event_loop.add_unix_listener(unix).unwrap();
    let mut s = setup(event_loop, addr);

    let (tcp, n) = s.client();
    let server_end = tcp.peer_addr().unwrap();
    let client_end = tcp.local_addr().unwrap();
    assert_eq!(
        s.controller.ask(&format!("local {n}")),
        format!("{:?}", PeerAddr::Inet(server_end))
    );
    assert!(!nodelay_of(server_end, client_end), "off by default");
    assert_eq!(s.controller.ask(&format!("nodelay {n}")), "Ok");
    assert!(nodelay_of(server_end, client_end), "set_nodelay set it");

    let (_unix, u) = s.client_with(|| UnixStream::connect(&path).unwrap());
    assert_eq!(
        s.controller.ask(&format!("local {u}")),
        format!("{:?}", PeerAddr::Unix(Some(path.clone())))
    );
    assert_eq!(
        s.controller.ask(&format!("nodelay {u}")),
        "Err(Unsupported)"
    );
    assert_eq!(s.controller.ask(&format!("open {u}")), "true");
    drop(tcp);
    s.server.stop();
}

/// Sends a datagram from a timer; on a connection's close (once the loop has stopped and
/// closed its UDP sockets) tries again. Records what `send_datagram` returned each time.
struct Ticker {
    socket: SocketId,
    to: SocketAddr,
    sent: Arc<Mutex<Vec<(&'static str, bool)>>>,
}

impl Handler for Ticker {
    fn on_timer(&mut self, ctl: &mut Control<'_>, _: TimerId) {
        let sent = ctl.send_datagram(self.socket, b"tick", self.to);
        self.sent.lock().unwrap().push(("timer", sent));
    }

    fn on_close(&mut self, ctl: &mut Control<'_>, _: &Closed<'_>) {
        let sent = ctl.send_datagram(self.socket, b"late", self.to);
        self.sent.lock().unwrap().push(("close", sent));
    }
}

/// `Control::send_datagram` from a timer reaches the client; once the loop has stopped, it
/// returns `false` and sends nothing.
#[test]
fn a_timer_sends_a_datagram_and_a_stopped_loop_refuses_to() {
    let (mut event_loop, addr) = util::tcp_loop(util::config());
    let udp = netcore::udp_socket(util::localhost(), &ListenOptions::default()).unwrap();
    let udp_addr = udp.local_addr().unwrap();
    let socket = event_loop.add_udp_socket(udp).unwrap();
    let client = UdpSocket::bind(util::localhost()).unwrap();
    client.set_read_timeout(Some(BOUND)).unwrap();
    event_loop.set_timer(Instant::now());
    let ticker = Ticker {
        socket,
        to: client.local_addr().unwrap(),
        sent: Arc::default(),
    };
    let sent = Arc::clone(&ticker.sent);
    let server = util::spawn(event_loop, ticker);
    let counters = Arc::clone(&server.counters);

    let mut buf = [0; 16];
    let (len, from) = client.recv_from(&mut buf).expect("the timer's datagram");
    assert_eq!((&buf[..len], from), (&b"tick"[..], udp_addr));

    // A connection keeps the stopping loop draining until its client leaves.
    let mut stream = util::connect(addr);
    util::wait_for("the accept", BOUND, || {
        server.counters.snapshot().accepted == 1
    });
    server.shutdown.shutdown();
    assert!(util::read_all(&mut stream).is_empty(), "closed in order");
    drop(stream);
    server.join_within(BOUND);
    assert_eq!(*sent.lock().unwrap(), [("timer", true), ("close", false)]);
    assert_eq!(counters.snapshot().datagrams_out, 1);
    client
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let late = client.recv_from(&mut buf);
    assert!(late.is_err(), "a stopped loop sent {late:?}");
}
