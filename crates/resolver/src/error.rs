//! The crate's error type.

use std::fmt;
use std::io;

/// What went wrong, broadly; see [`Error`].
///
/// New kinds may be added in later versions, so a `match` on it needs a `_` arm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// `getaddrinfo` or `getnameinfo` failed with an `EAI_*` code, available through
    /// [`Error::eai_code`] (for example `EAI_NONAME`, -2, "Name or service not known").
    Lookup,
    /// The operating system reported an error (`EAI_SYSTEM`, or a failed system call such as
    /// `gethostname`); the `errno` is available through [`Error::code`].
    Os,
    /// A host or service string contains a NUL byte, which C strings cannot hold. Python's
    /// `getaddrinfo` silently truncates the string there; we refuse it.
    NulByte,
    /// A host string that is not a valid host: an empty or over-long DNS label, a name that IDNA
    /// (UTS #46) cannot encode, an integer address above 4294967295, or an unknown IPv6 scope.
    InvalidHost,
    /// A port for [`socket_addr`](crate::socket_addr) or [`check_port`](crate::check_port) that
    /// is not valid: a number above 65535 (glibc would wrap it modulo 65536), a negative number,
    /// or an empty string. (A service outside 0-65535 given to
    /// [`getaddrinfo`](crate::getaddrinfo) is a [`ErrorKind::Lookup`] error with `EAI_SERVICE`,
    /// as libc and Python report a negative one.)
    InvalidPort,
    /// The host's address family does not match the one asked for (for example `"<broadcast>"`
    /// with [`Family::V6`](crate::Family::V6)).
    FamilyMismatch,
    /// The C library returned text (a canonical name, a host or service name) that is not UTF-8.
    NonUtf8,
    /// The C library returned an address of a family this crate cannot represent as a
    /// [`std::net::SocketAddr`].
    UnsupportedFamily,
}

/// An error from this crate: what kind of failure, which input it was about, and the numbers and
/// message the C library gave.
///
/// Its `Display` form follows Python's `socket.gaierror`/`OSError` and names the input first:
/// `host "nosuch.invalid": [Errno -2] Name or service not known`.
///
/// # Examples
///
/// ```
/// let hints = resolver::Hints { flags: resolver::AI_NUMERICHOST, ..Default::default() };
/// let err = resolver::getaddrinfo(Some("nosuch.invalid"), None, &hints).unwrap_err();
/// assert_eq!(err.kind(), resolver::ErrorKind::Lookup);
/// assert_eq!(err.eai_code(), Some(libc::EAI_NONAME));
/// assert_eq!(err.reason(), "Name or service not known");
/// assert_eq!(err.to_string(), r#"host "nosuch.invalid": [Errno -2] Name or service not known"#);
/// ```
#[derive(Debug)]
pub struct Error {
    kind: ErrorKind,
    subject: String,
    code: Option<i32>,
    reason: String,
    source: Option<io::Error>,
}

impl Error {
    /// The kind of failure.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The `EAI_*` number when `getaddrinfo` or `getnameinfo` failed with one (kind
    /// [`ErrorKind::Lookup`]), as Python's `gaierror.errno`. `EAI_SYSTEM` is never returned here:
    /// it becomes an [`ErrorKind::Os`] error carrying the OS error.
    pub fn eai_code(&self) -> Option<i32> {
        match self.kind {
            ErrorKind::Lookup => self.code,
            _ => None,
        }
    }

    /// The number Python would put in the exception's `errno`: the `EAI_*` number for lookup
    /// failures, the OS `errno` for OS failures, `None` for errors this crate detects itself.
    pub fn code(&self) -> Option<i32> {
        self.code
    }

    /// The message without the input and the number: libc's `gai_strerror` text for lookup
    /// failures (`"Name or service not known"`), the OS message for OS failures, or this crate's
    /// own description.
    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// The input the error is about, as shown at the start of the `Display` form, for example
    /// `host "nosuch.invalid"` or `host "localhost", service "nosuch"`.
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// The OS error, for kind [`ErrorKind::Os`].
    pub fn os_error(&self) -> Option<&io::Error> {
        self.source.as_ref()
    }

    pub(crate) fn new(kind: ErrorKind, subject: String, reason: impl Into<String>) -> Self {
        Error {
            kind,
            subject,
            code: None,
            reason: reason.into(),
            source: None,
        }
    }

    /// The same error, about a differently named input.
    pub(crate) fn with_subject(mut self, subject: String) -> Self {
        self.subject = subject;
        self
    }

    /// A lookup error from an `EAI_*` code, with libc's own message.
    pub(crate) fn from_eai(code: i32, subject: String) -> Self {
        Error {
            kind: ErrorKind::Lookup,
            subject,
            code: Some(code),
            reason: gai_strerror(code),
            source: None,
        }
    }

    /// An OS error.
    pub(crate) fn from_io(err: io::Error, subject: String) -> Self {
        let code = err.raw_os_error();
        let reason = match code {
            // io::Error's Display adds " (os error N)"; Python's form puts the number first.
            Some(n) => io::Error::from_raw_os_error(n)
                .to_string()
                .trim_end_matches(&format!(" (os error {n})"))
                .to_owned(),
            None => err.to_string(),
        };
        Error {
            kind: ErrorKind::Os,
            subject,
            code,
            reason,
            source: Some(err),
        }
    }

    /// Converts a `getaddrinfo`/`getnameinfo` return code (non-zero) to an error, reading
    /// `errno` for `EAI_SYSTEM`. Must be called right after the failing call.
    pub(crate) fn from_gai_return(code: i32, subject: String) -> Self {
        if code == libc::EAI_SYSTEM {
            Error::from_io(io::Error::last_os_error(), subject)
        } else {
            Error::from_eai(code, subject)
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.code {
            Some(code) => write!(f, "{}: [Errno {}] {}", self.subject, code, self.reason),
            None => write!(f, "{}: {}", self.subject, self.reason),
        }
    }
}

/// The OS message is part of the `Display` form (Python's `[Errno 98] Address already in
/// use`), so `source()` returns `None`: a chain printer (`anyhow`'s `{:#}`) shows it once.
/// [`Error::os_error`] gives the `io::Error` itself.
impl std::error::Error for Error {}

impl From<Error> for io::Error {
    /// Keeps the OS error as it is; every other error becomes an `io::Error` of kind `Other`
    /// (or `InvalidInput` for bad input) whose message is the full `Display` form.
    fn from(err: Error) -> io::Error {
        match (err.kind, err.code) {
            (ErrorKind::Os, Some(code)) => io::Error::from_raw_os_error(code),
            (ErrorKind::NulByte, _)
            | (ErrorKind::InvalidHost, _)
            | (ErrorKind::InvalidPort, _)
            | (ErrorKind::FamilyMismatch, _) => io::Error::new(io::ErrorKind::InvalidInput, err),
            _ => io::Error::other(err),
        }
    }
}

/// libc's message for an `EAI_*` code.
fn gai_strerror(code: i32) -> String {
    // SAFETY: gai_strerror accepts any int and returns a pointer to a static, NUL-terminated
    // string (glibc returns "Unknown error" for unknown codes); we check for NULL anyway and
    // copy the text out before returning.
    unsafe {
        let ptr = libc::gai_strerror(code);
        if ptr.is_null() {
            return format!("Unknown error {code}");
        }
        std::ffi::CStr::from_ptr(ptr).to_string_lossy().into_owned()
    }
}

/// Formats a string as Python's `repr` would quote it in an error subject: double quotes,
/// escaped, and cut after 100 characters so a 10 kB input does not make a 10 kB message.
pub(crate) fn quote(s: &str) -> String {
    const MAX: usize = 100;
    let mut out: String = s.chars().take(MAX).collect::<String>();
    out = format!("{out:?}");
    if s.chars().nth(MAX).is_some() {
        out.push_str("...");
    }
    out
}
