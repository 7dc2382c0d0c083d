//! Whether a connection is being read, and whose pause holds it: [`ReadPause`].

use crate::connection::{Connection, Pause, Reading};
use crate::control::Control;
use crate::handler::Conn;
use crate::id::ConnId;

/// Why a connection is not being read, as [`Conn::read_pause`] and
/// [`Control::read_pause`] tell it: one flag per cause, and reading goes on only when none
/// is set.
///
/// Two of the causes are the loop's, and the loop lifts them itself; one is the
/// handler's, and only the handler lifts it:
/// - **`by_handler`**: [`Conn::pause_reading`] or [`Control::pause_reading`]; it holds until
///   [`resume_reading`](Control::resume_reading), whatever else happens. A handler that
///   pauses a client while it waits for something (a connect, a worker's result) must
///   resume it on every outcome, or the client waits until its idle timeout.
/// - **`by_backpressure`** (the loop's): the connection's own output is over
///   [`Config::max_pending_output`](crate::Config::max_pending_output); lifted once half of
///   it is written.
/// - **`by_pipe`** (the loop's): the connection is piped ([`Control::pipe`]) and too much
///   of what it sent waits on the other side; lifted once that drains.
///
/// # Examples
///
/// ```
/// use netcore::{Conn, Handler};
///
/// struct Gate;
///
/// impl Handler for Gate {
///     fn on_data(&mut self, conn: &mut Conn<'_>, input: &[u8]) -> usize {
///         if input.starts_with(b"wait") {
///             conn.pause_reading();
///             assert!(conn.read_pause().by_handler);
///         }
///         input.len()
///     }
/// }
/// # let _ = Gate;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct ReadPause {
    /// The handler paused it, and has not resumed it.
    pub by_handler: bool,
    /// The loop paused it: its own output is over the back-pressure bound.
    pub by_backpressure: bool,
    /// The loop paused it: piped, and the other side holds too much of its input.
    pub by_pipe: bool,
}

impl ReadPause {
    /// Whether any cause holds reading.
    pub fn is_paused(&self) -> bool {
        self.by_handler || self.by_backpressure || self.by_pipe
    }

    fn of<T>(conn: &Connection<T>) -> ReadPause {
        match conn.reading() {
            Reading::Paused(Pause {
                by_handler,
                by_backpressure,
                by_pipe,
            }) => ReadPause {
                by_handler,
                by_backpressure,
                by_pipe,
            },
            Reading::Open | Reading::Closed => ReadPause::default(),
        }
    }
}

impl<T> Control<'_, T> {
    /// Whether connection `id` is being read, and whose pauses hold it (see
    /// [`ReadPause`]); `None` when `id` is stale. After the peer's EOF nothing is read,
    /// and nothing is paused either.
    pub fn read_pause(&self, id: ConnId) -> Option<ReadPause> {
        self.conn(id).map(ReadPause::of)
    }
}

impl<T> Conn<'_, T> {
    /// Whether this connection is being read, and whose pauses hold it; see
    /// [`ReadPause`].
    pub fn read_pause(&self) -> ReadPause {
        self.ctl.read_pause(self.id).unwrap_or_default()
    }
}
