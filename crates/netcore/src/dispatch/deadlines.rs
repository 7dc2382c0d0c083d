//! Deadlines and timers as they fall due.

use super::Dispatcher;
use crate::handler::Handler;
use crate::id::{CloseReason, ConnId, TimerId};
use crate::timers::TimerKey;

impl<T: Default> Dispatcher<T> {
    pub(super) fn fire_timers<M, H: Handler<M, T>>(&mut self, handler: &mut H) {
        while let Some(key) = self.core.pop_due() {
            match key {
                TimerKey::Conn(id) => self.conn_deadline(id, handler),
                TimerKey::Listener(key) => self.resume_listener(key, handler),
                TimerKey::User(id) => {
                    if self.core.take_timer(id) {
                        handler.on_timer(&mut self.control(), TimerId(id));
                    }
                }
                TimerKey::Shutdown => self.drain_over(handler),
            }
            self.run_work(handler);
        }
    }

    fn conn_deadline<M, H: Handler<M, T>>(&mut self, id: ConnId, handler: &mut H) {
        let Some((c, env)) = self.core.conn_env(id) else {
            return;
        };
        c.set_scheduled(None);
        match c.next_deadline(&env.limits) {
            Some(at) if at <= env.now => self.close(id, CloseReason::Timeout, handler),
            _ => self.core.schedule(id),
        }
    }
}
