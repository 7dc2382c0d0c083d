//! Stopping: no more accepting, every connection asked to finish, and a bound on how long
//! they may take.

use super::EventLoop;
use crate::connection::Phase;
use crate::control::Source;
use crate::handler::Handler;
use crate::id::CloseReason;
use crate::timers::TimerKey;

impl<M, T: Default> EventLoop<M, T> {
    /// Stop accepting, close UDP sockets, and ask every connection to finish within the
    /// drain timeout.
    pub(super) fn begin_stop<H: Handler<M, T>>(&mut self, handler: &mut H) {
        self.stopping = true;
        // Deregister before closing: epoll watches the open file, not the descriptor, so a
        // socket another process still holds (a server handing its listeners to its
        // successor) would go on waking this loop after our descriptor is closed.
        for (_, source) in self.core.sources.iter_mut() {
            let registry = &self.core.registry;
            let result = match source {
                Source::TcpListener { listener, .. } => registry.deregister(listener),
                Source::UnixListener { listener, .. } => registry.deregister(listener),
                Source::Udp(udp) => registry.deregister(&mut udp.socket),
            };
            if let Err(err) = result {
                log::debug!("deregister a source at shutdown: {err}");
            }
        }
        self.core.sources.clear();
        self.core.timers.insert(
            self.core.now + self.config.drain_timeout,
            TimerKey::Shutdown,
        );
        for id in self.core.conns.ids() {
            if let Some(c) = self.core.conns.get_mut(id) {
                if c.phase() == Phase::Connecting {
                    c.end(CloseReason::Shutdown);
                } else {
                    c.close();
                }
            }
            self.settle(id, handler);
        }
        self.after_callback(handler);
        log::debug!("shutdown: {} connections draining", self.core.conns.len());
    }

    /// The drain timeout passed: whatever is left is closed.
    pub(super) fn drain_over<H: Handler<M, T>>(&mut self, handler: &mut H) {
        for id in self.core.conns.ids() {
            self.close(id, CloseReason::Shutdown, handler);
        }
    }
}
