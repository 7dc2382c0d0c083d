//! `cargo xtask demo` as a user runs it: its help, and a reader that goes away early
//! (`cargo xtask demo | head -5`), which must leave no greet-server running.

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long anything may take on a loaded 2-core machine.
const PATIENCE: Duration = Duration::from_secs(120);

fn xtask() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xtask"));
    cmd.stdin(Stdio::null());
    cmd
}

#[test]
fn demo_help_prints_help_and_runs_nothing() {
    for flag in ["--help", "-h"] {
        let out = xtask().args(["demo", flag]).output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{out:?}");
        assert!(stdout.starts_with("usage: cargo xtask demo"), "{stdout}");
        // The demo's first step is a cargo build, announced on stderr.
        assert!(!stderr.contains("==>"), "the demo ran: {stderr}");
        assert!(!stdout.contains("## TCP"), "the demo ran: {stdout}");
    }
    let out = xtask().args(["demo", "--bogus"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}

/// Processes alive (not zombies) whose environment holds `marker`.
fn marked_processes(marker: &str) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(environ) = std::fs::read(entry.path().join("environ")) else {
            continue;
        };
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        let zombie = stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z'));
        if !zombie
            && environ
                .split(|&b| b == 0)
                .any(|var| var == marker.as_bytes())
        {
            found.push(pid);
        }
    }
    found
}

fn signal(pid: u32, signal: i32) {
    let pid = libc::pid_t::try_from(pid).unwrap();
    // SAFETY: kill(2) on our own child, not yet waited for, so the pid is not recycled.
    assert_eq!(unsafe { libc::kill(pid, signal) }, 0);
}

#[test]
fn a_reader_that_goes_away_leaves_no_server_running() {
    let marker = format!("XTASK_DEMO_TEST={}", std::process::id());
    let (key, value) = marker.split_once('=').unwrap();
    let mut child = xtask()
        .arg("demo")
        .env(key, value)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let stderr = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    // Read until the first server is up, as `head` would have read a few lines by then.
    loop {
        line.clear();
        let n = stdout.read_line(&mut line).unwrap();
        assert!(n > 0, "the demo ended before a server started");
        if line.starts_with("Listening on") {
            break;
        }
    }
    // Hold the demo still while its reader goes away, so that its next write fails while
    // the first server runs (the client it starts next takes far longer than this).
    signal(child.id(), libc::SIGSTOP);
    drop(stdout);
    signal(child.id(), libc::SIGCONT);
    let deadline = Instant::now() + PATIENCE;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "the demo did not exit");
        std::thread::sleep(Duration::from_millis(20));
    };
    let stderr = stderr.join().unwrap();
    let left = marked_processes(&marker);
    for pid in &left {
        // Clean up after a failure, then report it.
        // SAFETY: kill(2) on a process this test started (through the demo).
        unsafe { libc::kill(libc::pid_t::try_from(*pid).unwrap(), libc::SIGKILL) };
    }
    assert!(
        left.is_empty(),
        "processes left running: {left:?}; {stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("stdout closed"), "{stderr}");
}
