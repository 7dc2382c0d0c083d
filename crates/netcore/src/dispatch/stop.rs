//! Stopping: no more accepting, every connection asked to finish, and a bound on how long
//! they may take.

use super::Dispatcher;
use crate::handler::Handler;
use crate::id::CloseReason;
use crate::timers::TimerKey;

impl<T: Default> Dispatcher<T> {
    /// Stop accepting, close UDP sockets, and ask every connection to finish within the
    /// drain timeout (`Handler::on_stop`, which closes it by default).
    pub(crate) fn begin_stop<M, H: Handler<M, T>>(&mut self, handler: &mut H) {
        self.stopping = true;
        self.core.close_sources();
        let at = self.core.now() + self.settings.drain_timeout;
        self.core.add_deadline(at, TimerKey::Shutdown);
        for id in self.core.ids() {
            match self.core.conn_mut(id) {
                Some(c) if c.is_connecting() => c.end(CloseReason::Shutdown),
                Some(_) => self.callback(id, handler, |h, conn| h.on_stop(conn)),
                None => continue,
            }
            self.settle(id, handler);
        }
        self.run_work(handler);
        log::debug!("shutdown: {} connections draining", self.core.len());
    }

    /// The drain timeout passed: whatever is left is closed.
    pub(super) fn drain_over<M, H: Handler<M, T>>(&mut self, handler: &mut H) {
        for id in self.core.ids() {
            self.close(id, CloseReason::Shutdown, handler);
        }
    }
}
