//! Back-pressure: a connection whose pending output passes `max_pending_output` is not
//! read until the peer takes half of it, so a peer that writes and never reads cannot make
//! the server buffer without bound.

use crate::util;

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use netcore::Config;
use socket2::{Domain, Socket, Type};
use util::{Echo, BOUND};

const BOUND_BYTES: usize = 64 << 10;
/// Far more than kernel buffers and the bound hold together: writing this much without
/// blocking means the server never stopped reading.
const TOO_MUCH: usize = 64 << 20;

/// A non-blocking client with a small receive buffer, so the server's output backs up fast.
fn slow_reader(addr: SocketAddr) -> TcpStream {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(16 << 10).unwrap();
    socket.connect(&addr.into()).unwrap();
    let stream: TcpStream = socket.into();
    stream.set_nonblocking(true).unwrap();
    stream
}

#[test]
fn a_peer_that_never_reads_stops_being_read_until_it_does() {
    let config = Config {
        max_pending_output: BOUND_BYTES,
        ..util::config()
    };
    let (event_loop, addr) = util::tcp_loop(config);
    let echo = Echo::default();
    let max_pending = Arc::clone(&echo.max_pending);
    let server = util::spawn(event_loop, echo);
    let counters = Arc::clone(&server.counters);

    let mut client = slow_reader(addr);
    let chunk: Vec<u8> = (0..64 << 10).map(|i: u32| (i % 253) as u8).collect();
    let mut sent = Vec::new();

    // Write and never read, until the server has stopped reading: bytes_in stays put
    // through a run of failed writes while its pending output is over the bound.
    let deadline = Instant::now() + BOUND;
    let mut stalled = 0;
    let mut last_in = u64::MAX;
    while stalled < 20 {
        assert!(
            Instant::now() < deadline,
            "the server never stopped reading"
        );
        match client.write(&chunk) {
            Ok(n) => {
                sent.extend_from_slice(&chunk[..n]);
                stalled = 0;
                assert!(
                    sent.len() < TOO_MUCH,
                    "wrote {} bytes to a server whose output is not read",
                    sent.len()
                );
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                let now_in = counters.snapshot().bytes_in;
                if now_in == last_in && max_pending.load(Ordering::Relaxed) > BOUND_BYTES {
                    stalled += 1;
                } else {
                    stalled = 0;
                }
                last_in = now_in;
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => panic!("write: {e}"),
        }
    }
    let paused_at = counters.snapshot();
    assert!(
        paused_at.bytes_in < sent.len() as u64,
        "unread input is left"
    );
    assert!(
        paused_at.bytes_out < paused_at.bytes_in,
        "output is held back"
    );

    // Now read: the server resumes reading, and every byte comes back in order.
    client.shutdown(Shutdown::Write).ok();
    let mut echoed = Vec::with_capacity(sent.len());
    let mut buf = vec![0; 256 << 10];
    let deadline = Instant::now() + BOUND;
    loop {
        match client.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => echoed.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                assert!(Instant::now() < deadline, "the echo did not finish");
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(e) => panic!("read: {e}"),
        }
    }
    assert!(
        counters.snapshot().bytes_in > paused_at.bytes_in,
        "reading resumed"
    );
    assert_eq!(echoed.len(), sent.len());
    assert!(echoed == sent, "the echo differs from what was sent");
    server.stop();
}
