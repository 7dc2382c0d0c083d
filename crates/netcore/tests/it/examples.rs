//! The examples, run as the programs they are and driven by real clients: `chat` (one
//! client's line reaches every other at once; a client that never reads is dropped and
//! slows nobody) and `forward` (bytes intact both ways, to TCP and Unix targets, half-close
//! passed on at once, a client that never reads holds the sender back in bounded memory)
//! and `connect_proxy` (`502` with every address's error, `405` to anything but `CONNECT`;
//! its tunnel under curl is in `real_clients`).
//!
//! `cargo test` builds the examples beside the test binaries (`target/debug/examples/`);
//! a run that filters test targets (`--test it`) must build them first
//! (`cargo build -p netcore --examples`), and the failure says so.

use crate::util;

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::process::Command;

use proc_harness::{Process, Stderr};
use std::time::{Duration, Instant};

use util::{wait_for, TempDir, BOUND};

/// An example program, running (killed and reaped when dropped).
pub(crate) struct Example {
    process: Process,
    pub(crate) addr: SocketAddr,
}

impl Example {
    pub(crate) fn start(name: &str, args: &[&str]) -> Example {
        let mut cmd = Command::new(example_path(name));
        cmd.args(args);
        let process = Process::start_with(name, cmd, Stderr::Null)
            .unwrap_or_else(|e| panic!("start {name}: {e}"));
        let addr = process
            .ready()
            .strip_prefix("Listening on ")
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("{name}: no readiness line, got {:?}", process.ready()));
        Example { process, addr }
    }

    /// Resident memory now (`VmRSS`), in bytes.
    pub(crate) fn rss(&self) -> u64 {
        self.process.status_kb("VmRSS:") * 1024
    }
}

fn example_path(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    // target/debug/deps/examples-HASH -> target/debug/examples/NAME
    let path = exe
        .parent()
        .and_then(|deps| deps.parent())
        .map(|dir| dir.join("examples").join(name))
        .expect("target dir");
    assert!(
        path.exists(),
        "{} is not built: run `cargo build -p netcore --examples` (plain `cargo test` builds it)",
        path.display()
    );
    path
}

fn client(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(BOUND)).expect("read timeout");
    stream
}

fn read_line(reader: &mut BufReader<TcpStream>) -> String {
    let mut line = String::new();
    reader.read_line(&mut line).expect("read a line in time");
    line
}

/// Joins a chat and waits until the server surely has it: a line it sends reaches `witness`.
fn join_chat(addr: SocketAddr, witness: &mut BufReader<TcpStream>, name: &str) -> TcpStream {
    let mut stream = client(addr);
    let hello = format!("{name} joined\n");
    stream.write_all(hello.as_bytes()).expect("say hello");
    assert_eq!(read_line(witness), hello);
    stream
}

#[test]
fn chat_delivers_a_line_to_every_other_client_at_once() {
    let chat = Example::start("chat", &[]);
    let mut first = BufReader::new(client(chat.addr));
    let second = join_chat(chat.addr, &mut first, "second");
    let mut second = BufReader::new(second);
    let third = join_chat(chat.addr, &mut first, "third");
    let _ = read_line(&mut second); // "third joined"
    let mut third = BufReader::new(third);

    // The first client has never spoken; the others have stopped speaking: all of them get
    // the line now, not after they next say something.
    first
        .get_mut()
        .write_all(b"hello from first\n")
        .expect("send");
    assert_eq!(read_line(&mut second), "hello from first\n");
    assert_eq!(read_line(&mut third), "hello from first\n");
    third.get_mut().write_all(b"a line in ").expect("send");
    third.get_mut().write_all(b"two parts\n").expect("send");
    assert_eq!(read_line(&mut first), "a line in two parts\n");
    assert_eq!(read_line(&mut second), "a line in two parts\n");
}

#[test]
fn chat_drops_a_client_that_never_reads_and_slows_nobody() {
    let chat = Example::start("chat", &[]);
    let mut reader = BufReader::new(client(chat.addr));
    let mut writer = join_chat(chat.addr, &mut reader, "writer");
    let mut stuck = join_chat(chat.addr, &mut reader, "stuck");

    // 48 MiB in 1 KiB lines, sent in rounds that the reader keeps up with: the stuck client
    // is sent the same, and never reads it.
    let line = [b'x'; 1023];
    let mut round = Vec::new();
    for _ in 0..64 {
        round.extend_from_slice(&line);
        round.push(b'\n');
    }
    let rounds = 48 * 1024 * 1024 / round.len();
    let mut got = vec![0; round.len()];
    let started = Instant::now();
    for _ in 0..rounds {
        writer.write_all(&round).expect("write a round");
        reader
            .read_exact(&mut got)
            .expect("the reader gets every line in time");
        assert_eq!(got, round);
        assert!(started.elapsed() < BOUND * 3, "the chat slowed down");
    }

    // The stuck client was cut off: it gets what the kernel held for it, then the end.
    stuck.set_nonblocking(false).expect("blocking");
    let mut received = 0usize;
    let mut buf = vec![0; 1 << 16];
    loop {
        match stuck.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => received += n,
            Err(e) if e.kind() == ErrorKind::ConnectionReset => break,
            Err(e) => panic!("the stuck client was never disconnected: {e}"),
        }
    }
    let sent = rounds * round.len();
    assert!(
        received < sent / 2,
        "the stuck client got {received} of {sent} bytes: it was not dropped"
    );
}

/// A Unix-domain echo server on a thread: one connection, echoes until EOF, then closes.
fn unix_echo(dir: &TempDir) -> PathBuf {
    let path = dir.0.join("echo.sock");
    let listener = UnixListener::bind(&path).expect("bind a Unix socket");
    std::thread::spawn(move || {
        if let Ok((mut conn, _)) = listener.accept() {
            let mut buf = [0; 4096];
            while let Ok(n) = conn.read(&mut buf) {
                if n == 0 || conn.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    });
    path
}

fn to_an_echo_server_answers_each_line_at_once(name: &str) {
    let echo = Example::start("echo", &[]);
    let forward = Example::start(name, &["127.0.0.1:0", &echo.addr.to_string()]);
    let mut conn = BufReader::new(client(forward.addr));
    for n in 0..20 {
        let line = format!("line {n}\n");
        conn.get_mut().write_all(line.as_bytes()).expect("send");
        // Not one message behind: each line's echo arrives before the next is sent.
        assert_eq!(read_line(&mut conn), line);
    }
}

fn to_a_greeter_passes_the_greeting_and_its_close(name: &str) {
    let greeter = Example::start("greeter", &[]);
    let forward = Example::start(name, &["127.0.0.1:0", &greeter.addr.to_string()]);
    let mut conn = client(forward.addr);
    let mut reply = Vec::new();
    conn.read_to_end(&mut reply)
        .expect("the greeting, then EOF in time");
    assert_eq!(reply, b"Thank you for connecting\n");
}

fn to_a_unix_socket_keeps_bytes_intact_both_ways(name: &str) {
    let dir = TempDir::new("forward-unix");
    let target = unix_echo(&dir);
    let forward = Example::start(name, &["127.0.0.1:0", &target.to_string_lossy()]);
    let mut conn = client(forward.addr);
    let data: Vec<u8> = (0..4 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    let writer = {
        let mut conn = conn.try_clone().expect("clone");
        let data = data.clone();
        std::thread::spawn(move || {
            conn.write_all(&data).expect("send 4 MiB");
            conn.shutdown(Shutdown::Write).expect("half-close");
        })
    };
    let mut echoed = Vec::new();
    conn.read_to_end(&mut echoed).expect("the echo, then EOF");
    writer.join().expect("writer");
    assert_eq!(echoed.len(), data.len());
    assert!(echoed == data, "the echo differs from what was sent");
}

fn passes_a_half_close_through_at_once(name: &str) {
    let echo = Example::start("echo", &[]);
    let forward = Example::start(name, &["127.0.0.1:0", &echo.addr.to_string()]);
    let mut conn = client(forward.addr);
    conn.write_all(b"last words").expect("send");
    conn.shutdown(Shutdown::Write).expect("half-close");
    let started = Instant::now();
    let mut reply = Vec::new();
    conn.read_to_end(&mut reply).expect("echo and EOF");
    assert_eq!(reply, b"last words");
    // The echo server sees our EOF only if the forwarder passed it on; without that, both
    // sides would wait for an idle timeout (60 s).
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "EOF took {:?}: the half-close was not passed on",
        started.elapsed()
    );
}

fn holds_a_fast_sender_back_when_its_client_never_reads(name: &str) {
    let echo = Example::start("echo", &[]);
    let forward = Example::start(name, &["127.0.0.1:0", &echo.addr.to_string()]);
    let mut conn = client(forward.addr);
    // A blocking write that makes no progress for 2 s returns `WouldBlock`: that is the
    // sender held back (no polling, no sleep).
    conn.set_write_timeout(Some(Duration::from_secs(2)))
        .expect("write timeout");

    // Send up to 64 MiB and never read the echo: the echo server stops reading once its
    // replies back up, the forwarder stops reading once those back up, and the sender
    // stalls.
    let chunk = vec![0x5a; 64 * 1024];
    let limit = 64 * 1024 * 1024;
    let mut sent = 0usize;
    let started = Instant::now();
    while sent < limit {
        assert!(started.elapsed() < BOUND, "the send loop ran out of time");
        match conn.write(&chunk) {
            Ok(n) => sent += n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => break,
            Err(e) => panic!("send: {e}"),
        }
    }
    assert!(
        sent < limit,
        "the sender pushed all {sent} bytes: nothing held it back"
    );
    let rss = forward.rss();
    assert!(
        rss < 8 * 1024 * 1024,
        "the forwarder holds {rss} bytes resident after {sent} bytes were sent"
    );
    eprintln!("sender held back after {sent} bytes; forwarder resident {rss} bytes");
    wait_for("the forwarder to stay up", BOUND, || {
        TcpStream::connect(forward.addr).is_ok()
    });
}

/// Reads until the end: `Ok(bytes)` for an orderly EOF, `Err((bytes, kind))` for an error.
fn read_to_end_or_error(conn: &mut TcpStream) -> Result<Vec<u8>, (Vec<u8>, ErrorKind)> {
    let mut got = Vec::new();
    let mut buf = [0; 4096];
    loop {
        match conn.read(&mut buf) {
            Ok(0) => return Ok(got),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err((got, e.kind())),
        }
    }
}

fn passes_a_reset_on_as_a_reset(name: &str) {
    // A target that sends 13 bytes, then resets the connection.
    let target = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the target");
    let target_addr = target.local_addr().expect("target address");
    let server = std::thread::spawn(move || {
        let (mut conn, _) = target.accept().expect("accept");
        conn.write_all(b"partial reply").expect("send 13 bytes");
        socket2::SockRef::from(&conn)
            .set_linger(Some(Duration::ZERO))
            .expect("SO_LINGER 0");
        drop(conn);
    });
    let forward = Example::start(name, &["127.0.0.1:0", &target_addr.to_string()]);
    let mut conn = client(forward.addr);
    server.join().expect("target thread");
    match read_to_end_or_error(&mut conn) {
        Ok(got) => panic!(
            "{:?}, then an orderly EOF: the target's reset became a clean close",
            String::from_utf8_lossy(&got)
        ),
        Err((got, kind)) => {
            assert_eq!(
                got, b"partial reply",
                "what the target sent before its reset"
            );
            assert_eq!(kind, ErrorKind::ConnectionReset);
        }
    }
}

fn resets_the_client_when_the_target_refuses(name: &str) {
    // A port nobody listens on: bound, then closed.
    let refused = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port");
    let forward = Example::start(name, &["127.0.0.1:0", &refused.to_string()]);
    let mut conn = client(forward.addr);
    match read_to_end_or_error(&mut conn) {
        Ok(got) => {
            panic!("{got:?}, then an orderly EOF: a refused target looks like an empty reply")
        }
        Err((got, kind)) => {
            assert!(got.is_empty());
            assert_eq!(kind, ErrorKind::ConnectionReset);
        }
    }
}

/// The pipe by hand (`forward`) and by `Control::pipe` (`proxy`) keep the same promises.
mod pipes {
    #[test]
    fn forward_to_an_echo_server_answers_each_line_at_once() {
        super::to_an_echo_server_answers_each_line_at_once("forward");
    }

    #[test]
    fn proxy_to_an_echo_server_answers_each_line_at_once() {
        super::to_an_echo_server_answers_each_line_at_once("proxy");
    }

    #[test]
    fn forward_to_a_greeter_passes_the_greeting_and_its_close() {
        super::to_a_greeter_passes_the_greeting_and_its_close("forward");
    }

    #[test]
    fn proxy_to_a_greeter_passes_the_greeting_and_its_close() {
        super::to_a_greeter_passes_the_greeting_and_its_close("proxy");
    }

    #[test]
    fn forward_to_a_unix_socket_keeps_bytes_intact_both_ways() {
        super::to_a_unix_socket_keeps_bytes_intact_both_ways("forward");
    }

    #[test]
    fn proxy_to_a_unix_socket_keeps_bytes_intact_both_ways() {
        super::to_a_unix_socket_keeps_bytes_intact_both_ways("proxy");
    }

    #[test]
    fn forward_passes_a_half_close_through_at_once() {
        super::passes_a_half_close_through_at_once("forward");
    }

    #[test]
    fn proxy_passes_a_half_close_through_at_once() {
        super::passes_a_half_close_through_at_once("proxy");
    }

    #[test]
    fn forward_holds_a_fast_sender_back_when_its_client_never_reads() {
        super::holds_a_fast_sender_back_when_its_client_never_reads("forward");
    }

    #[test]
    fn proxy_holds_a_fast_sender_back_when_its_client_never_reads() {
        super::holds_a_fast_sender_back_when_its_client_never_reads("proxy");
    }

    #[test]
    fn forward_passes_a_reset_on_as_a_reset() {
        super::passes_a_reset_on_as_a_reset("forward");
    }

    #[test]
    fn proxy_passes_a_reset_on_as_a_reset() {
        super::passes_a_reset_on_as_a_reset("proxy");
    }

    #[test]
    fn forward_resets_the_client_when_the_target_refuses() {
        super::resets_the_client_when_the_target_refuses("forward");
    }

    #[test]
    fn proxy_resets_the_client_when_the_target_refuses() {
        super::resets_the_client_when_the_target_refuses("proxy");
    }
}

#[test]
fn http_drops_a_large_body_and_answers_the_request_behind_it() {
    let http = Example::start("http", &["127.0.0.1:0"]);
    let mut conn = client(http.addr);
    let body = vec![b'b'; 2 << 20];
    let mut requests =
        format!("POST / HTTP/1.1\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
    requests.extend_from_slice(&body);
    requests.extend_from_slice(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n");
    let writer = {
        let mut conn = conn.try_clone().expect("clone");
        std::thread::spawn(move || conn.write_all(&requests))
    };
    let mut replies = Vec::new();
    conn.read_to_end(&mut replies)
        .expect("two replies, then the close");
    writer.join().expect("writer").expect("send the requests");
    let one =
        b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\nContent-Type: text/plain\r\n\r\nHello, World!";
    assert_eq!(replies, [&one[..], &one[..]].concat());
}

/// Sends `request` to the CONNECT proxy and reads its whole answer (it closes after a
/// refusal).
#[cfg(feature = "resolver")]
fn ask_connect_proxy(proxy: SocketAddr, request: &str) -> String {
    let mut stream = client(proxy);
    stream
        .write_all(request.as_bytes())
        .expect("send the request");
    let mut answer = String::new();
    stream
        .read_to_string(&mut answer)
        .expect("the answer, then EOF");
    answer
}

// The example needs the `resolver` feature (its `required-features`).
#[cfg(feature = "resolver")]
#[test]
fn connect_proxy_answers_502_with_every_address_error_and_405_to_anything_else() {
    let proxy = Example::start("connect_proxy", &[]);
    let refused = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("address").port()
    };
    let answer = ask_connect_proxy(
        proxy.addr,
        &format!("CONNECT localhost:{refused} HTTP/1.1\r\nHost: localhost:{refused}\r\n\r\n"),
    );
    let (head, body) = answer.split_once("\r\n\r\n").expect("a head and a body");
    assert!(head.starts_with("HTTP/1.1 502 Bad Gateway\r\n"), "{answer}");
    assert_eq!(
        head,
        format!("HTTP/1.1 502 Bad Gateway\r\nContent-Length: {}", body.len())
    );
    // Every address `localhost` has, each refused (here at least 127.0.0.1).
    assert!(
        body.starts_with(&format!("connect localhost:{refused}: ")),
        "{body}"
    );
    assert!(
        body.contains(&format!("127.0.0.1:{refused}: Connection refused")),
        "{body}"
    );

    let answer = ask_connect_proxy(proxy.addr, "CONNECT nosuch:service:80 HTTP/1.1\r\n\r\n");
    assert!(
        answer.contains("[Errno -2] Name or service not known"),
        "{answer}"
    );

    let answer = ask_connect_proxy(proxy.addr, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(
        answer,
        "HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n"
    );
}
