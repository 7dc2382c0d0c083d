//! [`Config`]: how a loop treats its connections, read when the loop is built (by the
//! reactor, the dispatcher and the worker pool alike).

use std::time::Duration;

/// How a loop treats its connections. The defaults suit a public server.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
///
/// let config = netcore::Config {
///     idle_timeout: Some(Duration::from_secs(5)),
///     ..netcore::Config::default()
/// };
/// let event_loop: netcore::EventLoop = netcore::EventLoop::new(config)?;
/// # drop(event_loop);
/// # Ok::<(), netcore::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Config {
    /// Close a registered connection after this long with nothing read or written, so no
    /// connection lives forever by doing nothing. Default 60 s.
    pub idle_timeout: Option<Duration>,
    /// Close a connection whose queued output has waited this long with none of it taken
    /// by the peer (a peer that stopped reading). A slow peer that keeps reading is not cut
    /// off. Default 30 s.
    pub write_timeout: Option<Duration>,
    /// When closing with input still arriving: how long to read and drop it while waiting
    /// for the peer's EOF. Default 2 s.
    pub linger: Duration,
    /// On shutdown: how long in-flight connections may take to finish. Default 5 s.
    pub drain_timeout: Duration,
    /// Stop reading a connection whose queued output passes this many bytes, until half of
    /// it is written (back-pressure). Default 1 MiB.
    pub max_pending_output: usize,
    /// Input a connection's handler may leave unconsumed
    /// ([`Handler::on_data`](crate::Handler::on_data)'s kept input: a frame not complete
    /// yet). A connection that keeps more is closed with
    /// [`CloseReason::InputLimit`](crate::CloseReason::InputLimit). Default 1 MiB.
    pub max_input: usize,
    /// [`Handler::on_flushed`](crate::Handler::on_flushed) is called when a connection's
    /// pending output falls from above this many bytes to this many or fewer. Default 0:
    /// once all of it is written.
    /// A forwarder that sets it higher resumes its producer before the pipe runs dry.
    pub low_water: usize,
    /// Reads one connection may make per turn of the loop (of up to 64 KiB each) before
    /// the loop turns to everything else that is ready: one peer that keeps its socket
    /// full cannot starve the others, the listeners, timers and messages. Default 64
    /// (4 MiB); at least 1.
    pub read_budget: usize,
    /// Stop accepting while this many connections are open. Default: no limit.
    pub max_connections: usize,
    /// How long a listener pauses after `accept()` fails for lack of descriptors or memory
    /// (`EMFILE`, `ENFILE`, `ENOBUFS`, `ENOMEM`) instead of retrying in a busy loop.
    /// Default 100 ms; at least 1 ms, whatever is set.
    pub accept_backoff: Duration,
    /// Replies a UDP socket queues when its send buffer is full; more are dropped and
    /// counted. Default 1024.
    pub udp_queue: usize,
    /// Messages a loop's [`Sender`](crate::Sender)s may queue before
    /// [`Sender::post`](crate::Sender::post) refuses with
    /// [`PostError::Full`](crate::PostError::Full). Default 1024; at least 1.
    pub message_capacity: usize,
    /// Events taken from the poller per turn. Default 1024.
    pub events_capacity: usize,
    /// Threads the loop's worker pool may run at once
    /// ([`Control::spawn_blocking`](crate::Control::spawn_blocking), name lookups of
    /// [`Control::connect_name`](crate::Control::connect_name)): started
    /// as jobs find none idle, none before the first job. Default 8; at least 1.
    pub blocking_threads: usize,
    /// Jobs the worker pool may have in flight, from submit until their result is
    /// delivered; one more is refused at submit ([`SpawnError::Full`](crate::SpawnError)).
    /// Default 256; at least 1.
    pub blocking_queue: usize,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            idle_timeout: Some(Duration::from_secs(60)),
            write_timeout: Some(Duration::from_secs(30)),
            linger: Duration::from_secs(2),
            drain_timeout: Duration::from_secs(5),
            max_pending_output: 1 << 20,
            max_input: 1 << 20,
            low_water: 0,
            read_budget: 64,
            max_connections: usize::MAX,
            accept_backoff: Duration::from_millis(100),
            udp_queue: 1024,
            message_capacity: 1024,
            events_capacity: 1024,
            blocking_threads: 8,
            blocking_queue: 256,
        }
    }
}
