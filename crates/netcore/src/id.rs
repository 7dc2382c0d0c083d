//! The names the loop gives things: ids of listeners, sockets, connections and timers, a
//! stream peer's address, and why a connection closed.
//!
//! A leaf module (as mio keeps `Token` in `token.rs`): everything else may use it, it uses
//! nothing of the crate but the counters a close reason is counted in.

use std::io;
use std::path::PathBuf;

use crate::counters::Counters;

/// Identifies a listener within its loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ListenerId(pub(crate) usize);

/// Identifies a UDP socket within its loop.
///
/// # Examples
///
/// ```
/// let mut event_loop: netcore::EventLoop = netcore::EventLoop::new(netcore::Config::default())?;
/// let socket = netcore::udp_socket("127.0.0.1:0".parse()?, &Default::default())?;
/// let id: netcore::SocketId = event_loop.add_udp_socket(socket)?;
/// # let _ = id;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SocketId(pub(crate) usize);

/// Identifies a connection within its loop: a slot and that slot's generation.
///
/// An id stays valid until [`Handler::on_close`](crate::Handler::on_close) has been called
/// for it. After that its slot may hold another connection under a new generation, and
/// every [`Control`](crate::Control) method given the old id reports it as stale (`false`,
/// `None` or an error) and touches nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId {
    pub(crate) index: usize,
    pub(crate) gen: u32,
}

/// Identifies a timer set with [`Control::set_timer`](crate::Control::set_timer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TimerId(pub(crate) u64);

/// Who is at the other end of a stream connection (or, from
/// [`Control::local_addr`](crate::Control::local_addr), our own end).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerAddr {
    /// A TCP peer.
    Inet(std::net::SocketAddr),
    /// A Unix-domain peer: its path, where it bound one (clients usually do not).
    Unix(Option<PathBuf>),
}

/// Why a connection closed.
///
/// # Examples
///
/// ```
/// use netcore::{CloseReason, Closed, Control, Handler};
///
/// struct Log;
///
/// impl Handler for Log {
///     fn on_close(&mut self, _: &mut Control<'_>, closed: &Closed<'_>) {
///         match closed.reason {
///             CloseReason::Done => {}
///             CloseReason::Timeout => eprintln!("{:?}: too slow", closed.peer),
///             other => eprintln!("{:?}: {other:?}, {} bytes unsent", closed.peer, closed.unsent),
///         }
///     }
/// }
/// # let _ = Log;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CloseReason {
    /// Orderly: everything queued was written, then the connection was closed.
    Done,
    /// The handler called [`Conn::abort`](crate::Conn::abort) or
    /// [`Control::abort`](crate::Control::abort).
    Aborted,
    /// The peer reset the connection or stopped reading for good (`ECONNRESET`, `EPIPE`).
    Reset,
    /// An idle, write, linger or handler deadline passed.
    Timeout,
    /// The loop shut down before the connection finished.
    Shutdown,
    /// An outgoing connect was refused.
    Refused,
    /// An outgoing connect failed otherwise.
    ConnectFailed(io::ErrorKind),
    /// Another I/O error.
    Error(io::ErrorKind),
    /// The handler left more input unconsumed than
    /// [`Config::max_input`](crate::Config::max_input) allows (a frame too long).
    InputLimit,
}

impl CloseReason {
    pub(crate) fn from_io(err: &io::Error) -> CloseReason {
        match err.kind() {
            io::ErrorKind::ConnectionReset
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::ConnectionAborted => CloseReason::Reset,
            io::ErrorKind::ConnectionRefused => CloseReason::Refused,
            kind => CloseReason::Error(kind),
        }
    }

    /// Why an outgoing connect failed.
    pub(crate) fn from_connect(err: &io::Error) -> CloseReason {
        match CloseReason::from_io(err) {
            CloseReason::Refused => CloseReason::Refused,
            _ => CloseReason::ConnectFailed(err.kind()),
        }
    }

    pub(crate) fn count(self, counters: &Counters) {
        let field = match self {
            CloseReason::Done => &counters.completed,
            CloseReason::Aborted | CloseReason::Shutdown => return,
            CloseReason::Reset => &counters.resets,
            CloseReason::Timeout => &counters.timeouts,
            CloseReason::Refused => &counters.refused,
            CloseReason::ConnectFailed(_) => &counters.connect_failures,
            CloseReason::Error(_) => &counters.other_errors,
            CloseReason::InputLimit => &counters.input_limit,
        };
        Counters::add(field, 1);
    }
}
