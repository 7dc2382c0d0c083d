//! One stream connection's state, and the I/O steps that move it along.

use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use mio::event::Source;
use mio::{Interest, Registry, Token};

use crate::buffer::WriteBuffer;
use crate::counters::Counters;
use crate::handler::{CloseReason, ListenerId};

/// Who is at the other end of a stream connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerAddr {
    /// A TCP peer.
    Inet(std::net::SocketAddr),
    /// A Unix-domain peer: its path, where it bound one (clients usually do not).
    Unix(Option<PathBuf>),
}

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
    fn shutdown_write(&self) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.shutdown(Shutdown::Write),
            Stream::Unix(s) => s.shutdown(Shutdown::Write),
        }
    }

    pub(crate) fn register(&mut self, registry: &Registry, token: Token) -> io::Result<()> {
        // Both interests at once and never changed: edge-triggered readiness makes later
        // `epoll_ctl(MOD)` calls unnecessary.
        let interest = Interest::READABLE | Interest::WRITABLE;
        match self {
            Stream::Tcp(s) => s.register(registry, token, interest),
            Stream::Unix(s) => s.register(registry, token, interest),
        }
    }

    /// The outcome of a non-blocking connect, by mio's recipe: `Ok(false)` while it is still
    /// in progress (a spurious event), `Ok(true)` once connected.
    pub(crate) fn connect_result(&self) -> io::Result<bool> {
        let Stream::Tcp(s) = self else {
            return Ok(true);
        };
        if let Some(err) = s.take_error()? {
            return Err(err);
        }
        match s.peer_addr() {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(false),
            Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => Ok(false),
            Err(e) => Err(e),
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

#[derive(Debug)]
pub(crate) struct Connection {
    pub(crate) stream: Stream,
    pub(crate) peer: PeerAddr,
    pub(crate) listener: Option<ListenerId>,
    pub(crate) out: WriteBuffer,
    pub(crate) gen: u32,
    pub(crate) tag: u64,
    /// An outgoing connect not yet complete.
    pub(crate) connecting: bool,
    /// The last write met `WouldBlock`: wait for a writable event before writing again.
    pub(crate) write_blocked: bool,
    pub(crate) close_after_flush: bool,
    pub(crate) shutdown_after_flush: bool,
    pub(crate) write_shut: bool,
    pub(crate) read_closed: bool,
    /// Closing: our side is shut; input is read and dropped until EOF or the linger deadline.
    pub(crate) draining: bool,
    /// Reading stopped because too much output is pending (back-pressure).
    pub(crate) paused: bool,
    pub(crate) abort: bool,
    pub(crate) failed: Option<io::Error>,
    /// The deadline this connection has in the loop's timer set.
    pub(crate) scheduled: Option<Instant>,
    pub(crate) last_active: Instant,
    pub(crate) write_deadline: Option<Instant>,
    pub(crate) linger_deadline: Option<Instant>,
    /// A deadline the handler set with `Conn::set_deadline`.
    pub(crate) handler_deadline: Option<Instant>,
}

/// What [`advance`] decided.
pub(crate) enum Step {
    Keep,
    Close(CloseReason),
}

enum Unread {
    Nothing,
    Discarded,
    Eof,
}

impl Connection {
    pub(crate) fn new(
        stream: Stream,
        peer: PeerAddr,
        listener: Option<ListenerId>,
        gen: u32,
        now: Instant,
    ) -> Connection {
        Connection {
            stream,
            peer,
            listener,
            out: WriteBuffer::default(),
            gen,
            tag: 0,
            connecting: false,
            write_blocked: false,
            close_after_flush: false,
            shutdown_after_flush: false,
            write_shut: false,
            read_closed: false,
            draining: false,
            paused: false,
            abort: false,
            failed: None,
            scheduled: None,
            last_active: now,
            write_deadline: None,
            linger_deadline: None,
            handler_deadline: None,
        }
    }

    /// Queues `data` (shared when `shared` holds the same bytes) and writes what the socket
    /// takes now. Errors are kept for [`advance`] to act on.
    pub(crate) fn send(&mut self, data: &[u8], shared: Option<&Arc<[u8]>>, counters: &Counters) {
        if self.write_shut || self.abort || self.failed.is_some() {
            log::debug!(
                "send of {} bytes after the connection was shut, dropped",
                data.len()
            );
            return;
        }
        let mut start = 0;
        if self.out.is_empty() && !self.write_blocked && !self.connecting {
            // The fast path: straight to the socket, no copy into the buffer.
            while start < data.len() {
                match self.stream.write(&data[start..]) {
                    Ok(0) => {
                        self.failed = Some(io::ErrorKind::WriteZero.into());
                        return;
                    }
                    Ok(n) => {
                        Counters::add(&counters.bytes_out, n as u64);
                        start += n;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        self.write_blocked = true;
                        break;
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        self.failed = Some(e);
                        return;
                    }
                }
            }
        }
        match shared {
            Some(arc) if start < arc.len() => self.out.push_shared(Arc::clone(arc), start),
            Some(_) => {}
            None => self.out.push_copy(&data[start..]),
        }
    }

    /// Writes queued output until it is gone or the socket would block; returns how many
    /// bytes went.
    pub(crate) fn flush(&mut self, counters: &Counters) -> io::Result<usize> {
        let n = self.out.write_to(&mut self.stream)?;
        Counters::add(&counters.bytes_out, n as u64);
        self.write_blocked = !self.out.is_empty();
        Ok(n)
    }

    /// Reads and drops input until `WouldBlock` or EOF.
    fn discard_input(&mut self, scratch: &mut [u8], counters: &Counters) -> io::Result<Unread> {
        let mut seen = false;
        loop {
            match self.stream.read(scratch) {
                Ok(0) => {
                    self.read_closed = true;
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

    /// The earliest of this connection's deadlines.
    pub(crate) fn next_deadline(&self, idle: Option<std::time::Duration>) -> Option<Instant> {
        let idle = idle.map(|d| self.last_active + d);
        [
            idle,
            self.write_deadline,
            self.linger_deadline,
            self.handler_deadline,
        ]
        .into_iter()
        .flatten()
        .min()
    }
}

/// Settings [`advance`] needs from the loop's configuration.
pub(crate) struct Limits {
    pub(crate) write_timeout: Option<std::time::Duration>,
    pub(crate) linger: std::time::Duration,
}

/// Moves a connection as far as it can go without waiting: flushes output, carries out a
/// requested half-close or close, and says whether the connection lives on.
///
/// Closing follows the orderly sequence: flush, `shutdown(Write)`, drain the peer until EOF
/// or the linger deadline, drop. Dropping a socket with unread input makes the kernel send a
/// reset, which can destroy the reply the peer has not read yet; when nothing is unread (the
/// common case for a greeting) the socket is dropped at once.
pub(crate) fn advance(
    c: &mut Connection,
    now: Instant,
    limits: &Limits,
    scratch: &mut [u8],
    counters: &Counters,
) -> Step {
    if c.abort {
        return Step::Close(CloseReason::Aborted);
    }
    if let Some(err) = c.failed.take() {
        return Step::Close(CloseReason::from_io(&err));
    }
    if c.connecting {
        return Step::Keep;
    }
    if !c.out.is_empty() && !c.write_blocked {
        if let Err(err) = c.flush(counters) {
            return Step::Close(CloseReason::from_io(&err));
        }
    }
    if !c.out.is_empty() {
        if c.write_deadline.is_none() {
            c.write_deadline = limits.write_timeout.map(|d| now + d);
        }
        return Step::Keep;
    }
    c.write_deadline = None;
    if c.close_after_flush && c.read_closed {
        return Step::Close(CloseReason::Done);
    }
    if (c.close_after_flush || c.shutdown_after_flush) && !c.write_shut {
        if c.close_after_flush {
            match c.discard_input(scratch, counters) {
                Ok(Unread::Nothing | Unread::Eof) => return Step::Close(CloseReason::Done),
                Ok(Unread::Discarded) => {}
                Err(err) => return Step::Close(CloseReason::from_io(&err)),
            }
        }
        if let Err(err) = c.stream.shutdown_write() {
            return Step::Close(CloseReason::from_io(&err));
        }
        c.write_shut = true;
    }
    if c.close_after_flush && !c.draining {
        c.draining = true;
        c.linger_deadline = Some(now + limits.linger);
    }
    Step::Keep
}
