//! Stream connections: their events, the handler's callbacks, settling a connection after
//! anything happened to it, and the one path by which every connection ends.

use super::EventLoop;
use crate::connection::{Input, Phase, Step};
use crate::connects;
use crate::control::Control;
use crate::counters::Counters;
use crate::handler::{Closed, Conn, Handler};
use crate::id::{CloseReason, ConnId};
use crate::timers::TimerKey;
use crate::token::{self, Target, MAX_INDEX};

/// How far [`EventLoop::on_readable`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Drain {
    /// Until `WouldBlock` or EOF.
    Fully,
    /// Also stop after a read that did not fill the buffer.
    UntilShortRead,
}

impl<M, T: Default> EventLoop<M, T> {
    pub(super) fn conn_event<H: Handler<M, T>>(
        &mut self,
        id: ConnId,
        event: &mio::event::Event,
        handler: &mut H,
    ) {
        let Some(c) = self.core.conns.get(id) else {
            return; // a stale event for a slot that was closed and reused
        };
        if c.phase() == Phase::Connecting {
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
            if self
                .core
                .conns
                .get(id)
                .is_none_or(|c| c.phase() == Phase::Connecting)
            {
                return;
            }
        } else if event.is_writable() {
            let read_follows = event.is_readable() || event.is_read_closed() || event.is_error();
            if !read_follows {
                self.on_writable(id, handler);
            } else if let Some(c) = self.core.conns.get_mut(id) {
                // The read below settles the connection once, after both directions.
                c.on_writable(self.core.now, &self.core.limits, &self.core.counters);
            }
        }
        if event.is_read_closed() || event.is_error() {
            // The peer's FIN (or an error) is queued behind any data: no later edge will
            // announce it, so read until it is seen.
            self.on_readable(id, Drain::Fully, handler);
        } else if event.is_readable() {
            self.on_readable(id, Drain::UntilShortRead, handler);
        }
    }

    fn finish_connect<H: Handler<M, T>>(&mut self, id: ConnId, established: bool, handler: &mut H) {
        let Some(c) = self.core.conns.get_mut(id) else {
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
                c.established(self.core.now);
                Counters::add(&self.core.counters.connected, 1);
                let peer = c.peer().clone();
                self.core.connects.connected(id);
                self.callback(id, handler, |h, conn| h.on_connect(conn, Ok(&peer)));
            }
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                c.established_then_reset(self.core.now);
                Counters::add(&self.core.counters.connected, 1);
                let peer = c.peer().clone();
                self.core.connects.connected(id);
                self.callback(id, handler, |h, conn| h.on_connect(conn, Ok(&peer)));
                // The caller reads it (the event carries the error): what the peer sent
                // before its reset is handed on, then the connection ends as reset.
            }
            Err(e) => {
                self.core.connects.attempt_failed(id, &e);
                c.fail(&e);
            }
        }
        self.settle(id, handler);
        self.after_callback(handler);
    }

    fn on_writable<H: Handler<M, T>>(&mut self, id: ConnId, handler: &mut H) {
        if let Some(c) = self.core.conns.get_mut(id) {
            c.on_writable(self.core.now, &self.core.limits, &self.core.counters);
        }
        self.settle(id, handler);
        self.after_callback(handler);
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
    pub(super) fn on_readable<H: Handler<M, T>>(
        &mut self,
        id: ConnId,
        drain: Drain,
        handler: &mut H,
    ) {
        let Some(c) = self.core.conns.get_mut(id) else {
            return;
        };
        if c.is_carried() {
            return; // its turn's reads are spent: the carried pass reads it
        }
        let (max_pending, mut budget) = {
            let limits = c.limits(&self.core.limits);
            (limits.max_pending, limits.read_budget)
        };
        // Looked up again after every callback: the handler may have paused, closed or
        // aborted this connection, through `Conn` or through `Control`.
        while let Some(c) = self.core.conns.get_mut(id) {
            if budget == 0 {
                c.set_carried(true);
                self.carried.push(id);
                break;
            }
            budget -= 1;
            // Input the handler was stopped on comes before anything read after it (an
            // EOF behind it included): handed once the output has room, else left for the
            // drain that makes room.
            if c.is_input_owed() {
                if !c.take_input_owed(max_pending) {
                    break;
                }
                self.deliver(id, 0, handler);
                self.after_callback(handler);
                continue;
            }
            let closing = c.is_closing();
            match c.read_step(
                &mut self.scratch,
                self.core.now,
                &self.core.limits,
                &self.core.counters,
            ) {
                Input::Data(n) => {
                    self.deliver(id, n, handler);
                    self.after_callback(handler);
                    // A short read emptied the socket's receive queue: data arriving later
                    // raises a new edge, so the read that would only say `WouldBlock` is
                    // skipped (one system call per request; tokio does the same).
                    if drain == Drain::UntilShortRead && n < self.scratch.len() {
                        break;
                    }
                }
                Input::Dropped(_) => {}
                Input::Eof => {
                    let pipe = self.core.conns.get(id).and_then(|c| c.piped_to());
                    match pipe {
                        Some(to) => self.forward_eof(id, to),
                        None if !closing => {
                            self.callback(id, handler, |h, conn| h.on_read_closed(conn));
                        }
                        None => {}
                    }
                    break;
                }
                Input::Stop => break,
            }
        }
        self.settle(id, handler);
        self.after_callback(handler);
    }

    /// Hands the connection's input to [`Handler::on_data`]: what earlier calls left, then
    /// the `n` new bytes in the scratch buffer. What the handler does not consume is kept
    /// for its next call (up to `Config::max_input`); the common case, a handler that
    /// consumes everything, copies nothing and allocates nothing.
    fn deliver<H: Handler<M, T>>(&mut self, id: ConnId, n: usize, handler: &mut H) {
        let Some(c) = self.core.conns.get_mut(id) else {
            return;
        };
        if let Some(to) = c.piped_to() {
            return self.forward(id, to, n);
        }
        let mut kept = c.take_kept();
        // The scratch buffer is lent out for the handler's calls: nothing reads into it
        // until `after_callback`, which runs after this returns.
        let scratch = std::mem::take(&mut self.scratch);
        if kept.is_empty() {
            let used = self.feed(id, &scratch[..n], handler);
            kept.extend_from_slice(&scratch[used..n]);
        } else {
            kept.extend_from_slice(&scratch[..n]);
            let used = self.feed(id, &kept, handler);
            kept.drain(..used);
        }
        self.scratch = scratch;
        if let Some(c) = self.core.conns.get_mut(id) {
            c.put_kept(kept, self.config.max_input);
        }
    }

    /// Piped: the `n` new bytes go to connection `to`, and reading `id` pauses while too
    /// much waits there (`settle` of `to` resumes it).
    fn forward(&mut self, id: ConnId, to: ConnId, n: usize) {
        let mut ctl = Control {
            core: &mut self.core,
        };
        ctl.send_inner(to, &self.scratch[..n], None);
        let full = self
            .core
            .conns
            .get(to)
            .is_some_and(|t| t.pending() > t.limits(&self.core.limits).max_pending);
        if full {
            if let Some(c) = self.core.conns.get_mut(id) {
                c.pause_for_pipe();
            }
        }
    }

    /// Piped: the peer's EOF shuts the other connection's sending side, and once both
    /// sides have sent theirs, both close in order.
    fn forward_eof(&mut self, id: ConnId, to: ConnId) {
        let both = self.core.conns.get(to).is_none_or(|c| c.read_closed());
        let mut ctl = Control {
            core: &mut self.core,
        };
        if both {
            ctl.close(to);
            ctl.close(id);
        } else {
            ctl.shutdown_write(to);
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
    fn feed<H: Handler<M, T>>(&mut self, id: ConnId, input: &[u8], handler: &mut H) -> usize {
        if let Some(c) = self.core.conns.get_mut(id) {
            c.cork();
        }
        let used = self.feed_calls(id, input, handler);
        if let Some(c) = self.core.conns.get_mut(id) {
            c.uncork(&self.core.limits, &self.core.counters);
        }
        used
    }

    fn feed_calls<H: Handler<M, T>>(&mut self, id: ConnId, input: &[u8], handler: &mut H) -> usize {
        let mut used = 0;
        while used < input.len() {
            let rest = &input[used..];
            let mut took = 0;
            self.callback(id, handler, |h, conn| took = h.on_data(conn, rest));
            used += took.min(rest.len());
            let Some(c) = self.core.conns.get_mut(id) else {
                return input.len();
            };
            if c.is_closing() || c.is_ended() {
                return input.len();
            }
            if took == 0 {
                break;
            }
            if c.pending() > c.limits(&self.core.limits).max_pending {
                c.owe_input();
                c.pause_for_output();
                break;
            }
            if c.is_paused_by_handler() {
                c.owe_input();
                break;
            }
        }
        used
    }

    /// Calls `f` with connection `id`, live for the whole call.
    pub(super) fn callback<H, F>(&mut self, id: ConnId, handler: &mut H, f: F)
    where
        H: Handler<M, T>,
        F: FnOnce(&mut H, &mut Conn<'_, T>),
    {
        let Some(c) = self.core.conns.get_mut(id) else {
            return;
        };
        // The state goes out of its slot for the call (so that `Conn` can lend it while
        // its `Control` borrows the rest), and back once it returns.
        let mut state = c.take_state();
        let mut conn = Conn {
            ctl: Control {
                core: &mut self.core,
            },
            id,
            state: &mut state,
        };
        f(handler, &mut conn);
        if let Some(c) = self.core.conns.get_mut(id) {
            c.put_state(state);
        }
    }

    /// After a callback: settles every connection it changed through `Control` (a send to
    /// another connection, a close, a resumed read), and carries out what it left for the
    /// loop (failed connects' `on_close`, a stop). Those may call the handler again, and so
    /// change more connections; the list is worked until it is empty. A nested call (a
    /// callback run while settling) leaves the list to the outer one, so the stack stays
    /// flat however connections feed each other.
    #[inline]
    pub(super) fn after_callback<H: Handler<M, T>>(&mut self, handler: &mut H) {
        // The common case (a callback that touched only its own connection) costs two
        // length checks.
        if self.settling || (self.core.touched.is_empty() && self.core.deferred.is_empty()) {
            return;
        }
        self.settling = true;
        loop {
            if let Some(id) = self.core.touched.pop() {
                self.settle(id, handler);
            } else if !self.core.deferred.is_empty() {
                self.run_deferred(handler);
            } else {
                break;
            }
        }
        self.settling = false;
    }

    /// After anything happened to a connection: move it along, close it, or make sure it is
    /// registered, has its deadline, and gets the read it is owed.
    pub(super) fn settle<H: Handler<M, T>>(&mut self, id: ConnId, handler: &mut H) {
        let Some(c) = self.core.conns.get_mut(id) else {
            return;
        };
        match c.advance(
            self.core.now,
            &self.core.limits,
            &mut self.scratch,
            &self.core.counters,
        ) {
            Step::Close(reason) => self.close(id, reason, handler),
            Step::Keep => {
                if !c.is_registered() {
                    let result = if id.index > MAX_INDEX {
                        Err(std::io::Error::other("too many connections for one loop"))
                    } else {
                        c.register(&self.core.registry, token::encode(Target::Conn(id)))
                    };
                    if let Err(err) = result {
                        log::warn!("register {:?}: {err}", c.peer());
                        c.fail(&err);
                        return self.settle(id, handler);
                    }
                }
                let flushed = c.take_flushed_owed();
                let read_owed = c.take_read_owed();
                if let Some(from) = c.piped_to() {
                    if c.pending() <= c.limits(&self.core.limits).max_pending / 2
                        && self
                            .core
                            .conns
                            .get_mut(from)
                            .is_some_and(|f| f.resume_for_pipe())
                    {
                        self.core.touched.push(from);
                    }
                }
                self.schedule(id);
                if flushed {
                    self.callback(id, handler, |h, conn| h.on_flushed(conn));
                    // What the handler did there (a close, a send) needs this step again.
                    self.core.touched.push(id);
                }
                if read_owed {
                    // Input that waited raised its edge long ago: read all of it.
                    self.on_readable(id, Drain::Fully, handler);
                }
            }
        }
    }

    /// Makes sure the connection's earliest deadline is in the timer set. A later deadline
    /// is left for the earlier entry to find when it fires (idle deadlines move on every
    /// read; moving the timer entry each time would cost more than the rare early wake-up).
    pub(super) fn schedule(&mut self, id: ConnId) {
        let Some(c) = self.core.conns.get_mut(id) else {
            return;
        };
        let Some(want) = c.next_deadline(&self.core.limits) else {
            return;
        };
        if c.scheduled().is_some_and(|at| at <= want) {
            return;
        }
        let key = TimerKey::Conn(id);
        self.core.timers.reschedule(key, c.scheduled(), Some(want));
        c.set_scheduled(Some(want));
    }

    /// The end of a connection's life, whatever ended it: out of the slot map (its id is
    /// stale from now on), its deadline dropped, counted, [`Handler::on_close`] called once,
    /// and its socket closed (which also removes it from the poller: no `epoll_ctl(DEL)`).
    /// A connection piped to this one closes too: in order after an orderly close, with a
    /// reset (abort) after anything else, so a reset or a failed connect is passed on.
    pub(super) fn close<H: Handler<M, T>>(
        &mut self,
        id: ConnId,
        reason: CloseReason,
        handler: &mut H,
    ) {
        // A connect that never completed: a connect by name tries its next address (the
        // connection lives on), any other hears of its failure in `on_connect` first.
        if self.core.connects.is_pending(id) {
            let Some(error) = connects::connect_ended(&mut self.core, id, reason) else {
                return;
            };
            self.callback(id, handler, |h, conn| h.on_connect(conn, Err(&error)));
        }
        let Some(mut conn) = self.core.conns.remove(id) else {
            return;
        };
        if let Some(at) = conn.scheduled() {
            self.core.timers.remove(at, TimerKey::Conn(id));
        }
        if let Some(other) = conn.piped_to() {
            let mut ctl = Control {
                core: &mut self.core,
            };
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
        conn.retire(reason, &self.core.counters);
        self.resume_full_listeners(handler);
    }

    /// Counts a closed connection and tells the handler. Called by [`close`](Self::close),
    /// and for a connect that failed before its connection existed.
    pub(super) fn report_close<H: Handler<M, T>>(
        &mut self,
        closed: &Closed<'_, T>,
        handler: &mut H,
    ) {
        Counters::add(&self.core.counters.closed, 1);
        closed.reason.count(&self.core.counters);
        if closed.reason != CloseReason::Done {
            log::debug!("connection {:?} closed: {:?}", closed.peer, closed.reason);
        }
        handler.on_close(
            &mut Control {
                core: &mut self.core,
            },
            closed,
        );
    }
}
