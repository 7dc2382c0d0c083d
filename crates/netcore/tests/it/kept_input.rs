//! Kept input: what `on_data` does not consume is handed back with what arrives next, a
//! handler that consumes is called again at once with the rest, and the output bound stops
//! those calls until the output drains.

use std::io::{Read, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use netcore::{CloseReason, Closed, Config, Conn, Control, Handler};

use crate::util::{self, Closes, BOUND};

/// One newline-terminated line per call; records each line and how many calls it took.
#[derive(Default)]
struct Lines {
    lines: Arc<Mutex<Vec<Vec<u8>>>>,
    calls: Arc<AtomicUsize>,
}

impl Handler for Lines {
    fn on_data(&mut self, conn: &mut Conn<'_>, input: &[u8]) -> usize {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let Some(newline) = input.iter().position(|&b| b == b'\n') else {
            return 0; // not a whole line yet: the loop keeps it
        };
        self.lines.lock().unwrap().push(input[..newline].to_vec());
        conn.send(b"ok\n");
        newline + 1
    }
}

#[test]
fn a_line_split_over_many_reads_is_handed_whole_and_pipelined_lines_one_per_call() {
    let (event_loop, addr) = util::tcp_loop(util::config());
    let handler = Lines::default();
    let (lines, calls) = (Arc::clone(&handler.lines), Arc::clone(&handler.calls));
    let running = util::spawn(event_loop, handler);
    let mut client = util::connect(addr);
    client.set_nodelay(true).unwrap();
    let mut ok = [0; 3];
    // A line in three pieces, each read on its own (the next piece waits for nothing, but
    // the reply to the line proves the first ones were kept, not dropped).
    for piece in [&b"hel"[..], b"lo wo", b"rld\n"] {
        client.write_all(piece).unwrap();
        util::wait_for("the piece to be read", BOUND, || {
            calls.load(Ordering::SeqCst) > 0
        });
    }
    client.read_exact(&mut ok).unwrap();
    assert_eq!(lines.lock().unwrap().as_slice(), [b"hello world".to_vec()]);

    // Three lines in one write: one call each (and one that finds nothing left to do is
    // not made: the input ends with the third line).
    calls.store(0, Ordering::SeqCst);
    client.write_all(b"a\nbb\nccc\n").unwrap();
    let mut replies = [0; 9];
    client.read_exact(&mut replies).unwrap();
    assert_eq!(&replies, b"ok\nok\nok\n");
    assert_eq!(
        lines.lock().unwrap()[1..],
        [b"a".to_vec(), b"bb".to_vec(), b"ccc".to_vec()]
    );
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    running.stop();
}

/// Answers every `G` with a large reply: an amplifying protocol.
struct Amplifier {
    reply: Arc<[u8]>,
}

impl Handler for Amplifier {
    fn on_data(&mut self, conn: &mut Conn<'_>, input: &[u8]) -> usize {
        if input[0] == b'G' {
            conn.send_shared(&self.reply);
        }
        1 // one request per call; the loop decides when the next one is handled
    }
}

#[test]
fn pipelined_requests_with_large_replies_wait_for_output_room_and_none_is_lost_to_the_eof() {
    const REQUESTS: usize = 400;
    const REPLY: usize = 64 * 1024;
    const MAX_PENDING: usize = 256 * 1024;
    let config = Config {
        max_pending_output: MAX_PENDING,
        ..util::config()
    };
    let (event_loop, addr) = util::tcp_loop(config);
    let reply: Arc<[u8]> = util::pattern(REPLY).into();
    let running = util::spawn(
        event_loop,
        Amplifier {
            reply: Arc::clone(&reply),
        },
    );
    let mut client = util::connect(addr);
    // Every request at once, and nothing read for a while (without the bound the loop
    // would queue 400 x 64 KiB = 25 MiB in one call),
    // and then the EOF, which must wait behind them.
    client.write_all(&[b'G'; REQUESTS]).unwrap();
    client.shutdown(std::net::Shutdown::Write).unwrap();
    // Once the kernel's buffers are full, replies wait in the loop.
    util::wait_for("the output to back up", BOUND, || {
        running.counters.snapshot().buffered > 0
    });
    util::holds_for(
        "the queued output to stay bounded",
        Duration::from_millis(200),
        || running.counters.snapshot().buffered <= (MAX_PENDING + REPLY) as u64,
    );
    // Now read everything: every request is answered, once, in order.
    let mut got = vec![0; REQUESTS * REPLY];
    client.read_exact(&mut got).unwrap();
    for (i, chunk) in got.chunks(REPLY).enumerate() {
        assert!(chunk == &reply[..], "reply {i} differs");
    }
    assert_eq!(client.read(&mut [0; 1]).unwrap(), 0, "then an orderly EOF");
    let peak = running.counters.snapshot().buffered_peak;
    assert!(
        peak <= (MAX_PENDING + REPLY) as u64,
        "the loop queued {peak} bytes at its peak"
    );
    running.stop();
}

/// Never consumes anything.
struct Hoarder {
    closes: Closes,
}

impl Handler for Hoarder {
    fn on_data(&mut self, _: &mut Conn<'_>, _: &[u8]) -> usize {
        0
    }

    fn on_close(&mut self, _: &mut Control<'_>, closed: &Closed<'_>) {
        self.closes.record(closed);
    }
}

#[test]
fn input_kept_past_max_input_closes_the_connection_with_input_limit() {
    let config = Config {
        max_input: 64 * 1024,
        ..util::config()
    };
    let (event_loop, addr) = util::tcp_loop(config);
    let closes = Closes::default();
    let running = util::spawn(
        event_loop,
        Hoarder {
            closes: closes.clone(),
        },
    );
    let mut client = util::connect(addr);
    // Up to 1 MiB, in pieces: the server closes long before (a write then fails).
    for _ in 0..16 {
        if client.write_all(&[b'x'; 64 * 1024]).is_err() {
            break;
        }
    }
    util::wait_for("the connection to be closed", BOUND, || closes.len() == 1);
    assert_eq!(closes.get()[0].0, CloseReason::InputLimit);
    assert_eq!(running.counters.snapshot().input_limit, 1);
    running.stop();
}

/// Answers each line with the line, `|`, the line's first byte again, `#` and `$`, each
/// sent another way: a slice of the input (the first continues the run of the replies
/// before it, the second does not), a constant, `Control::send` of a slice of the input,
/// an owned and a shared buffer.
struct Mixer {
    dollar: Arc<[u8]>,
}

impl Handler for Mixer {
    fn on_data(&mut self, conn: &mut Conn<'_>, input: &[u8]) -> usize {
        let Some(end) = input.iter().position(|&b| b == b'\n') else {
            return 0;
        };
        let line = &input[..=end];
        conn.send(line);
        conn.send(b"|");
        let id = conn.id();
        conn.control().send(id, &line[..1]);
        conn.send_owned(b"#".to_vec());
        conn.send_shared(&self.dollar);
        end + 1
    }
}

#[test]
fn replies_that_are_slices_of_the_input_keep_their_order_among_other_sends() {
    let (event_loop, addr) = util::tcp_loop(util::config());
    let running = util::spawn(
        event_loop,
        Mixer {
            dollar: Arc::from(&b"$"[..]),
        },
    );
    let mut client = util::connect(addr);
    // Pipelined lines in one write, one longer than a copied reply may be (16 KiB), so
    // that one batch holds runs of the input, copies, and queued buffers.
    let long = format!("{}\n", "x".repeat(20_000));
    let lines = ["ab\n", "c\n", long.as_str(), "d\n"];
    let mut want = Vec::new();
    for line in lines {
        want.extend_from_slice(line.as_bytes());
        want.push(b'|');
        want.push(line.as_bytes()[0]);
        want.extend_from_slice(b"#$");
    }
    client.write_all(lines.concat().as_bytes()).unwrap();
    let mut got = vec![0; want.len()];
    client.read_exact(&mut got).unwrap();
    assert_eq!(util::first_difference(&got, &want), None);
    // Alone in its batch, the long line is one run of the input, then the rest.
    client.write_all(long.as_bytes()).unwrap();
    let mut got = vec![0; long.len() + 4];
    client.read_exact(&mut got).unwrap();
    assert_eq!(&got[..long.len()], long.as_bytes());
    assert_eq!(&got[long.len()..], b"|x#$");
    running.stop();
}
