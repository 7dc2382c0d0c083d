//! `gethostname`.

use crate::error::{Error, ErrorKind};

/// This machine's host name, as Python's `socket.gethostname()` returns it (through
/// `dns_lookup::get_hostname`, which calls libc's `gethostname`).
///
/// # Errors
///
/// [`ErrorKind::Os`] if the system call fails, [`ErrorKind::NonUtf8`] if the name is not UTF-8.
///
/// # Examples
///
/// ```
/// let name = resolver::gethostname()?;
/// assert!(!name.is_empty());
/// # Ok::<(), resolver::Error>(())
/// ```
pub fn gethostname() -> Result<String, Error> {
    dns_lookup::get_hostname().map_err(|err| {
        if err.raw_os_error().is_some() {
            Error::from_io(err, "gethostname()".to_owned())
        } else {
            Error::new(
                ErrorKind::NonUtf8,
                "gethostname()".to_owned(),
                "host name is not UTF-8",
            )
        }
    })
}
