//! Listeners: accept until `WouldBlock`, the fast path, and pausing when descriptors run out
//! or the connection limit is reached.

use std::io;
use std::time::Duration;

use super::Dispatcher;
use crate::connection::{Connection, Stream};
use crate::core::Source;
use crate::counters::Counters;
use crate::handler::Handler;
use crate::id::{ListenerId, PeerAddr};
use crate::timers::TimerKey;

/// A zero back-off would be the busy loop it exists to prevent.
const MIN_ACCEPT_BACKOFF: Duration = Duration::from_millis(1);

impl<T: Default> Dispatcher<T> {
    /// Accepts until `WouldBlock`, a pause, or the connection limit.
    pub(super) fn accept_from<M, H: Handler<M, T>>(&mut self, key: usize, handler: &mut H) {
        loop {
            if self.stopping {
                return;
            }
            if self.core.len() >= self.settings.max_connections {
                self.full = true;
                return;
            }
            let accepted = match self.core.source_env(key).map(|(s, _)| s) {
                Some(Source::TcpListener { listener, paused }) if !*paused => listener
                    .accept()
                    .map(|(s, a)| (Stream::Tcp(s), PeerAddr::Inet(a))),
                Some(Source::UnixListener { listener, paused }) if !*paused => {
                    listener.accept().map(|(s, a)| {
                        let path = a.as_pathname().map(std::path::Path::to_path_buf);
                        (Stream::Unix(s), PeerAddr::Unix(path))
                    })
                }
                _ => return,
            };
            match accepted {
                Ok((stream, peer)) => {
                    Counters::add(&self.core.counters().accepted, 1);
                    self.open(stream, peer, ListenerId(key), handler);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if is_aborted_accept(&e) => Counters::add(&self.core.counters().aborted, 1),
                Err(e) => {
                    // Out of descriptors or memory (or anything unknown): retrying at once
                    // fails the same way, so wait, then try again.
                    let counters = self.core.counters();
                    Counters::add(&counters.accept_errors, 1);
                    Counters::add(&counters.accept_pauses, 1);
                    let backoff = self.settings.accept_backoff.max(MIN_ACCEPT_BACKOFF);
                    log::warn!("accept: {e}; pausing this listener for {backoff:?}");
                    self.set_listener_paused(key, true);
                    let at = self.core.now() + backoff;
                    self.core.add_deadline(at, TimerKey::Listener(key));
                    return;
                }
            }
        }
    }

    /// A paused listener's back-off is over.
    pub(super) fn resume_listener<M, H: Handler<M, T>>(&mut self, key: usize, handler: &mut H) {
        if self.set_listener_paused(key, false) {
            self.accept_from(key, handler);
        }
    }

    /// Returns whether `key` is a listener.
    fn set_listener_paused(&mut self, key: usize, pause: bool) -> bool {
        match self.core.source_env(key) {
            Some((Source::TcpListener { paused, .. } | Source::UnixListener { paused, .. }, _)) => {
                *paused = pause;
                true
            }
            _ => false,
        }
    }

    /// Runs `on_open` for a new connection, then settles it: the fast path (reply written,
    /// close asked, nothing unread) ends here without the connection ever being registered
    /// with the poller.
    fn open<M, H: Handler<M, T>>(
        &mut self,
        stream: Stream,
        peer: PeerAddr,
        listener: ListenerId,
        handler: &mut H,
    ) {
        let conn = Connection::accepted(stream, peer, listener, T::default(), self.core.now());
        let id = self.core.insert(conn);
        self.callback(id, handler, |h, conn| h.on_open(conn));
        self.settle(id, handler);
        self.drain_queue(handler);
    }

    /// Connections closed while listeners were held back by `max_connections`.
    pub(super) fn resume_full_listeners<M, H: Handler<M, T>>(&mut self, handler: &mut H) {
        self.full = false;
        for key in self.core.listener_keys() {
            self.accept_from(key, handler);
        }
    }
}

/// The peer gave up between the handshake and `accept()`: nothing to do but count it.
fn is_aborted_accept(err: &io::Error) -> bool {
    matches!(
        err.raw_os_error(),
        Some(libc::ECONNABORTED | libc::EPROTO | libc::ECONNRESET | libc::EPERM)
    )
}
