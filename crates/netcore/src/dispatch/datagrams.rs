//! UDP sockets: receive until `WouldBlock`, hand each datagram to the handler, and send
//! queued replies when the socket is writable again.

use std::io;

use super::Dispatcher;
use crate::control::Control;
use crate::core::Source;
use crate::counters::Counters;
use crate::handler::{Datagram, Handler};
use crate::id::SocketId;
use crate::udp;

impl<T: Default> Dispatcher<T> {
    pub(super) fn udp_event<M, H: Handler<M, T>>(
        &mut self,
        key: usize,
        event: &mio::event::Event,
        handler: &mut H,
    ) {
        if event.is_writable() {
            if let Some((Source::Udp(udp), env)) = self.core.source_env(key) {
                udp.flush(&env.counters);
            }
        }
        if event.is_readable() || event.is_error() {
            self.receive_datagrams(key, handler);
        }
    }

    fn receive_datagrams<M, H: Handler<M, T>>(&mut self, key: usize, handler: &mut H) {
        // Each report clears itself; the bound only guards against a socket that errs forever.
        const MAX_PEER_ERRORS: u32 = 64;
        let mut peer_errors = 0;
        while let Some((Source::Udp(udp), env)) = self.core.source_env(key) {
            match udp.socket.recv_from(&mut self.scratch) {
                Ok((n, from)) => {
                    Counters::add(&env.counters.datagrams_in, 1);
                    let mut dgram = Datagram {
                        ctl: Control::new(&mut self.core),
                        id: SocketId(key),
                    };
                    handler.on_datagram(&mut dgram, &self.scratch[..n], from);
                    self.drain_queue(handler);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // An ICMP error about an earlier reply (port unreachable, host unreachable):
                // about one peer, not us, and reported once. Datagrams may be waiting behind
                // it, and edge-triggered readiness will not say so again: go on reading.
                Err(e) if udp::is_peer_error(&e) && peer_errors < MAX_PEER_ERRORS => {
                    peer_errors += 1;
                    let field = if e.kind() == io::ErrorKind::ConnectionRefused {
                        &env.counters.refused
                    } else {
                        &env.counters.other_errors
                    };
                    Counters::add(field, 1);
                }
                Err(e) => {
                    log::debug!("recvfrom: {e}");
                    Counters::add(&env.counters.other_errors, 1);
                    break;
                }
            }
        }
    }
}
