//! The server's own lines on stderr (the summary, restart reports, errors). `eprintln!`
//! panics when the write fails (a full disk, a closed pipe), which would turn a clean exit
//! into status 101 or kill the thread that reports; a line that cannot be written is lost
//! instead, and nothing else changes.

use std::io::Write;

/// Writes `args` and a newline on stderr in one `write(2)` (so that a line is never
/// interleaved with another process's, such as a restarted server's), ignoring failure.
pub fn stderr_line(args: std::fmt::Arguments<'_>) {
    let mut line = args.to_string();
    line.push('\n');
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

/// `eprintln!` that never panics: see [`stderr_line`].
macro_rules! say {
    ($($arg:tt)*) => {
        $crate::say::stderr_line(format_args!($($arg)*))
    };
}
