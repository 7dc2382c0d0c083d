//! One stream connection's life, as a state machine this module owns.
//!
//! A connection is in one [`State`] (whose variants are exactly the states it can be
//! in, each with what the handler asked to happen once queued output is written), and
//! its receiving direction, independent of it, in a [`Reading`]. The fields are private:
//! the loop and [`Control`](crate::Control) change them only through the transitions
//! below, which return what they leave for the loop to do ([`Actions`]: a read owed, an
//! `on_flushed` due) instead of setting flags for it to poll, and
//! [`Connection::advance`] moves a connection as far as it can go without waiting.
//!
//! ```text
//!  Connecting ──established──► Open ──flushed, half-close asked──► WriteShut
//!      │                        │                                    │ close()
//!      │                        ├─ close(), flushed, input pending ──┴─────► Draining
//!      │                        ├─ close(), flushed, nothing unread ─┐          │ EOF,
//!      │ failed                 │ abort(), I/O error                 ▼          ▼ linger
//!      └──────────────────────► Ended(reason) ◄─────────────────────────────────┘
//! ```

use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::sync::Arc;
use std::time::Duration;

use mio::event::Source;
use mio::{Interest, Registry, Token};

use crate::buffer::WriteBuffer;
use crate::clock::Tick;
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

/// Where a connection is in its life: its variants are exactly the states a connection
/// can be in, and what each direction may do follows from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    /// An outgoing connect in progress: output queues until it completes.
    Connecting { then: Then },
    /// Established; output goes to the socket as it is queued unless `blocked` (the socket
    /// said `WouldBlock`, and queued output waits for a writable event).
    Open { blocked: bool, then: Then },
    /// Our sending side is shut (FIN sent), reading goes on; `closing` once the handler
    /// asked to close too.
    WriteShut { closing: bool },
    /// Closing: output is flushed and our side shut; the peer's input is read and dropped
    /// until its EOF or the linger deadline, so that closing does not reset the connection.
    Draining,
    /// Finished: the loop closes it at its next step.
    Ended(CloseReason),
}

/// What the handler asked to happen once queued output is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Then {
    Nothing,
    /// Half-close: shut our sending side, keep reading.
    ShutWrite,
    /// Orderly close.
    Close,
}

/// Why reading is paused; any cause keeps it paused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Pause {
    /// The handler paused it ([`Connection::pause_reading`]).
    pub(crate) by_handler: bool,
    /// Too much output is pending on this connection (back-pressure).
    pub(crate) by_backpressure: bool,
    /// Piped: too much of what it sent waits on the other connection.
    pub(crate) by_pipe: bool,
}

/// The receiving direction. TCP's two directions are independent (a peer may half-close
/// while we still send, a handler may pause reading while output drains), so this is kept
/// beside [`State`] rather than multiplied into it; it matters only while the state reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reading {
    /// Input is read as it arrives.
    Open,
    /// Input waits in the kernel (and then the peer's window fills).
    Paused(Pause),
    /// The peer's EOF was read.
    Closed,
}

/// What a transition leaves for the loop to do: the loop carries these out (see the
/// dispatcher's work queue) instead of the connection remembering them in flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[must_use]
pub(crate) struct Actions {
    /// Reading was resumed: input that arrived while paused raised no new edge, so the
    /// loop must read once without waiting for an event.
    pub(crate) read: bool,
    /// Pending output fell to the low-water mark: the handler's `on_flushed` is due.
    pub(crate) flushed: bool,
}

impl Actions {
    pub(crate) const NONE: Actions = Actions {
        read: false,
        flushed: false,
    };

    pub(crate) fn and(self, other: Actions) -> Actions {
        Actions {
            read: self.read || other.read,
            flushed: self.flushed || other.flushed,
        }
    }
}

/// What [`Connection::advance`] decided.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// It lives on; the loop carries out the actions.
    Keep(Actions),
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
    user: T,
    state: State,
    /// What the handler asked for while a failed connect was in progress: a connect by
    /// name that moves on to its next address carries it over.
    then_once_connected: Then,
    reading: Reading,
    /// Registered with the poller (a connection closed on the fast path never is).
    registered: bool,
    /// The deadline this connection has in the loop's timer set.
    scheduled: Option<Tick>,
    /// A deadline may have moved earlier than `scheduled` since it was set (a new write,
    /// linger or handler deadline, changed settings). Deadlines that only move later
    /// (idle, on every read) leave it clear: the earlier entry finds them when it fires.
    reschedule: bool,
    /// Input the handler has not consumed yet, handed to it again with what arrives next.
    /// Empty, with no allocation, for a connection whose handler consumes everything.
    kept: Vec<u8>,
    /// The handler stopped being handed its kept input because the output passed the
    /// back-pressure bound: it is handed again once the output drains.
    input_owed: bool,
    /// Input arrived after the handler asked to close, and was dropped.
    dropped_input: bool,
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
    last_active: Tick,
    write_deadline: Option<Tick>,
    linger_deadline: Option<Tick>,
    /// A deadline the handler set.
    handler_deadline: Option<Tick>,
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
        user: T,
        now: Tick,
    ) -> Connection<T, S> {
        let open = State::Open {
            blocked: false,
            then: Then::Nothing,
        };
        Connection::new(stream, peer, Some(listener), open, user, now)
    }

    pub(crate) fn connecting(stream: S, peer: PeerAddr, user: T, now: Tick) -> Connection<T, S> {
        let connecting = State::Connecting {
            then: Then::Nothing,
        };
        Connection::new(stream, peer, None, connecting, user, now)
    }

    fn new(
        stream: S,
        peer: PeerAddr,
        listener: Option<ListenerId>,
        state: State,
        user: T,
        now: Tick,
    ) -> Connection<T, S> {
        Connection {
            stream,
            peer,
            listener,
            out: WriteBuffer::default(),
            user,
            state,
            then_once_connected: Then::Nothing,
            reading: Reading::Open,
            reset_behind_input: false,
            dropped_input: false,
            kept: Vec::new(),
            input_owed: false,
            corked: false,
            pipe: None,
            received: 0,
            sent: 0,
            registered: false,
            scheduled: None,
            reschedule: true,
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
        &mut self.user
    }

    /// Takes the handler's state out, for the length of a callback that hands it to the
    /// handler, or for good when the connection ends.
    pub(crate) fn take_state(&mut self) -> T
    where
        T: Default,
    {
        std::mem::take(&mut self.user)
    }

    pub(crate) fn put_state(&mut self, user: T) {
        self.user = user;
    }

    pub(crate) fn stream(&self) -> &S {
        &self.stream
    }

    pub(crate) fn pending(&self) -> usize {
        self.out.len()
    }

    pub(crate) fn is_connecting(&self) -> bool {
        matches!(self.state, State::Connecting { .. })
    }

    #[cfg(test)]
    pub(crate) fn state(&self) -> State {
        self.state
    }

    pub(crate) fn reading(&self) -> Reading {
        self.reading
    }

    /// Queues `data` (shared when `shared` holds the same bytes) and writes what the socket
    /// takes now. A write error ends the connection at its next step. Returns whether the
    /// bytes were taken (not after our side is shut or the connection ended).
    // Inline, as `write_now`: the batch's write at the end of every `on_data` batch goes
    // through both (27 instructions per request out of line, measured).
    #[inline(always)]
    pub(crate) fn send(
        &mut self,
        data: &[u8],
        shared: Option<&Arc<[u8]>>,
        counters: &Counters,
    ) -> bool {
        let Some(start) = self.write_now(data, counters) else {
            return false;
        };
        if start == data.len() {
            return true;
        }
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

    /// The part of a send that happens at once: refused (`None`) once our side is shut or
    /// the connection ended; otherwise, when nothing waits before it, as much of `data` as
    /// the socket takes is written straight from the caller's bytes. Returns where the
    /// rest, to be queued, starts (all of it after a write error, which ends the
    /// connection at its next step).
    #[inline(always)]
    fn write_now(&mut self, data: &[u8], counters: &Counters) -> Option<usize> {
        let writes_now = match self.state {
            State::Open { blocked, .. } => !blocked && self.out.is_empty() && !self.corked,
            State::Connecting { .. } => false,
            State::WriteShut { .. } | State::Draining | State::Ended(_) => {
                log::debug!(
                    "send of {} bytes to {:?} after it was shut, dropped",
                    data.len(),
                    self.peer
                );
                return None;
            }
        };
        let mut start = 0;
        while writes_now && start < data.len() {
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
                    self.set_blocked(true);
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.fail(&e);
                    return Some(data.len());
                }
            }
        }
        Some(start)
    }

    /// Whether a send now would be taken (not once our side is shut or it ended).
    pub(crate) fn accepts_output(&self) -> bool {
        matches!(self.state, State::Connecting { .. } | State::Open { .. })
    }

    fn set_blocked(&mut self, now_blocked: bool) {
        if let State::Open { blocked, .. } = &mut self.state {
            *blocked = now_blocked;
        }
    }

    /// Orderly close once the output is written.
    pub(crate) fn close(&mut self) {
        match &mut self.state {
            State::Connecting { then } | State::Open { then, .. } => *then = Then::Close,
            State::WriteShut { closing } => *closing = true,
            State::Draining | State::Ended(_) => {}
        }
    }

    /// Half-close once the output is written.
    pub(crate) fn shutdown_write(&mut self) {
        if let State::Connecting { then } | State::Open { then, .. } = &mut self.state {
            if *then == Then::Nothing {
                *then = Then::ShutWrite;
            }
        }
    }

    /// Ends the connection now, dropping queued output.
    pub(crate) fn abort(&mut self) {
        self.end(CloseReason::Aborted);
    }

    pub(crate) fn set_deadline(&mut self, at: Option<Tick>) {
        self.handler_deadline = at;
        self.reschedule = true;
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

    /// Lifts a cause of the pause (`lift` returns whether it held); reading starts again
    /// once no cause is left, and then the loop owes it a read.
    fn unpause(&mut self, lift: impl FnOnce(&mut Pause) -> bool) -> Actions {
        let Reading::Paused(pause) = &mut self.reading else {
            return Actions::NONE;
        };
        if !lift(pause) || *pause != Pause::default() {
            return Actions::NONE;
        }
        self.reading = Reading::Open;
        Actions {
            read: true,
            flushed: false,
        }
    }

    /// Lifts the handler's pause; reading starts again unless back-pressure still holds it.
    pub(crate) fn resume_reading(&mut self) -> Actions {
        self.unpause(|p| std::mem::take(&mut p.by_handler))
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

    // ---- What the loop does.

    /// The handler asked to close (or the close is under way): input is dropped.
    pub(crate) fn is_closing(&self) -> bool {
        matches!(
            self.state,
            State::Draining
                | State::WriteShut { closing: true }
                | State::Connecting { then: Then::Close }
                | State::Open {
                    then: Then::Close,
                    ..
                }
        )
    }

    /// Ended (closed, aborted, failed): it goes at its next step.
    pub(crate) fn is_ended(&self) -> bool {
        matches!(self.state, State::Ended(_))
    }

    pub(crate) fn is_registered(&self) -> bool {
        self.registered
    }

    pub(crate) fn scheduled(&self) -> Option<Tick> {
        self.scheduled
    }

    pub(crate) fn set_scheduled(&mut self, at: Option<Tick>) {
        self.scheduled = at;
    }

    /// Nothing for [`Core::keep`](crate::core::Core::keep) to do: registered, no deadline
    /// moved earlier, not piped.
    pub(crate) fn is_settled(&self) -> bool {
        self.registered && !self.reschedule && self.scheduled.is_some() && self.pipe.is_none()
    }

    /// Nothing for [`advance`](Self::advance) or the loop to do, as after nearly every
    /// event: open, nothing queued, asked for or written late, and [`is_settled`](Self::is_settled).
    #[inline]
    pub(crate) fn is_quiet(&self) -> bool {
        matches!(
            self.state,
            State::Open {
                then: Then::Nothing,
                ..
            }
        ) && self.out.is_empty()
            && self.write_deadline.is_none()
            && self.is_settled()
    }

    /// Whether the deadline in the timer set may be later than the connection's earliest
    /// (none is there, or one moved earlier since); clears it.
    pub(crate) fn take_reschedule(&mut self) -> bool {
        std::mem::take(&mut self.reschedule) || self.scheduled.is_none()
    }

    /// This connection's settings: its own where the handler changed any, else the loop's.
    pub(crate) fn limits<'a>(&'a self, base: &'a Limits) -> &'a Limits {
        self.own.as_deref().unwrap_or(base)
    }

    /// A copy of the connection's own settings, if it has any: a transition that takes
    /// `&mut self` cannot hold a borrow of them (`own.as_ref().unwrap_or(base)`; most
    /// connections have none, and copy nothing).
    fn own_limits(&self) -> Option<Limits> {
        self.own.as_deref().copied()
    }

    /// This connection's own settings, to change (copied from the loop's the first time).
    pub(crate) fn limits_mut(&mut self, base: &Limits) -> &mut Limits {
        self.reschedule = true;
        self.own.get_or_insert_with(|| Box::new(*base))
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

    /// From now on sends queue instead of writing at once (see [`uncork`](Self::uncork)).
    pub(crate) fn cork(&mut self) {
        self.corked = true;
    }

    /// Sends write at once again: `batch` (what the loop gathered while corked) is sent
    /// behind what queued meanwhile, and all of it is written now, in one system call
    /// where it fits (a write error ends the connection at its next step). Output held
    /// only by the cork never waited for the peer: writing it all is not the drain
    /// `on_flushed` reports, so only a resumed read is left for the loop.
    pub(crate) fn uncork(&mut self, batch: &[u8], base: &Limits, counters: &Counters) -> Actions {
        self.corked = false;
        if !batch.is_empty() {
            // With nothing queued before it, this is the batch's one `write`.
            self.send(batch, None, counters);
        }
        if self.out.is_empty() || !matches!(self.state, State::Open { blocked: false, .. }) {
            return Actions::NONE;
        }
        let own = self.own_limits();
        let limits = own.as_ref().unwrap_or(base);
        match self.flush(limits, counters) {
            Ok((_, actions)) => Actions {
                flushed: actions.flushed && !self.out.is_empty(),
                ..actions
            },
            Err(err) => {
                self.fail(&err);
                Actions::NONE
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
    /// it).
    pub(crate) fn resume_for_pipe(&mut self) -> Actions {
        self.unpause(|p| std::mem::take(&mut p.by_pipe))
    }

    /// Stops reading until the output falls to half the bound (back-pressure), as a read
    /// would if it came first; lifting it owes the loop a read.
    pub(crate) fn pause_for_output(&mut self) {
        self.pause(|cause| cause.by_backpressure = true);
    }

    pub(crate) fn is_carried(&self) -> bool {
        self.carried
    }

    pub(crate) fn set_carried(&mut self, carried: bool) {
        self.carried = carried;
    }

    /// Records an I/O error: the connection ends at its next step.
    pub(crate) fn fail(&mut self, err: &io::Error) {
        let reason = if self.is_connecting() {
            CloseReason::from_connect(err)
        } else {
            CloseReason::from_io(err)
        };
        self.end(reason);
    }

    /// The first reason wins: an abort after a reset is still a reset.
    pub(crate) fn end(&mut self, reason: CloseReason) {
        if let State::Connecting { then } = self.state {
            self.then_once_connected = then;
        }
        if !self.is_ended() {
            self.state = State::Ended(reason);
        }
    }

    /// An outgoing connect completed, and the peer has reset it since: what it sent
    /// before the reset is still to be read (a reset during the handshake reads as
    /// `ECONNREFUSED`, not `ECONNRESET`).
    pub(crate) fn established_then_reset(&mut self, now: Tick) {
        self.established(now);
        self.reset_behind_input = true;
    }

    /// A connect by name moves on to its next address: a new socket and peer in place of
    /// the ones that failed; what the handler queued, asked for (a close, a half-close),
    /// its state, pause, pipe and settings stay. Returns the old socket (closing it also
    /// takes it off the poller).
    #[cfg(feature = "resolver")]
    pub(crate) fn reconnect(&mut self, stream: S, peer: PeerAddr, now: Tick) -> S {
        // After a failed address, `end` kept what was asked in `then_once_connected`; from
        // the placeholder of a name being resolved, nothing failed, and it is in the state.
        let then = match self.state {
            State::Connecting { then } => then,
            _ => self.then_once_connected,
        };
        self.state = State::Connecting { then };
        self.registered = false;
        self.last_active = now;
        self.peer = peer;
        std::mem::replace(&mut self.stream, stream)
    }

    /// An outgoing connect completed: what the handler asked for meanwhile (a close, a
    /// half-close) carries over.
    pub(crate) fn established(&mut self, now: Tick) {
        if let State::Connecting { then } = self.state {
            self.state = State::Open {
                blocked: false,
                then,
            };
            self.last_active = now;
        }
    }

    /// Handles a writable event: writes what is queued (the low-water and back-pressure
    /// bookkeeping is in [`flush`](Self::flush), shared with [`advance`](Self::advance)).
    ///
    /// Nearly every writable event finds nothing queued (epoll reports writability with
    /// each input edge): that check is inline, the flush out of line.
    #[inline]
    pub(crate) fn on_writable(&mut self, now: Tick, base: &Limits, counters: &Counters) -> Actions {
        self.set_blocked(false);
        if self.out.is_empty() || !matches!(self.state, State::Open { .. }) {
            return Actions::NONE;
        }
        self.flush_writable(now, base, counters)
    }

    #[inline(never)]
    fn flush_writable(&mut self, now: Tick, base: &Limits, counters: &Counters) -> Actions {
        let own = self.own_limits();
        let limits = own.as_ref().unwrap_or(base);
        match self.flush(limits, counters) {
            Ok((0, actions)) => actions,
            Ok((_, actions)) => {
                self.last_active = now;
                // The peer is taking output: the write deadline is for one that stopped.
                if self.write_deadline.is_some() {
                    self.write_deadline = limits.write_timeout.map(|d| now + d);
                }
                actions
            }
            Err(e) => {
                self.fail(&e);
                Actions::NONE
            }
        }
    }

    /// One read step: reads once into `scratch` unless reading is paused, closed or ended.
    /// Input after the handler asked to close is read and dropped (it cannot add output).
    pub(crate) fn read_step(
        &mut self,
        scratch: &mut [u8],
        now: Tick,
        base: &Limits,
        counters: &Counters,
    ) -> Input {
        let closing = self.is_closing();
        match self.reading {
            Reading::Closed => return Input::Stop,
            Reading::Paused(_) if !closing => return Input::Stop,
            _ => {}
        }
        if matches!(self.state, State::Ended(_) | State::Connecting { .. }) {
            return Input::Stop;
        }
        // A piped connection's output is the other side's input, which the pipe bounds
        // by pausing that side: holding this one back too would stop the very reads that
        // let its peer take that output (a deadlock).
        if !closing && self.pipe.is_none() && self.out.len() > self.limits(base).max_pending {
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
                        self.dropped_input = true;
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
    pub(crate) fn next_deadline(&self, base: &Limits) -> Option<Tick> {
        let idle = self.own.as_deref().unwrap_or(base).idle_timeout;
        let idle = idle.map(|d| self.last_active + d);
        // Asked after every event the connection has: written out rather than through an
        // iterator chain, which did not fold away.
        let earliest = |a: Option<Tick>, b: Option<Tick>| match (a, b) {
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
    /// out a requested half-close or close, and says whether it lives on and what the loop
    /// owes it.
    ///
    /// Closing follows the orderly sequence: flush, `shutdown(Write)`, drain the peer until
    /// EOF or the linger deadline, drop. Dropping a socket with unread input makes the kernel
    /// send a reset, which can destroy the reply the peer has not read yet; when nothing is
    /// unread (the common case for a greeting) the socket is dropped at once, without a
    /// `shutdown`.
    pub(crate) fn advance(
        &mut self,
        now: Tick,
        base: &Limits,
        scratch: &mut [u8],
        counters: &Counters,
    ) -> Step {
        let (blocked, then) = match self.state {
            // After nearly every event: open, nothing queued, nothing asked.
            State::Open {
                then: Then::Nothing,
                ..
            } if self.out.is_empty() => {
                self.write_deadline = None;
                return Step::Keep(Actions::NONE);
            }
            State::Ended(reason) => return Step::Close(reason),
            State::Draining if self.reading == Reading::Closed => {
                return Step::Close(CloseReason::Done)
            }
            State::Connecting { .. } | State::Draining => return Step::Keep(Actions::NONE),
            State::WriteShut { closing: false } => return Step::Keep(Actions::NONE),
            State::WriteShut { closing: true } => (false, Then::Close),
            State::Open { blocked, then } => (blocked, then),
        };
        let own = self.own_limits();
        let limits = own.as_ref().unwrap_or(base);
        let mut actions = Actions::NONE;
        if !self.out.is_empty() && !blocked {
            match self.flush(limits, counters) {
                Ok((_, flushed)) => actions = flushed,
                Err(err) => return Step::Close(CloseReason::from_io(&err)),
            }
        }
        if !self.out.is_empty() {
            if self.write_deadline.is_none() {
                self.write_deadline = limits.write_timeout.map(|d| now + d);
                self.reschedule = true;
            }
            return Step::Keep(actions);
        }
        self.write_deadline = None;
        match then {
            Then::Nothing => Step::Keep(actions),
            Then::ShutWrite => match self.shut_write(false) {
                Ok(()) => Step::Keep(actions),
                Err(err) => Step::Close(CloseReason::from_io(&err)),
            },
            Then::Close => match self.close_step(now, limits, scratch, counters) {
                Step::Keep(more) => Step::Keep(actions.and(more)),
                close => close,
            },
        }
    }

    fn close_step(
        &mut self,
        now: Tick,
        limits: &Limits,
        scratch: &mut [u8],
        counters: &Counters,
    ) -> Step {
        if self.reading == Reading::Closed {
            return Step::Close(CloseReason::Done);
        }
        // Input dropped since the close was asked means a peer still sending: more may be
        // on its way, and closing now would answer it with a reset that can destroy the
        // reply it has not read yet. It is drained like input found now.
        match self.discard_input(scratch, counters) {
            Ok(Unread::Eof) => return Step::Close(CloseReason::Done),
            Ok(Unread::Nothing) if !self.dropped_input => return Step::Close(CloseReason::Done),
            Ok(Unread::Nothing | Unread::Discarded) => {}
            Err(err) => return Step::Close(CloseReason::from_io(&err)),
        }
        if let Err(err) = self.shut_write(true) {
            return Step::Close(CloseReason::from_io(&err));
        }
        self.state = State::Draining;
        self.linger_deadline = Some(now + limits.linger);
        self.reschedule = true;
        Step::Keep(Actions::NONE)
    }

    /// Shuts our sending side (once).
    fn shut_write(&mut self, closing: bool) -> io::Result<()> {
        if !matches!(self.state, State::WriteShut { .. }) {
            self.stream.shutdown_write()?;
        }
        self.state = State::WriteShut { closing };
        Ok(())
    }

    /// Writes queued output until it is gone or the socket would block; returns how many
    /// bytes went, and what the loop owes for it: output that falls to the low-water mark
    /// owes the handler `on_flushed`; output that falls to half the back-pressure bound
    /// lifts that pause, which owes a read.
    fn flush(&mut self, limits: &Limits, counters: &Counters) -> io::Result<(usize, Actions)> {
        let before = self.out.len();
        let n = self.out.write_to(&mut self.stream)?;
        Counters::add(&counters.bytes_out, n as u64);
        self.sent += n as u64;
        counters.unbuffer(n);
        let after = self.out.len();
        self.set_blocked(after != 0);
        let flushed = before > limits.low_water
            && after <= limits.low_water
            && matches!(self.state, State::Open { .. });
        let resumed = if after <= limits.max_pending / 2 {
            self.unpause(|p| std::mem::take(&mut p.by_backpressure))
        } else {
            Actions::NONE
        };
        Ok((n, Actions { flushed, ..resumed }))
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

    fn open(fake: Fake) -> (Connection<u64, Fake>, Tick, Counters) {
        let now = crate::clock::Clock::new().now();
        let peer = PeerAddr::Unix(None);
        (
            Connection::accepted(fake, peer, ListenerId(0), 0, now),
            now,
            Counters::default(),
        )
    }

    /// An outgoing connection still connecting, its state `state`, its socket taking 100
    /// bytes of output once connected.
    fn connecting(state: u64) -> (Connection<u64, Fake>, Tick, Counters) {
        let now = crate::clock::Clock::new().now();
        let fake = Fake {
            window: 100,
            ..Fake::default()
        };
        let c = Connection::connecting(fake, PeerAddr::Unix(None), state, now);
        (c, now, Counters::default())
    }

    /// An open connection whose peer has sent `input` and takes 100 bytes of output.
    fn open_with_input(input: &[u8]) -> (Connection<u64, Fake>, Tick, Counters) {
        open(Fake {
            window: 100,
            input: input.iter().copied().collect(),
            ..Fake::default()
        })
    }

    fn step(c: &mut Connection<u64, Fake>, now: Tick, counters: &Counters) -> Step {
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
        assert_eq!(step(&mut c, now, &counters), Step::Keep(Actions::NONE));
        assert_eq!(
            c.state(),
            State::Open {
                blocked: true,
                then: Then::Close
            }
        );
        assert_eq!(c.pending(), 2);
        assert_eq!(counters.snapshot().buffered, 2);
        assert_eq!(
            c.next_deadline(&LIMITS),
            Some(now + Duration::from_secs(30))
        );
        c.stream.window = 10;
        let later = now + Duration::from_secs(1);
        assert!(
            c.on_writable(later, &LIMITS, &counters).flushed,
            "drained: on_flushed"
        );
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
        assert_eq!(step(&mut c, now, &counters), Step::Keep(Actions::NONE));
        c.stream.window = 50;
        assert!(!c.on_writable(now, &limits, &counters).flushed, "60 > 40");
        c.stream.window = 30;
        assert!(c.on_writable(now, &limits, &counters).flushed, "20 <= 40");
        c.stream.window = 30;
        assert!(
            !c.on_writable(now, &limits, &counters).flushed,
            "already below: owed once"
        );
    }

    #[test]
    fn unread_input_at_close_drains_until_eof_instead_of_resetting() {
        let (mut c, now, counters) = open_with_input(b"junk");
        c.send(b"bye", None, &counters);
        c.close();
        assert_eq!(step(&mut c, now, &counters), Step::Keep(Actions::NONE));
        assert_eq!(c.state(), State::Draining);
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
        let (mut c, now, counters) = open_with_input(b"more");
        c.send(b"answer", None, &counters);
        c.shutdown_write();
        assert_eq!(step(&mut c, now, &counters), Step::Keep(Actions::NONE));
        assert_eq!(c.state(), State::WriteShut { closing: false });
        assert!(!c.send(b"late", None, &counters), "nothing after the FIN");
        assert_eq!(
            c.read_step(&mut [0; 8], now, &BIG, &counters),
            Input::Data(4)
        );
    }

    #[test]
    fn input_dropped_after_close_drains_until_eof_even_if_none_is_left_now() {
        let (mut c, now, counters) = open_with_input(b"more of the upload");
        c.close();
        assert_eq!(
            c.read_step(&mut [0; 64], now, &BIG, &counters),
            Input::Dropped(18)
        );
        assert_eq!(step(&mut c, now, &counters), Step::Keep(Actions::NONE));
        assert_eq!(
            c.state(),
            State::Draining,
            "a peer still sending gets our FIN and time to stop, not a reset"
        );
    }

    #[test]
    fn close_after_a_half_close_drains_then_ends_in_order() {
        let (mut c, now, counters) = open_with_input(b"more");
        c.shutdown_write();
        assert_eq!(step(&mut c, now, &counters), Step::Keep(Actions::NONE));
        assert_eq!(c.state(), State::WriteShut { closing: false });
        c.close();
        assert!(c.is_closing());
        assert_eq!(step(&mut c, now, &counters), Step::Keep(Actions::NONE));
        assert_eq!(c.state(), State::Draining, "input was pending: drain it");
        c.stream.eof = true;
        assert_eq!(c.read_step(&mut [0; 8], now, &BIG, &counters), Input::Eof);
        assert_eq!(step(&mut c, now, &counters), Step::Close(CloseReason::Done));
    }

    #[test]
    fn a_close_asked_while_connecting_is_carried_out_once_connected() {
        let (mut c, now, counters) = connecting(0);
        assert!(c.send(b"one request", None, &counters));
        c.close();
        assert_eq!(step(&mut c, now, &counters), Step::Keep(Actions::NONE));
        c.established(now);
        assert_eq!(step(&mut c, now, &counters), Step::Close(CloseReason::Done));
        assert_eq!(c.stream.written, b"one request");
    }

    /// A connect by name: what the handler asked for while the name was being resolved (on
    /// the placeholder socket, which never failed) carries over to the address tried.
    #[cfg(feature = "resolver")]
    #[test]
    fn a_half_close_asked_before_the_first_address_carries_over_to_it() {
        let (mut c, now, counters) = connecting(0);
        assert!(c.send(b"request", None, &counters));
        c.shutdown_write();
        let address = Fake {
            window: 100,
            ..Fake::default()
        };
        drop(c.reconnect(address, PeerAddr::Unix(None), now));
        c.established(now);
        let written = Actions {
            read: false,
            flushed: true,
        };
        assert_eq!(step(&mut c, now, &counters), Step::Keep(written));
        assert_eq!(c.state(), State::WriteShut { closing: false });
        assert!(c.stream.shut.get(), "the half-close reached the new socket");
        assert_eq!(c.stream.written, b"request");
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
        assert!(!c.on_writable(now, &LIMITS, &counters).read);
        assert!(matches!(c.reading(), Reading::Paused(_)), "60 left > 32");
        c.stream.window = 40;
        assert!(
            c.on_writable(now, &LIMITS, &counters).read,
            "input that waited must be read now"
        );
        assert_eq!(c.reading(), Reading::Open);
        c.stream.window = 40;
        assert!(!c.on_writable(now, &LIMITS, &counters).read, "owed once");
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
        assert!(c.resume_reading().read);
        assert_eq!(c.reading(), Reading::Open);
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
        assert_eq!(c.resume_for_pipe(), Actions::NONE, "nothing to lift");
        c.pause_for_pipe();
        c.pause_reading();
        assert!(!c.resume_for_pipe().read, "the handler's pause still holds");
        assert!(c.resume_reading().read, "both lifted: the loop owes a read");
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
        assert_eq!(
            c.uncork(b" three", &LIMITS, &counters),
            Actions::NONE,
            "output only the cork held is no drain"
        );
        assert_eq!(c.stream.written, b"one two three");
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
        let _ = c.on_writable(now, &LIMITS, &counters);
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
        assert_eq!(step(&mut c, now, &counters), Step::Keep(Actions::NONE));
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
        let (mut c, now, counters) = connecting(9);
        assert!(c.send(b"early", None, &counters));
        assert!(
            c.stream.written.is_empty(),
            "nothing written before the connect completes"
        );
        assert_eq!(step(&mut c, now, &counters), Step::Keep(Actions::NONE));
        c.established(now);
        assert_eq!(
            step(&mut c, now, &counters),
            Step::Keep(Actions {
                read: false,
                flushed: true
            }),
            "what waited for the connect is written, and that is a drain"
        );
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
