//! Files named on the command line (`--message-file`, `--expect-file`): read whole, but only
//! a regular file, and only up to a bound.
//!
//! What an operator names is not always a file: `/dev/zero` never ends, a FIFO with no writer
//! blocks `open` until one appears, a directory cannot be read. Each is refused at once, with
//! the path and what it is, before the program binds or prints anything.

use std::fs::OpenOptions;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

/// The largest greeting (or expected reply) read from a file: 16 MiB.
///
/// RFC 865 asks a quote-of-the-day message to stay under 512 characters; this server also
/// serves large messages on purpose (its tests and benchmarks send an 8 MiB greeting, shared
/// by every connection, never copied per connection), so the cap is twice that. It exists so
/// that a wrong path (a log file, a disk image) fails at start with a clear line instead of
/// taking the machine's memory.
pub const MESSAGE_MAX: u64 = 16 << 20;

/// Reads the regular file at `path`, at most `max` bytes.
///
/// The file is opened with `O_NONBLOCK`, so opening a FIFO with no writer returns at once
/// instead of waiting; its type is then checked on the open descriptor (`fstat`), so what is
/// checked is what is read.
///
/// # Errors
///
/// One line, starting with the path: it cannot be opened, it is not a regular file (a
/// directory, a FIFO, a character or block device, a socket), it is larger than `max`, or a
/// read fails.
///
/// # Examples
///
/// ```
/// let err = clap_dist::read_file_arg("/dev/zero".as_ref(), clap_dist::MESSAGE_MAX).unwrap_err();
/// assert_eq!(err, "/dev/zero: a character device, not a regular file");
/// ```
pub fn read_file_arg(path: &Path, max: u64) -> Result<Vec<u8>, String> {
    let shown = path.display();
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| format!("{shown}: {e}"))?;
    let meta = file.metadata().map_err(|e| format!("{shown}: {e}"))?;
    let kind = meta.file_type();
    if !kind.is_file() {
        let what = if kind.is_dir() {
            "a directory"
        } else if kind.is_fifo() {
            "a FIFO (named pipe)"
        } else if kind.is_char_device() {
            "a character device"
        } else if kind.is_block_device() {
            "a block device"
        } else if kind.is_socket() {
            "a socket"
        } else {
            "not a file"
        };
        return Err(format!("{shown}: {what}, not a regular file"));
    }
    let too_big = || format!("{shown}: larger than the {} MiB limit", max >> 20);
    if meta.len() > max {
        return Err(too_big());
    }
    // The size may change between fstat and read: the read itself is bounded too.
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    file.take(max.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| format!("{shown}: {e}"))?;
    if bytes.len() as u64 > max {
        return Err(too_big());
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("file-arg-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_regular_file_is_read_whole_up_to_the_bound() {
        let dir = dir("regular");
        let path = dir.join("m");
        std::fs::write(&path, b"hello").unwrap();
        assert_eq!(read_file_arg(&path, 5).unwrap(), b"hello");
        assert_eq!(read_file_arg(&path, 1 << 20).unwrap(), b"hello");
        let err = read_file_arg(&path, 4).unwrap_err();
        assert!(
            err.starts_with(&format!("{}: larger than", path.display())),
            "{err}"
        );
        std::fs::write(&path, b"").unwrap();
        assert_eq!(read_file_arg(&path, 0).unwrap(), b"");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn what_is_not_a_regular_file_is_refused_at_once_by_name() {
        let dir = dir("special");
        let fifo = dir.join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: c is a valid NUL-terminated path; mkfifo only creates a file.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let cases = [
            (fifo.clone(), "a FIFO (named pipe)"),
            (dir.clone(), "a directory"),
            ("/dev/zero".into(), "a character device"),
            ("/dev/null".into(), "a character device"),
        ];
        for (path, what) in cases {
            // A FIFO without a writer must not block: this returns, or the test hangs.
            let err = read_file_arg(&path, MESSAGE_MAX).unwrap_err();
            assert_eq!(
                err,
                format!("{}: {what}, not a regular file", path.display())
            );
        }
        let missing = dir.join("missing");
        let err = read_file_arg(&missing, MESSAGE_MAX).unwrap_err();
        assert!(
            err.starts_with(&format!("{}: ", missing.display())),
            "{err}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
