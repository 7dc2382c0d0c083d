//! Descriptor exhaustion: when `accept()` fails with `EMFILE` the listener pauses for
//! `accept_backoff` and tries again. It never spins (a listener with a pending connection
//! stays readable, so retrying at once would burn a core) and never ends the loop.
//!
//! `RLIMIT_NOFILE` is per process, so the test re-runs this test binary as a child process
//! with `NETCORE_FD_CHILD` set, and the child lowers its own limit.

use crate::util;

use std::io::Read;
use std::net::TcpStream;
use std::os::fd::OwnedFd;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use netcore::Config;
use util::{Greeter, BOUND};

const CHILD_ENV: &str = "NETCORE_FD_CHILD";
const TEST_NAME: &str = "fd_exhaustion::the_loop_idles_while_descriptors_are_exhausted";
const DONE: &str = "fd-exhaustion child: done";
/// How long CPU use is measured while descriptors are exhausted.
const WINDOW: Duration = Duration::from_secs(1);

#[test]
fn the_loop_idles_while_descriptors_are_exhausted() {
    if std::env::var_os(CHILD_ENV).is_some() {
        child();
        return;
    }
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([TEST_NAME, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + BOUND * 2;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("the child did not finish within {:?}", BOUND * 2);
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let mut out = String::new();
    let mut err = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(
        status.success() && out.contains(DONE),
        "child failed ({status}):\n{out}\n{err}"
    );
}

/// CPU time (user + system) of this whole process so far.
fn process_cpu() -> Duration {
    // SAFETY: getrusage only writes the struct it is given; zeroes are a valid rusage.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        assert_eq!(libc::getrusage(libc::RUSAGE_SELF, &mut usage), 0);
        usage
    };
    let tv = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// Lowers the soft `RLIMIT_NOFILE` to a little above the highest open descriptor, then
/// opens descriptors until none is left. Dropping the result frees them.
fn exhaust_descriptors() -> Vec<OwnedFd> {
    let highest = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u64>().ok())
        .max()
        .unwrap();
    // SAFETY: getrlimit/setrlimit read and write only the struct they are given.
    unsafe {
        let mut limit: libc::rlimit = std::mem::zeroed();
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        limit.rlim_cur = highest + 16;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &limit), 0);
    }
    let mut held = Vec::new();
    loop {
        match std::fs::File::open("/dev/null") {
            Ok(file) => held.push(OwnedFd::from(file)),
            Err(e) if e.raw_os_error() == Some(libc::EMFILE) => return held,
            Err(e) => panic!("open /dev/null: {e}"),
        }
    }
}

fn child() {
    let config = Config {
        accept_backoff: Duration::from_millis(50),
        ..util::config()
    };
    let (event_loop, addr) = util::tcp_loop(config);
    // The client's socket is made now: once descriptors run out, it could not be.
    let client = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();

    let held = exhaust_descriptors();
    let server = util::spawn(event_loop, Greeter::new(b"Thank you for connecting"));
    client.connect(&addr.into()).unwrap(); // completed by the kernel, waiting in the backlog
    util::wait_for("accept to fail with EMFILE", BOUND, || {
        server.counters.snapshot().accept_pauses >= 1
    });

    // Measure while exhausted (the window is the measurement, not a wait for the server).
    let before = server.counters.snapshot();
    let (cpu0, t0) = (process_cpu(), Instant::now());
    std::thread::sleep(WINDOW);
    let (cpu, wall) = (process_cpu() - cpu0, t0.elapsed());
    let during = server.counters.snapshot();
    println!(
        "fd-exhaustion child: {cpu:?} CPU in {wall:?}, {} accept retries",
        during.accept_pauses - before.accept_pauses
    );
    assert!(
        cpu.as_secs_f64() < 0.2 * wall.as_secs_f64(),
        "the loop used {cpu:?} of CPU in {wall:?} while descriptors were exhausted"
    );
    assert!(
        during.accept_pauses >= before.accept_pauses + 2,
        "the listener kept retrying after its back-off"
    );
    assert_eq!(during.accepted, 0);
    assert!(!server.is_finished(), "exhaustion never ends the loop");

    // Descriptors free up: the waiting client is served at the next retry.
    drop(held);
    let mut client: TcpStream = client.into();
    client.set_read_timeout(Some(BOUND)).unwrap();
    assert_eq!(util::read_all(&mut client), b"Thank you for connecting");
    assert_eq!(server.counters.snapshot().accepted, 1);
    server.stop();
    println!("{DONE}");
}
