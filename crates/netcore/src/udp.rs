//! A UDP socket in the loop: receive drained until `WouldBlock`, replies that meet a full
//! socket buffer queued (bounded) instead of spun on.

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;

use crate::counters::Counters;

#[derive(Debug)]
pub(crate) struct UdpSource {
    pub(crate) socket: mio::net::UdpSocket,
    queue: VecDeque<(SocketAddr, Box<[u8]>)>,
    queue_limit: usize,
}

impl UdpSource {
    pub(crate) fn new(socket: mio::net::UdpSocket, queue_limit: usize) -> UdpSource {
        UdpSource {
            socket,
            queue: VecDeque::new(),
            queue_limit,
        }
    }

    pub(crate) fn send_to(&mut self, data: &[u8], to: SocketAddr, counters: &Counters) {
        if self.queue.is_empty() {
            match self.socket.send_to(data, to) {
                Ok(_) => {
                    Counters::add(&counters.datagrams_out, 1);
                    return;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => {
                    count_send_error(&e, to, counters);
                    return;
                }
            }
        }
        if self.queue.len() >= self.queue_limit {
            Counters::add(&counters.datagrams_dropped, 1);
            return;
        }
        self.queue.push_back((to, data.into()));
    }

    /// Sends queued replies until the queue is empty or the socket would block.
    pub(crate) fn flush(&mut self, counters: &Counters) {
        while let Some((to, data)) = self.queue.front() {
            match self.socket.send_to(data, *to) {
                Ok(_) => Counters::add(&counters.datagrams_out, 1),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) => count_send_error(&e, *to, counters),
            }
            self.queue.pop_front();
        }
    }
}

/// A failed send concerns one peer (an ICMP error reported late, a route that is gone),
/// never the socket: count it and go on.
fn count_send_error(err: &io::Error, to: SocketAddr, counters: &Counters) {
    if err.kind() == io::ErrorKind::ConnectionRefused {
        Counters::add(&counters.refused, 1);
    } else {
        log::debug!("sendto {to}: {err}");
        Counters::add(&counters.other_errors, 1);
    }
}
