//! Messages from other threads: `Sender::post` wakes the loop, which hands each message to
//! `Handler::on_message` with a `Control`; the queue is bounded, a post after `run` has
//! returned fails, and `ShutdownHandle` works beside it.

use crate::util;

use std::io::Read;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use netcore::{Closed, Conn, ConnId, Control, EventLoop, Handler, PostError};
use util::BOUND;

/// Checks that each producer's messages arrive in the order it posted them; stops the loop
/// once `expect` have arrived.
struct InOrder {
    expect: usize,
    /// The next number due from each producer.
    next: Vec<u64>,
    received: Arc<AtomicUsize>,
    /// Messages that arrived out of their producer's order.
    disorder: Arc<Mutex<Vec<(usize, u64, u64)>>>,
}

impl Handler<(usize, u64)> for InOrder {
    fn on_message(&mut self, ctl: &mut Control<'_>, (producer, n): (usize, u64)) {
        if n != self.next[producer] {
            self.disorder
                .lock()
                .unwrap()
                .push((producer, self.next[producer], n));
        }
        self.next[producer] = n + 1;
        if self.received.fetch_add(1, Ordering::Relaxed) + 1 == self.expect {
            ctl.stop();
        }
    }
}

/// Four threads post 2,000 messages each through a queue of 64: all are delivered, each
/// thread's in the order it posted them; a full queue only makes a producer retry.
#[test]
fn posts_from_several_threads_all_arrive_in_each_threads_order() {
    const PRODUCERS: usize = 4;
    const EACH: u64 = 2_000;
    let config = netcore::Config {
        message_capacity: 64,
        ..util::config()
    };
    let event_loop = EventLoop::<(usize, u64)>::with_messages(config).unwrap();
    let senders: Vec<_> = (0..PRODUCERS).map(|_| event_loop.sender()).collect();
    let handler = InOrder {
        expect: PRODUCERS * EACH as usize,
        next: vec![0; PRODUCERS],
        received: Arc::default(),
        disorder: Arc::default(),
    };
    let (received, disorder) = (Arc::clone(&handler.received), Arc::clone(&handler.disorder));
    let server = util::spawn(event_loop, handler);

    let full = Arc::new(AtomicUsize::new(0));
    let producers: Vec<_> = senders
        .into_iter()
        .enumerate()
        .map(|(producer, sender)| {
            let full = Arc::clone(&full);
            std::thread::spawn(move || {
                let deadline = Instant::now() + BOUND;
                for n in 0..EACH {
                    let mut message = (producer, n);
                    loop {
                        match sender.post(message) {
                            Ok(()) => break,
                            Err(PostError::Full(back)) => {
                                assert!(Instant::now() < deadline, "the loop stopped taking");
                                full.fetch_add(1, Ordering::Relaxed);
                                message = back;
                                std::thread::yield_now();
                            }
                            Err(e) => panic!("post: {e}"),
                        }
                    }
                }
            })
        })
        .collect();
    for producer in producers {
        producer.join().unwrap();
    }
    server.join_within(BOUND);
    assert_eq!(received.load(Ordering::Relaxed), PRODUCERS * EACH as usize);
    assert!(
        disorder.lock().unwrap().is_empty(),
        "out of order (producer, due, got): {:?}",
        disorder.lock().unwrap()
    );
}

/// What other threads ask of a connection.
enum Command {
    Send(ConnId, Vec<u8>),
    Close(ConnId),
}

/// Records connections' ids as they open; carries out commands on them; records what each
/// `Control` call returned.
#[derive(Default)]
struct Commands {
    ids: Arc<Mutex<Vec<ConnId>>>,
    results: Arc<Mutex<Vec<bool>>>,
    closes: util::Closes,
}

impl Handler<Command> for Commands {
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        self.ids.lock().unwrap().push(conn.id());
    }

    fn on_message(&mut self, ctl: &mut Control<'_>, command: Command) {
        let done = match command {
            Command::Send(id, data) => ctl.send(id, &data),
            Command::Close(id) => ctl.close(id),
        };
        self.results.lock().unwrap().push(done);
    }

    fn on_close(&mut self, _: &mut Control<'_>, closed: &Closed<'_>) {
        self.closes.record(closed);
    }
}

/// A message acts on a connection by its id: the loop, idle in `poll`, is woken by the
/// post alone, writes to a client that never spoke, and closes it; a message about the
/// closed connection reports its id stale.
#[test]
fn a_message_acts_on_a_connection_by_its_id() {
    let (listener, addr) = util::tcp_listener();
    let mut event_loop = EventLoop::<Command>::with_messages(util::config()).unwrap();
    event_loop.add_tcp_listener(listener).unwrap();
    let sender = event_loop.sender();
    let handler = Commands::default();
    let (ids, results, closes) = (
        Arc::clone(&handler.ids),
        Arc::clone(&handler.results),
        handler.closes.clone(),
    );
    let server = util::spawn(event_loop, handler);

    let mut client = util::connect(addr);
    util::wait_for("the on_open", BOUND, || ids.lock().unwrap().len() == 1);
    let id = ids.lock().unwrap()[0];
    sender
        .post(Command::Send(id, b"from another thread".to_vec()))
        .unwrap_or_else(|_| panic!("post"));
    let mut got = [0; 19];
    client.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"from another thread");

    sender
        .post(Command::Close(id))
        .unwrap_or_else(|_| panic!("post"));
    let mut rest = Vec::new();
    client.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty(), "EOF after the close");
    util::wait_for("the close", BOUND, || closes.len() == 1);

    sender
        .post(Command::Send(id, b"too late".to_vec()))
        .unwrap_or_else(|_| panic!("post"));
    util::wait_for("the third message", BOUND, || {
        results.lock().unwrap().len() == 3
    });
    assert_eq!(*results.lock().unwrap(), [true, true, false]);
    server.stop();
}

/// Counts messages; stops the loop at the `stop_at`th.
#[derive(Default)]
struct Count {
    got: Vec<u32>,
    stop_at: usize,
}

impl Handler<u32> for Count {
    fn on_message(&mut self, ctl: &mut Control<'_>, n: u32) {
        self.got.push(n);
        if self.got.len() == self.stop_at {
            ctl.stop();
        }
    }
}

/// The queue holds `message_capacity` messages: posted before the loop runs, that many are
/// taken and the next is refused with `Full`, handing the message back; once the loop has
/// run and taken them, a post fails with `Closed`.
#[test]
fn the_queue_is_bounded_and_a_post_after_run_is_refused() {
    const CAPACITY: usize = 8;
    let config = netcore::Config {
        message_capacity: CAPACITY,
        ..util::config()
    };
    let mut event_loop = EventLoop::<u32>::with_messages(config).unwrap();
    let sender = event_loop.sender();
    for n in 0..CAPACITY as u32 {
        assert_eq!(sender.post(n), Ok(()), "message {n}");
    }
    match sender.clone().post(99) {
        Err(PostError::Full(back)) => assert_eq!(back, 99),
        other => panic!("a post to a full queue: {other:?}"),
    }

    let mut count = Count {
        stop_at: CAPACITY,
        ..Count::default()
    };
    event_loop.run(&mut count).unwrap();
    assert_eq!(count.got, (0..CAPACITY as u32).collect::<Vec<_>>());
    match sender.post(100) {
        Err(PostError::Closed(back)) => assert_eq!(back, 100),
        other => panic!("a post after run returned: {other:?}"),
    }
}

/// A capacity of 0 is taken as 1: one message fits, a post never fails for want of room
/// in an empty queue.
#[test]
fn a_zero_capacity_holds_one_message() {
    let config = netcore::Config {
        message_capacity: 0,
        ..util::config()
    };
    let event_loop = EventLoop::<u32>::with_messages(config).unwrap();
    let sender = event_loop.sender();
    assert_eq!(sender.post(1), Ok(()));
    assert_eq!(sender.post(2), Err(PostError::Full(2)));
}

/// A `Sender` goes to other threads and is shared between them.
#[test]
fn a_sender_is_send_sync_and_clone() {
    fn shareable<T: Send + Sync + Clone + 'static>(_: &T) {}
    let event_loop = EventLoop::<String>::with_messages(util::config()).unwrap();
    shareable(&event_loop.sender());
    shareable(&event_loop.shutdown_handle());
}

/// Posts from the loop's own callbacks: a message that posts the next (a post never
/// blocks, so a loop may post to itself).
struct Chain {
    sender: netcore::Sender<u32>,
    got: Vec<u32>,
}

impl Handler<u32> for Chain {
    fn on_message(&mut self, ctl: &mut Control<'_>, n: u32) {
        self.got.push(n);
        if n == 100 {
            ctl.stop();
        } else {
            self.sender.post(n + 1).expect("room for one");
        }
    }
}

#[test]
fn a_loop_may_post_to_itself() {
    let event_loop = EventLoop::<u32>::with_messages(util::config()).unwrap();
    let sender = event_loop.sender();
    sender.post(0).unwrap();
    let server = util::spawn(
        event_loop,
        Chain {
            sender,
            got: vec![],
        },
    );
    let (chain, _) = server.join_within(BOUND);
    assert_eq!(chain.got, (0..=100).collect::<Vec<_>>());
}

/// Counts messages and nothing else.
#[derive(Default)]
struct Tally(Arc<AtomicUsize>);

impl Handler<u32> for Tally {
    fn on_message(&mut self, _: &mut Control<'_>, _: u32) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

/// A `ShutdownHandle` stops a loop that takes messages, with its senders alive; posts then
/// fail with `Closed`.
#[test]
fn shutdown_handle_stops_a_loop_that_takes_messages() {
    let event_loop = EventLoop::<u32>::with_messages(util::config()).unwrap();
    let sender = event_loop.sender();
    let tally = Tally::default();
    let seen = Arc::clone(&tally.0);
    let server = util::spawn(event_loop, tally);
    for n in 0..10 {
        sender.post(n).unwrap();
    }
    util::wait_for("ten messages", BOUND, || seen.load(Ordering::Relaxed) == 10);
    let shutdown = server.shutdown.clone();
    shutdown.shutdown();
    server.join_within(BOUND);
    assert_eq!(sender.post(10), Err(PostError::Closed(10)));
    // The loop is gone; asking again does nothing harmful.
    shutdown.shutdown();
    assert_eq!(seen.load(Ordering::Relaxed), 10);
}

/// Takes a while over its first message (as a loaded machine would), and says when it has
/// begun it.
#[derive(Default)]
struct SlowFirst {
    begun: Arc<AtomicUsize>,
    got: Arc<Mutex<Vec<u32>>>,
}

impl Handler<u32> for SlowFirst {
    fn on_message(&mut self, _: &mut Control<'_>, n: u32) {
        if self.begun.fetch_add(1, Ordering::SeqCst) == 0 {
            let until = Instant::now() + std::time::Duration::from_millis(100);
            while Instant::now() < until {
                std::hint::spin_loop();
            }
        }
        self.got.lock().unwrap().push(n);
    }
}

/// `run`'s contract: messages posted while it runs are delivered. A message whose post
/// returned `Ok` just before a shutdown request, while the loop was busy in a callback, is
/// still handed to `on_message` before `run` returns.
#[test]
fn a_message_posted_before_shutdown_is_delivered() {
    let event_loop = EventLoop::<u32>::with_messages(util::config()).unwrap();
    let sender = event_loop.sender();
    let handler = SlowFirst::default();
    let (begun, got) = (Arc::clone(&handler.begun), Arc::clone(&handler.got));
    let server = util::spawn(event_loop, handler);
    sender.post(0).unwrap();
    util::wait_for("the first message", BOUND, || {
        begun.load(Ordering::SeqCst) == 1
    });
    assert_eq!(sender.post(1), Ok(()), "posted while the loop runs");
    server.shutdown.shutdown();
    server.join_within(BOUND);
    assert_eq!(*got.lock().unwrap(), [0, 1]);
}

/// Panics on any message.
struct Panics;

impl Handler<u32> for Panics {
    fn on_message(&mut self, _: &mut Control<'_>, n: u32) {
        panic!("the handler failed on message {n} (as this test means it to)");
    }
}

/// A loop that has ended by a panic in its handler, or was dropped without running, takes
/// no more messages: a post says so instead of returning `Ok` for a message nobody will
/// ever read.
#[test]
fn a_post_to_a_loop_that_is_gone_is_refused() {
    let mut event_loop = EventLoop::<u32>::with_messages(util::config()).unwrap();
    let sender = event_loop.sender();
    sender.post(0).unwrap();
    let thread = std::thread::spawn(move || event_loop.run(&mut Panics));
    assert!(thread.join().is_err(), "the handler panicked");
    assert_eq!(sender.post(1), Err(PostError::Closed(1)));

    let dropped = EventLoop::<u32>::with_messages(util::config()).unwrap();
    let sender = dropped.sender();
    drop(dropped);
    assert_eq!(sender.post(2), Err(PostError::Closed(2)));
}
