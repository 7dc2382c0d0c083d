//! One stream connection's life, as a state machine this module owns.
//!
//! A connection has a [`Phase`] and a state per direction ([`Reading`], [`Writing`]), plus
//! what the handler asked to happen once queued output is written ([`AfterFlush`]). The
//! fields are private: the loop and the handler's [`Conn`](crate::Conn) and
//! [`Control`](crate::Control) change them only through the transitions below, and
//! [`Connection::advance`] moves a connection as far as it can go without waiting.
//!
//! ```text
//!  Connecting ──established──► Open ──close(), output flushed, input pending──► Draining
//!      │                        │  \                                             │
//!      │ failed                 │   └─ close(), output flushed, nothing unread ──┤
//!      ▼                        ▼ abort() / I/O error                        EOF │ linger
//!    Ended(reason) ◄────────────┴───────────────────────────────────────────────┘
//! ```

use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::event::Source;
use mio::{Interest, Registry, Token};

use crate::buffer::WriteBuffer;
use crate::counters::Counters;
use crate::id::{CloseReason, ConnId, ListenerId, PeerAddr};

/// What a connection's socket must do, so that tests can drive [`Connection`] with a fake.
pub(crate) trait Socket: Read + Write {
    fn shutdown_write(&self) -> io::Result<()>;
    /// Makes the coming close send a reset (TCP `SO_LINGER` 0) instead of a FIN.
    fn reset_on_close(&self) -> io::Result<()>;
}

/// A connection's socket.
pub(crate) enum Stream {
    Tcp(mio::net::TcpStream),
    Unix(mio::net::UnixStream),
}

impl std::fmt::Debug for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Stream::Tcp(_) => f.write_str("Tcp"),
            Stream::Unix(_) => f.write_str("Unix"),
        }
    }
}

impl Stream {
    pub(crate) fn register(&mut self, registry: &Registry, token: Token) -> io::Result<()> {
        // Both interests at once and never changed: edge-triggered readiness makes later
        // `epoll_ctl(MOD)` calls unnecessary, pausing a direction included (the loop just
        // stops reading; the kernel's buffer and the peer's window do the rest).
        let interest = Interest::READABLE | Interest::WRITABLE;
        match self {
            Stream::Tcp(s) => s.register(registry, token, interest),
            Stream::Unix(s) => s.register(registry, token, interest),
        }
    }

    /// The outcome of a non-blocking connect, by mio's recipe: `Ok(false)` while it is still
    /// in progress (a spurious event), `Ok(true)` once connected.
    pub(crate) fn connect_result(&self) -> io::Result<bool> {
        let stream_error = match self {
            Stream::Tcp(s) => s.take_error()?,
            Stream::Unix(s) => s.take_error()?,
        };
        if let Some(err) = stream_error {
            return Err(err);
        }
        let Stream::Tcp(s) = self else {
            return Ok(true);
        };
        match s.peer_addr() {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(false),
            Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => Ok(false),
            Err(e) => Err(e),
        }
    }

    pub(crate) fn local_addr(&self) -> io::Result<PeerAddr> {
        match self {
            Stream::Tcp(s) => s.local_addr().map(PeerAddr::Inet),
            Stream::Unix(s) => s
                .local_addr()
                .map(|a| PeerAddr::Unix(a.as_pathname().map(std::path::Path::to_path_buf))),
        }
    }

    pub(crate) fn set_nodelay(&self, on: bool) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.set_nodelay(on),
            Stream::Unix(_) => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "TCP_NODELAY on a Unix-domain connection",
            )),
        }
    }
}

impl Socket for Stream {
    fn shutdown_write(&self) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.shutdown(Shutdown::Write),
            Stream::Unix(s) => s.shutdown(Shutdown::Write),
        }
    }

    fn reset_on_close(&self) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => socket2::SockRef::from(s).set_linger(Some(Duration::ZERO)),
            // A Unix-domain stream has no reset: its peer reads what was delivered, then
            // EOF. Nothing to do.
            Stream::Unix(_) => Ok(()),
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(buf),
            Stream::Unix(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write(buf),
            Stream::Unix(s) => s.write(buf),
        }
    }

    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write_vectored(bufs),
            Stream::Unix(s) => s.write_vectored(bufs),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Where a connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// An outgoing connect in progress.
    Connecting,
    /// Reading and writing as the handler wants.
    Open,
    /// Closing: output is flushed and our side shut; the peer's input is read and dropped
    /// until its EOF or the linger deadline, so that closing does not reset the connection.
    Draining,
    /// Finished: the loop closes it at its next step.
    Ended(CloseReason),
}

/// Why reading is paused; either cause keeps it paused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Pause {
    /// The handler paused it ([`Connection::pause_reading`]).
    pub(crate) by_handler: bool,
    /// Too much output is pending on this connection (back-pressure).
    pub(crate) by_backpressure: bool,
    /// Piped: too much of what it sent waits on the other connection.
    pub(crate) by_pipe: bool,
}

/// The receiving direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reading {
    /// Input is read as it arrives.
    Open,
    /// Input waits in the kernel (and then the peer's window fills).
    Paused(Pause),
    /// The peer's EOF was read.
    Closed,
}

/// The sending direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Writing {
    /// Output goes to the socket as it is queued.
    Ready,
    /// The socket said `WouldBlock`: queued output waits for a writable event.
    Blocked,
    /// Our side is shut (FIN sent): nothing more can be sent.
    Shut,
}

/// What the handler asked to happen once queued output is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AfterFlush {
    Nothing,
    /// Half-close: shut our sending side, keep reading.
    ShutWrite,
    /// Orderly close.
    Close,
}

/// What [`Connection::advance`] decided.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Step {
    Keep,
    Close(CloseReason),
}

/// A connection's settings: the loop's configuration, or the connection's own where the
/// handler changed one ([`Connection::limits_mut`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) idle_timeout: Option<Duration>,
    pub(crate) write_timeout: Option<Duration>,
    pub(crate) linger: Duration,
    /// Stop reading a connection whose own pending output passes this (back-pressure),
    /// until half of it is written.
    pub(crate) max_pending: usize,
    /// Pending output falling from above this to at or below it is reported (`on_flushed`).
    pub(crate) low_water: usize,
    /// Reads per turn of the loop (fairness).
    pub(crate) read_budget: usize,
}

#[derive(Debug)]
pub(crate) struct Connection<T = (), S = Stream> {
    stream: S,
    peer: PeerAddr,
    listener: Option<ListenerId>,
    out: WriteBuffer,
    /// The handler's own state for this connection (`Handler`'s `T`).
    state: T,
    phase: Phase,
    reading: Reading,
    writing: Writing,
    after_flush: AfterFlush,
    /// Reading was resumed: input that arrived while paused raised no new edge, so the loop
    /// must read once without waiting for an event.
    read_owed: bool,
    /// Pending output fell to the low-water mark: the loop owes the handler `on_flushed`.
    flushed_owed: bool,
    /// Registered with the poller (a connection closed on the fast path never is).
    registered: bool,
    /// The deadline this connection has in the loop's timer set.
    scheduled: Option<Instant>,
    /// Input the handler has not consumed yet, handed to it again with what arrives next.
    /// Empty, with no allocation, for a connection whose handler consumes everything.
    kept: Vec<u8>,
    /// The handler stopped being handed its kept input because the output passed the
    /// back-pressure bound: it is handed again once the output drains.
    input_owed: bool,
    /// The peer reset the connection and `SO_ERROR` (which said so) was already taken:
    /// input still queued is read, and then the connection ends as reset, not at an EOF.
    reset_behind_input: bool,
    /// Sends queue instead of writing at once: set while the loop hands the handler one
    /// batch of input, so that the replies to pipelined requests leave in one `writev`
    /// when the batch is done, not one `write` each.
    corked: bool,
    /// The connection this one is piped to ([`Control::pipe`](crate::Control::pipe)):
    /// what one reads, the other sends.
    pipe: Option<ConnId>,
    /// Bytes read from and written to this connection's socket, for `Closed`.
    received: u64,
    sent: u64,
    /// Settings the handler changed for this connection alone (boxed: most connections
    /// have none, and pay one pointer for the possibility).
    own: Option<Box<Limits>>,
    /// It spent its read budget this turn and waits in the loop's list to be read next
    /// turn; reads before then would spend a second budget in the same turn.
    carried: bool,
    last_active: Instant,
    write_deadline: Option<Instant>,
    linger_deadline: Option<Instant>,
    /// A deadline the handler set.
    handler_deadline: Option<Instant>,
}

impl<T> Connection<T, Stream> {
    /// Registers the socket with the poller (once: interest never changes).
    pub(crate) fn register(&mut self, registry: &Registry, token: Token) -> io::Result<()> {
        self.stream.register(registry, token)?;
        self.registered = true;
        Ok(())
    }
}

/// What a read step did.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Input {
    /// `n` bytes are in the scratch buffer for the handler.
    Data(usize),
    /// `n` bytes were read and dropped (the connection is closing).
    Dropped(usize),
    /// The peer's EOF.
    Eof,
    /// Nothing more to read now (`WouldBlock`, paused, closed or ended).
    Stop,
}

enum Unread {
    Nothing,
    Discarded,
    Eof,
}

impl<T, S: Socket> Connection<T, S> {
    pub(crate) fn accepted(
        stream: S,
        peer: PeerAddr,
        listener: ListenerId,
        state: T,
        now: Instant,
    ) -> Connection<T, S> {
        Connection::new(stream, peer, Some(listener), Phase::Open, state, now)
    }

    pub(crate) fn connecting(
        stream: S,
        peer: PeerAddr,
        state: T,
        now: Instant,
    ) -> Connection<T, S> {
        Connection::new(stream, peer, None, Phase::Connecting, state, now)
    }

    fn new(
        stream: S,
        peer: PeerAddr,
        listener: Option<ListenerId>,
        phase: Phase,
        state: T,
        now: Instant,
    ) -> Connection<T, S> {
        Connection {
            stream,
            peer,
            listener,
            out: WriteBuffer::default(),
            state,
            phase,
            reading: Reading::Open,
            writing: Writing::Ready,
            after_flush: AfterFlush::Nothing,
            read_owed: false,
            reset_behind_input: false,
            kept: Vec::new(),
            input_owed: false,
            corked: false,
            pipe: None,
            received: 0,
            sent: 0,
            flushed_owed: false,
            registered: false,
            scheduled: None,
            carried: false,
            own: None,
            last_active: now,
            write_deadline: None,
            linger_deadline: None,
            handler_deadline: None,
        }
    }

    // ---- What the handler sees and sets.

    pub(crate) fn peer(&self) -> &PeerAddr {
        &self.peer
    }

    pub(crate) fn listener(&self) -> Option<ListenerId> {
        self.listener
    }

    pub(crate) fn state_mut(&mut self) -> &mut T {
        &mut self.state
    }

    /// Takes the state out, for the length of a callback that hands it to the handler, or
    /// for good when the connection ends.
    pub(crate) fn take_state(&mut self) -> T
    where
        T: Default,
    {
        std::mem::take(&mut self.state)
    }

    pub(crate) fn put_state(&mut self, state: T) {
        self.state = state;
    }

    pub(crate) fn stream(&self) -> &S {
        &self.stream
    }

    pub(crate) fn pending(&self) -> usize {
        self.out.len()
    }

    pub(crate) fn phase(&self) -> Phase {
        self.phase
    }

    pub(crate) fn reading(&self) -> Reading {
        self.reading
    }

    #[cfg(test)]
    pub(crate) fn writing(&self) -> Writing {
        self.writing
    }

    /// Queues `data` (shared when `shared` holds the same bytes) and writes what the socket
    /// takes now. A write error ends the connection at its next step. Returns whether the
    /// bytes were taken (not after our side is shut or the connection ended).
    pub(crate) fn send(
        &mut self,
        data: &[u8],
        shared: Option<&Arc<[u8]>>,
        counters: &Counters,
    ) -> bool {
        let Some(start) = self.write_now(data, counters) else {
            return false;
        };
        let before = self.out.len();
        match shared {
            Some(arc) => self.out.push_shared(Arc::clone(arc), start),
            None => self.out.push_copy(&data[start..]),
        }
        counters.buffer(self.out.len() - before);
        true
    }

    /// [`send`](Self::send) of a buffer the caller gives up: what the socket does not take
    /// at once is kept as it is, never copied.
    pub(crate) fn send_owned(&mut self, data: Vec<u8>, counters: &Counters) -> bool {
        let Some(start) = self.write_now(&data, counters) else {
            return false;
        };
        let before = self.out.len();
        self.out.push_owned(data, start);
        counters.buffer(self.out.len() - before);
        true
    }

    /// The part of a send that happens at once: refused (`None`) after our side is shut or
    /// the connection ended; otherwise, when nothing waits before it, as much of `data` as
    /// the socket takes is written straight from the caller's bytes. Returns where the
    /// rest, to be queued, starts (all of it after a write error, which ends the
    /// connection at its next step).
    fn write_now(&mut self, data: &[u8], counters: &Counters) -> Option<usize> {
        if matches!(self.phase, Phase::Ended(_) | Phase::Draining) || self.writing == Writing::Shut
        {
            log::debug!(
                "send of {} bytes to {:?} after it was shut, dropped",
                data.len(),
                self.peer
            );
            return None;
        }
        let mut start = 0;
        if self.out.is_empty()
            && !self.corked
            && self.writing == Writing::Ready
            && self.phase == Phase::Open
        {
            while start < data.len() {
                match self.stream.write(&data[start..]) {
                    Ok(0) => {
                        self.fail(&io::ErrorKind::WriteZero.into());
                        return Some(data.len());
                    }
                    Ok(n) => {
                        Counters::add(&counters.bytes_out, n as u64);
                        self.sent += n as u64;
                        start += n;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        self.writing = Writing::Blocked;
                        break;
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        self.fail(&e);
                        return Some(data.len());
                    }
                }
            }
        }
        Some(start)
    }

    /// Orderly close once the output is written.
    pub(crate) fn close(&mut self) {
        self.after_flush = AfterFlush::Close;
    }

    /// Half-close once the output is written.
    pub(crate) fn shutdown_write(&mut self) {
        if self.after_flush == AfterFlush::Nothing {
            self.after_flush = AfterFlush::ShutWrite;
        }
    }

    /// Ends the connection now, dropping queued output.
    pub(crate) fn abort(&mut self) {
        self.end(CloseReason::Aborted);
    }

    pub(crate) fn set_deadline(&mut self, at: Option<Instant>) {
        self.handler_deadline = at;
    }

    /// Stops reading until [`resume_reading`](Self::resume_reading).
    pub(crate) fn pause_reading(&mut self) {
        self.pause(|cause| cause.by_handler = true);
    }

    /// Adds a cause to the pause (reading stops, or stays stopped); after EOF, nothing.
    fn pause(&mut self, cause: fn(&mut Pause)) {
        match &mut self.reading {
            Reading::Open => {
                let mut pause = Pause::default();
                cause(&mut pause);
                self.reading = Reading::Paused(pause);
            }
            Reading::Paused(pause) => cause(pause),
            Reading::Closed => {}
        }
    }

    /// Lifts the handler's pause; reading starts again unless back-pressure still holds it.
    pub(crate) fn resume_reading(&mut self) {
        if let Reading::Paused(pause) = &mut self.reading {
            pause.by_handler = false;
            self.unpause_if_free();
        }
    }

    // ---- What the loop does.

    /// The handler asked to close (or the close is under way): input is dropped.
    pub(crate) fn is_closing(&self) -> bool {
        self.phase == Phase::Draining || self.after_flush == AfterFlush::Close
    }

    pub(crate) fn is_registered(&self) -> bool {
        self.registered
    }

    pub(crate) fn scheduled(&self) -> Option<Instant> {
        self.scheduled
    }

    pub(crate) fn set_scheduled(&mut self, at: Option<Instant>) {
        self.scheduled = at;
    }

    /// This connection's settings: its own where the handler changed any, else the loop's.
    pub(crate) fn limits<'a>(&'a self, base: &'a Limits) -> &'a Limits {
        self.own.as_deref().unwrap_or(base)
    }

    /// This connection's own settings, to change (copied from the loop's the first time).
    pub(crate) fn limits_mut(&mut self, base: &Limits) -> &mut Limits {
        self.own.get_or_insert_with(|| Box::new(*base))
    }

    /// Ended (closed, aborted, failed): it goes at its next step.
    pub(crate) fn is_ended(&self) -> bool {
        matches!(self.phase, Phase::Ended(_))
    }

    /// Takes the kept input out (for the length of the handler's calls).
    pub(crate) fn take_kept(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.kept)
    }

    /// Keeps what the handler did not consume. More than `max_input` ends the connection
    /// ([`CloseReason::InputLimit`]): a frame that never completes cannot take memory
    /// without bound. An emptied buffer gives its memory back.
    pub(crate) fn put_kept(&mut self, kept: Vec<u8>, max_input: usize) {
        if kept.len() > max_input {
            self.end(CloseReason::InputLimit);
            self.kept = Vec::new();
        } else if kept.is_empty() {
            self.kept = Vec::new();
            self.input_owed = false;
        } else {
            self.kept = kept;
        }
    }

    /// The handler's calls stopped with input left (its output passed the bound, or it
    /// paused reading): the read the loop owes once that is lifted hands it back first.
    pub(crate) fn owe_input(&mut self) {
        self.input_owed = true;
    }

    /// From now on sends queue instead of writing at once (see [`uncork`](Self::uncork)).
    pub(crate) fn cork(&mut self) {
        self.corked = true;
    }

    /// Sends write at once again, and what queued meanwhile is written now, in one
    /// `writev` (a write error ends the connection at its next step).
    pub(crate) fn uncork(&mut self, base: &Limits, counters: &Counters) {
        self.corked = false;
        if !self.out.is_empty() && self.writing == Writing::Ready && self.phase == Phase::Open {
            // Output held only by the cork never waited for the peer: writing it all is
            // not the drain `on_flushed` reports.
            let owed = self.flushed_owed;
            let limits = *self.limits(base);
            if let Err(err) = self.flush(&limits, counters) {
                self.fail(&err);
            }
            if self.out.is_empty() {
                self.flushed_owed = owed;
            }
        }
    }

    /// The connection this one is piped to.
    pub(crate) fn piped_to(&self) -> Option<ConnId> {
        self.pipe
    }

    pub(crate) fn set_pipe(&mut self, to: ConnId) {
        self.pipe = Some(to);
    }

    /// Bytes read from and written to its socket so far.
    pub(crate) fn traffic(&self) -> (u64, u64) {
        (self.received, self.sent)
    }

    /// The peer's EOF was read.
    pub(crate) fn read_closed(&self) -> bool {
        self.reading == Reading::Closed
    }

    /// Stops reading because the connection it is piped to has too much waiting.
    pub(crate) fn pause_for_pipe(&mut self) {
        self.pause(|cause| cause.by_pipe = true);
    }

    /// The connection it is piped to drained: reading goes on (unless another pause holds
    /// it). Returns whether it was paused for the pipe.
    pub(crate) fn resume_for_pipe(&mut self) -> bool {
        if let Reading::Paused(pause) = &mut self.reading {
            if pause.by_pipe {
                pause.by_pipe = false;
                self.unpause_if_free();
                return true;
            }
        }
        false
    }

    /// Reading paused by the handler ([`pause_reading`](Self::pause_reading)).
    pub(crate) fn is_paused_by_handler(&self) -> bool {
        matches!(
            self.reading,
            Reading::Paused(Pause {
                by_handler: true,
                ..
            })
        )
    }

    /// Stops reading until the output falls to half the bound (back-pressure), as a read
    /// would if it came first; lifting it owes the loop a read.
    pub(crate) fn pause_for_output(&mut self) {
        self.pause(|cause| cause.by_backpressure = true);
    }

    /// Kept input waits to be handed back to the handler.
    pub(crate) fn is_input_owed(&self) -> bool {
        self.input_owed && !self.kept.is_empty()
    }

    /// Kept input is owed to the handler and reading is not held back (forgets it).
    pub(crate) fn take_input_owed(&mut self, max_pending: usize) -> bool {
        if self.input_owed && self.out.len() <= max_pending && !self.is_closing() {
            self.input_owed = false;
            return !self.kept.is_empty();
        }
        false
    }

    pub(crate) fn is_carried(&self) -> bool {
        self.carried
    }

    pub(crate) fn set_carried(&mut self, carried: bool) {
        self.carried = carried;
    }

    /// Records an I/O error: the connection ends at its next step.
    pub(crate) fn fail(&mut self, err: &io::Error) {
        let reason = if self.phase == Phase::Connecting {
            CloseReason::from_connect(err)
        } else {
            CloseReason::from_io(err)
        };
        self.end(reason);
    }

    /// The first reason wins: an abort after a reset is still a reset.
    pub(crate) fn end(&mut self, reason: CloseReason) {
        if !matches!(self.phase, Phase::Ended(_)) {
            self.phase = Phase::Ended(reason);
        }
    }

    /// An outgoing connect completed, and the peer has reset it since: what it sent
    /// before the reset is still to be read (a reset during the handshake reads as
    /// `ECONNREFUSED`, not `ECONNRESET`).
    pub(crate) fn established_then_reset(&mut self, now: Instant) {
        self.established(now);
        self.reset_behind_input = true;
    }

    /// A connect by name moves on to its next address: a new socket and peer in place of
    /// the ones that failed; what the handler queued, its state, pause, pipe and settings
    /// stay. Returns the old socket (closing it also takes it off the poller).
    #[cfg(feature = "resolver")]
    pub(crate) fn reconnect(&mut self, stream: S, peer: PeerAddr, now: Instant) -> S {
        self.phase = Phase::Connecting;
        self.registered = false;
        self.last_active = now;
        self.peer = peer;
        std::mem::replace(&mut self.stream, stream)
    }

    /// An outgoing connect completed.
    pub(crate) fn established(&mut self, now: Instant) {
        if self.phase == Phase::Connecting {
            self.phase = Phase::Open;
            self.last_active = now;
        }
    }

    /// Reading was resumed since the last call: the loop owes it one read.
    pub(crate) fn take_read_owed(&mut self) -> bool {
        std::mem::take(&mut self.read_owed)
    }

    /// Handles a writable event: writes what is queued (the low-water and back-pressure
    /// bookkeeping is in [`flush`](Self::flush), shared with [`advance`](Self::advance)).
    pub(crate) fn on_writable(&mut self, now: Instant, limits: &Limits, counters: &Counters) {
        let own;
        let limits = match self.own.as_deref() {
            Some(o) => {
                own = *o;
                &own
            }
            None => limits,
        };
        if self.writing == Writing::Blocked {
            self.writing = Writing::Ready;
        }
        if self.out.is_empty() || matches!(self.phase, Phase::Ended(_) | Phase::Connecting) {
            return;
        }
        match self.flush(limits, counters) {
            Ok(0) => {}
            Ok(_) => {
                self.last_active = now;
                // The peer is taking output: the write deadline is for one that stopped.
                if self.write_deadline.is_some() {
                    self.write_deadline = limits.write_timeout.map(|d| now + d);
                }
            }
            Err(e) => self.fail(&e),
        }
    }

    /// The loop owes the handler `on_flushed` (and forgets it).
    pub(crate) fn take_flushed_owed(&mut self) -> bool {
        std::mem::take(&mut self.flushed_owed)
    }

    /// One read step: reads once into `scratch` unless reading is paused, closed or ended.
    /// Input after the handler asked to close is read and dropped (it cannot add output).
    pub(crate) fn read_step(
        &mut self,
        scratch: &mut [u8],
        now: Instant,
        limits: &Limits,
        counters: &Counters,
    ) -> Input {
        let own;
        let limits = match self.own.as_deref() {
            Some(o) => {
                own = *o;
                &own
            }
            None => limits,
        };
        let closing = self.is_closing();
        match self.reading {
            Reading::Closed => return Input::Stop,
            Reading::Paused(_) if !closing => return Input::Stop,
            _ => {}
        }
        if matches!(self.phase, Phase::Ended(_) | Phase::Connecting) {
            return Input::Stop;
        }
        // A piped connection's output is the other side's input, which the pipe bounds
        // by pausing that side: holding this one back too would stop the very reads that
        // let its peer take that output (a deadlock).
        if !closing && self.out.len() > limits.max_pending && self.pipe.is_none() {
            self.pause_for_output();
            return Input::Stop;
        }
        loop {
            match self.stream.read(scratch) {
                Ok(0) if self.reset_behind_input => {
                    self.end(CloseReason::Reset);
                    return Input::Stop;
                }
                Ok(0) => {
                    self.reading = Reading::Closed;
                    return Input::Eof;
                }
                Ok(n) => {
                    Counters::add(&counters.bytes_in, n as u64);
                    self.received += n as u64;
                    self.last_active = now;
                    return if closing {
                        Input::Dropped(n)
                    } else {
                        Input::Data(n)
                    };
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Input::Stop,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.fail(&e);
                    return Input::Stop;
                }
            }
        }
    }

    /// The earliest of this connection's deadlines.
    pub(crate) fn next_deadline(&self, base: &Limits) -> Option<Instant> {
        let idle = self.own.as_deref().unwrap_or(base).idle_timeout;
        let idle = idle.map(|d| self.last_active + d);
        // Asked after every event the connection has: written out rather than through an
        // iterator chain, which did not fold away.
        let earliest = |a: Option<Instant>, b: Option<Instant>| match (a, b) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, None) => a,
            (None, b) => b,
        };
        earliest(
            earliest(idle, self.write_deadline),
            earliest(self.linger_deadline, self.handler_deadline),
        )
    }

    /// Moves the connection as far as it can go without waiting: flushes output, carries
    /// out a requested half-close or close, and says whether it lives on.
    ///
    /// Closing follows the orderly sequence: flush, `shutdown(Write)`, drain the peer until
    /// EOF or the linger deadline, drop. Dropping a socket with unread input makes the kernel
    /// send a reset, which can destroy the reply the peer has not read yet; when nothing is
    /// unread (the common case for a greeting) the socket is dropped at once, without a
    /// `shutdown`.
    pub(crate) fn advance(
        &mut self,
        now: Instant,
        limits: &Limits,
        scratch: &mut [u8],
        counters: &Counters,
    ) -> Step {
        let own;
        let limits = match self.own.as_deref() {
            Some(o) => {
                own = *o;
                &own
            }
            None => limits,
        };
        match self.phase {
            Phase::Ended(reason) => return Step::Close(reason),
            Phase::Connecting => return Step::Keep,
            Phase::Open | Phase::Draining => {}
        }
        if !self.out.is_empty() && self.writing == Writing::Ready {
            if let Err(err) = self.flush(limits, counters) {
                return Step::Close(CloseReason::from_io(&err));
            }
        }
        if !self.out.is_empty() {
            if self.write_deadline.is_none() {
                self.write_deadline = limits.write_timeout.map(|d| now + d);
            }
            return Step::Keep;
        }
        self.write_deadline = None;
        match self.after_flush {
            AfterFlush::Nothing => Step::Keep,
            AfterFlush::ShutWrite => match self.shut_write() {
                Ok(()) => Step::Keep,
                Err(err) => Step::Close(CloseReason::from_io(&err)),
            },
            AfterFlush::Close => self.close_step(now, limits, scratch, counters),
        }
    }

    fn close_step(
        &mut self,
        now: Instant,
        limits: &Limits,
        scratch: &mut [u8],
        counters: &Counters,
    ) -> Step {
        if self.reading == Reading::Closed {
            return Step::Close(CloseReason::Done);
        }
        if self.phase == Phase::Draining {
            return Step::Keep;
        }
        match self.discard_input(scratch, counters) {
            Ok(Unread::Nothing | Unread::Eof) => return Step::Close(CloseReason::Done),
            Ok(Unread::Discarded) => {}
            Err(err) => return Step::Close(CloseReason::from_io(&err)),
        }
        if let Err(err) = self.shut_write() {
            return Step::Close(CloseReason::from_io(&err));
        }
        self.phase = Phase::Draining;
        self.linger_deadline = Some(now + limits.linger);
        Step::Keep
    }

    fn shut_write(&mut self) -> io::Result<()> {
        if self.writing != Writing::Shut {
            self.stream.shutdown_write()?;
            self.writing = Writing::Shut;
        }
        Ok(())
    }

    fn unpause_if_free(&mut self) {
        if self.reading
            == Reading::Paused(Pause {
                by_handler: false,
                by_backpressure: false,
                by_pipe: false,
            })
        {
            self.reading = Reading::Open;
            self.read_owed = true;
        }
    }

    /// Writes queued output until it is gone or the socket would block; returns how many
    /// bytes went.
    ///
    /// Output that falls to the low-water mark owes the handler `on_flushed`; output that
    /// falls to half the back-pressure bound lifts that pause.
    fn flush(&mut self, limits: &Limits, counters: &Counters) -> io::Result<usize> {
        let before = self.out.len();
        let n = self.out.write_to(&mut self.stream)?;
        Counters::add(&counters.bytes_out, n as u64);
        self.sent += n as u64;
        counters.unbuffer(n);
        let after = self.out.len();
        self.writing = if after == 0 {
            Writing::Ready
        } else {
            Writing::Blocked
        };
        if before > limits.low_water && after <= limits.low_water && self.phase == Phase::Open {
            self.flushed_owed = true;
        }
        if let Reading::Paused(pause) = &mut self.reading {
            if pause.by_backpressure && after <= limits.max_pending / 2 {
                pause.by_backpressure = false;
                self.unpause_if_free();
            }
        }
        Ok(n)
    }

    /// Reads and drops input until `WouldBlock` or EOF.
    fn discard_input(&mut self, scratch: &mut [u8], counters: &Counters) -> io::Result<Unread> {
        let mut seen = false;
        loop {
            match self.stream.read(scratch) {
                Ok(0) => {
                    self.reading = Reading::Closed;
                    return Ok(Unread::Eof);
                }
                Ok(n) => {
                    Counters::add(&counters.bytes_in, n as u64);
                    seen = true;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    return Ok(if seen {
                        Unread::Discarded
                    } else {
                        Unread::Nothing
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// The end of its life: queued output is freed (and uncounted), and the socket closed
    /// when the connection is dropped.
    ///
    /// A connection given up with output still queued, or aborted, ends with a reset (TCP
    /// `SO_LINGER` 0), never a FIN: a FIN would tell the peer that the cut reply it holds
    /// is whole, and would leave the kernel sending what it already took to a peer that
    /// may never read it. Returns whether it was reset.
    #[inline]
    pub(crate) fn retire(&mut self, reason: CloseReason, counters: &Counters) -> bool {
        let unsent = self.out.len();
        counters.unbuffer(unsent);
        self.out.clear();
        let reset = match reason {
            CloseReason::Done => false,
            CloseReason::Aborted => true,
            _ => unsent > 0,
        };
        if reset {
            if let Err(err) = self.stream.reset_on_close() {
                log::debug!("SO_LINGER 0 on {:?}: {err}", self.peer);
            }
            Counters::add(&counters.reset_sent, 1);
        }
        reset
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;

    /// A scripted socket: reads come from `input` (then `WouldBlock`, or EOF once `eof` is
    /// set), writes take at most `window` bytes before `WouldBlock`.
    #[derive(Debug, Default)]
    struct Fake {
        input: VecDeque<u8>,
        eof: bool,
        window: usize,
        written: Vec<u8>,
        shut: std::cell::Cell<bool>,
        reset: std::cell::Cell<bool>,
        reads: usize,
    }

    impl Read for Fake {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.reads += 1;
            if self.input.is_empty() {
                return if self.eof {
                    Ok(0)
                } else {
                    Err(io::ErrorKind::WouldBlock.into())
                };
            }
            let n = buf.len().min(self.input.len());
            for (slot, byte) in buf.iter_mut().zip(self.input.drain(..n)) {
                *slot = byte;
            }
            Ok(n)
        }
    }

    impl Write for Fake {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.window == 0 {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let n = buf.len().min(self.window);
            self.window -= n;
            self.written.extend_from_slice(&buf[..n]);
            Ok(n)
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Socket for Fake {
        fn shutdown_write(&self) -> io::Result<()> {
            self.shut.set(true);
            Ok(())
        }

        fn reset_on_close(&self) -> io::Result<()> {
            self.reset.set(true);
            Ok(())
        }
    }

    const LIMITS: Limits = Limits {
        idle_timeout: None,
        write_timeout: Some(Duration::from_secs(30)),
        linger: Duration::from_secs(2),
        max_pending: 64,
        low_water: 0,
        read_budget: 64,
    };

    const BIG: Limits = Limits {
        max_pending: 1 << 20,
        ..LIMITS
    };

    fn open(fake: Fake) -> (Connection<u64, Fake>, Instant, Counters) {
        let now = Instant::now();
        let peer = PeerAddr::Unix(None);
        (
            Connection::accepted(fake, peer, ListenerId(0), 0, now),
            now,
            Counters::default(),
        )
    }

    fn step(c: &mut Connection<u64, Fake>, now: Instant, counters: &Counters) -> Step {
        c.advance(now, &LIMITS, &mut [0; 64], counters)
    }

    #[test]
    fn the_fast_path_writes_at_once_and_closes_without_shutdown() {
        let (mut c, now, counters) = open(Fake {
            window: 1 << 20,
            ..Fake::default()
        });
        assert!(c.send(b"hello", None, &counters));
        c.close();
        assert_eq!(step(&mut c, now, &counters), Step::Close(CloseReason::Done));
        assert_eq!(c.stream.written, b"hello");
        assert!(!c.stream.shut.get(), "nothing unread: no shutdown needed");
        assert_eq!(c.stream.reads, 1, "one read to see nothing is unread");
        assert_eq!(counters.snapshot().buffered, 0);
    }

    #[test]
    fn a_partial_write_waits_with_a_write_deadline_then_resumes() {
        let (mut c, now, counters) = open(Fake {
            window: 3,
            ..Fake::default()
        });
        c.send(b"hello", None, &counters);
        c.close();
        assert_eq!(step(&mut c, now, &counters), Step::Keep);
        assert_eq!(c.writing(), Writing::Blocked);
        assert_eq!(c.pending(), 2);
        assert_eq!(counters.snapshot().buffered, 2);
        assert_eq!(
            c.next_deadline(&LIMITS),
            Some(now + Duration::from_secs(30))
        );
        c.stream.window = 10;
        let later = now + Duration::from_secs(1);
        c.on_writable(later, &LIMITS, &counters);
        assert!(c.take_flushed_owed(), "drained: on_flushed");
        assert_eq!(c.stream.written, b"hello");
        assert_eq!(
            step(&mut c, later, &counters),
            Step::Close(CloseReason::Done)
        );
        assert_eq!(counters.snapshot().buffered, 0);
    }

    #[test]
    fn on_flushed_fires_once_when_output_falls_to_the_low_water_mark() {
        let (mut c, now, counters) = open(Fake::default());
        let limits = Limits {
            low_water: 40,
            max_pending: 1 << 20,
            ..LIMITS
        };
        c.send(&[7; 100], None, &counters);
        assert_eq!(step(&mut c, now, &counters), Step::Keep);
        c.stream.window = 50;
        c.on_writable(now, &limits, &counters);
        assert!(!c.take_flushed_owed(), "60 > 40");
        c.stream.window = 30;
        c.on_writable(now, &limits, &counters);
        assert!(c.take_flushed_owed(), "20 <= 40");
        assert!(!c.take_flushed_owed(), "owed once");
        c.stream.window = 30;
        c.on_writable(now, &limits, &counters);
        assert!(!c.take_flushed_owed(), "already below");
    }

    #[test]
    fn unread_input_at_close_drains_until_eof_instead_of_resetting() {
        let (mut c, now, counters) = open(Fake {
            window: 100,
            input: b"junk".iter().copied().collect(),
            ..Fake::default()
        });
        c.send(b"bye", None, &counters);
        c.close();
        assert_eq!(step(&mut c, now, &counters), Step::Keep);
        assert_eq!(c.phase(), Phase::Draining);
        assert!(c.stream.shut.get(), "our side is shut so the peer sees EOF");
        assert_eq!(
            c.next_deadline(&LIMITS),
            Some(now + LIMITS.linger),
            "draining is bounded by the linger deadline"
        );
        c.stream.eof = true;
        assert_eq!(c.read_step(&mut [0; 8], now, &BIG, &counters), Input::Eof);
        assert_eq!(step(&mut c, now, &counters), Step::Close(CloseReason::Done));
    }

    #[test]
    fn half_close_shuts_writing_and_keeps_reading() {
        let (mut c, now, counters) = open(Fake {
            window: 100,
            input: b"more".iter().copied().collect(),
            ..Fake::default()
        });
        c.send(b"answer", None, &counters);
        c.shutdown_write();
        assert_eq!(step(&mut c, now, &counters), Step::Keep);
        assert_eq!(c.writing(), Writing::Shut);
        assert!(!c.send(b"late", None, &counters), "nothing after the FIN");
        assert_eq!(
            c.read_step(&mut [0; 8], now, &BIG, &counters),
            Input::Data(4)
        );
    }

    #[test]
    fn back_pressure_pauses_reading_until_half_the_output_is_written() {
        let (mut c, now, counters) = open(Fake {
            input: b"request".iter().copied().collect(),
            ..Fake::default()
        });
        c.send(&[1; 100], None, &counters);
        assert_eq!(
            c.read_step(&mut [0; 8], now, &LIMITS, &counters),
            Input::Stop
        );
        assert_eq!(
            c.reading(),
            Reading::Paused(Pause {
                by_handler: false,
                by_backpressure: true,
                by_pipe: false
            })
        );
        c.stream.window = 40;
        c.on_writable(now, &LIMITS, &counters);
        assert!(matches!(c.reading(), Reading::Paused(_)), "60 left > 32");
        c.stream.window = 40;
        c.on_writable(now, &LIMITS, &counters);
        assert_eq!(c.reading(), Reading::Open);
        assert!(c.take_read_owed(), "input that waited must be read now");
        assert!(!c.take_read_owed());
    }

    #[test]
    fn a_handler_pause_outlasts_back_pressure() {
        let (mut c, now, counters) = open(Fake {
            input: b"x".iter().copied().collect(),
            ..Fake::default()
        });
        c.pause_reading();
        assert_eq!(
            c.read_step(&mut [0; 8], now, &LIMITS, &counters),
            Input::Stop
        );
        c.resume_reading();
        assert_eq!(c.reading(), Reading::Open);
        assert!(c.take_read_owed());
        assert_eq!(
            c.read_step(&mut [0; 8], now, &LIMITS, &counters),
            Input::Data(1)
        );
    }

    #[test]
    fn input_after_close_is_dropped_not_handed_on() {
        let (mut c, now, counters) = open(Fake {
            input: b"ignored".iter().copied().collect(),
            ..Fake::default()
        });
        c.pause_reading();
        c.close();
        assert_eq!(
            c.read_step(&mut [0; 8], now, &LIMITS, &counters),
            Input::Dropped(7),
            "a paused connection that is closing still drains"
        );
    }

    #[test]
    fn a_pipe_pause_holds_with_any_other_and_its_lifting_owes_a_read() {
        let (mut c, _, _) = open(Fake::default());
        assert!(!c.resume_for_pipe(), "nothing to lift");
        c.pause_for_pipe();
        c.pause_reading();
        assert!(c.resume_for_pipe());
        assert!(!c.take_read_owed(), "the handler's pause still holds");
        c.resume_reading();
        assert!(c.take_read_owed(), "both lifted: the loop owes a read");
        assert_eq!(c.reading(), Reading::Open);
    }

    #[test]
    fn a_corked_connection_queues_and_writes_once_uncorked() {
        let (mut c, _, counters) = open(Fake {
            window: 1 << 20,
            ..Fake::default()
        });
        c.cork();
        assert!(c.send(b"one ", None, &counters));
        assert!(c.send_owned(b"two".to_vec(), &counters));
        assert!(c.stream.written.is_empty(), "nothing written while corked");
        c.uncork(&LIMITS, &counters);
        assert_eq!(c.stream.written, b"one two");
        assert_eq!(c.pending(), 0);
    }

    #[test]
    fn an_owned_buffer_is_written_at_once_as_far_as_it_goes_then_kept() {
        let (mut c, now, counters) = open(Fake {
            window: 4,
            ..Fake::default()
        });
        assert!(c.send_owned(b"owned bytes".to_vec(), &counters));
        assert_eq!(c.stream.written, b"owne");
        assert_eq!(c.pending(), 7);
        c.stream.window = 64;
        c.on_writable(now, &LIMITS, &counters);
        assert_eq!(c.stream.written, b"owned bytes");
        assert_eq!(counters.snapshot().buffered, 0);
    }

    #[test]
    fn giving_up_with_unsent_output_resets_instead_of_closing_in_order() {
        let (mut c, now, counters) = open(Fake {
            window: 3,
            ..Fake::default()
        });
        assert!(c.send(b"hello", None, &counters));
        assert_eq!(step(&mut c, now, &counters), Step::Keep);
        assert!(
            c.retire(CloseReason::Timeout, &counters),
            "2 bytes were unsent"
        );
        assert!(c.stream.reset.get());
        assert_eq!(counters.snapshot().reset_sent, 1);
        assert_eq!(counters.snapshot().buffered, 0);
    }

    #[test]
    fn a_timeout_with_nothing_unsent_and_a_done_close_end_in_order_but_abort_resets() {
        for (reason, reset) in [
            (CloseReason::Timeout, false),
            (CloseReason::Shutdown, false),
            (CloseReason::Done, false),
            (CloseReason::Aborted, true),
        ] {
            let (mut c, _, counters) = open(Fake::default());
            assert_eq!(c.retire(reason, &counters), reset, "{reason:?}");
            assert_eq!(c.stream.reset.get(), reset, "{reason:?}");
        }
    }

    #[test]
    fn kept_input_is_bounded_owed_only_with_output_room_and_freed_when_consumed() {
        let (mut c, _, counters) = open(Fake::default());
        c.put_kept(b"partial".to_vec(), 16);
        assert_eq!(c.take_kept(), b"partial");
        c.put_kept(b"partial".to_vec(), 16);
        c.owe_input();
        assert!(
            c.send(&[0; 100], None, &counters),
            "100 bytes wait: no window"
        );
        assert!(!c.take_input_owed(64), "output over the bound: not yet");
        assert!(c.take_input_owed(128));
        assert!(!c.take_input_owed(128), "owed once");
        c.put_kept(Vec::with_capacity(1 << 20), 16);
        assert_eq!(
            c.kept.capacity(),
            0,
            "an emptied buffer gives its memory back"
        );
        c.put_kept(vec![0; 17], 16);
        assert!(c.is_ended(), "past max_input the connection ends");
    }

    #[test]
    fn abort_and_errors_end_the_connection_with_the_first_reason() {
        let (mut c, now, counters) = open(Fake::default());
        c.fail(&io::ErrorKind::ConnectionReset.into());
        c.abort();
        assert_eq!(
            step(&mut c, now, &counters),
            Step::Close(CloseReason::Reset)
        );
        assert!(!c.send(b"x", None, &counters));
    }

    #[test]
    fn a_connect_in_progress_waits_and_queues_output() {
        let now = Instant::now();
        let counters = Counters::default();
        let mut c = Connection::connecting(
            Fake {
                window: 100,
                ..Fake::default()
            },
            PeerAddr::Unix(None),
            9,
            now,
        );
        assert!(c.send(b"early", None, &counters));
        assert!(
            c.stream.written.is_empty(),
            "nothing written before the connect completes"
        );
        assert_eq!(step(&mut c, now, &counters), Step::Keep);
        c.established(now);
        assert_eq!(step(&mut c, now, &counters), Step::Keep);
        assert_eq!(c.stream.written, b"early");
        assert_eq!(*c.state_mut(), 9);
        let mut refused = Connection::connecting(Fake::default(), PeerAddr::Unix(None), 0u64, now);
        refused.fail(&io::ErrorKind::ConnectionRefused.into());
        assert_eq!(
            step(&mut refused, now, &counters),
            Step::Close(CloseReason::Refused)
        );
    }

    #[test]
    fn shared_output_is_held_not_copied() {
        let (mut c, now, counters) = open(Fake {
            window: 2,
            ..Fake::default()
        });
        let message: Arc<[u8]> = Arc::from(&b"shared"[..]);
        c.send(&message, Some(&message), &counters);
        assert_eq!(
            Arc::strong_count(&message),
            2,
            "the rest waits as a shared chunk"
        );
        assert_eq!(c.pending(), 4);
        c.retire(CloseReason::Done, &counters);
        drop(c);
        assert_eq!(Arc::strong_count(&message), 1);
        assert_eq!(counters.snapshot().buffered, 0);
        let _ = now;
    }
}
