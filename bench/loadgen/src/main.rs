//! loadgen: an independent load generator for the greeting service, the yardstick that
//! `cargo xtask bench` holds `greet-client bench` against.
//!
//! It shares no code with what it measures: raw non-blocking sockets and an edge-triggered
//! epoll through `libc`, no netcore, mio or tokio. Each of `-c` slots runs one connection
//! at a time: `socket`, `connect`, read until EOF, compare the bytes with the expected
//! greeting, `close`, and the next, until `-n` connections have been made. The server
//! speaks first, so a slot only waits for input: a refused connect arrives as EPOLLERR,
//! and `read` returns its errno.
//!
//! ```text
//! loadgen [tcp] --port P [--host H] [-n N] [-c C] [--threads T] [--timeout-ms MS]
//!         [--max-secs S] [--expect STR] [--human]
//! ```
//!
//! Prints one JSON line (or, with `--human`, one sentence) and exits 0 when every connection
//! got the greeting, 2 otherwise, 1 on a usage error. In the JSON, `ok + errors +
//! wrong_payload + not_started = conns` (`errors` counts the timeouts too), `secs` runs from
//! the first `connect` to the last completion, `conn_per_s = ok / secs`, and the latencies
//! (nearest-rank percentiles of the successful connections) from `socket` to EOF.

use std::collections::VecDeque;
use std::io::Write;
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::{Duration, Instant};

const USAGE: &str = "usage: loadgen [tcp] --port P [--host H] [-n N] [-c C] [--threads T] \
[--timeout-ms MS] [--max-secs S] [--expect STR] [--human]
  --host H          server address (default 127.0.0.1)
  --port P          server port (required)
  -n N              connections in all (default 10000)
  -c C              connections in flight (default 64)
  --threads T       event loops, N and C shared out between them (default 1)
  --timeout-ms MS   a connection not finished by then is a timeout (default 5000)
  --max-secs S      bound on the whole run; what is unfinished then is counted (default 120)
  --expect STR      the greeting (default 'Thank you for connecting')
  --human           one sentence instead of the JSON line";

#[derive(Clone)]
struct Opts {
    addr: SocketAddr,
    n: u64,
    c: usize,
    threads: usize,
    timeout: Duration,
    max_secs: f64,
    expect: Vec<u8>,
    human: bool,
}

fn usage(problem: &str) -> ! {
    eprintln!("loadgen: {problem}\n{USAGE}");
    std::process::exit(1)
}

fn parse(args: impl Iterator<Item = String>) -> Opts {
    let mut host = "127.0.0.1".to_string();
    let mut port = None::<u16>;
    let mut n = 10_000u64;
    let mut c = 64usize;
    let mut threads = 1usize;
    let mut timeout_ms = 5_000u64;
    let mut max_secs = 120.0f64;
    let mut expect = b"Thank you for connecting".to_vec();
    let mut human = false;
    let mut args = args.peekable();
    fn value<T: std::str::FromStr>(flag: &str, args: &mut impl Iterator<Item = String>) -> T {
        match args.next().map(|v| v.parse()) {
            Some(Ok(v)) => v,
            _ => usage(&format!("{flag} needs a valid value")),
        }
    }
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "tcp" => {}
            "--host" => host = value(&arg, &mut args),
            "--port" | "-p" => port = Some(value(&arg, &mut args)),
            "-n" => n = value(&arg, &mut args),
            "-c" => c = value(&arg, &mut args),
            "--threads" => threads = value(&arg, &mut args),
            "--timeout-ms" => timeout_ms = value(&arg, &mut args),
            "--max-secs" => max_secs = value(&arg, &mut args),
            "--expect" => expect = value::<String>(&arg, &mut args).into_bytes(),
            "--human" => human = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0)
            }
            other => usage(&format!("unknown argument {other:?}")),
        }
    }
    let Some(port) = port else {
        usage("--port is required")
    };
    if c == 0 || threads == 0 || threads > c {
        usage("-c and --threads must be at least 1, and --threads at most -c");
    }
    if !(max_secs > 0.0 && max_secs.is_finite()) {
        usage("--max-secs must be positive");
    }
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let addr = match (bare, port).to_socket_addrs().map(|mut a| a.next()) {
        Ok(Some(addr)) => addr,
        _ => usage(&format!("cannot resolve {host}")),
    };
    Opts {
        addr,
        n,
        c,
        threads,
        timeout: Duration::from_millis(timeout_ms),
        max_secs,
        expect,
        human,
    }
}

/// What one event loop (or, merged, the whole run) counted.
#[derive(Default)]
struct Tally {
    ok: u64,
    wrong_payload: u64,
    refused: u64,
    reset: u64,
    other_errors: u64,
    timeouts: u64,
    not_started: u64,
    latencies_us: Vec<u32>,
    first_start: Option<Instant>,
    last_end: Option<Instant>,
}

impl Tally {
    fn errors(&self) -> u64 {
        self.refused + self.reset + self.other_errors + self.timeouts
    }

    fn error(&mut self, errno: i32) {
        match errno {
            libc::ECONNREFUSED => self.refused += 1,
            libc::ECONNRESET | libc::EPIPE => self.reset += 1,
            _ => self.other_errors += 1,
        }
    }

    fn merge(&mut self, other: Tally) {
        self.ok += other.ok;
        self.wrong_payload += other.wrong_payload;
        self.refused += other.refused;
        self.reset += other.reset;
        self.other_errors += other.other_errors;
        self.timeouts += other.timeouts;
        self.not_started += other.not_started;
        self.latencies_us.extend(other.latencies_us);
        self.first_start = match (self.first_start, other.first_start) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.last_end = self.last_end.max(other.last_end);
    }
}

/// One connection in flight. `generation` tells a stale event or timer from the current one.
struct Slot {
    fd: i32,
    generation: u32,
    busy: bool,
    started: Instant,
    received: Vec<u8>,
    /// More bytes came than the greeting plus one: drained and counted as wrong.
    too_long: bool,
}

/// How a connection ended.
enum End {
    Eof,
    Failed(i32),
}

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// `addr` as the C socket address `connect` takes.
fn raw_addr(addr: SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: sockaddr_storage is plain data, valid when zeroed.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match addr {
        SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(a.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in.
            unsafe { std::ptr::write(std::ptr::from_mut(&mut storage).cast(), sin) };
            std::mem::size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: a.flowinfo(),
                sin6_addr: libc::in6_addr {
                    s6_addr: a.ip().octets(),
                },
                sin6_scope_id: a.scope_id(),
            };
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in6.
            unsafe { std::ptr::write(std::ptr::from_mut(&mut storage).cast(), sin6) };
            std::mem::size_of::<libc::sockaddr_in6>()
        }
    };
    (storage, len as libc::socklen_t)
}

/// One thread's share: its own epoll, its slots, its count of connections still to start.
struct EventLoop<'a> {
    opts: &'a Opts,
    addr: (libc::sockaddr_storage, libc::socklen_t),
    epoll: i32,
    slots: Vec<Slot>,
    /// Deadlines in the order they were set: all timeouts are equal, so this is sorted.
    timers: VecDeque<(Instant, usize, u32)>,
    to_start: u64,
    in_flight: usize,
    tally: Tally,
    scratch: Vec<u8>,
}

impl<'a> EventLoop<'a> {
    fn new(opts: &'a Opts, n: u64, c: usize) -> EventLoop<'a> {
        // SAFETY: epoll_create1 takes no pointers; the result is checked.
        let epoll = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if epoll < 0 {
            eprintln!(
                "loadgen: epoll_create1: {}",
                std::io::Error::last_os_error()
            );
            std::process::exit(1);
        }
        let slots = (0..c.min(usize::try_from(n).unwrap_or(usize::MAX)))
            .map(|_| Slot {
                fd: -1,
                generation: 0,
                busy: false,
                started: Instant::now(),
                received: Vec::with_capacity(opts.expect.len() + 1),
                too_long: false,
            })
            .collect();
        EventLoop {
            opts,
            addr: raw_addr(opts.addr),
            epoll,
            slots,
            timers: VecDeque::new(),
            to_start: n,
            in_flight: 0,
            tally: Tally {
                latencies_us: Vec::with_capacity(usize::try_from(n).unwrap_or(0)),
                ..Tally::default()
            },
            scratch: vec![0; 4096],
        }
    }

    /// Starts the next connection in slot `i`. A connect that fails at once is counted and
    /// the next one tried, so the slot is busy afterwards unless nothing is left to start.
    fn start_next(&mut self, i: usize) {
        while self.to_start > 0 {
            self.to_start -= 1;
            let started = Instant::now();
            self.tally.first_start.get_or_insert(started);
            let family = match self.opts.addr {
                SocketAddr::V4(_) => libc::AF_INET,
                SocketAddr::V6(_) => libc::AF_INET6,
            };
            let kind = libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC;
            // SAFETY: socket takes no pointers; the result is checked.
            let fd = unsafe { libc::socket(family, kind, 0) };
            if fd < 0 {
                self.tally.error(errno());
                self.tally.last_end = Some(Instant::now());
                continue;
            }
            let (storage, len) = &self.addr;
            // SAFETY: `storage` holds a socket address of `len` bytes and outlives the call.
            let rc = unsafe { libc::connect(fd, std::ptr::from_ref(storage).cast(), *len) };
            if rc < 0 && errno() != libc::EINPROGRESS {
                self.tally.error(errno());
                self.tally.last_end = Some(Instant::now());
                // SAFETY: fd is ours and closed once.
                unsafe { libc::close(fd) };
                continue;
            }
            let slot = &mut self.slots[i];
            slot.generation = slot.generation.wrapping_add(1);
            let mut event = libc::epoll_event {
                events: (libc::EPOLLIN | libc::EPOLLRDHUP | libc::EPOLLET) as u32,
                u64: (u64::from(slot.generation) << 32) | i as u64,
            };
            // SAFETY: `event` is a valid epoll_event for the duration of the call.
            if unsafe { libc::epoll_ctl(self.epoll, libc::EPOLL_CTL_ADD, fd, &mut event) } < 0 {
                self.tally.error(errno());
                self.tally.last_end = Some(Instant::now());
                // SAFETY: fd is ours and closed once.
                unsafe { libc::close(fd) };
                continue;
            }
            slot.fd = fd;
            slot.busy = true;
            slot.started = started;
            slot.received.clear();
            slot.too_long = false;
            self.timers
                .push_back((started + self.opts.timeout, i, slot.generation));
            self.in_flight += 1;
            return;
        }
    }

    /// Reads what slot `i` has until the socket would block, EOF or an error.
    fn on_readable(&mut self, i: usize) {
        let want = self.opts.expect.len() + 1;
        loop {
            let slot = &mut self.slots[i];
            let room = want - slot.received.len();
            let n = if room > 0 {
                let old = slot.received.len();
                slot.received.resize(want, 0);
                // SAFETY: the buffer has `room` writable bytes from `old`.
                let n =
                    unsafe { libc::read(slot.fd, slot.received[old..].as_mut_ptr().cast(), room) };
                slot.received
                    .truncate(old + usize::try_from(n).unwrap_or(0));
                n
            } else {
                // SAFETY: scratch is a writable buffer of its length.
                let n = unsafe {
                    libc::read(
                        slot.fd,
                        self.scratch.as_mut_ptr().cast(),
                        self.scratch.len(),
                    )
                };
                if n > 0 {
                    slot.too_long = true;
                }
                n
            };
            match n {
                1.. => continue,
                0 => return self.finish(i, End::Eof),
                _ => match errno() {
                    libc::EAGAIN => return,
                    libc::EINTR => continue,
                    e => return self.finish(i, End::Failed(e)),
                },
            }
        }
    }

    fn finish(&mut self, i: usize, end: End) {
        let now = Instant::now();
        let slot = &mut self.slots[i];
        // SAFETY: the slot's fd is open while it is busy, and closed once here.
        unsafe { libc::close(slot.fd) };
        slot.fd = -1;
        slot.busy = false;
        self.in_flight -= 1;
        self.tally.last_end = Some(now);
        match end {
            End::Eof if !slot.too_long && slot.received == self.opts.expect => {
                self.tally.ok += 1;
                let micros = now.duration_since(slot.started).as_micros();
                self.tally
                    .latencies_us
                    .push(u32::try_from(micros).unwrap_or(u32::MAX));
            }
            End::Eof => self.tally.wrong_payload += 1,
            End::Failed(e) => self.tally.error(e),
        }
        self.start_next(i);
    }

    fn run(mut self, deadline: Instant) -> Tally {
        for i in 0..self.slots.len() {
            self.start_next(i);
        }
        let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 256];
        while self.in_flight > 0 {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            // Drop the timers of connections that already ended, then wait for the next one.
            while let Some(&(_, i, generation)) = self.timers.front() {
                let slot = &self.slots[i];
                if slot.busy && slot.generation == generation {
                    break;
                }
                self.timers.pop_front();
            }
            let until = self.timers.front().map_or(deadline, |t| t.0.min(deadline));
            let wait_ms = until.saturating_duration_since(now).as_millis() + 1;
            // SAFETY: `events` has room for its length of epoll_events.
            let ready = unsafe {
                libc::epoll_wait(
                    self.epoll,
                    events.as_mut_ptr(),
                    events.len() as i32,
                    i32::try_from(wait_ms).unwrap_or(i32::MAX),
                )
            };
            for event in events.iter().take(usize::try_from(ready).unwrap_or(0)) {
                let data = event.u64;
                let (i, generation) = ((data & 0xffff_ffff) as usize, (data >> 32) as u32);
                let slot = &self.slots[i];
                if slot.busy && slot.generation == generation {
                    self.on_readable(i);
                }
            }
            let now = Instant::now();
            while let Some(&(when, i, generation)) = self.timers.front() {
                if when > now {
                    break;
                }
                self.timers.pop_front();
                let slot = &mut self.slots[i];
                if slot.busy && slot.generation == generation {
                    // SAFETY: the slot's fd is open while it is busy, and closed once here.
                    unsafe { libc::close(slot.fd) };
                    slot.fd = -1;
                    slot.busy = false;
                    self.in_flight -= 1;
                    self.tally.timeouts += 1;
                    self.tally.last_end = Some(now);
                    self.start_next(i);
                }
            }
        }
        for slot in self.slots.iter_mut().filter(|s| s.busy) {
            // SAFETY: the slot's fd is open while it is busy, and closed once here.
            unsafe { libc::close(slot.fd) };
            self.tally.timeouts += 1;
        }
        self.tally.not_started += self.to_start;
        // SAFETY: the epoll fd is ours and closed once.
        unsafe { libc::close(self.epoll) };
        self.tally
    }
}

/// At least `want` descriptors: one per connection in flight, and some to spare.
fn raise_fd_limit(want: u64) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid pointer to an rlimit we own.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < want {
            limit.rlim_cur = want.min(limit.rlim_max);
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[u32], p: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn main() {
    let opts = parse(std::env::args().skip(1));
    raise_fd_limit(opts.c as u64 + 64);
    let deadline = Instant::now() + Duration::from_secs_f64(opts.max_secs);
    let threads = opts.threads as u64;
    let mut tally = Tally::default();
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..opts.threads)
            .map(|k| {
                let n = opts.n / threads + u64::from((k as u64) < opts.n % threads);
                let c = opts.c / opts.threads + usize::from(k < opts.c % opts.threads);
                let opts = &opts;
                scope.spawn(move || EventLoop::new(opts, n, c).run(deadline))
            })
            .collect();
        for handle in handles {
            match handle.join() {
                Ok(part) => tally.merge(part),
                Err(_) => {
                    eprintln!("loadgen: an event loop panicked");
                    std::process::exit(1)
                }
            }
        }
    });

    let secs = match (tally.first_start, tally.last_end) {
        (Some(a), Some(b)) => b.saturating_duration_since(a).as_secs_f64(),
        _ => 0.0,
    };
    let rate = if secs > 0.0 {
        tally.ok as f64 / secs
    } else {
        0.0
    };
    tally.latencies_us.sort_unstable();
    let lat = &tally.latencies_us;
    let (p50, p99, max) = (
        percentile(lat, 50.0),
        percentile(lat, 99.0),
        lat.last().copied().unwrap_or(0),
    );
    let line = if opts.human {
        format!(
            "loadgen: {} connections to {}: {} ok, {} wrong, {} errors ({} timeouts), {} not started; \
             {rate:.0} conn/s over {secs:.3} s; latency p50 {p50} us, p99 {p99} us, max {max} us",
            opts.n,
            opts.addr,
            tally.ok,
            tally.wrong_payload,
            tally.errors(),
            tally.timeouts,
            tally.not_started,
        )
    } else {
        format!(
            "{{\"mode\":\"tcp\",\"conns\":{},\"ok\":{},\"errors\":{},\"wrong_payload\":{},\
             \"timeouts\":{},\"not_started\":{},\"secs\":{secs:.3},\"conn_per_s\":{rate:.0},\
             \"p50_us\":{p50},\"p99_us\":{p99},\"max_us\":{max},\
             \"err\":{{\"refused\":{},\"reset\":{},\"other\":{}}},\"concurrency\":{},\"threads\":{}}}",
            opts.n,
            tally.ok,
            tally.errors(),
            tally.wrong_payload,
            tally.timeouts,
            tally.not_started,
            tally.refused,
            tally.reset,
            tally.other_errors,
            opts.c,
            opts.threads,
        )
    };
    let mut out = std::io::stdout().lock();
    if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
        std::process::exit(1);
    }
    std::process::exit(if tally.ok == opts.n { 0 } else { 2 });
}

#[cfg(test)]
mod tests {
    use super::percentile;

    #[test]
    fn percentiles_are_nearest_rank() {
        let sorted = [10, 20, 30, 40, 50, 60, 70, 80, 90, 100];
        assert_eq!(percentile(&sorted, 50.0), 50);
        assert_eq!(percentile(&sorted, 99.0), 100);
        assert_eq!(percentile(&sorted, 0.0), 10);
        assert_eq!(percentile(&[], 50.0), 0);
    }
}
