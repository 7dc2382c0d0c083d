//! Writes to stdout and stderr that never panic, as `print!` and `eprint!` do when either is
//! a full disk or a pipe nobody reads.

use std::io::{self, Write};

use anyhow::Context;

/// Writes `bytes` to stdout and flushes. A closed pipe (`| head`) is no error: the reader
/// took what it wanted, so the program ends quietly, as ripgrep does. Any other failure (a
/// full disk) is one, since the output is lost.
pub fn stdout(bytes: &[u8]) -> anyhow::Result<()> {
    let mut out = io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => Err(e).context("write to stdout"),
        _ => Ok(()),
    }
}

/// Writes one line to stderr. A failure is ignored: there is nowhere left to report it, and
/// the exit status says what the line would have.
pub fn stderr_line(line: impl std::fmt::Display) {
    let _ = writeln!(io::stderr().lock(), "{line}");
}
