//! File arguments that are not what an operator meant: a device that never ends
//! (`/dev/zero`), a FIFO with no writer (opening it would wait forever), a directory, a file
//! larger than the 16 MiB cap. Each is refused at once: one line on stderr naming the path,
//! status 1, nothing on stdout (no readiness line), well within a bounded wait.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use e2e::{bin, supervise, temp_dir, Server};

/// The cap on `--message-file` and `--expect-file` (clap_dist::MESSAGE_MAX).
const MESSAGE_MAX: u64 = 16 << 20;
/// A refusal must come this fast even on a loaded machine; a hang (the FIFO before the fix)
/// is killed at this point and fails the test instead of hanging it.
const BOUND: Duration = Duration::from_secs(20);

/// Runs `program args`, killing it after [`BOUND`]: (status code, stdout, stderr, elapsed).
fn run_bounded(program: &str, args: &[&str]) -> (Option<i32>, String, String, Duration) {
    let started = Instant::now();
    let mut child = Command::new(bin(program))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    // Signal 0 sends nothing: a bounded wait, then SIGKILL.
    let stopped = supervise::stop(&mut child, supervise::Target::Process, 0, BOUND)
        .expect("wait for the child");
    let status = stopped.status.code().filter(|_| !stopped.killed);
    let elapsed = started.elapsed();
    let mut out = String::new();
    let mut err = String::new();
    child
        .stdout
        .take()
        .expect("piped")
        .read_to_string(&mut out)
        .expect("stdout");
    child
        .stderr
        .take()
        .expect("piped")
        .read_to_string(&mut err)
        .expect("stderr");
    (status, out, err, elapsed)
}

fn mkfifo(path: &std::path::Path) {
    let c = std::ffi::CString::new(path.to_str().expect("UTF-8 path")).expect("no NUL");
    // SAFETY: c is a valid NUL-terminated path; mkfifo only creates a file there.
    let rc = unsafe { libc::mkfifo(c.as_ptr(), 0o600) };
    assert_eq!(rc, 0, "mkfifo: {}", std::io::Error::last_os_error());
}

fn assert_refused(program: &str, args: &[&str], path: &str, what: &str) {
    let (status, out, err, elapsed) = run_bounded(program, args);
    assert_eq!(
        status,
        Some(1),
        "{program} {args:?}: not refused within {BOUND:?} (killed: {}); stderr {err:?}",
        status.is_none()
    );
    assert!(out.is_empty(), "{program} {args:?}: printed {out:?}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "{program} {args:?}: {err:?}");
    assert!(
        lines[0].contains(path) && lines[0].contains(what),
        "{program} {args:?}: {err:?} should name {path} and say {what:?}"
    );
    assert!(!err.contains("panicked"), "{err}");
    eprintln!("{program} {args:?}: refused in {elapsed:?}: {}", lines[0]);
}

#[test]
fn message_files_that_are_not_regular_files_are_refused_at_once() {
    let dir = temp_dir("hostile-message-file");
    let fifo = dir.join("greeting.fifo");
    mkfifo(&fifo);
    let fifo = fifo.to_str().expect("UTF-8");
    let folder = dir.to_str().expect("UTF-8");
    let cases = [
        ("/dev/zero", "a character device, not a regular file"),
        (fifo, "a FIFO (named pipe), not a regular file"),
        (folder, "a directory, not a regular file"),
    ];
    for (path, what) in cases {
        let args = ["--host", "127.0.0.1", "--port", "0", "--message-file", path];
        assert_refused("greet-server", &args, path, what);
        let args = ["bench", "--port", "1", "-n", "1", "--expect-file", path];
        assert_refused("greet-client", &args, path, what);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_message_file_over_16_mib_is_refused_and_16_mib_is_served() {
    let dir = temp_dir("hostile-large-file");
    // Sparse files: no disk space is used for either.
    let over = dir.join("over.bin");
    std::fs::File::create(&over)
        .and_then(|f| f.set_len(MESSAGE_MAX + 1))
        .expect("create a sparse file");
    let over = over.to_str().expect("UTF-8");
    let args = ["--host", "127.0.0.1", "--port", "0", "--message-file", over];
    assert_refused("greet-server", &args, over, "larger than the 16 MiB limit");
    let args = ["bench", "--port", "1", "-n", "1", "--expect-file", over];
    assert_refused("greet-client", &args, over, "larger than the 16 MiB limit");

    let limit = dir.join("limit.bin");
    std::fs::File::create(&limit)
        .and_then(|f| f.set_len(MESSAGE_MAX))
        .expect("create a sparse file");
    let server = Server::start(&[
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--message-file",
        limit.to_str().expect("UTF-8"),
    ]);
    let stream = std::net::TcpStream::connect(server.addr()).expect("connect");
    let got = e2e::read_all(stream).expect("read the greeting");
    assert_eq!(got.len() as u64, MESSAGE_MAX);
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}
