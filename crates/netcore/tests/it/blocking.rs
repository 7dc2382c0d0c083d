//! Blocking work off the loop (`Control::spawn_blocking`): the closure runs on a worker
//! thread, its continuation on the loop's thread with a `Control`; a full pool refuses at
//! submit and every accepted result is delivered; a job's panic goes on on the loop's
//! thread.

use crate::util;

use std::io::Read;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Instant;

use netcore::{Config, Conn, Control, EventLoop, Handler, SpawnError, TimerId};
use util::BOUND;

/// Answers each client with the names of the threads its job and its continuation ran on.
struct WhereItRan;

impl Handler for WhereItRan {
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        let id = conn.id();
        let work = || std::thread::current().name().map(str::to_owned);
        let then = move |ctl: &mut Control<'_>, worker: Option<String>| {
            let here = std::thread::current().name().map(str::to_owned);
            let reply = format!(
                "{} then {}",
                worker.unwrap_or_default(),
                here.unwrap_or_default()
            );
            ctl.send(id, reply.as_bytes());
            ctl.close(id);
        };
        conn.control().spawn_blocking(work, then).expect("room");
    }
}

#[test]
fn the_job_runs_on_a_worker_and_its_continuation_on_the_loops_thread() {
    let (event_loop, addr) = util::tcp_loop(util::config());
    let server = util::spawn(event_loop, WhereItRan);
    let mut reply = String::new();
    util::connect(addr).read_to_string(&mut reply).unwrap();
    assert_eq!(reply, "netcore-blocking then netcore-test-loop");
    let snap = server.counters.snapshot();
    assert_eq!((snap.blocking_jobs, snap.blocking_refused), (1, 0));
    assert_eq!(
        snap.blocking_threads, 1,
        "one thread, started by the first job"
    );
    server.stop();
}

/// From its first timer, submits `jobs` jobs that each wait for the test's gate; records
/// which were refused, counts the continuations that ran, and stops once `expect` did.
struct Submitter {
    jobs: usize,
    gate: Arc<Mutex<mpsc::Receiver<()>>>,
    refused: Arc<Mutex<Vec<usize>>>,
    delivered: Arc<AtomicUsize>,
    expect: usize,
}

impl Handler for Submitter {
    fn on_timer(&mut self, ctl: &mut Control<'_>, _: TimerId) {
        for n in 0..self.jobs {
            let gate = Arc::clone(&self.gate);
            let job = move || {
                let _ = gate.lock().unwrap().recv_timeout(BOUND);
                n
            };
            let delivered = Arc::clone(&self.delivered);
            let expect = self.expect;
            let then = move |ctl: &mut Control<'_>, _: usize| {
                if delivered.fetch_add(1, Ordering::AcqRel) + 1 == expect {
                    ctl.stop();
                }
            };
            match ctl.spawn_blocking(job, then) {
                Ok(()) => {}
                Err(SpawnError::Full) => self.refused.lock().unwrap().push(n),
                Err(err) => panic!("job {n}: {err}"),
            }
        }
    }
}

#[test]
fn a_full_pool_refuses_at_submit_and_delivers_every_job_it_took() {
    let config = Config {
        blocking_threads: 2,
        blocking_queue: 4,
        ..util::config()
    };
    let mut event_loop = EventLoop::new(config).unwrap();
    event_loop.set_timer(Instant::now());
    let (release, gate) = mpsc::channel();
    let refused = Arc::new(Mutex::new(Vec::new()));
    let delivered = Arc::new(AtomicUsize::new(0));
    let submitter = Submitter {
        jobs: 10,
        gate: Arc::new(Mutex::new(gate)),
        refused: Arc::clone(&refused),
        delivered: Arc::clone(&delivered),
        expect: 4,
    };
    let running = util::spawn(event_loop, submitter);
    // Refused at once, while all four accepted jobs still wait for the gate.
    util::wait_for("the submissions", BOUND, || {
        refused.lock().unwrap().len() == 6
    });
    assert_eq!(*refused.lock().unwrap(), [4, 5, 6, 7, 8, 9]);
    assert_eq!(delivered.load(Ordering::Acquire), 0);
    for _ in 0..4 {
        release.send(()).unwrap();
    }
    let counters = Arc::clone(&running.counters);
    running.join_within(BOUND);
    assert_eq!(
        delivered.load(Ordering::Acquire),
        4,
        "every accepted job delivered"
    );
    let snap = counters.snapshot();
    assert_eq!((snap.blocking_jobs, snap.blocking_refused), (4, 6));
    assert!(snap.blocking_threads <= 2, "{snap:?}");
}

/// Submits a job that panics.
struct Panicky;

impl Handler for Panicky {
    fn on_timer(&mut self, ctl: &mut Control<'_>, _: TimerId) {
        ctl.spawn_blocking(|| -> u8 { panic!("the job failed") }, |_, _| {})
            .expect("room");
    }
}

#[test]
fn a_jobs_panic_goes_on_on_the_loops_thread() {
    let mut event_loop = EventLoop::new(util::config()).unwrap();
    event_loop.set_timer(Instant::now());
    let shutdown = event_loop.shutdown_handle();
    let thread = std::thread::spawn(move || event_loop.run(&mut Panicky));
    let deadline = Instant::now() + BOUND;
    while !thread.is_finished() {
        if Instant::now() > deadline {
            shutdown.shutdown();
            panic!("the loop did not panic");
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let panic = thread.join().expect_err("the loop's thread panicked");
    assert_eq!(panic.downcast_ref::<&str>(), Some(&"the job failed"));
}
