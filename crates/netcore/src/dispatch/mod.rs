//! The dispatcher: from a readiness event (or a due deadline, or a message) to the
//! connection's transitions and the handler's callbacks, and back to the work they leave.
//!
//! The event loop ([`EventLoop`](crate::EventLoop), the reactor) calls in; the dispatcher
//! never calls back out. It drives [`Core`] and each [`Connection`]'s transitions, calls
//! the [`Handler`], and works the one queue of [`Work`] the callbacks and transitions
//! leave: every entry point ends with [`Dispatcher::run_work`], and nothing it calls runs
//! the queue itself, so the stack stays flat however connections feed each other.
//!
//! - this file: the dispatcher, the work queue, callbacks, settling a connection, and the
//!   one end-of-life path (`close`);
//! - `accept.rs`: listeners, accepting, the fast path;
//! - `streams.rs`: connection events, reading, handing input to the handler, pipes;
//! - `datagrams.rs`: UDP sockets;
//! - `deadlines.rs`: deadlines and timers as they fall due;
//! - `stop.rs`: stopping and draining.

mod accept;
mod datagrams;
mod deadlines;
mod stop;
mod streams;

use std::time::Duration;

use crate::config::Config;
use crate::connection::{Actions, Connection, Step};
use crate::control::Control;
use crate::core::{Core, Env, Work};
use crate::counters::Counters;
use crate::handler::{Closed, Conn, Handler};
use crate::id::{CloseReason, ConnId};

pub(crate) use streams::Drain;

/// Bytes read per `read` call into the shared scratch buffer.
const READ_CHUNK: usize = 64 * 1024;

/// What the loop's settings say about dispatching (the rest is in each connection's
/// limits, in [`Core`]).
#[derive(Debug)]
struct Settings {
    max_input: usize,
    max_connections: usize,
    accept_backoff: Duration,
    drain_timeout: Duration,
}

#[derive(Debug)]
pub(crate) struct Dispatcher<T> {
    core: Core<T>,
    settings: Settings,
    /// The read buffer every connection and UDP socket shares: a callback's `data` borrows
    /// it, so it lives outside `core`.
    scratch: Vec<u8>,
    /// Stopping: no listener or UDP socket is left, connections are draining, and the
    /// loop ends once none is left.
    stopping: bool,
    /// Listeners were left unpolled because `max_connections` was reached; the next close
    /// resumes them.
    full: bool,
    /// Connections that spent their read budget this turn with input possibly left: read
    /// again next turn, whose poll then does not wait.
    carried: Vec<ConnId>,
    /// The carried connections being read this turn (kept for its allocation).
    carrying: Vec<ConnId>,
}

impl<T> Dispatcher<T> {
    pub(crate) fn new(core: Core<T>, config: &Config) -> Dispatcher<T> {
        Dispatcher {
            core,
            settings: Settings {
                max_input: config.max_input,
                max_connections: config.max_connections,
                accept_backoff: config.accept_backoff,
                drain_timeout: config.drain_timeout,
            },
            scratch: vec![0; READ_CHUNK],
            stopping: false,
            full: false,
            carried: Vec::new(),
            carrying: Vec::new(),
        }
    }

    pub(crate) fn core(&mut self) -> &mut Core<T> {
        &mut self.core
    }

    pub(crate) fn core_ref(&self) -> &Core<T> {
        &self.core
    }

    /// A control for callbacks that are not about one connection.
    fn control(&mut self) -> Control<'_, T> {
        Control::new(&mut self.core)
    }

    /// The loop asked to stop (by the handler, or it should start stopping now).
    pub(crate) fn stop_requested(&self) -> bool {
        self.core.stop_requested()
    }

    pub(crate) fn is_stopping(&self) -> bool {
        self.stopping
    }

    /// Stopped, and every connection is gone: the loop is over.
    pub(crate) fn is_done(&self) -> bool {
        self.stopping && self.core.is_empty()
    }

    /// How long the next poll may wait: not at all while connections are carried over.
    pub(crate) fn poll_timeout(&self) -> Option<Duration> {
        if self.carried.is_empty() {
            self.core.poll_timeout()
        } else {
            Some(Duration::ZERO)
        }
    }

    /// A new batch of events was taken from the poller.
    pub(crate) fn read_clock(&mut self) {
        self.core.read_clock();
    }
}

impl<T: Default> Dispatcher<T> {
    /// What was queued before the loop ran (connects started ahead of `run`).
    pub(crate) fn start<M, H: Handler<M, T>>(&mut self, handler: &mut H) {
        self.core.read_clock();
        self.run_work(handler);
    }

    /// A message from another thread.
    pub(crate) fn message<M, H: Handler<M, T>>(&mut self, handler: &mut H, message: M) {
        handler.on_message(&mut self.control(), message);
        self.run_work(handler);
    }

    /// The waker fired: finished jobs of the worker pool go to their continuations, each
    /// followed by the work it left. A job that panicked panics here, on the loop's thread,
    /// as if the closure had run in the callback that handed it over: a result is never
    /// dropped unseen.
    pub(crate) fn finish_blocking<M, H: Handler<M, T>>(&mut self, handler: &mut H) {
        while let Some((then, outcome)) = self.core.next_finished() {
            match outcome {
                Ok(value) => then(&mut self.core, value),
                Err(panic) => std::panic::resume_unwind(panic),
            }
            self.run_work(handler);
        }
    }

    /// The end of a turn: connections carried over, due deadlines, `on_turn_end`.
    pub(crate) fn end_turn<M, H: Handler<M, T>>(&mut self, handler: &mut H) {
        self.read_carried(handler);
        self.fire_timers(handler);
        handler.on_turn_end(&mut self.control());
        self.run_work(handler);
    }

    /// Works the queue until it is empty: what callbacks and transitions left for the loop
    /// (connections to settle, reads owed, `on_flushed` due, failed connects' `on_close`).
    /// Each entry may call the handler, which may queue more; the queue, not the stack,
    /// holds it.
    ///
    /// Then, if connections closed while listeners were held back by `max_connections`,
    /// they accept again (here, at the top, rather than from inside `close`, which may run
    /// within an accept).
    #[inline]
    pub(crate) fn run_work<M, H: Handler<M, T>>(&mut self, handler: &mut H) {
        // Most events leave nothing: this runs after every one.
        if self.core.has_work() || self.full {
            self.run_queued_work(handler);
        }
    }

    fn run_queued_work<M, H: Handler<M, T>>(&mut self, handler: &mut H) {
        loop {
            self.drain_queue(handler);
            if !self.full || self.core.len() >= self.settings.max_connections {
                return;
            }
            self.resume_full_listeners(handler);
        }
    }

    /// Works the queue until it is empty.
    #[inline]
    fn drain_queue<M, H: Handler<M, T>>(&mut self, handler: &mut H) {
        while let Some(work) = self.core.next_work() {
            self.work(work, handler);
        }
    }

    fn work<M, H: Handler<M, T>>(&mut self, work: Work<T>, handler: &mut H) {
        match work {
            Work::Settle(id) => self.settle(id, handler),
            Work::Read(id) => self.on_readable(id, Drain::Fully, handler),
            Work::Flushed(id) => {
                self.callback(id, handler, |h, conn| h.on_flushed(conn));
                self.settle(id, handler);
            }
            Work::ConnectFailed {
                id,
                peer,
                mut state,
                reason,
                error,
            } => {
                // Its id was never live: the `Conn` finds no connection, only the state.
                let mut conn = Conn {
                    ctl: Control::for_conn(&mut self.core, id),
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
        }
    }

    /// Calls `f` with connection `id`, live for the whole call.
    fn callback<M, H, F>(&mut self, id: ConnId, handler: &mut H, f: F)
    where
        H: Handler<M, T>,
        F: FnOnce(&mut H, &mut Conn<'_, T>),
    {
        let Some(c) = self.core.conn_mut(id) else {
            return;
        };
        // The state goes out of its slot for the call (so that `Conn` can lend it while
        // its `Control` borrows the rest), and back once it returns.
        let mut state = c.take_state();
        let mut conn = Conn {
            ctl: Control::for_conn(&mut self.core, id),
            id,
            state: &mut state,
        };
        f(handler, &mut conn);
        // A state of no size (a handler without one) has nothing to put back.
        if std::mem::size_of::<T>() != 0 {
            if let Some(c) = self.core.conn_mut(id) {
                c.put_state(state);
            }
        }
    }

    /// After anything happened to a connection: move it along (flush, half-close, close),
    /// and while it lives, make sure it is registered and has its deadline; what the step
    /// owes (a read, `on_flushed`) goes to the work queue. A connection that ends is queued
    /// for [`close`](Self::close), which calls the handler.
    fn settle<M, H: Handler<M, T>>(&mut self, id: ConnId, handler: &mut H) {
        let Some((c, env)) = self.core.conn_env(id) else {
            return;
        };
        if let Some(step) = step(c, env, &mut self.scratch) {
            self.after_step(id, step, handler);
        }
    }

    /// What a connection's [`step`] left for the loop: its close, or keeping it (registered,
    /// scheduled, what it owes queued).
    fn after_step<M, H: Handler<M, T>>(&mut self, id: ConnId, step: Step, handler: &mut H) {
        let actions = match step {
            Step::Close(reason) => return self.close(id, reason, handler),
            Step::Keep(actions) => actions,
        };
        if let Err(err) = self.core.keep(id, actions) {
            if let Some(c) = self.core.conn_mut(id) {
                log::warn!("register {:?}: {err}", c.peer());
                c.fail(&err);
            }
            self.settle(id, handler);
        }
    }

    /// The end of a connection's life, whatever ended it: out of the slot map (its id is
    /// stale from now on) with its deadline, counted, [`Handler::on_close`] called once,
    /// and its socket closed (which also removes it from the poller: no `epoll_ctl(DEL)`).
    /// A connection piped to this one closes too: in order after an orderly close, with a
    /// reset (abort) after anything else, so a reset or a failed connect is passed on.
    fn close<M, H: Handler<M, T>>(&mut self, id: ConnId, reason: CloseReason, handler: &mut H) {
        // A connect that never completed: a connect by name tries its next address (the
        // connection lives on), any other hears of its failure in `on_connect` first.
        if self.core.is_connect_pending(id) {
            let Some(error) = self.core.connect_ended(id, reason) else {
                return;
            };
            self.callback(id, handler, |h, conn| h.on_connect(conn, Err(&error)));
        }
        let Some(mut conn) = self.core.remove(id) else {
            return;
        };
        if let Some(other) = conn.piped_to() {
            let mut ctl = self.control();
            if reason == CloseReason::Done {
                ctl.close(other);
            } else {
                ctl.abort(other);
            }
        }
        // The handler hears of it before the peer does: the socket closes after `on_close`.
        let (received, sent) = conn.traffic();
        let closed = Closed {
            id,
            state: conn.take_state(),
            peer: conn.peer(),
            listener: conn.listener(),
            reason,
            unsent: conn.pending(),
            received,
            sent,
        };
        self.report_close(&closed, handler);
        conn.retire(reason, self.core.counters());
    }

    /// Counts a closed connection and tells the handler. Called by [`close`](Self::close),
    /// and for a connect that failed before its connection existed.
    fn report_close<M, H: Handler<M, T>>(&mut self, closed: &Closed<'_, T>, handler: &mut H) {
        let counters = self.core.counters();
        Counters::add(&counters.closed, 1);
        closed.reason.count(counters);
        if closed.reason != CloseReason::Done {
            log::debug!("connection {:?} closed: {:?}", closed.peer, closed.reason);
        }
        handler.on_close(&mut self.control(), closed);
    }
}

/// Moves connection `c` along after an event ([`Connection::advance`]); `None` in the
/// common case, when that left nothing for the loop: registered, no deadline moved
/// earlier, no pipe, nothing owed.
#[inline(always)]
fn step<T>(c: &mut Connection<T>, env: &Env, scratch: &mut [u8]) -> Option<Step> {
    if c.is_quiet() {
        return None;
    }
    step_taken(c, env, scratch)
}

/// [`step`] past its first check: out of line, so the check costs no saved registers.
#[inline(never)]
fn step_taken<T>(c: &mut Connection<T>, env: &Env, scratch: &mut [u8]) -> Option<Step> {
    let step = c.advance(env.now, &env.limits, scratch, &env.counters);
    (step != Step::Keep(Actions::NONE) || !c.is_settled()).then_some(step)
}

impl<T: Default> Dispatcher<T> {
    /// A readiness event for listener or UDP socket `key`.
    pub(crate) fn source_event<M, H: Handler<M, T>>(
        &mut self,
        key: usize,
        event: &mio::event::Event,
        handler: &mut H,
    ) {
        match self.core.source(key) {
            Some(crate::core::Source::Udp(_)) => self.udp_event(key, event, handler),
            Some(_) => self.accept_from(key, handler),
            None => {}
        }
        self.run_work(handler);
    }
}
