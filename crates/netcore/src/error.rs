//! The crate's error type: what went wrong, and which address or path it was about.

use std::fmt;
use std::io;

/// An error from setting up or running an event loop.
///
/// The message names the address, path or operation that failed, so a binary can print it as
/// it is: `bind 127.0.0.1:12345: Address already in use (os error 98)`.
///
/// # Examples
///
/// ```
/// use netcore::{ErrorKind, ListenOptions};
///
/// let first = netcore::tcp_listener("127.0.0.1:0".parse()?, &ListenOptions::default())?;
/// let taken = first.local_addr()?;
/// let err = netcore::tcp_listener(taken, &ListenOptions::default()).unwrap_err();
/// assert_eq!(err.kind(), ErrorKind::Bind);
/// assert!(err.to_string().contains(&taken.to_string()));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Error {
    kind: ErrorKind,
    context: String,
    source: io::Error,
}

/// What an [`Error`] was doing when it failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// Creating a socket or setting one of its options.
    Socket,
    /// Binding a socket to an address or path.
    Bind,
    /// `listen()` on a bound socket.
    Listen,
    /// Registering a socket with the poller, or creating the poller or its waker.
    Poll,
    /// Starting an outgoing connection.
    Connect,
}

impl Error {
    pub(crate) fn new(kind: ErrorKind, context: impl Into<String>, source: io::Error) -> Error {
        Error {
            kind,
            context: context.into(),
            source,
        }
    }

    /// What the failed operation was.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The operating system's error underneath.
    pub fn io_error(&self) -> &io::Error {
        &self.source
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.context, self.source)
    }
}

/// The OS error is part of the `Display` form (`bind 127.0.0.1:80: Permission denied (os
/// error 13)`), so `source()` returns `None`: a chain printer (`anyhow`'s `{:#}`) shows it
/// once. [`Error::io_error`] gives the `io::Error` itself.
impl std::error::Error for Error {}
