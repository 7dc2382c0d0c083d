//! Counters that an event loop updates and any thread may read while it runs.

use std::sync::atomic::{AtomicU64, Ordering};

/// Live counters of one event loop (or of several, when they share one `Arc<Counters>`).
///
/// Updated with relaxed atomics: each value is exact, but a [`snapshot`](Counters::snapshot)
/// taken while the loop runs is not one instant's picture across all fields.
///
/// # Examples
///
/// ```
/// let counters = netcore::Counters::default();
/// assert_eq!(counters.snapshot().accepted, 0);
/// ```
#[derive(Debug, Default)]
pub struct Counters {
    pub(crate) accepted: AtomicU64,
    pub(crate) connected: AtomicU64,
    pub(crate) closed: AtomicU64,
    pub(crate) completed: AtomicU64,
    pub(crate) bytes_in: AtomicU64,
    pub(crate) bytes_out: AtomicU64,
    pub(crate) datagrams_in: AtomicU64,
    pub(crate) datagrams_out: AtomicU64,
    pub(crate) datagrams_dropped: AtomicU64,
    pub(crate) accept_errors: AtomicU64,
    pub(crate) accept_pauses: AtomicU64,
    pub(crate) aborted: AtomicU64,
    pub(crate) resets: AtomicU64,
    pub(crate) refused: AtomicU64,
    pub(crate) timeouts: AtomicU64,
    pub(crate) connect_failures: AtomicU64,
    pub(crate) other_errors: AtomicU64,
    pub(crate) reset_sent: AtomicU64,
    pub(crate) input_limit: AtomicU64,
    pub(crate) buffered: AtomicU64,
    pub(crate) buffered_peak: AtomicU64,
    pub(crate) blocking_jobs: AtomicU64,
    pub(crate) blocking_refused: AtomicU64,
    pub(crate) blocking_threads: AtomicU64,
}

/// A copy of [`Counters`] at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CounterSnapshot {
    /// Connections accepted from listeners.
    pub accepted: u64,
    /// Outgoing connections that completed their handshake.
    pub connected: u64,
    /// Connections closed, for any reason.
    pub closed: u64,
    /// Connections closed after everything queued on them was written.
    pub completed: u64,
    /// Bytes read from stream connections.
    pub bytes_in: u64,
    /// Bytes written to stream connections.
    pub bytes_out: u64,
    /// Datagrams received.
    pub datagrams_in: u64,
    /// Datagrams sent.
    pub datagrams_out: u64,
    /// Datagram replies dropped because the socket's send queue was full.
    pub datagrams_dropped: u64,
    /// `accept()` failures other than `WouldBlock` (including those that paused accepting).
    pub accept_errors: u64,
    /// Times a listener paused accepting for lack of descriptors or memory.
    pub accept_pauses: u64,
    /// Connections that the peer aborted before `accept()` returned (`ECONNABORTED`).
    pub aborted: u64,
    /// Connections reset by the peer or broken (`ECONNRESET`, `EPIPE`).
    pub resets: u64,
    /// `ECONNREFUSED`: failed connects, and ICMP port-unreachable reports on UDP sockets.
    pub refused: u64,
    /// Connections closed by an idle, write or linger deadline.
    pub timeouts: u64,
    /// Outgoing connections that failed for a reason other than `ECONNREFUSED`.
    pub connect_failures: u64,
    /// Any other I/O error.
    pub other_errors: u64,
    /// Connections the loop ended with a reset instead of a FIN: aborted, or given up
    /// (a timeout, a shutdown's drain time) with output still unsent, so that the peer
    /// sees an error rather than a cut reply that looks whole.
    pub reset_sent: u64,
    /// Connections closed because the handler kept more unconsumed input than
    /// [`Config::max_input`](crate::Config::max_input) allows.
    pub input_limit: u64,
    /// A gauge, not a count: bytes queued in connections' write buffers right now (output
    /// the kernel has not taken yet). Back-pressure keeps it bounded.
    pub buffered: u64,
    /// The highest [`buffered`](Self::buffered) has been.
    pub buffered_peak: u64,
    /// Jobs the loop's worker pool accepted: [`Control::spawn_blocking`](crate::Control::spawn_blocking)'s,
    /// and the name lookups of connects by name.
    pub blocking_jobs: u64,
    /// Jobs the worker pool refused at submit (full, or no thread could be started).
    pub blocking_refused: u64,
    /// A gauge, not a count: the worker pool's threads alive now (0 until its first job;
    /// each ends after 10 s without work).
    pub blocking_threads: u64,
}

macro_rules! snapshot_fields {
    ($self:ident, $($field:ident),*) => {
        CounterSnapshot { $($field: $self.$field.load(Ordering::Relaxed)),* }
    };
}

impl Counters {
    /// Reads every counter.
    pub fn snapshot(&self) -> CounterSnapshot {
        snapshot_fields!(
            self,
            accepted,
            connected,
            closed,
            completed,
            bytes_in,
            bytes_out,
            datagrams_in,
            datagrams_out,
            datagrams_dropped,
            accept_errors,
            accept_pauses,
            aborted,
            resets,
            refused,
            timeouts,
            connect_failures,
            other_errors,
            reset_sent,
            input_limit,
            buffered,
            buffered_peak,
            blocking_jobs,
            blocking_refused,
            blocking_threads
        )
    }

    /// `n` more bytes wait in a write buffer.
    #[inline]
    pub(crate) fn buffer(&self, n: usize) {
        if n == 0 {
            return;
        }
        let now = self.buffered.fetch_add(n as u64, Ordering::Relaxed) + n as u64;
        self.buffered_peak.fetch_max(now, Ordering::Relaxed);
    }

    /// `n` buffered bytes were written or dropped.
    #[inline]
    pub(crate) fn unbuffer(&self, n: usize) {
        if n != 0 {
            self.buffered.fetch_sub(n as u64, Ordering::Relaxed);
        }
    }

    /// A worker thread of the pool ended.
    pub(crate) fn blocking_threads_exited(&self) {
        self.blocking_threads.fetch_sub(1, Ordering::Relaxed);
    }

    #[inline]
    pub(crate) fn add(field: &AtomicU64, n: u64) {
        field.fetch_add(n, Ordering::Relaxed);
    }
}
