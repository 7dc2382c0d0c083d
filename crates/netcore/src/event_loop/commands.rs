//! Deadlines and timers as they fall due, messages from other threads, and what callbacks
//! left for the loop to do.

use super::EventLoop;
use crate::control::{Control, Deferred};
use crate::handler::{Closed, Conn, Handler};
use crate::id::{CloseReason, ConnId, TimerId};
use crate::timers::TimerKey;

impl<M, T: Default> EventLoop<M, T> {
    pub(super) fn fire_timers<H: Handler<M, T>>(&mut self, handler: &mut H) {
        while let Some(key) = self.core.timers.pop_due(self.core.now) {
            match key {
                TimerKey::Conn(id) => self.conn_deadline(id, handler),
                TimerKey::Listener(key) => self.resume_listener(key, handler),
                TimerKey::User(id) => {
                    if self.core.user_timers.remove(&id).is_some() {
                        handler.on_timer(
                            &mut Control {
                                core: &mut self.core,
                            },
                            TimerId(id),
                        );
                    }
                }
                TimerKey::Shutdown => self.drain_over(handler),
            }
            self.after_callback(handler);
        }
    }

    fn conn_deadline<H: Handler<M, T>>(&mut self, id: ConnId, handler: &mut H) {
        let Some(c) = self.core.conns.get_mut(id) else {
            return;
        };
        c.set_scheduled(None);
        match c.next_deadline(&self.core.limits) {
            Some(at) if at <= self.core.now => self.close(id, CloseReason::Timeout, handler),
            _ => self.schedule(id),
        }
    }

    /// The waker fired: a shutdown request (seen at the top of the turn) or messages.
    pub(super) fn deliver_messages<H: Handler<M, T>>(&mut self, handler: &mut H) {
        let mut inbox = std::mem::take(&mut self.inbox);
        self.mailbox.take_all(&mut inbox);
        for message in inbox.drain(..) {
            handler.on_message(
                &mut Control {
                    core: &mut self.core,
                },
                message,
            );
            self.after_callback(handler);
        }
        self.inbox = inbox;
    }

    /// Carries out what callbacks left for the loop: reports connects that failed at once
    /// and stop requests.
    pub(super) fn run_deferred<H: Handler<M, T>>(&mut self, handler: &mut H) {
        let deferred = std::mem::take(&mut self.core.deferred);
        for item in deferred {
            match item {
                Deferred::ConnectFailed {
                    id,
                    peer,
                    mut state,
                    reason,
                    error,
                } => {
                    // Its id was never live: the `Conn` finds no connection, only the state.
                    let ctl = Control {
                        core: &mut self.core,
                    };
                    let mut conn = Conn {
                        ctl,
                        id,
                        state: &mut state,
                    };
                    handler.on_connect(&mut conn, Err(&error));
                    let closed = Closed {
                        id,
                        state,
                        peer: &peer,
                        listener: None,
                        reason,
                        unsent: 0,
                        received: 0,
                        sent: 0,
                    };
                    self.report_close(&closed, handler);
                }
                Deferred::Stop => self.mailbox.wake.request_shutdown(),
            }
        }
    }
}
