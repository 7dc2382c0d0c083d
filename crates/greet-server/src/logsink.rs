//! The `Got connection from` lines, written by one thread so that a stdout nobody reads
//! never stalls an event loop.
//!
//! Each loop collects its lines for one turn in a buffer, then hands the whole buffer to the
//! writer thread through a bounded queue ([`LogSink::submit`], never blocking: `try_send`).
//! When the queue holds [`MAX_QUEUED_BYTES`] or more, or the writer has failed (a closed
//! stdout), the batch is dropped and its lines counted. The writer writes each batch in
//! pieces of at most `PIPE_BUF` bytes cut at line ends, so that a pipe shared with another
//! process (the new server during a restart) never sees two processes' lines interleaved
//! within a line.
//!
//! At exit, [`LogWriter::finish`] gives the writer a deadline: it may be blocked for ever in
//! `write(2)` on a full pipe, so it is never joined without one. What it has not written by
//! then counts as dropped. The counts: `logged` is lines whose last byte `write(2)` took,
//! `dropped` is every other line produced, so `logged + dropped` is every line.

use anyhow::{Context, Result};
use std::fs::File;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Bytes waiting for the writer beyond which batches are dropped (about 6,000 lines).
pub const MAX_QUEUED_BYTES: usize = 256 * 1024;
/// Batches the queue holds at most (each is one loop's turn); the byte bound is the one
/// that matters, this keeps the channel's own allocation small.
const MAX_QUEUED_BATCHES: usize = 256;
/// A write to a pipe of at most this many bytes is atomic (POSIX `PIPE_BUF` on Linux).
const PIPE_BUF: usize = 4096;
/// Emptied buffers kept for reuse, so that a loop does not allocate one per turn.
const POOL: usize = 64;

/// One loop turn's lines.
struct Batch {
    bytes: Vec<u8>,
    lines: u64,
}

/// Counts shared by the loops, the writer and whoever reports them.
#[derive(Debug, Default)]
struct Shared {
    queued_bytes: AtomicUsize,
    /// Lines handed to [`LogSink::submit`], written or not.
    produced: AtomicU64,
    /// Lines whose last byte was written.
    written: AtomicU64,
    /// Lines dropped so far: a full queue, or a failed writer.
    dropped: AtomicU64,
    failed: AtomicBool,
    pool: Mutex<Vec<Vec<u8>>>,
}

/// What a loop uses to hand over its lines; cheap to clone, one per loop.
#[derive(Debug, Clone)]
pub struct LogSink {
    tx: SyncSender<Batch>,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Batch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Batch({} lines)", self.lines)
    }
}

/// The writer thread, and the counts it keeps.
#[derive(Debug)]
pub struct LogWriter {
    done: Receiver<()>,
    shared: Arc<Shared>,
}

/// Lines written and dropped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogCounts {
    pub logged: u64,
    pub dropped: u64,
}

/// A view of the counts for reports while the server runs.
#[derive(Debug, Clone)]
pub struct LogCounter(Arc<Shared>);

impl LogCounter {
    /// Lines written and dropped so far (lines still queued are neither).
    pub fn counts(&self) -> LogCounts {
        LogCounts {
            logged: self.0.written.load(Ordering::Relaxed),
            dropped: self.0.dropped.load(Ordering::Relaxed),
        }
    }
}

/// Starts the writer thread on `out` (a duplicate of stdout).
///
/// # Errors
///
/// The thread cannot be started.
pub fn start(out: OwnedFd) -> Result<(LogWriter, LogSink)> {
    let (tx, rx) = mpsc::sync_channel::<Batch>(MAX_QUEUED_BATCHES);
    let (done_tx, done) = mpsc::channel();
    let shared = Arc::new(Shared::default());
    let writer_shared = Arc::clone(&shared);
    std::thread::Builder::new()
        .name("log-writer".into())
        .spawn(move || {
            write_batches(File::from(out), &rx, &writer_shared);
            let _ = done_tx.send(());
        })
        .context("start the log writer thread")?;
    Ok((
        LogWriter {
            done,
            shared: Arc::clone(&shared),
        },
        LogSink { tx, shared },
    ))
}

impl LogSink {
    /// Hands `buf` (holding `lines` whole lines) to the writer, or drops and counts it;
    /// never blocks. `buf` comes back empty, with an allocation to reuse when there is one.
    pub fn submit(&self, buf: &mut Vec<u8>, lines: u64) {
        let shared = &self.shared;
        shared.produced.fetch_add(lines, Ordering::Relaxed);
        let len = buf.len();
        if shared.failed.load(Ordering::Relaxed)
            || shared.queued_bytes.load(Ordering::Relaxed) >= MAX_QUEUED_BYTES
        {
            shared.dropped.fetch_add(lines, Ordering::Relaxed);
            buf.clear();
            return;
        }
        let fresh = shared
            .pool
            .lock()
            .ok()
            .and_then(|mut pool| pool.pop())
            .unwrap_or_default();
        let bytes = std::mem::replace(buf, fresh);
        shared.queued_bytes.fetch_add(len, Ordering::Relaxed);
        if let Err(TrySendError::Full(batch) | TrySendError::Disconnected(batch)) =
            self.tx.try_send(Batch { bytes, lines })
        {
            shared.queued_bytes.fetch_sub(len, Ordering::Relaxed);
            shared.dropped.fetch_add(lines, Ordering::Relaxed);
            let mut old = std::mem::replace(buf, batch.bytes);
            old.clear();
            recycle(shared, old);
            buf.clear();
        }
    }

    /// The counts, for reports while the server runs.
    pub fn counter(&self) -> LogCounter {
        LogCounter(Arc::clone(&self.shared))
    }
}

impl LogWriter {
    /// Waits until `deadline` at most for the writer to write what is queued (every
    /// [`LogSink`] must be dropped by now, or it waits for the deadline), then returns the
    /// final counts: lines not written by then are dropped.
    pub fn finish(self, deadline: Instant) -> LogCounts {
        let wait = deadline.saturating_duration_since(Instant::now());
        if self.done.recv_timeout(wait).is_err() {
            log::info!("the log writer did not finish in time (stdout is not being read)");
        }
        let produced = self.shared.produced.load(Ordering::Relaxed);
        let logged = self.shared.written.load(Ordering::Relaxed);
        LogCounts {
            logged,
            dropped: produced.saturating_sub(logged),
        }
    }
}

fn recycle(shared: &Shared, buf: Vec<u8>) {
    if buf.capacity() == 0 {
        return;
    }
    if let Ok(mut pool) = shared.pool.lock() {
        if pool.len() < POOL {
            pool.push(buf);
        }
    }
}

fn write_batches(mut out: File, rx: &Receiver<Batch>, shared: &Shared) {
    while let Ok(mut batch) = rx.recv() {
        let len = batch.bytes.len();
        let result = write_lines(&mut out, &batch.bytes, shared);
        shared.queued_bytes.fetch_sub(len, Ordering::Relaxed);
        if let Err((err, unwritten)) = result {
            // A closed stdout (its reader left): no more lines, and the service goes on.
            log::debug!("stdout: {err}; no more connection lines");
            shared.failed.store(true, Ordering::Relaxed);
            shared.dropped.fetch_add(unwritten, Ordering::Relaxed);
            return;
        }
        batch.bytes.clear();
        recycle(shared, batch.bytes);
    }
}

/// Writes `bytes` in pieces of at most [`PIPE_BUF`] cut after a newline, counting each line
/// whose newline was written. On failure: the error and the lines not written.
fn write_lines(out: &mut File, bytes: &[u8], shared: &Shared) -> Result<(), (std::io::Error, u64)> {
    let mut rest = bytes;
    while !rest.is_empty() {
        let piece = if rest.len() <= PIPE_BUF {
            rest
        } else {
            // Up to the last newline within PIPE_BUF; a longer line goes whole.
            match rest[..PIPE_BUF].iter().rposition(|&b| b == b'\n') {
                Some(end) => &rest[..=end],
                None => {
                    let end = rest
                        .iter()
                        .position(|&b| b == b'\n')
                        .unwrap_or(rest.len() - 1);
                    &rest[..=end]
                }
            }
        };
        match out.write(piece) {
            Ok(0) => {
                let lines = newlines(rest);
                return Err((std::io::ErrorKind::WriteZero.into(), lines));
            }
            Ok(n) => {
                shared
                    .written
                    .fetch_add(newlines(&rest[..n]), Ordering::Relaxed);
                rest = &rest[n..];
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => {
                let lines = newlines(rest);
                return Err((e, lines));
            }
        }
    }
    Ok(())
}

fn newlines(bytes: &[u8]) -> u64 {
    bytes.iter().filter(|&&b| b == b'\n').count() as u64
}

/// The log writer for stdout and the sink the loops hand their lines to; neither with
/// `--quiet`.
pub fn for_stdout(quiet: bool) -> Result<(Option<LogWriter>, Option<LogSink>)> {
    use std::os::fd::AsFd;
    if quiet {
        return Ok((None, None));
    }
    let out = std::io::stdout()
        .as_fd()
        .try_clone_to_owned()
        .context("duplicate stdout")?;
    let (writer, sink) = start(out)?;
    Ok((Some(writer), Some(sink)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::time::Duration;

    fn pipe() -> (File, OwnedFd) {
        let (r, w) = crate::restart::pipe().unwrap();
        (File::from(r), w)
    }

    #[test]
    fn every_line_is_written_and_counted() {
        let (mut r, w) = pipe();
        let (writer, sink) = start(w).unwrap();
        let reader = std::thread::spawn(move || {
            let mut s = String::new();
            r.read_to_string(&mut s).unwrap();
            s
        });
        let mut buf = Vec::new();
        for turn in 0..100 {
            for i in 0..50 {
                writeln!(buf, "line {turn} {i}").unwrap();
            }
            sink.submit(&mut buf, 50);
            assert!(buf.is_empty());
            // Slow enough that the queue never fills.
            let deadline = Instant::now() + Duration::from_secs(30);
            while sink.shared.queued_bytes.load(Ordering::Relaxed) > MAX_QUEUED_BYTES / 2 {
                assert!(Instant::now() < deadline, "the writer stopped writing");
                std::thread::yield_now();
            }
        }
        drop(sink);
        let counts = writer.finish(Instant::now() + Duration::from_secs(30));
        assert_eq!(
            counts,
            LogCounts {
                logged: 5000,
                dropped: 0
            }
        );
        let text = reader.join().unwrap();
        assert_eq!(text.lines().count(), 5000);
        assert!(text.lines().all(|l| l.starts_with("line ")));
    }

    #[test]
    fn a_pipe_nobody_reads_drops_and_counts_and_never_blocks() {
        let (r, w) = pipe();
        let (writer, sink) = start(w).unwrap();
        let started = Instant::now();
        let mut buf = Vec::new();
        for _ in 0..2000 {
            for _ in 0..20 {
                buf.extend_from_slice(b"Got connection from ('127.0.0.1', 48437)\n");
            }
            sink.submit(&mut buf, 20);
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "submit blocked"
        );
        assert!(sink.counter().counts().dropped > 0);
        drop(sink);
        let counts = writer.finish(Instant::now() + Duration::from_millis(200));
        assert_eq!(counts.logged + counts.dropped, 40_000);
        // The pipe took what fits in it (64 KiB by default), no more.
        assert!(counts.logged > 0 && counts.logged < 40_000, "{counts:?}");
        drop(r);
    }

    #[test]
    fn a_closed_stdout_stops_the_lines_not_the_service() {
        let (r, w) = pipe();
        drop(r);
        let (writer, sink) = start(w).unwrap();
        let mut buf = b"a\nb\n".to_vec();
        sink.submit(&mut buf, 2);
        let deadline = Instant::now() + Duration::from_secs(30);
        while !sink.shared.failed.load(Ordering::Relaxed) {
            assert!(Instant::now() < deadline);
            std::thread::yield_now();
        }
        let mut buf = b"c\n".to_vec();
        sink.submit(&mut buf, 1);
        drop(sink);
        let counts = writer.finish(deadline);
        assert_eq!(
            counts,
            LogCounts {
                logged: 0,
                dropped: 3
            }
        );
    }
}
