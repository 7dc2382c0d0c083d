//! Reaching a loop from other threads: [`Sender`] posts messages, [`ShutdownHandle`] stops
//! it. Both wake the loop through its one `mio::Waker`.

use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use mio::Waker;

/// What every handle to a loop shares, whatever its message type.
#[derive(Debug)]
pub(crate) struct Wake {
    waker: Waker,
    shutdown: AtomicBool,
}

impl Wake {
    pub(crate) fn new(waker: Waker) -> Wake {
        Wake {
            waker,
            shutdown: AtomicBool::new(false),
        }
    }

    pub(crate) fn wake(&self) {
        if let Err(err) = self.waker.wake() {
            log::warn!("waking the event loop: {err}");
        }
    }

    pub(crate) fn shutdown_requested(&self) -> bool {
        self.shutdown.load(Ordering::Acquire)
    }

    pub(crate) fn request_shutdown(&self) {
        self.shutdown.store(true, Ordering::Release);
    }
}

/// A loop's message queue.
#[derive(Debug)]
pub(crate) struct Mailbox<M> {
    pub(crate) wake: Arc<Wake>,
    queue: Mutex<Queue<M>>,
    capacity: usize,
}

#[derive(Debug)]
struct Queue<M> {
    messages: VecDeque<M>,
    /// `run` has returned: nobody will read what is posted now.
    closed: bool,
}

impl<M> Mailbox<M> {
    pub(crate) fn new(wake: Arc<Wake>, capacity: usize) -> Mailbox<M> {
        Mailbox {
            wake,
            queue: Mutex::new(Queue {
                messages: VecDeque::new(),
                closed: false,
            }),
            capacity: capacity.max(1),
        }
    }

    /// Moves every waiting message into `into` (which the loop keeps, so the queue's and the
    /// batch's allocations are reused turn after turn).
    pub(crate) fn take_all(&self, into: &mut VecDeque<M>) {
        let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
        if into.is_empty() {
            std::mem::swap(&mut queue.messages, into);
        } else {
            into.extend(queue.messages.drain(..));
        }
    }

    /// Opens the mailbox for a run (a loop may be run again after it returned).
    pub(crate) fn open(&self) {
        self.queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .closed = false;
    }

    /// Refuses every later post; what was accepted stays for a last `take_all`.
    pub(crate) fn close(&self) {
        self.queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .closed = true;
    }

    /// Drops what nobody will read (the loop is gone).
    pub(crate) fn clear(&self) {
        let dropped = std::mem::take(
            &mut self
                .queue
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .messages,
        );
        if !dropped.is_empty() {
            log::debug!(
                "{} messages posted to a dropped loop discarded",
                dropped.len()
            );
        }
    }

    fn post(&self, message: M) -> Result<(), PostError<M>> {
        let was_empty = {
            let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
            if queue.closed {
                return Err(PostError::Closed(message));
            }
            if queue.messages.len() >= self.capacity {
                return Err(PostError::Full(message));
            }
            queue.messages.push_back(message);
            queue.messages.len() == 1
        };
        // One wake per batch: a queue that was not empty has a wake on its way already, and
        // the loop takes the whole queue when it comes.
        if was_empty {
            self.wake.wake();
        }
        Ok(())
    }
}

/// Posts messages to a running [`EventLoop`](crate::EventLoop) from any thread; the loop
/// hands each to [`Handler::on_message`](crate::Handler::on_message) with a
/// [`Control`](crate::Control), so a message can act on any connection.
///
/// **Bounded, not coalescing.** Each loop's queue holds at most
/// [`Config::message_capacity`](crate::Config::message_capacity) messages; a post to a full
/// queue fails at once with [`PostError::Full`] and hands the message back. Messages carry
/// values that cannot be merged in general, so coalescing would lose them; a bound that
/// refuses keeps a fast producer from growing the loop's memory without limit, and leaves
/// the choice (retry later, drop, slow down) to the producer, who knows what the message
/// is worth. A post never blocks, so a loop may post to itself or to another loop without
/// risk of deadlock.
///
/// Posting wakes the loop only when its queue was empty, so a burst costs one wake-up.
/// Messages from one thread arrive in order. Every post that returned `Ok` reaches
/// `on_message` before [`EventLoop::run`](crate::EventLoop::run) returns (those that came
/// in as the loop stopped, after it stopped: their `Control` finds no connection left).
/// Once `run` has returned, or the loop was dropped, posts fail with [`PostError::Closed`];
/// before `run` starts they queue up to the bound.
///
/// # Examples
///
/// ```
/// use netcore::{Control, EventLoop, Handler};
///
/// struct Sum(u64);
///
/// impl Handler<u64> for Sum {
///     fn on_message(&mut self, ctl: &mut Control<'_>, n: u64) {
///         self.0 += n;
///         if n == 0 {
///             ctl.stop();
///         }
///     }
/// }
///
/// let mut event_loop = EventLoop::<u64>::with_messages(netcore::Config::default())?;
/// let sender = event_loop.sender();
/// let producer = std::thread::spawn(move || {
///     for n in [1, 2, 3, 0] {
///         sender.post(n).expect("the loop is running");
///     }
///     sender
/// });
/// let mut sum = Sum(0);
/// event_loop.run(&mut sum)?;
/// assert_eq!(sum.0, 6);
/// let sender = producer.join().expect("producer");
/// assert!(sender.post(7).is_err(), "the loop has returned");
/// # Ok::<(), netcore::Error>(())
/// ```
pub struct Sender<M> {
    mailbox: Arc<Mailbox<M>>,
}

impl<M> Sender<M> {
    pub(crate) fn new(mailbox: Arc<Mailbox<M>>) -> Sender<M> {
        Sender { mailbox }
    }

    /// Queues `message` for the loop and wakes it.
    ///
    /// # Errors
    ///
    /// [`PostError::Full`] when the queue holds its capacity already,
    /// [`PostError::Closed`] when the loop's `run` has returned; both hand `message` back.
    pub fn post(&self, message: M) -> Result<(), PostError<M>> {
        self.mailbox.post(message)
    }
}

impl<M> Clone for Sender<M> {
    fn clone(&self) -> Sender<M> {
        Sender {
            mailbox: Arc::clone(&self.mailbox),
        }
    }
}

impl<M> fmt::Debug for Sender<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sender").finish_non_exhaustive()
    }
}

/// Why [`Sender::post`] failed; either way the message comes back.
#[derive(PartialEq, Eq)]
pub enum PostError<M> {
    /// The loop's queue is full: it is not keeping up.
    Full(M),
    /// The loop has stopped.
    Closed(M),
}

impl<M> PostError<M> {
    /// The message that was not posted.
    pub fn into_inner(self) -> M {
        match self {
            PostError::Full(m) | PostError::Closed(m) => m,
        }
    }
}

impl<M> fmt::Debug for PostError<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PostError::Full(_) => f.write_str("Full(..)"),
            PostError::Closed(_) => f.write_str("Closed(..)"),
        }
    }
}

impl<M> fmt::Display for PostError<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PostError::Full(_) => "the event loop's message queue is full",
            PostError::Closed(_) => "the event loop has stopped",
        })
    }
}

impl<M> std::error::Error for PostError<M> {}

/// Stops a running [`EventLoop`](crate::EventLoop) from any thread.
///
/// `shutdown()` makes the loop stop accepting, close its UDP sockets, let every open
/// connection flush its output and close in order within
/// [`Config::drain_timeout`](crate::Config::drain_timeout), close what is left, and return
/// from [`EventLoop::run`](crate::EventLoop::run).
///
/// It wakes the loop through its one `mio::Waker` (the one a [`Sender`] uses too); it may
/// be cloned and used from any number of threads (a signal-handling thread, say), whatever
/// the loop's message type.
///
/// # Examples
///
/// ```
/// use netcore::{EventLoop, Handler};
///
/// struct Nothing;
/// impl Handler for Nothing {}
///
/// let mut event_loop = EventLoop::new(netcore::Config::default())?;
/// let shutdown = event_loop.shutdown_handle();
/// let server = std::thread::spawn(move || event_loop.run(&mut Nothing));
/// shutdown.shutdown();
/// server.join().expect("server thread")?;
/// # Ok::<(), netcore::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct ShutdownHandle {
    wake: Arc<Wake>,
}

impl ShutdownHandle {
    pub(crate) fn new(wake: Arc<Wake>) -> ShutdownHandle {
        ShutdownHandle { wake }
    }

    /// Asks the loop to stop. Safe to call more than once, and before `run` starts.
    pub fn shutdown(&self) {
        self.wake.request_shutdown();
        self.wake.wake();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mailbox(capacity: usize) -> Option<(mio::Poll, Arc<Mailbox<u32>>)> {
        let poll = mio::Poll::new().ok()?;
        let waker = Waker::new(poll.registry(), mio::Token(0)).ok()?;
        let mailbox = Arc::new(Mailbox::new(Arc::new(Wake::new(waker)), capacity));
        Some((poll, mailbox))
    }

    #[test]
    fn a_full_queue_refuses_and_hands_the_message_back() {
        let Some((_poll, mailbox)) = mailbox(2) else {
            panic!("no poller");
        };
        let sender = Sender::new(Arc::clone(&mailbox));
        assert_eq!(sender.post(1), Ok(()));
        assert_eq!(sender.post(2), Ok(()));
        assert_eq!(sender.post(3), Err(PostError::Full(3)));
        let mut batch = VecDeque::new();
        mailbox.take_all(&mut batch);
        assert_eq!(batch, [1, 2]);
        assert_eq!(sender.post(3), Ok(()), "taking the batch makes room");
    }

    #[test]
    fn a_closed_mailbox_refuses_but_keeps_what_it_accepted() {
        let Some((_poll, mailbox)) = mailbox(8) else {
            panic!("no poller");
        };
        let sender = Sender::new(Arc::clone(&mailbox));
        assert_eq!(sender.post(1), Ok(()));
        mailbox.close();
        assert_eq!(sender.post(2), Err(PostError::Closed(2)));
        assert_eq!(PostError::Closed(2).into_inner(), 2);
        let mut batch = VecDeque::new();
        mailbox.take_all(&mut batch);
        assert_eq!(batch, [1], "accepted before the close: still delivered");
        assert_eq!(sender.post(3), Err(PostError::Closed(3)));
        mailbox.clear();
        mailbox.take_all(&mut batch);
        assert_eq!(batch, [1], "nothing more came in");
        mailbox.open();
        assert_eq!(sender.post(4), Ok(()));
    }

    #[test]
    fn only_the_first_post_of_a_batch_wakes_the_loop() {
        let Some((mut poll, mailbox)) = mailbox(8) else {
            panic!("no poller");
        };
        let sender = Sender::new(Arc::clone(&mailbox));
        let mut events = mio::Events::with_capacity(4);
        for n in 0..3 {
            sender.post(n).expect("room");
        }
        poll.poll(&mut events, Some(std::time::Duration::ZERO))
            .expect("poll");
        assert_eq!(events.iter().count(), 1);
        let mut batch = VecDeque::new();
        mailbox.take_all(&mut batch);
        assert_eq!(batch.len(), 3);
    }
}
