//! UDP sockets: receive drained until `WouldBlock`, replies counted, and ICMP errors
//! (`ECONNREFUSED`) about one peer never fatal and never costing another peer its reply.
//!
//! Loopback never makes a UDP `sendto` block, so the bounded reply queue is tested against a
//! scripted socket in `src/udp.rs`.

use crate::util;

use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::{Arc, Mutex};

use netcore::{Datagram, EventLoop, Handler, ListenOptions};
use util::BOUND;

/// Echoes each datagram; on `fan-out`, sends `relayed` to every address in `targets`.
#[derive(Default)]
struct UdpEcho {
    targets: Arc<Mutex<Vec<SocketAddr>>>,
}

impl Handler for UdpEcho {
    fn on_datagram(&mut self, socket: &mut Datagram<'_>, data: &[u8], from: SocketAddr) {
        if data == b"fan-out" {
            for to in self.targets.lock().unwrap().iter() {
                socket.send_to(b"relayed", *to);
            }
        } else {
            socket.send_to(data, from);
        }
    }
}

fn udp_loop() -> (EventLoop, SocketAddr, UdpSocket) {
    let socket = netcore::udp_socket(util::localhost(), &ListenOptions::default()).unwrap();
    let addr = socket.local_addr().unwrap();
    let probe = socket.try_clone().unwrap();
    let mut event_loop = EventLoop::new(util::config()).unwrap();
    event_loop.add_udp_socket(socket).unwrap();
    (event_loop, addr, probe)
}

fn client() -> UdpSocket {
    let socket = UdpSocket::bind(util::localhost()).unwrap();
    socket.set_read_timeout(Some(BOUND)).unwrap();
    socket
}

/// Linux reports ICMP errors on an unconnected UDP socket only with `IP_RECVERR`; a server
/// may set it (or be handed a connected socket), and then `ECONNREFUSED` arrives.
fn enable_recverr(socket: &UdpSocket) {
    let on: libc::c_int = 1;
    // SAFETY: a valid descriptor, and a pointer to a c_int whose size is passed with it.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_RECVERR,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "setsockopt(IP_RECVERR)");
}

/// Datagrams that arrived before the loop ran sit behind one readable edge: the loop must
/// read until `WouldBlock`, or all but the first wait for a datagram that may never come.
#[test]
fn receive_is_drained_until_would_block() {
    let (event_loop, addr, _) = udp_loop();
    let client = client();
    for i in 0..64u32 {
        client.send_to(&i.to_be_bytes(), addr).unwrap();
    }
    let server = util::spawn(event_loop, UdpEcho::default());
    let mut seen = [false; 64];
    let mut buf = [0; 16];
    for _ in 0..64 {
        let (n, from) = client.recv_from(&mut buf).expect("every datagram answered");
        assert_eq!((n, from), (4, addr));
        seen[u32::from_be_bytes(buf[..4].try_into().unwrap()) as usize] = true;
    }
    assert!(seen.iter().all(|s| *s));
    // Read while the loop runs.
    util::wait_for("datagrams out == 64", BOUND, || {
        server.counters.snapshot().datagrams_out == 64
    });
    let snap = server.counters.snapshot();
    assert_eq!((snap.datagrams_in, snap.datagrams_dropped), (64, 0));
    server.stop();
}

#[test]
fn a_refused_report_is_counted_and_never_fatal() {
    let (event_loop, addr, probe) = udp_loop();
    enable_recverr(&probe);
    // A peer that asks and is gone before the reply: the reply draws a port-unreachable.
    let gone = client();
    gone.send_to(b"ping", addr).unwrap();
    drop(gone);
    let server = util::spawn(event_loop, UdpEcho::default());
    util::wait_for("the refused report", BOUND, || {
        server.counters.snapshot().refused >= 1
    });

    let alive = client();
    for _ in 0..3 {
        alive.send_to(b"still there?", addr).unwrap();
        let mut buf = [0; 32];
        let (n, _) = alive.recv_from(&mut buf).expect("the loop still serves");
        assert_eq!(&buf[..n], b"still there?");
    }
    assert!(!server.is_finished());
    server.stop();
}

/// Linux returns a pending `ECONNREFUSED` from the next `sendto`, whatever its
/// destination, and sends nothing: a server that treated it as this datagram's failure
/// lost a reply to a peer that was there.
#[test]
fn a_refused_report_does_not_cost_another_peer_its_reply() {
    let (event_loop, addr, probe) = udp_loop();
    enable_recverr(&probe);
    let gone = client();
    let gone_addr = gone.local_addr().unwrap();
    drop(gone);
    let alive = client();
    let handler = UdpEcho::default();
    *handler.targets.lock().unwrap() = vec![gone_addr, alive.local_addr().unwrap()];
    let server = util::spawn(event_loop, handler);

    let control = client();
    for _ in 0..5 {
        control.send_to(b"fan-out", addr).unwrap();
        let mut buf = [0; 32];
        let (n, from) = alive.recv_from(&mut buf).expect("the live peer's copy");
        assert_eq!((&buf[..n], from), (&b"relayed"[..], addr));
    }
    util::wait_for("refused reports", BOUND, || {
        server.counters.snapshot().refused >= 1
    });
    server.stop();
}
