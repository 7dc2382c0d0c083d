//! A UDP socket in the loop: receive drained until `WouldBlock`, replies that meet a full
//! socket buffer queued (bounded) instead of spun on.

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;

use crate::counters::Counters;

#[derive(Debug)]
pub(crate) struct UdpSource {
    pub(crate) socket: mio::net::UdpSocket,
    replies: Replies,
}

impl UdpSource {
    pub(crate) fn new(socket: mio::net::UdpSocket, queue_limit: usize) -> UdpSource {
        UdpSource {
            socket,
            replies: Replies::new(queue_limit),
        }
    }

    pub(crate) fn send_to(&mut self, data: &[u8], to: SocketAddr, counters: &Counters) {
        self.replies.send(&self.socket, data, to, counters);
    }

    /// Sends queued replies until the queue is empty or the socket would block.
    pub(crate) fn flush(&mut self, counters: &Counters) {
        self.replies.flush(&self.socket, counters);
    }
}

/// Where replies go: the socket, or a stand-in in tests.
pub(crate) trait SendTo {
    fn send_to(&self, data: &[u8], to: SocketAddr) -> io::Result<usize>;
}

impl SendTo for mio::net::UdpSocket {
    #[inline]
    fn send_to(&self, data: &[u8], to: SocketAddr) -> io::Result<usize> {
        mio::net::UdpSocket::send_to(self, data, to)
    }
}

/// Replies that met a full send buffer, in order, at most `limit` of them.
#[derive(Debug)]
struct Replies {
    queue: VecDeque<(SocketAddr, Box<[u8]>)>,
    limit: usize,
}

enum Sent {
    Done,
    WouldBlock,
}

impl Replies {
    fn new(limit: usize) -> Replies {
        Replies {
            queue: VecDeque::new(),
            limit,
        }
    }

    /// Sends now when nothing is queued ahead of it; otherwise (or on `WouldBlock`) queues
    /// it, or drops and counts it when the queue is full.
    fn send<S: SendTo>(&mut self, socket: &S, data: &[u8], to: SocketAddr, counters: &Counters) {
        if self.queue.is_empty() {
            if let Sent::Done = send_one(socket, data, to, counters) {
                return;
            }
        }
        if self.queue.len() >= self.limit {
            Counters::add(&counters.datagrams_dropped, 1);
            return;
        }
        self.queue.push_back((to, data.into()));
    }

    fn flush<S: SendTo>(&mut self, socket: &S, counters: &Counters) {
        while let Some((to, data)) = self.queue.front() {
            if let Sent::WouldBlock = send_one(socket, data, *to, counters) {
                return;
            }
            self.queue.pop_front();
        }
    }
}

/// One `sendto`. A failure concerns one peer, never the socket: it is counted and the
/// datagram dropped. `ECONNREFUSED` is different: it is the socket's pending report of an
/// ICMP port-unreachable for an *earlier* datagram (Linux returns it from the next
/// `sendto`, which then sends nothing), so it is counted and this datagram sent again.
fn send_one<S: SendTo>(socket: &S, data: &[u8], to: SocketAddr, counters: &Counters) -> Sent {
    let mut refused_once = false;
    loop {
        match socket.send_to(data, to) {
            Ok(_) => {
                Counters::add(&counters.datagrams_out, 1);
                return Sent::Done;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Sent::WouldBlock,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused && !refused_once => {
                Counters::add(&counters.refused, 1);
                refused_once = true;
            }
            Err(e) => {
                log::debug!("sendto {to}: {e}");
                let field = if e.kind() == io::ErrorKind::ConnectionRefused {
                    &counters.refused
                } else {
                    &counters.other_errors
                };
                Counters::add(field, 1);
                return Sent::Done;
            }
        }
    }
}

/// A `recvfrom` error that reports what happened to an earlier datagram to some peer (an
/// ICMP error), not a fault of the socket: receiving goes on after it.
pub(crate) fn is_peer_error(err: &io::Error) -> bool {
    matches!(
        err.raw_os_error(),
        Some(
            libc::ECONNREFUSED
                | libc::EHOSTUNREACH
                | libc::ENETUNREACH
                | libc::EHOSTDOWN
                | libc::ENETDOWN
                | libc::EMSGSIZE
                | libc::EPROTO
                | libc::ETIMEDOUT
        )
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    /// A socket that answers each `send_to` with the next scripted result, then `Ok`.
    #[derive(Default)]
    struct Script {
        results: RefCell<VecDeque<io::Result<usize>>>,
        sent: RefCell<Vec<(SocketAddr, Vec<u8>)>>,
    }

    impl Script {
        fn then(self, result: io::Result<usize>) -> Script {
            self.results.borrow_mut().push_back(result);
            self
        }
    }

    impl SendTo for Script {
        fn send_to(&self, data: &[u8], to: SocketAddr) -> io::Result<usize> {
            let result = self
                .results
                .borrow_mut()
                .pop_front()
                .unwrap_or(Ok(data.len()));
            if result.is_ok() {
                self.sent.borrow_mut().push((to, data.to_vec()));
            }
            result
        }
    }

    fn would_block() -> io::Result<usize> {
        Err(io::ErrorKind::WouldBlock.into())
    }

    fn peer(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn a_reply_that_would_block_is_queued_then_sent_in_order() {
        let counters = Counters::default();
        let socket = Script::default().then(would_block()).then(would_block());
        let mut replies = Replies::new(8);
        replies.send(&socket, b"one", peer(1), &counters);
        // Queued behind the first, without trying the socket out of order.
        replies.send(&socket, b"two", peer(2), &counters);
        assert_eq!(replies.queue.len(), 2);
        assert!(socket.sent.borrow().is_empty());
        replies.flush(&socket, &counters); // still blocked
        assert_eq!(replies.queue.len(), 2);
        replies.flush(&socket, &counters); // writable again
        assert!(replies.queue.is_empty());
        assert_eq!(
            *socket.sent.borrow(),
            vec![(peer(1), b"one".to_vec()), (peer(2), b"two".to_vec())]
        );
        assert_eq!(counters.snapshot().datagrams_out, 2);
    }

    #[test]
    fn replies_past_the_queue_limit_are_dropped_and_counted() {
        let counters = Counters::default();
        let socket = Script::default().then(would_block());
        let mut replies = Replies::new(2);
        for i in 0..10 {
            replies.send(&socket, b"flood", peer(i), &counters);
        }
        let snap = counters.snapshot();
        assert_eq!((snap.datagrams_dropped, snap.datagrams_out), (8, 0));
        replies.flush(&socket, &counters);
        assert_eq!(counters.snapshot().datagrams_out, 2);
        let sent = socket.sent.borrow();
        assert_eq!(
            sent.iter().map(|s| s.0).collect::<Vec<_>>(),
            [peer(0), peer(1)]
        );
    }

    #[test]
    fn a_refused_report_about_an_earlier_peer_does_not_cost_this_reply() {
        let counters = Counters::default();
        let socket = Script::default().then(Err(io::ErrorKind::ConnectionRefused.into()));
        let mut replies = Replies::new(2);
        replies.send(&socket, b"for B", peer(2), &counters);
        assert_eq!(*socket.sent.borrow(), vec![(peer(2), b"for B".to_vec())]);
        let snap = counters.snapshot();
        assert_eq!((snap.refused, snap.datagrams_out), (1, 1));
    }

    #[test]
    fn other_send_errors_drop_one_datagram_and_never_block_the_queue() {
        let counters = Counters::default();
        let socket = Script::default()
            .then(would_block())
            .then(Err(io::Error::from_raw_os_error(libc::EHOSTUNREACH)));
        let mut replies = Replies::new(4);
        replies.send(&socket, b"a", peer(1), &counters);
        replies.send(&socket, b"b", peer(2), &counters);
        replies.flush(&socket, &counters);
        assert!(replies.queue.is_empty());
        assert_eq!(*socket.sent.borrow(), vec![(peer(2), b"b".to_vec())]);
        let snap = counters.snapshot();
        assert_eq!((snap.other_errors, snap.datagrams_out), (1, 1));
    }
}
