//! greet-server's promises about what it shares with other processes: the Unix socket file
//! it removes at exit, the listening sockets a failed restart handed to a child, the port
//! another server already serves, a stderr that cannot be written, and which listeners
//! `--proxy-protocol` applies to.

use std::net::TcpStream;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Instant;

use e2e::{bin, read_all, PATIENCE};

const GREETING: &[u8] = b"Thank you for connecting";

fn signal(pid: u32, signal: i32) {
    let pid = libc::pid_t::try_from(pid).expect("pid fits pid_t");
    // SAFETY: kill(2) on a server this test started (directly or through a restart) that
    // has not been waited for: the test reads its stderr before it lets it go.
    let rc = unsafe { libc::kill(pid, signal) };
    assert_eq!(rc, 0, "kill: {}", std::io::Error::last_os_error());
}

// Defect 7: a stderr that cannot be written.

fn dev_full() -> std::fs::File {
    std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .expect("open /dev/full")
}

/// Waits for `child` to exit, within [`PATIENCE`] (killed after that).
fn exit_status(child: &mut Child) -> ExitStatus {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("greet-server did not exit");
        }
        std::thread::yield_now();
    }
}

#[test]
fn a_full_stderr_never_panics_nor_changes_the_exit_status() {
    let mut server = Command::new(bin("greet-server"))
        .args([
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--upgrade-binary",
            "/bin/false",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(dev_full())
        .spawn()
        .expect("spawn greet-server");
    let stdout = e2e::lines(server.stdout.take().expect("piped stdout"));
    let ready = stdout.recv_timeout(PATIENCE).expect("a readiness line");
    let port = e2e::port_of(&ready).unwrap_or_else(|| panic!("no port in {ready:?}"));
    let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    assert_eq!(read_all(stream).unwrap(), GREETING);
    let logged = stdout.recv_timeout(PATIENCE).expect("a log line");
    assert!(logged.starts_with("Got connection from "), "{logged}");
    // A restart that fails and a summary on request: both say so on stderr.
    signal(server.id(), libc::SIGHUP);
    signal(server.id(), libc::SIGUSR1);
    // Still serving.
    let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    assert_eq!(read_all(stream).unwrap(), GREETING);
    signal(server.id(), libc::SIGTERM);
    let status = exit_status(&mut server);
    assert_eq!(status.code(), Some(0), "{status}");
}

#[test]
fn a_startup_error_with_a_full_stderr_is_still_status_1() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let mut server = Command::new(bin("greet-server"))
        .args(["--host", "127.0.0.1", "--port", &port])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(dev_full())
        .spawn()
        .expect("spawn greet-server");
    let status = exit_status(&mut server);
    assert_eq!(status.code(), Some(1), "{status}");
}

#[test]
fn a_full_stdout_refuses_to_start_with_one_line_and_status_1() {
    let out = Command::new(bin("greet-server"))
        .args(["--host", "127.0.0.1", "--port", "0"])
        .stdin(Stdio::null())
        .stdout(dev_full())
        .stderr(Stdio::piped())
        .output()
        .expect("run greet-server");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("greet-server: stdout: "), "{stderr}");
}
