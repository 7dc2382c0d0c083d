//! Stream connections: their events, reading, handing input to the handler, and pipes.

use super::Dispatcher;
use crate::connection::{Actions, Input};
use crate::control::Control;
use crate::core::Core;
use crate::counters::Counters;
use crate::handler::{Conn, Handler};
use crate::id::ConnId;

/// What a readiness event says of an open connection, besides that it is readable.
#[derive(Debug, Clone, Copy)]
struct Event {
    writable: bool,
}

/// How far [`Dispatcher::on_readable`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Drain {
    /// Until `WouldBlock` or EOF.
    Fully,
    /// Also stop after a read that did not fill the buffer.
    UntilShortRead,
}

impl<T: Default> Dispatcher<T> {
    /// A readiness event for connection `id`.
    pub(crate) fn conn_event<M, H: Handler<M, T>>(
        &mut self,
        id: ConnId,
        event: &mio::event::Event,
        handler: &mut H,
    ) {
        self.stream_event(id, event, handler);
        self.run_work(handler);
    }

    fn stream_event<M, H: Handler<M, T>>(
        &mut self,
        id: ConnId,
        event: &mio::event::Event,
        handler: &mut H,
    ) {
        // The common event: an open connection's input, with its socket writable (epoll
        // reports the whole readiness at each edge) or not. One lookup serves both.
        let closed = event.is_read_closed() || event.is_error();
        if event.is_readable() && !closed {
            let open = Event {
                writable: event.is_writable(),
            };
            if self.read(id, Some(open), Drain::UntilShortRead, handler) {
                return;
            }
        }
        let Some((c, env)) = self.core.conn_env(id) else {
            return; // a stale event for a slot that was closed and reused
        };
        if c.is_connecting() {
            // The handshake's writable edge may come in the same event as the peer's first
            // bytes (and its FIN): with edge-triggered readiness there is no second event for
            // them, so read now too.
            //
            // On Linux a socket still in SYN_SENT reports neither readable nor writable, and a
            // failed one reports an error or a hang-up: readiness without either means the
            // handshake is done, so mio's `take_error` + `peer_addr` check (two system calls
            // per connection) is needed only for the other cases.
            let established = (event.is_writable() || event.is_readable())
                && !event.is_error()
                && !event.is_write_closed();
            self.finish_connect(id, established, handler);
            if self.core.conn(id).is_none_or(|c| c.is_connecting()) {
                return;
            }
        } else if event.is_writable() {
            let actions = c.on_writable(env.now, &env.limits, &env.counters);
            self.core.owe(id, actions);
            let read_follows = event.is_readable() || event.is_read_closed() || event.is_error();
            if !read_follows {
                return self.settle(id, handler);
            }
            // The read below settles the connection once, after both directions.
        }
        if event.is_read_closed() || event.is_error() {
            // The peer's FIN (or an error) is queued behind any data: no later edge will
            // announce it, so read until it is seen.
            self.on_readable(id, Drain::Fully, handler);
        } else if event.is_readable() {
            self.on_readable(id, Drain::UntilShortRead, handler);
        }
    }

    fn finish_connect<M, H: Handler<M, T>>(
        &mut self,
        id: ConnId,
        established: bool,
        handler: &mut H,
    ) {
        let Some((c, env)) = self.core.conn_env(id) else {
            return;
        };
        let result = if established {
            Ok(true)
        } else {
            c.stream().connect_result()
        };
        match result {
            Ok(false) => return,
            Ok(true) => {
                c.established(env.now);
                Counters::add(&env.counters.connected, 1);
                let peer = c.peer().clone();
                self.core.connect_done(id);
                self.callback(id, handler, |h, conn| h.on_connect(conn, Ok(&peer)));
            }
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                c.established_then_reset(env.now);
                Counters::add(&env.counters.connected, 1);
                let peer = c.peer().clone();
                self.core.connect_done(id);
                self.callback(id, handler, |h, conn| h.on_connect(conn, Ok(&peer)));
                // The caller reads it (the event carries the error): what the peer sent
                // before its reset is handed on, then the connection ends as reset.
            }
            Err(e) => {
                c.fail(&e);
                self.core.connect_attempt_failed(id, &e);
            }
        }
        self.settle(id, handler);
    }

    /// Reads until `WouldBlock` (or, as `drain` allows, a short read), EOF, a pause,
    /// back-pressure, or the end of this turn's read budget, handing data to the handler
    /// (or dropping it, when closing).
    ///
    /// The budget (`Config::read_budget` reads, or the connection's own) keeps one peer
    /// that keeps its socket full from starving every other connection, the listeners,
    /// timers and messages: a connection that spends it is carried over and read again next
    /// turn, after one poll that does not wait (its edge was consumed, so no event would
    /// come for it).
    pub(super) fn on_readable<M, H: Handler<M, T>>(
        &mut self,
        id: ConnId,
        drain: Drain,
        handler: &mut H,
    ) {
        self.read(id, None, drain, handler);
    }

    /// [`on_readable`](Self::on_readable), for a readiness `event` too: the connection's
    /// writable side is handled first, with the same lookup. Returns `false`, having done
    /// nothing, for an event on a connection still connecting (the caller completes the
    /// connect first).
    fn read<M, H: Handler<M, T>>(
        &mut self,
        id: ConnId,
        event: Option<Event>,
        drain: Drain,
        handler: &mut H,
    ) -> bool {
        let Some((mut c, mut env)) = self.core.conn_env(id) else {
            return true; // a stale event for a slot that was closed and reused
        };
        if let Some(event) = event {
            if c.is_connecting() {
                return false;
            }
            if event.writable {
                let actions = c.on_writable(env.now, &env.limits, &env.counters);
                if actions != Actions::NONE {
                    self.core.owe(id, actions);
                    let Some(again) = self.core.conn_env(id) else {
                        return true;
                    };
                    (c, env) = again;
                }
            }
        }
        if c.is_carried() {
            return true; // its turn's reads are spent: the carried pass reads it
        }
        let (max_pending, mut budget) = {
            let limits = c.limits(&env.limits);
            (limits.max_pending, limits.read_budget)
        };
        loop {
            if budget == 0 {
                c.set_carried(true);
                self.carried.push(id);
                break;
            }
            budget -= 1;
            let pipe = c.piped_to();
            let mut short = false;
            // Input the handler was stopped on comes before anything read after it (an
            // EOF behind it included): handed once the output has room, else left for the
            // drain that makes room.
            if c.is_input_owed() {
                if !c.take_input_owed(max_pending) {
                    break;
                }
                let kept = c.take_kept();
                self.deliver(id, 0, pipe, kept, handler);
            } else {
                let closing = c.is_closing();
                match c.read_step(&mut self.scratch, env.now, &env.limits, &env.counters) {
                    Input::Data(n) => {
                        let kept = c.take_kept();
                        self.deliver(id, n, pipe, kept, handler);
                        // A short read emptied the socket's receive queue: data arriving
                        // later raises a new edge, so the read that would only say
                        // `WouldBlock` is skipped (one system call per request; tokio does
                        // the same).
                        short = drain == Drain::UntilShortRead && n < self.scratch.len();
                    }
                    Input::Dropped(_) => {}
                    Input::Eof => {
                        match pipe {
                            Some(to) => self.forward_eof(id, to),
                            None if !closing => {
                                self.callback(id, handler, |h, conn| h.on_read_closed(conn));
                            }
                            None => {}
                        }
                        self.settle(id, handler);
                        return true;
                    }
                    Input::Stop => break,
                }
            }
            // Looked up again after every callback: the handler may have paused, closed or
            // aborted this connection, through `Conn` or through `Control`.
            match self.core.conn_env(id) {
                Some(next) => (c, env) = next,
                None => return true,
            }
            if short {
                break;
            }
        }
        // Settled with the connection in hand (`settle` without its lookup).
        if let Some(step) = super::step(c, env, &mut self.scratch) {
            self.after_step(id, step, handler);
        }
        true
    }

    /// Hands the connection's input to [`Handler::on_data`]: what earlier calls left, then
    /// the `n` new bytes in the scratch buffer. What the handler does not consume is kept
    /// for its next call (up to `Config::max_input`); the common case, a handler that
    /// consumes everything, copies nothing and allocates nothing.
    ///
    /// `pipe` and `kept` are the connection's, taken by the caller with its read.
    // Inline: out of line, the call in each read step costs a prologue of its own
    // (28 instructions per request, measured).
    #[inline(always)]
    fn deliver<M, H: Handler<M, T>>(
        &mut self,
        id: ConnId,
        n: usize,
        pipe: Option<ConnId>,
        mut kept: Vec<u8>,
        handler: &mut H,
    ) {
        if let Some(to) = pipe {
            return self.forward(id, to, n);
        }
        // The handler's calls borrow the scratch buffer: they reach only the core (the work
        // they leave, which may read into the buffer, runs after this returns).
        let keep = if kept.is_empty() {
            let used = feed(&mut self.core, id, &self.scratch[..n], handler);
            kept.extend_from_slice(&self.scratch[used..n]);
            used < n
        } else {
            kept.extend_from_slice(&self.scratch[..n]);
            let used = feed(&mut self.core, id, &kept, handler);
            kept.drain(..used);
            true
        };
        // A handler that consumed everything it was handed left nothing to keep, and the
        // connection's buffer is still the empty one taken from it.
        if keep {
            if let Some(c) = self.core.conn_mut(id) {
                c.put_kept(kept, self.settings.max_input);
            }
        }
    }

    /// Piped: the `n` new bytes go to connection `to`, and reading `id` pauses while too
    /// much waits there (`settle` of `to` resumes it).
    fn forward(&mut self, id: ConnId, to: ConnId, n: usize) {
        Control::new(&mut self.core).send(to, &self.scratch[..n]);
        let full = self
            .core
            .conn(to)
            .is_some_and(|t| t.pending() > t.limits(&self.core.env().limits).max_pending);
        if full {
            if let Some(c) = self.core.conn_mut(id) {
                c.pause_for_pipe();
            }
        }
    }

    /// Piped: the peer's EOF shuts the other connection's sending side, and once both
    /// sides have sent theirs, both close in order.
    fn forward_eof(&mut self, id: ConnId, to: ConnId) {
        let both = self.core.conn(to).is_none_or(|c| c.read_closed());
        let mut ctl = Control::new(&mut self.core);
        if both {
            ctl.close(to);
            ctl.close(id);
        } else {
            ctl.shutdown_write(to);
        }
    }
}

/// Calls `on_data` while it consumes something and input is left, unless the
/// connection closes or its output passes the back-pressure bound (then the rest is
/// owed, and handed again once the output drained: one request at a time per call
/// keeps an amplifying protocol bounded with no code of the handler's). Returns how
/// much was consumed; all of it when the connection is closing (the rest is dropped).
///
/// Replies queue while the batch is handled (the connection is corked) and leave
/// together once it is, in one `writev`: one write per batch of pipelined requests, and
/// still one for a single request.
fn feed<M, T: Default, H: Handler<M, T>>(
    core: &mut Core<T>,
    id: ConnId,
    input: &[u8],
    handler: &mut H,
) -> usize {
    if input.is_empty() {
        return 0;
    }
    let Some(mut state) = core.begin_feed(id, input) else {
        return input.len();
    };
    let mut used = 0;
    loop {
        let rest = &input[used..];
        let mut conn = Conn {
            ctl: Control::for_conn(core, id),
            id,
            state: &mut state,
        };
        let took = handler.on_data(&mut conn, rest).min(rest.len());
        used += took;
        // Live: a connection never disappears during its own callback.
        let Some(fed) = core.feeding(id) else {
            return input.len();
        };
        let done = if fed.conn.is_closing() || fed.conn.is_ended() {
            used = input.len();
            true
        } else if took == 0 || used == input.len() {
            // Everything consumed: nothing is owed, and a read finds the output over
            // its bound before it reads (`read_step`).
            true
        } else {
            // Stopped with input left: it is owed, and handed again once the output
            // drained or the handler resumed reading.
            let full = fed.pending() > fed.conn.limits(&fed.env.limits).max_pending;
            let stop = full || fed.conn.is_paused_by_handler();
            if stop {
                fed.conn.owe_input();
            }
            if full {
                fed.conn.pause_for_output();
            }
            stop
        };
        if done {
            fed.end(state, input);
            return used;
        }
    }
}

impl<T: Default> Dispatcher<T> {
    /// Reads again the connections that spent their read budget last turn (those that
    /// spend it again now are carried to the next turn).
    pub(super) fn read_carried<M, H: Handler<M, T>>(&mut self, handler: &mut H) {
        if self.carried.is_empty() {
            return;
        }
        std::mem::swap(&mut self.carried, &mut self.carrying);
        let mut carrying = std::mem::take(&mut self.carrying);
        for id in carrying.drain(..) {
            if let Some(c) = self.core.conn_mut(id) {
                c.set_carried(false);
                // Fully: an EOF behind the data raises no new edge either.
                self.on_readable(id, Drain::Fully, handler);
                self.run_work(handler);
            }
        }
        self.carrying = carrying;
    }
}
