//! [`Core`]: the loop's state, shared by the dispatcher (which drives it from events) and
//! [`Control`](crate::Control) (through which callbacks act on it): connections, sources,
//! deadlines, and the one queue of work that callbacks leave for the loop.
//!
//! Its fields are private: both sides go through the methods below, so that what keeps
//! the state consistent (a connection's deadline entry, its place in the work queue) is
//! done in one place.

pub(crate) mod connects;

use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::SocketAddr;
use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::Registry;
use slab::Slab;

use crate::clock::{Clock, Tick};
use crate::connection::{Actions, Connection, Limits, Stream};
use crate::counters::Counters;
use crate::id::{CloseReason, ConnId, PeerAddr, TimerId};
use crate::pool::{Outcome, SpawnError, Value, WorkerPool};
use crate::slots::Slots;
use crate::timers::{TimerKey, Timers};
use crate::token::{self, Target, MAX_INDEX};
use crate::udp::UdpSource;
use connects::{ConnectError, PendingConnects};

/// A listener or UDP socket in the loop.
#[derive(Debug)]
pub(crate) enum Source {
    TcpListener {
        listener: mio::net::TcpListener,
        paused: bool,
    },
    UnixListener {
        listener: mio::net::UnixListener,
        paused: bool,
    },
    Udp(UdpSource),
}

impl Source {
    fn deregister(&mut self, registry: &Registry) -> io::Result<()> {
        match self {
            Source::TcpListener { listener, .. } => registry.deregister(listener),
            Source::UnixListener { listener, .. } => registry.deregister(listener),
            Source::Udp(udp) => registry.deregister(&mut udp.socket),
        }
    }
}

/// What the loop runs with a worker job's value, on its own thread
/// ([`Control::spawn_blocking`](crate::Control::spawn_blocking)'s `then`, or what a
/// connect by name does with its addresses).
pub(crate) type Continuation<T> = Box<dyn FnOnce(&mut Core<T>, Value) + Send>;

/// What the loop owes once the code running now (a callback, a step of the loop's own)
/// returns. Worked in order by the dispatcher until none is left; the work may call the
/// handler, which may queue more.
#[derive(Debug)]
pub(crate) enum Work<T> {
    /// Something changed the connection from outside its own callback (a send from
    /// another connection's, a close, a pipe): move it along, register it, schedule it.
    Settle(ConnId),
    /// Reading resumed: read what waited, without waiting for an edge that will not come.
    Read(ConnId),
    /// Its output fell to the low-water mark: `on_flushed`.
    Flushed(ConnId),
    /// A connect that failed at once, before it had a socket: its `on_connect` (with
    /// `error`), then its `on_close`.
    ConnectFailed {
        id: ConnId,
        peer: PeerAddr,
        state: T,
        reason: CloseReason,
        error: ConnectError,
    },
}

/// What a send hands over.
#[derive(Debug)]
pub(crate) enum Output<'a> {
    Copy(&'a [u8]),
    Shared(&'a Arc<[u8]>),
    Owned(Vec<u8>),
}

/// The replies of one batch of input: while the loop hands a connection's input to
/// `on_data`, what it sends is gathered here, in one buffer the loop keeps, and written
/// in one system call once the batch is handled. One write per batch of pipelined
/// requests, and for a single request the same one write as an uncorked send, without
/// queueing a chunk on the connection.
///
/// Replies that are a slice of the input itself (an echo, a relay) are not copied: while
/// they are one run of it, the cork keeps where, and the batch's write takes them from the
/// input.
#[derive(Debug, Default)]
struct Cork {
    /// The connection being fed.
    id: Option<ConnId>,
    /// Where the batch's input is: its address and length.
    input: (usize, usize),
    /// The batch's first replies, when they are one run of the input: its range there.
    borrowed: Option<Range<usize>>,
    /// What the batch sent otherwise (or after), copied.
    buf: Vec<u8>,
}

impl Cork {
    /// Takes `bytes` into the batch: as a range of the input when they continue the run
    /// of it the batch's replies are so far, else copied unless larger than
    /// [`CORK_COPY_MAX`] (`false`: the caller queues them on the connection).
    #[inline]
    fn push(&mut self, bytes: &[u8]) -> bool {
        if self.buf.is_empty() {
            if let Some(range) = self.within_input(bytes) {
                match &mut self.borrowed {
                    None => {
                        self.borrowed = Some(range);
                        return true;
                    }
                    Some(run) if run.end == range.start => {
                        run.end = range.end;
                        return true;
                    }
                    Some(_) => {}
                }
            }
        }
        if bytes.len() > CORK_COPY_MAX && self.borrowed.is_none() {
            return false;
        }
        // Behind a run of the input, everything is copied: it must leave after the run,
        // in the batch's one write.
        self.buf.extend_from_slice(bytes);
        true
    }

    /// Where `bytes` are in the batch's input, if they are part of it. Two slices at the
    /// same address are the same bytes: the input is borrowed, unchanged, for the whole
    /// batch.
    fn within_input(&self, bytes: &[u8]) -> Option<Range<usize>> {
        let (base, len) = self.input;
        let start = (bytes.as_ptr() as usize).checked_sub(base)?;
        let end = start.checked_add(bytes.len())?;
        (end <= len && !bytes.is_empty()).then_some(start..end)
    }

    /// Bytes the batch has sent so far.
    fn len(&self) -> usize {
        self.borrowed.as_ref().map_or(0, |run| run.len()) + self.buf.len()
    }
}

/// Sends larger than this skip the cork buffer (which would copy them once more): they
/// queue on the connection, behind what the buffer held.
const CORK_COPY_MAX: usize = 16 * 1024;

/// The cork buffer's capacity is kept between batches up to this.
const CORK_KEEP: usize = 64 * 1024;

/// What every connection transition reads: the time, the loop's settings, its counters.
#[derive(Debug)]
pub(crate) struct Env {
    /// When this batch of events was taken from the poller.
    pub(crate) now: Tick,
    /// The loop's settings for every connection (a connection may have its own).
    pub(crate) limits: Limits,
    pub(crate) counters: Arc<Counters>,
}

/// The loop's state that callbacks act on and the dispatcher drives.
#[derive(Debug)]
pub(crate) struct Core<T = ()> {
    /// Every open connection, registered or not (a fast-path connection lives here only
    /// during its `on_open`).
    conns: Slots<Connection<T>>,
    /// Listeners and UDP sockets; emptied when the loop stops.
    sources: Slab<Source>,
    /// Every deadline: connections', paused listeners', the handler's timers, the drain's.
    timers: Timers,
    /// The handler's live timers and when each is due (a cancelled timer is absent).
    user_timers: HashMap<u64, Tick>,
    next_timer: u64,
    work: VecDeque<Work<T>>,
    cork: Cork,
    /// The handler asked the loop to stop ([`Control::stop`](crate::Control::stop)).
    stop: bool,
    /// Reads the time (once per turn) and converts the handler's `Instant`s.
    clock: Clock,
    env: Env,
    registry: Registry,
    /// Blocking work (`spawn_blocking`, name lookups) and what to do with each result.
    pool: WorkerPool<Continuation<T>>,
    /// Outgoing connects in progress (`connects.rs`).
    connects: PendingConnects,
}

/// Queues what a transition of connection `id` owes.
#[inline]
fn owe<T>(work: &mut VecDeque<Work<T>>, id: ConnId, actions: Actions) {
    // Nearly every transition owes nothing: that check stays inline.
    if actions != Actions::NONE {
        queue_owed(work, id, actions);
    }
}

#[cold]
fn queue_owed<T>(work: &mut VecDeque<Work<T>>, id: ConnId, actions: Actions) {
    if actions.read {
        work.push_back(Work::Read(id));
    }
    if actions.flushed {
        work.push_back(Work::Flushed(id));
    }
}

/// A connection being fed its input ([`Core::feeding`]).
pub(crate) struct Feeding<'a, T> {
    id: ConnId,
    pub(crate) conn: &'a mut Connection<T>,
    pub(crate) env: &'a Env,
    cork: &'a mut Cork,
    work: &'a mut VecDeque<Work<T>>,
}

impl<T> Feeding<'_, T> {
    /// Output queued for the connection, what the batch sent so far included.
    pub(crate) fn pending(&self) -> usize {
        self.conn.pending() + self.cork.len()
    }

    /// The batch of `input` is handled: the state goes back, and what the batch sent is
    /// written, in one system call, and sends write at once again.
    pub(crate) fn end(self, state: T, input: &[u8]) {
        self.cork.id = None;
        // A state of no size (a handler without one) has nothing to put back.
        if std::mem::size_of::<T>() != 0 {
            self.conn.put_state(state);
        }
        debug_assert_eq!(self.cork.input, (input.as_ptr() as usize, input.len()));
        let run = self.cork.borrowed.take().and_then(|run| input.get(run));
        let batch: &[u8] = match run {
            Some(run) if self.cork.buf.is_empty() => run,
            Some(run) => {
                // Replies copied behind the run: one buffer, for one write.
                self.cork.buf.splice(0..0, run.iter().copied());
                &self.cork.buf
            }
            None => &self.cork.buf,
        };
        let env = self.env;
        let actions = self.conn.uncork(batch, &env.limits, &env.counters);
        owe(self.work, self.id, actions);
        self.cork.buf.clear();
        if self.cork.buf.capacity() > CORK_KEEP {
            self.cork.buf.shrink_to(CORK_KEEP);
        }
    }
}

impl<T> Core<T> {
    pub(crate) fn new(
        registry: Registry,
        limits: Limits,
        pool: WorkerPool<Continuation<T>>,
    ) -> Core<T> {
        let clock = Clock::new();
        Core {
            conns: Slots::default(),
            sources: Slab::new(),
            timers: Timers::default(),
            user_timers: HashMap::new(),
            next_timer: 0,
            work: VecDeque::new(),
            cork: Cork::default(),
            stop: false,
            clock,
            env: Env {
                now: clock.now(),
                limits,
                counters: Arc::new(Counters::default()),
            },
            registry,
            pool,
            connects: PendingConnects::default(),
        }
    }

    // ---- The environment.

    pub(crate) fn env(&self) -> &Env {
        &self.env
    }

    pub(crate) fn now(&self) -> Tick {
        self.env.now
    }

    /// The turn's time, for the handler.
    pub(crate) fn now_instant(&self) -> Instant {
        self.clock.instant_of(self.env.now)
    }

    /// A time the handler gave, on the loop's clock.
    pub(crate) fn tick_of(&self, at: Instant) -> Tick {
        self.clock.tick_of(at)
    }

    /// A new batch of events was taken from the poller: the time is read once for all of
    /// them.
    pub(crate) fn read_clock(&mut self) {
        self.env.now = self.clock.now();
    }

    pub(crate) fn counters(&self) -> &Arc<Counters> {
        &self.env.counters
    }

    pub(crate) fn set_counters(&mut self, counters: Arc<Counters>) {
        self.env.counters = counters;
    }

    // ---- Connections.

    pub(crate) fn conn(&self, id: ConnId) -> Option<&Connection<T>> {
        self.conns.get(id)
    }

    pub(crate) fn conn_mut(&mut self, id: ConnId) -> Option<&mut Connection<T>> {
        self.conns.get_mut(id)
    }

    /// Connection `id` with what its transitions read.
    pub(crate) fn conn_env(&mut self, id: ConnId) -> Option<(&mut Connection<T>, &Env)> {
        Some((self.conns.get_mut(id)?, &self.env))
    }

    pub(crate) fn insert(&mut self, conn: Connection<T>) -> ConnId {
        self.conns.insert(conn)
    }

    /// Takes connection `id` out (its id is stale from now on) with its deadline entry.
    pub(crate) fn remove(&mut self, id: ConnId) -> Option<Connection<T>> {
        let conn = self.conns.remove(id)?;
        if let Some(at) = conn.scheduled() {
            self.timers.remove(at, TimerKey::Conn(id));
        }
        Some(conn)
    }

    /// An id for a connect that failed before it had a socket: never live, never reused.
    pub(crate) fn burn_id(&mut self) -> ConnId {
        let id = self.conns.next_id();
        self.conns.burn(id);
        id
    }

    pub(crate) fn len(&self) -> usize {
        self.conns.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.conns.is_empty()
    }

    pub(crate) fn ids(&self) -> Vec<ConnId> {
        self.conns.ids()
    }

    /// A connection that lives on after a step: registered with the poller (once: read
    /// and write, edge-triggered), its pipe partner let read again once this side's output
    /// fell to half its bound, its earliest deadline in the timer set, and what the step
    /// owes queued. One lookup: this runs after every event a connection has.
    pub(crate) fn keep(&mut self, id: ConnId, actions: Actions) -> io::Result<()> {
        let Some(c) = self.conns.get_mut(id) else {
            return Ok(());
        };
        if !c.is_registered() {
            if id.index > MAX_INDEX {
                return Err(io::Error::other("too many connections for one loop"));
            }
            c.register(&self.registry, token::encode(Target::Conn(id)))?;
        }
        let limits = c.limits(&self.env.limits);
        let pipe_source = c
            .piped_to()
            .filter(|_| c.pending() <= limits.max_pending / 2);
        // A later deadline is left for the earlier entry to find when it fires (idle
        // deadlines move on every read; moving the timer entry each time would cost more
        // than the rare early wake-up).
        if c.take_reschedule() {
            if let Some(want) = c.next_deadline(&self.env.limits) {
                if c.scheduled().is_none_or(|at| at > want) {
                    self.timers
                        .reschedule(TimerKey::Conn(id), c.scheduled(), Some(want));
                    c.set_scheduled(Some(want));
                }
            }
        }
        self.owe(id, actions);
        if let Some(from) = pipe_source {
            if let Some(f) = self.conns.get_mut(from) {
                let resumed = f.resume_for_pipe();
                self.owe(from, resumed);
            }
        }
        Ok(())
    }

    /// Puts the connection's earliest deadline in the timer set (after its entry fired).
    pub(crate) fn schedule(&mut self, id: ConnId) {
        if let Some(c) = self.conns.get_mut(id) {
            c.set_scheduled(None);
        }
        if let Err(err) = self.keep(id, Actions::NONE) {
            log::debug!("schedule {id:?}: {err}");
        }
    }

    // ---- Output.

    /// A reply to the input being handled joins the batch (`true`), with no lookup: a
    /// connection that stopped taking output meanwhile (aborted, or its sending side shut)
    /// drops the batch when [`Feeding::end`] writes it, as it would have
    /// dropped the send. `false` for anything else, which goes through
    /// [`send_copy`](Self::send_copy). For [`Conn::send`](crate::Conn::send), which
    /// returns nothing; `Control::send` says whether the bytes were taken.
    #[inline]
    pub(crate) fn send_corked(&mut self, id: ConnId, bytes: &[u8]) -> bool {
        self.cork.id == Some(id) && self.cork.push(bytes)
    }

    /// Sends a copy of `bytes` on connection `id`: [`send`](Self::send), with the corked
    /// case (a reply to the input being handled) first and short.
    #[inline]
    pub(crate) fn send_copy(&mut self, id: ConnId, bytes: &[u8]) -> Option<bool> {
        if self.cork.id == Some(id) {
            if !self.conns.get(id)?.accepts_output() {
                return Some(false);
            }
            if self.cork.push(bytes) {
                return Some(true);
            }
        }
        self.send(id, Output::Copy(bytes))
    }

    /// Sends on connection `id`; `None` when it is stale, `Some(false)` when it takes no
    /// more output (shut or ended).
    pub(crate) fn send(&mut self, id: ConnId, output: Output<'_>) -> Option<bool> {
        let c = self.conns.get_mut(id)?;
        let counters = &self.env.counters;
        if self.cork.id == Some(id) {
            let bytes: &[u8] = match &output {
                Output::Copy(bytes) => bytes,
                Output::Shared(arc) => arc,
                Output::Owned(data) => data,
            };
            // Small copies join the batch; behind a run of the input anything does (see
            // `Cork::push`), since that run can only leave in the batch's write.
            if matches!(output, Output::Copy(_)) || self.cork.borrowed.is_some() {
                if !c.accepts_output() {
                    return Some(false);
                }
                if self.cork.push(bytes) {
                    return Some(true);
                }
            }
            // What the buffer holds goes first.
            if !self.cork.buf.is_empty() {
                c.send(&self.cork.buf, None, counters);
                self.cork.buf.clear();
            }
        }
        Some(match output {
            Output::Copy(bytes) => c.send(bytes, None, counters),
            Output::Shared(arc) => c.send(arc, Some(arc), counters),
            Output::Owned(data) => c.send_owned(data, counters),
        })
    }

    /// Output queued on connection `id`, what the cork buffer holds for it included.
    pub(crate) fn pending(&self, id: ConnId) -> Option<usize> {
        let queued = self.conns.get(id)?.pending();
        Some(match self.cork.id {
            Some(corked) if corked == id => queued + self.cork.len(),
            _ => queued,
        })
    }

    /// Connection `id` is about to be handed a batch of input: from now on its sends
    /// gather in the cork buffer, until [`Feeding::end`]. Its state is lent out
    /// for the batch's calls (one lookup for both: this runs for every batch).
    pub(crate) fn begin_feed(&mut self, id: ConnId, input: &[u8]) -> Option<T>
    where
        T: Default,
    {
        let c = self.conns.get_mut(id)?;
        c.cork();
        self.cork.id = Some(id);
        self.cork.input = (input.as_ptr() as usize, input.len());
        Some(c.take_state())
    }

    /// Connection `id` while it is being fed, between two `on_data` calls: what the
    /// dispatcher checks, and [`Feeding::end`] when the batch is done, with one lookup.
    pub(crate) fn feeding(&mut self, id: ConnId) -> Option<Feeding<'_, T>> {
        Some(Feeding {
            id,
            conn: self.conns.get_mut(id)?,
            env: &self.env,
            cork: &mut self.cork,
            work: &mut self.work,
        })
    }

    // ---- Sources.

    /// Adds a source, registered by `register` under its token.
    pub(crate) fn add_source(
        &mut self,
        mut source: Source,
        register: impl FnOnce(&mut Source, &Registry, mio::Token) -> io::Result<()>,
    ) -> io::Result<usize> {
        let entry = self.sources.vacant_entry();
        register(
            &mut source,
            &self.registry,
            token::encode(Target::Source(entry.key())),
        )?;
        let key = entry.key();
        entry.insert(source);
        Ok(key)
    }

    pub(crate) fn source(&self, key: usize) -> Option<&Source> {
        self.sources.get(key)
    }

    /// Source `key` with what its I/O reads.
    pub(crate) fn source_env(&mut self, key: usize) -> Option<(&mut Source, &Env)> {
        Some((self.sources.get_mut(key)?, &self.env))
    }

    pub(crate) fn listener_keys(&self) -> Vec<usize> {
        self.sources
            .iter()
            .filter(|(_, s)| !matches!(s, Source::Udp(_)))
            .map(|(k, _)| k)
            .collect()
    }

    pub(crate) fn source_count(&self) -> usize {
        self.sources.len()
    }

    /// Closes every source. Deregistered before closing: epoll watches the open file, not
    /// the descriptor, so a socket another process still holds (a server handing its
    /// listeners to its successor) would go on waking this loop after our descriptor is
    /// closed.
    pub(crate) fn close_sources(&mut self) {
        for (_, source) in self.sources.iter_mut() {
            if let Err(err) = source.deregister(&self.registry) {
                log::debug!("deregister a source at shutdown: {err}");
            }
        }
        self.sources.clear();
    }

    // ---- Deadlines and timers.

    pub(crate) fn add_deadline(&mut self, at: Tick, key: TimerKey) {
        self.timers.insert(at, key);
    }

    pub(crate) fn pop_due(&mut self) -> Option<TimerKey> {
        self.timers.pop_due(self.env.now)
    }

    /// How long the poll may wait for the first deadline. Measured from the turn's start
    /// (`now`), not the clock: a deadline fires late by at most the turn's own length,
    /// and the turn reads the clock once.
    pub(crate) fn poll_timeout(&self) -> Option<Duration> {
        self.timers.poll_timeout(self.env.now)
    }

    pub(crate) fn set_timer(&mut self, at: Instant) -> TimerId {
        let at = self.clock.tick_of(at);
        let id = self.next_timer;
        self.next_timer += 1;
        self.user_timers.insert(id, at);
        self.timers.insert(at, TimerKey::User(id));
        TimerId(id)
    }

    pub(crate) fn cancel_timer(&mut self, id: TimerId) {
        if let Some(at) = self.user_timers.remove(&id.0) {
            self.timers.remove(at, TimerKey::User(id.0));
        }
    }

    /// A handler's timer fell due: whether it is still live (it was not cancelled).
    pub(crate) fn take_timer(&mut self, id: u64) -> bool {
        self.user_timers.remove(&id).is_some()
    }

    // ---- The worker pool and outgoing connects.

    /// Hands `work` to the worker pool; `then` runs on the loop's thread with its value.
    pub(crate) fn submit_blocking<R, W>(
        &mut self,
        work: W,
        then: Continuation<T>,
    ) -> Result<(), SpawnError>
    where
        R: Send + 'static,
        W: FnOnce() -> R + Send + 'static,
    {
        self.pool.submit(work, then, &self.env.counters)
    }

    /// The next finished job of the worker pool, with its continuation.
    pub(crate) fn next_finished(&mut self) -> Option<(Continuation<T>, Outcome)> {
        self.pool.next_finished()
    }

    /// Connection `id` is an outgoing connect that has not completed.
    pub(crate) fn is_connect_pending(&self, id: ConnId) -> bool {
        self.connects.is_pending(id)
    }

    /// Outgoing connect `id` completed.
    pub(crate) fn connect_done(&mut self, id: ConnId) {
        self.connects.connected(id);
    }

    /// Outgoing connect `id`'s current attempt failed with `err`.
    pub(crate) fn connect_attempt_failed(&mut self, id: ConnId, err: &io::Error) {
        self.connects.attempt_failed(id, err);
    }

    /// Starts a connect by name (`connects.rs`).
    #[cfg(feature = "resolver")]
    pub(crate) fn connect_name(&mut self, host: &str, port: &str, state: T) -> ConnId {
        connects::connect_name(self, host, port, state)
    }

    /// Outgoing connect `id` is ending: `None` when its next address is being tried (the
    /// connection lives on), else the error for `on_connect`.
    pub(crate) fn connect_ended(
        &mut self,
        id: ConnId,
        reason: CloseReason,
    ) -> Option<ConnectError> {
        connects::connect_ended(self, id, reason)
    }

    // ---- The work queue.

    pub(crate) fn push(&mut self, work: Work<T>) {
        self.work.push_back(work);
    }

    /// Queues what a transition of connection `id` left for the loop.
    #[inline(always)]
    pub(crate) fn owe(&mut self, id: ConnId, actions: Actions) {
        owe(&mut self.work, id, actions);
    }

    pub(crate) fn next_work(&mut self) -> Option<Work<T>> {
        self.work.pop_front()
    }

    pub(crate) fn has_work(&self) -> bool {
        !self.work.is_empty()
    }

    pub(crate) fn request_stop(&mut self) {
        self.stop = true;
    }

    pub(crate) fn stop_requested(&self) -> bool {
        self.stop
    }
}

impl<T> Core<T> {
    /// Starts a TCP connect to `addr` ([`start_connect`](Self::start_connect)).
    pub(crate) fn connect_tcp(&mut self, addr: SocketAddr, state: T) -> ConnId {
        let result = mio::net::TcpStream::connect(addr).map(Stream::Tcp);
        self.start_connect(result, PeerAddr::Inet(addr), state)
    }

    /// A connect started: the connection waits in the slot map for settling to register
    /// it; one that failed at once is reported (`on_close`) once the callback returns.
    pub(crate) fn start_connect(
        &mut self,
        stream: io::Result<Stream>,
        peer: PeerAddr,
        state: T,
    ) -> ConnId {
        match stream {
            Ok(stream) => {
                let conn = Connection::connecting(stream, peer, state, self.env.now);
                let id = self.conns.insert(conn);
                self.connects.begin(id);
                self.work.push_back(Work::Settle(id));
                id
            }
            Err(err) => {
                log::debug!("connect {peer:?}: {err}");
                let id = self.burn_id();
                let reason = CloseReason::from_connect(&err);
                self.work.push_back(Work::ConnectFailed {
                    error: ConnectError::at_once(&peer, err, reason),
                    id,
                    peer,
                    state,
                    reason,
                });
                id
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cork_over(input: &[u8]) -> Cork {
        Cork {
            input: (input.as_ptr() as usize, input.len()),
            ..Cork::default()
        }
    }

    #[test]
    fn a_run_of_the_input_is_kept_as_a_range_and_what_follows_it_is_copied() {
        let input = b"0123456789".to_vec();
        let mut cork = cork_over(&input);
        assert!(cork.push(&input[2..4]));
        assert!(cork.push(&input[4..7]), "continues the run");
        assert_eq!(cork.borrowed, Some(2..7));
        assert!(cork.buf.is_empty());
        assert!(
            cork.push(&input[0..1]),
            "not the run's continuation: copied"
        );
        assert!(
            cork.push(&input[7..8]),
            "behind a copy: copied, even if contiguous"
        );
        assert_eq!(cork.buf, b"07");
        assert_eq!(cork.borrowed, Some(2..7));
        assert_eq!(cork.len(), 7);
    }

    #[test]
    fn other_bytes_are_copied_up_to_the_bound_and_an_empty_slice_is_no_run() {
        let input = b"abc".to_vec();
        let other = vec![7u8; CORK_COPY_MAX + 1];
        let mut cork = cork_over(&input);
        assert!(cork.push(&input[3..]), "empty");
        assert_eq!(cork.borrowed, None);
        assert!(
            !cork.push(&other),
            "too large to copy: queued by the caller"
        );
        assert!(cork.push(&other[..3]));
        assert_eq!(cork.len(), 3);
        // Behind a run, even a large send is copied: it must leave after the run.
        let mut cork = cork_over(&input);
        assert!(cork.push(&input[..1]));
        assert!(cork.push(&other));
        assert_eq!(cork.len(), 1 + other.len());
    }
}
