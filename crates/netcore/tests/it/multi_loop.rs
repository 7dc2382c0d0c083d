//! Several loops on several threads, each with its own `SO_REUSEPORT` listener on one port:
//! the kernel spreads connections between them, and every loop serves.

use crate::util;

use std::sync::Arc;

use netcore::{Counters, EventLoop, ListenOptions};
use util::{Greeter, BOUND};

const LOOPS: usize = 4;
/// The kernel picks a listener by a hash of the client's address and port; with this many
/// clients the chance that one of four loops gets none is about 4 * (3/4)^200, 1e-24.
const CLIENTS: usize = 200;

#[test]
fn every_loop_serves() {
    let listeners =
        netcore::tcp_listeners_reuse_port(util::localhost(), LOOPS, &ListenOptions::default())
            .unwrap();
    let addr = listeners[0].local_addr().unwrap();
    let servers: Vec<_> = listeners
        .into_iter()
        .map(|listener| {
            let mut event_loop = EventLoop::new(util::config()).unwrap();
            event_loop.add_tcp_listener(listener).unwrap();
            util::spawn(event_loop, Greeter::new(b"Thank you for connecting"))
        })
        .collect();

    for _ in 0..CLIENTS {
        assert_eq!(
            util::read_all(&mut util::connect(addr)),
            b"Thank you for connecting"
        );
    }
    let per_loop: Vec<u64> = servers
        .iter()
        .map(|s| s.counters.snapshot().accepted)
        .collect();
    assert!(
        per_loop.iter().all(|&n| n > 0),
        "a loop served no one: {per_loop:?}"
    );
    assert_eq!(per_loop.iter().sum::<u64>(), CLIENTS as u64);
    for server in servers {
        server.stop();
    }
}

/// Loops given one `Counters` add up into it.
#[test]
fn loops_can_share_one_set_of_counters() {
    let total = Arc::new(Counters::default());
    let listeners =
        netcore::tcp_listeners_reuse_port(util::localhost(), 2, &ListenOptions::default()).unwrap();
    let addr = listeners[0].local_addr().unwrap();
    let servers: Vec<_> = listeners
        .into_iter()
        .map(|listener| {
            let mut event_loop = EventLoop::new(util::config())
                .unwrap()
                .with_counters(Arc::clone(&total));
            event_loop.add_tcp_listener(listener).unwrap();
            util::spawn(event_loop, Greeter::new(b"hi"))
        })
        .collect();
    for _ in 0..50 {
        assert_eq!(util::read_all(&mut util::connect(addr)), b"hi");
    }
    util::wait_for("50 closes", BOUND, || total.snapshot().completed == 50);
    assert_eq!(total.snapshot().accepted, 50);
    for server in servers {
        server.stop();
    }
}
