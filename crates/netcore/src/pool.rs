//! The loop's worker pool: blocking work ([`Control::spawn_blocking`](crate::Control),
//! name resolution) runs on threads of its own, and each result comes back to the loop's
//! thread through the loop's one `mio::Waker`.
//!
//! Bounded three ways, as tokio's blocking pool is in two of them: no thread before the
//! first job (a loop that never asks for one never has one), at most `threads` at once
//! (started as jobs find no idle one, each ending after [`KEEP_ALIVE`] without work), and at
//! most `capacity` jobs in flight, from submit to delivery. The last bound is what makes
//! delivery certain: a job is counted when it is accepted and uncounted only when its
//! result has been handed over, so the list of finished jobs can never hold more than
//! `capacity` and a worker's push never fails. A pool that is full refuses at submit,
//! where the caller can still answer its peer, never later.

use std::any::Any;
use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::panic::{self, AssertUnwindSafe};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::Duration;

use slab::Slab;

use crate::counters::Counters;
use crate::mailbox::Wake;

/// How long a worker waits for more work before it ends (tokio's blocking pool's default).
pub(crate) const KEEP_ALIVE: Duration = Duration::from_secs(10);

/// What a job's closure returned, boxed.
pub(crate) type Value = Box<dyn Any + Send>;

/// What a job's closure returned, or its panic.
pub(crate) type Outcome = thread::Result<Value>;

/// A job as a worker runs it: the caller's closure, its result boxed.
type Work = Box<dyn FnOnce() -> Value + Send>;

/// Why [`Control::spawn_blocking`](crate::Control::spawn_blocking) refused a job. Either
/// way the job did not start, and nothing will be delivered for it.
#[derive(Debug)]
#[non_exhaustive]
pub enum SpawnError {
    /// [`Config::blocking_queue`](crate::Config::blocking_queue) jobs are in flight
    /// already (queued, running, or finished and not yet delivered).
    Full,
    /// The pool has no thread and could not start one.
    Thread(io::Error),
}

impl fmt::Display for SpawnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpawnError::Full => f.write_str("the event loop's worker pool is full"),
            SpawnError::Thread(err) => write!(f, "start a worker thread: {err}"),
        }
    }
}

impl std::error::Error for SpawnError {}

/// The loop's side of the pool. `C` is what the loop runs with a job's result once it is
/// back (the loop's continuations; the pool never looks inside).
pub(crate) struct WorkerPool<C> {
    shared: Arc<Shared>,
    /// Jobs in flight, each with its continuation, by the key its job carries.
    waiting: Slab<C>,
    /// Finished jobs taken from `shared` in one batch, handed out one by one.
    finished: VecDeque<(usize, Outcome)>,
    max_threads: usize,
    capacity: usize,
}

/// What the loop and its workers share.
struct Shared {
    state: Mutex<State>,
    /// Idle workers wait here.
    work_ready: Condvar,
    /// The loop's waker, shared with its `Sender`s.
    wake: Arc<Wake>,
}

struct State {
    queue: VecDeque<(usize, Work)>,
    /// Finished jobs not yet taken by the loop (at most `capacity`).
    done: Vec<(usize, Outcome)>,
    /// Workers alive.
    threads: usize,
    /// Workers waiting for work and not yet woken for any.
    idle: usize,
    /// Wake-ups sent to idle workers and not yet taken (a spurious wake-up takes none).
    notified: usize,
    /// The loop is gone: workers end once their job returns.
    closed: bool,
}

impl<C> WorkerPool<C> {
    /// A pool of at most `max_threads` threads (at least 1) and `capacity` jobs in flight
    /// (at least 1). Starts no thread.
    pub(crate) fn new(wake: Arc<Wake>, max_threads: usize, capacity: usize) -> WorkerPool<C> {
        WorkerPool {
            shared: Arc::new(Shared {
                state: Mutex::new(State {
                    queue: VecDeque::new(),
                    done: Vec::new(),
                    threads: 0,
                    idle: 0,
                    notified: 0,
                    closed: false,
                }),
                work_ready: Condvar::new(),
                wake,
            }),
            waiting: Slab::new(),
            finished: VecDeque::new(),
            max_threads: max_threads.max(1),
            capacity: capacity.max(1),
        }
    }

    /// Queues `work`, to be followed by `then` on the loop's thread; starts a worker if
    /// none is idle and the cap allows.
    ///
    /// # Errors
    ///
    /// [`SpawnError::Full`] with `capacity` jobs in flight; [`SpawnError::Thread`] when
    /// no worker is alive and none could be started.
    pub(crate) fn submit<R, W>(
        &mut self,
        work: W,
        then: C,
        counters: &Arc<Counters>,
    ) -> Result<(), SpawnError>
    where
        R: Send + 'static,
        W: FnOnce() -> R + Send + 'static,
    {
        if self.waiting.len() >= self.capacity {
            Counters::add(&counters.blocking_refused, 1);
            return Err(SpawnError::Full);
        }
        let key = self.waiting.vacant_key();
        let work: Work = Box::new(move || Box::new(work()) as Value);
        let mut state = self.shared.lock();
        state.queue.push_back((key, work));
        if state.idle > 0 {
            state.idle -= 1;
            state.notified += 1;
            self.shared.work_ready.notify_one();
        } else if state.threads < self.max_threads {
            let shared = Arc::clone(&self.shared);
            let worker_counters = Arc::clone(counters);
            let started = thread::Builder::new()
                .name("netcore-blocking".into())
                .spawn(move || shared.work(&worker_counters));
            match started {
                Ok(_) => {
                    state.threads += 1;
                    Counters::add(&counters.blocking_threads, 1);
                }
                Err(err) if state.threads == 0 => {
                    state.queue.pop_back();
                    Counters::add(&counters.blocking_refused, 1);
                    return Err(SpawnError::Thread(err));
                }
                // A busy worker takes it when it is done.
                Err(err) => log::warn!("start a worker thread: {err}"),
            }
        }
        drop(state);
        self.waiting.insert(then);
        Counters::add(&counters.blocking_jobs, 1);
        Ok(())
    }

    /// The next finished job's continuation and outcome, if any (taking the finished
    /// ones in one batch when none is left from the last).
    pub(crate) fn next_finished(&mut self) -> Option<(C, Outcome)> {
        if self.waiting.is_empty() {
            return None;
        }
        if self.finished.is_empty() {
            let mut state = self.shared.lock();
            self.finished.extend(state.done.drain(..));
        }
        while let Some((key, outcome)) = self.finished.pop_front() {
            if let Some(then) = self.waiting.try_remove(key) {
                return Some((then, outcome));
            }
        }
        None
    }

    /// Jobs accepted and not yet delivered.
    #[cfg(test)]
    pub(crate) fn in_flight(&self) -> usize {
        self.waiting.len()
    }

    /// Workers alive now.
    #[cfg(test)]
    pub(crate) fn threads(&self) -> usize {
        self.shared.lock().threads
    }
}

impl<C> Drop for WorkerPool<C> {
    /// Nobody will take results any more: queued jobs are dropped, idle workers end now and
    /// busy ones when their job returns (never waited for: a job may block for long).
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        state.closed = true;
        state.queue.clear();
        drop(state);
        self.shared.work_ready.notify_all();
    }
}

impl<C> fmt::Debug for WorkerPool<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WorkerPool")
            .field("in_flight", &self.waiting.len())
            .field("max_threads", &self.max_threads)
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A job's panic is caught outside the lock, so a poisoned lock only means a
        // panic in this module's own bookkeeping, which leaves the state whole.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A worker's life: run queued jobs, wait up to `KEEP_ALIVE` for more, end.
    fn work(&self, counters: &Counters) {
        let mut state = self.lock();
        'jobs: loop {
            while let Some((key, work)) = state.queue.pop_front() {
                drop(state);
                let outcome = panic::catch_unwind(AssertUnwindSafe(work));
                state = self.lock();
                let first = state.done.is_empty();
                state.done.push((key, outcome));
                if first {
                    // One wake per batch: the loop takes every finished job when it comes.
                    drop(state);
                    self.wake.wake();
                    state = self.lock();
                }
            }
            if state.closed {
                break;
            }
            state.idle += 1;
            loop {
                let (woken, wait) = self
                    .work_ready
                    .wait_timeout(state, KEEP_ALIVE)
                    .unwrap_or_else(PoisonError::into_inner);
                state = woken;
                if state.notified > 0 {
                    // Whoever notified counted this worker out of `idle` already.
                    state.notified -= 1;
                    continue 'jobs;
                }
                if state.closed || wait.timed_out() {
                    state.idle -= 1;
                    break 'jobs;
                }
            }
        }
        state.threads -= 1;
        drop(state);
        counters.blocking_threads_exited();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Instant;

    const BOUND: Duration = Duration::from_secs(20);

    type Tag = u32;

    fn pool(threads: usize, capacity: usize) -> (mio::Poll, WorkerPool<Tag>, Arc<Counters>) {
        let poll = mio::Poll::new().expect("poller");
        let waker = mio::Waker::new(poll.registry(), mio::Token(0)).expect("waker");
        let pool = WorkerPool::new(Arc::new(Wake::new(waker)), threads, capacity);
        (poll, pool, Arc::new(Counters::default()))
    }

    /// Waits on the poller (as the loop does) until `n` results are back, in the order
    /// they are handed out.
    fn collect(poll: &mut mio::Poll, pool: &mut WorkerPool<Tag>, n: usize) -> Vec<(Tag, u64)> {
        let mut events = mio::Events::with_capacity(4);
        let mut got = Vec::new();
        let deadline = Instant::now() + BOUND;
        while got.len() < n {
            assert!(Instant::now() < deadline, "only {got:?} came back");
            if let Some((tag, outcome)) = pool.next_finished() {
                let value = outcome.expect("no panic").downcast::<u64>().expect("a u64");
                got.push((tag, *value));
            } else {
                poll.poll(&mut events, Some(Duration::from_millis(100)))
                    .expect("poll");
            }
        }
        got
    }

    #[test]
    fn no_thread_starts_before_the_first_job() {
        let (mut poll, mut pool, counters) = pool(4, 8);
        assert_eq!(pool.threads(), 0);
        assert!(pool.next_finished().is_none());
        assert_eq!(counters.snapshot().blocking_threads, 0);
        pool.submit(|| 7u64, 1, &counters).expect("room");
        assert_eq!(pool.threads(), 1, "the first job starts one thread");
        assert_eq!(collect(&mut poll, &mut pool, 1), [(1, 7)]);
        let snap = counters.snapshot();
        assert_eq!((snap.blocking_jobs, snap.blocking_threads), (1, 1));
    }

    #[test]
    fn every_result_comes_back_through_the_waker_with_its_continuation() {
        let (mut poll, mut pool, counters) = pool(3, 64);
        for n in 0..50u32 {
            pool.submit(move || u64::from(n) * 2, n, &counters)
                .expect("room");
        }
        let mut got = collect(&mut poll, &mut pool, 50);
        got.sort_unstable();
        let want: Vec<(Tag, u64)> = (0..50).map(|n| (n, u64::from(n) * 2)).collect();
        assert_eq!(got, want);
        assert_eq!(pool.in_flight(), 0);
    }

    #[test]
    fn no_more_threads_than_the_cap_however_many_jobs_wait() {
        let (mut poll, mut pool, counters) = pool(2, 16);
        let (release, gate) = mpsc::channel::<()>();
        let gate = Arc::new(Mutex::new(gate));
        let (started, running) = mpsc::channel::<()>();
        for n in 0..6 {
            let gate = Arc::clone(&gate);
            let started = started.clone();
            pool.submit(
                move || {
                    started.send(()).expect("test alive");
                    gate.lock()
                        .expect("gate")
                        .recv_timeout(BOUND)
                        .expect("released");
                    1u64
                },
                n,
                &counters,
            )
            .expect("room");
        }
        // Two jobs start (one per thread); the other four wait in the queue.
        for _ in 0..2 {
            running.recv_timeout(BOUND).expect("a job started");
        }
        assert!(running.recv_timeout(Duration::from_millis(200)).is_err());
        assert_eq!(pool.threads(), 2);
        assert_eq!(counters.snapshot().blocking_threads, 2);
        for _ in 0..6 {
            release.send(()).expect("workers alive");
        }
        assert_eq!(collect(&mut poll, &mut pool, 6).len(), 6);
        assert_eq!(pool.threads(), 2, "never more than the cap");
    }

    #[test]
    fn a_full_pool_refuses_at_submit_and_takes_more_once_results_are_delivered() {
        let (mut poll, mut pool, counters) = pool(1, 3);
        for n in 0..3 {
            pool.submit(move || u64::from(n), n, &counters)
                .expect("room");
        }
        // Finished or not, the three are in flight until they are delivered.
        assert!(matches!(
            pool.submit(|| 9u64, 9, &counters),
            Err(SpawnError::Full)
        ));
        assert_eq!(counters.snapshot().blocking_refused, 1);
        let first = collect(&mut poll, &mut pool, 1);
        assert_eq!(first.len(), 1);
        pool.submit(|| 9u64, 9, &counters)
            .expect("one delivered: room for one");
        let mut rest = collect(&mut poll, &mut pool, 3);
        rest.extend(first);
        rest.sort_unstable();
        assert_eq!(rest, [(0, 0), (1, 1), (2, 2), (9, 9)]);
    }

    #[test]
    fn a_panicking_job_comes_back_as_its_panic_and_the_worker_lives_on() {
        let (mut poll, mut pool, counters) = pool(1, 4);
        pool.submit(|| -> u64 { panic!("job failed") }, 1, &counters)
            .expect("room");
        let mut events = mio::Events::with_capacity(4);
        let deadline = Instant::now() + BOUND;
        let outcome = loop {
            if let Some((tag, outcome)) = pool.next_finished() {
                assert_eq!(tag, 1);
                break outcome;
            }
            assert!(Instant::now() < deadline, "no result");
            poll.poll(&mut events, Some(Duration::from_millis(100)))
                .expect("poll");
        };
        let panic = outcome.expect_err("the job panicked");
        assert_eq!(panic.downcast_ref::<&str>(), Some(&"job failed"));
        pool.submit(|| 5u64, 2, &counters).expect("room");
        assert_eq!(collect(&mut poll, &mut pool, 1), [(2, 5)]);
        assert_eq!(pool.threads(), 1, "the same worker ran both");
    }

    #[test]
    fn dropping_the_pool_ends_its_idle_workers() {
        let (mut poll, mut pool, counters) = pool(2, 4);
        pool.submit(|| 1u64, 1, &counters).expect("room");
        collect(&mut poll, &mut pool, 1);
        drop(pool);
        let deadline = Instant::now() + BOUND;
        while counters.snapshot().blocking_threads != 0 {
            assert!(Instant::now() < deadline, "the idle worker did not end");
            thread::sleep(Duration::from_millis(5));
        }
    }
}
