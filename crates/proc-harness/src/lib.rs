//! Starting a server binary and knowing when it is ready, without ever sleeping.
//!
//! One harness for the end-to-end tests (package `e2e`) and `cargo xtask` (demo, bench):
//! [`Process::start`] spawns a command, reads its stdout and stderr on threads
//! ([`lines`]), and waits with a deadline for its first stdout line, the readiness line
//! (`Listening on ('127.0.0.1', 41765) tcp` from greet-server, `Listening on 127.0.0.1:41765`
//! from netcore's examples and the echo peers). [`port_of`] reads the port from either.
//! [`Process::stop`] sends SIGTERM and collects the exit status and stderr, killing a
//! process that is not gone within [`PATIENCE`] ([`supervise`], which greet-server's restart
//! uses too); dropping a process that was not stopped kills and reaps it, so none outlives
//! its caller.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

pub mod supervise;

use supervise::Target;

/// How long a process may take (to print its readiness line, to exit after SIGTERM) on a
/// loaded 2-core machine before the harness gives up.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// Why a process could not be started, signalled or waited for.
#[derive(Debug)]
pub enum Error {
    /// The command could not be spawned.
    Spawn {
        /// The process's name, as the caller gave it.
        name: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// It exited, or said nothing within [`PATIENCE`], before its readiness line.
    NotReady {
        /// The process's name.
        name: String,
        /// How it ended (it is killed if it was still running).
        status: Option<ExitStatus>,
        /// Everything it wrote on stderr.
        stderr: String,
    },
    /// A signal could not be sent, or the process could not be waited for.
    Os {
        /// What was being done, e.g. `SIGTERM greet-server`.
        what: String,
        /// The OS error.
        source: std::io::Error,
    },
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Spawn { name, .. } => write!(f, "cannot start {name}"),
            Error::NotReady {
                name,
                status,
                stderr,
            } => {
                write!(f, "{name} printed no readiness line")?;
                if let Some(status) = status {
                    write!(f, " ({status})")?;
                }
                let stderr = stderr.trim_end();
                if !stderr.is_empty() {
                    write!(f, "; its stderr: {stderr}")?;
                }
                Ok(())
            }
            Error::Os { what, .. } => f.write_str(what),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Spawn { source, .. } | Error::Os { source, .. } => Some(source),
            Error::NotReady { .. } => None,
        }
    }
}

/// What becomes of a process's stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stderr {
    /// Read on a thread: [`Process::next_stderr_line`], and returned by [`Process::stop`].
    Piped,
    /// Discarded (a load that would fill a pipe nobody reads until the end).
    Null,
}

/// Reads `reader` line by line on a thread; each line (without its line end) arrives on the
/// returned channel, which disconnects at end of file.
pub fn lines(reader: impl Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(reader).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// A process started by the harness; killed and reaped on drop unless stopped.
#[derive(Debug)]
pub struct Process {
    name: String,
    /// `None` once stopped or reaped.
    child: Option<Child>,
    stdout: Receiver<String>,
    stderr: Option<Receiver<String>>,
    ready: String,
}

impl Process {
    /// Spawns `cmd` (stdin from /dev/null, stdout and stderr piped) and waits up to
    /// [`PATIENCE`] for its first stdout line, the readiness line.
    pub fn start(name: &str, cmd: Command) -> Result<Process, Error> {
        Process::start_with(name, cmd, Stderr::Piped)
    }

    /// [`Process::start`] with a choice for stderr.
    pub fn start_with(name: &str, cmd: Command, stderr: Stderr) -> Result<Process, Error> {
        let mut process = Process::spawn(name, cmd, stderr)?;
        process.wait_ready(PATIENCE)?;
        Ok(process)
    }

    /// Spawns `cmd` without waiting for anything: for a program that says it is ready on
    /// stderr (read it with [`Process::next_stderr_line`]) or not at all.
    pub fn spawn(name: &str, mut cmd: Command, stderr: Stderr) -> Result<Process, Error> {
        cmd.stdin(Stdio::null()).stdout(Stdio::piped());
        cmd.stderr(match stderr {
            Stderr::Piped => Stdio::piped(),
            Stderr::Null => Stdio::null(),
        });
        let mut child = cmd.spawn().map_err(|source| Error::Spawn {
            name: name.to_string(),
            source,
        })?;
        let stdout = child.stdout.take().map_or_else(
            || {
                let (_, rx) = mpsc::channel();
                rx
            },
            lines,
        );
        let stderr = child.stderr.take().map(raw_lines);
        Ok(Process {
            name: name.to_string(),
            child: Some(child),
            stdout,
            stderr,
            ready: String::new(),
        })
    }

    /// Waits up to `timeout` for the next stdout line and keeps it as the readiness line.
    /// When none comes, the process is killed (if still running) and reaped.
    pub fn wait_ready(&mut self, timeout: Duration) -> Result<&str, Error> {
        match self.stdout.recv_timeout(timeout) {
            Ok(line) => {
                self.ready = line;
                Ok(&self.ready)
            }
            Err(_) => {
                let status = self.reap();
                Err(Error::NotReady {
                    name: self.name.clone(),
                    status,
                    stderr: self.rest_of_stderr(),
                })
            }
        }
    }

    /// The name given at start.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The readiness line (empty before [`Process::wait_ready`]).
    pub fn ready(&self) -> &str {
        &self.ready
    }

    /// The port in the readiness line, see [`port_of`].
    pub fn port(&self) -> Option<u16> {
        port_of(&self.ready)
    }

    /// The next stdout line, or `None` after `timeout` or at end of file.
    pub fn next_line(&self, timeout: Duration) -> Option<String> {
        self.stdout.recv_timeout(timeout).ok()
    }

    /// Takes the channel of stdout lines, e.g. to drain it on another thread; afterwards
    /// [`Process::next_line`] returns `None`.
    pub fn take_stdout(&mut self) -> Receiver<String> {
        std::mem::replace(&mut self.stdout, mpsc::channel().1)
    }

    /// The next stderr line (without its line end), or `None` after `timeout`, at end of
    /// file, or when stderr is not piped.
    pub fn next_stderr_line(&self, timeout: Duration) -> Option<String> {
        let line = self.stderr.as_ref()?.recv_timeout(timeout).ok()?;
        Some(line.trim_end_matches(['\n', '\r']).to_string())
    }

    /// The process id (0 once reaped).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Sends `signal` to the process.
    pub fn signal(&self, signal: i32) -> Result<(), Error> {
        let child = self
            .child
            .as_ref()
            .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::NotFound));
        // Our own child, not yet waited for (`child` is taken when it is): its pid is ours.
        child
            .and_then(|child| supervise::signal(child.id(), Target::Process, signal))
            .map_err(|source| Error::Os {
                what: format!("signal {signal} to {}", self.name),
                source,
            })
    }

    /// Whether the process has exited (without waiting); [`Process::wait`] then returns at
    /// once with its status and stderr.
    pub fn has_exited(&mut self) -> bool {
        self.child
            .as_mut()
            .is_none_or(|child| child.try_wait().map_or(true, |status| status.is_some()))
    }

    /// SIGTERM, then its exit status and the rest of its stderr, as [`Process::wait`].
    pub fn stop(self) -> Result<(ExitStatus, String), Error> {
        self.end(libc::SIGTERM)
    }

    /// Waits for the process to exit (after a signal, or by itself); its exit status and
    /// the rest of its stderr (empty when not piped). One still running after [`PATIENCE`]
    /// is killed (its status then says SIGKILL), so that a test fails instead of hanging.
    pub fn wait(self) -> Result<(ExitStatus, String), Error> {
        // Signal 0 sends nothing: only the wait, and the kill at its deadline.
        self.end(0)
    }

    fn end(mut self, signal: i32) -> Result<(ExitStatus, String), Error> {
        let os = |source| Error::Os {
            what: format!("stop {} (signal {signal}, then wait)", self.name),
            source,
        };
        let mut child = self
            .child
            .take()
            .ok_or_else(|| os(std::io::Error::from(std::io::ErrorKind::NotFound)))?;
        let stopped = supervise::stop(&mut child, Target::Process, signal, PATIENCE).map_err(os)?;
        Ok((stopped.status, self.rest_of_stderr()))
    }

    /// Kills the process (SIGKILL) and reaps it; for a measurement's end, where its exit
    /// status does not matter.
    pub fn kill(mut self) {
        self.reap();
    }

    /// Everything still unread on stderr, until end of file (or [`PATIENCE`], should a
    /// process the child started keep the pipe open).
    fn rest_of_stderr(&mut self) -> String {
        let Some(rx) = &self.stderr else {
            return String::new();
        };
        let deadline = Instant::now() + PATIENCE;
        let mut text = String::new();
        // Ends at end of file (disconnected) or at the deadline.
        while let Ok(line) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            text.push_str(&line);
        }
        text
    }

    /// The on-CPU time so far, see [`cpu_time`].
    pub fn cpu_time(&self) -> Duration {
        cpu_time(self.pid())
    }

    /// Its user and system CPU time so far, see [`user_system_ticks`].
    pub fn user_system_ticks(&self) -> (u64, u64) {
        user_system_ticks(self.pid())
    }

    /// How many descriptors the process has open, see [`open_fds`].
    pub fn open_fds(&self) -> usize {
        open_fds(self.pid())
    }

    /// A field of its `/proc/PID/status` in kB, see [`status_kb`].
    pub fn status_kb(&self, field: &str) -> u64 {
        status_kb(self.pid(), field)
    }

    /// Kills the child if it still runs and reaps it: its exit status, if it had one.
    fn reap(&mut self) -> Option<std::process::ExitStatus> {
        let mut child = self.child.take()?;
        // SIGKILL cannot be ignored; then reap, so no zombie is left.
        let _ = child.kill();
        child.wait().ok()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.reap();
    }
}

/// Like [`lines`], but each line keeps its line end, so that the lines concatenated are the
/// exact text (stderr is returned whole by [`Process::stop`]).
fn raw_lines(reader: impl Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut reader = BufReader::new(reader);
        let mut line = Vec::new();
        loop {
            line.clear();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    if tx
                        .send(String::from_utf8_lossy(&line).into_owned())
                        .is_err()
                    {
                        break;
                    }
                }
            }
        }
    });
    rx
}

/// The port in a readiness line: `Listening on ('127.0.0.1', 41765) tcp` (greet-server, the
/// tutorial's Python server), `Listening on 127.0.0.1:41765` or `Listening on [::1]:41765`
/// (netcore's examples, the echo peers), `LISTENING 41765` (the C and tokio peers).
/// `None` for a Unix socket's line and anything else.
pub fn port_of(line: &str) -> Option<u16> {
    let line = line.trim();
    if let Some(rest) = line.strip_prefix("LISTENING ") {
        return rest.trim().parse().ok();
    }
    if let Some((_, rest)) = line.split_once("', ") {
        let end = rest.find(|c: char| !c.is_ascii_digit())?;
        return rest[..end].parse().ok();
    }
    let addr = line.strip_prefix("Listening on ")?;
    addr.parse::<std::net::SocketAddr>().ok().map(|a| a.port())
}

/// A process's on-CPU time so far, summed over its threads (`/proc/PID/task/*/schedstat`);
/// zero when it cannot be read.
pub fn cpu_time(pid: u32) -> Duration {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Duration::ZERO;
    };
    let ns: u64 = tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum();
    Duration::from_nanos(ns)
}

/// A process's CPU time in user space and in the kernel, all its threads together, in clock
/// ticks (`utime` and `stime` of `/proc/PID/stat`, usually 100 a second); zeros when it
/// cannot be read. Coarser than [`cpu_time`], and it tells the two apart.
pub fn user_system_ticks(pid: u32) -> (u64, u64) {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| parse_user_system_ticks(&stat))
        .unwrap_or((0, 0))
}

/// Fields 14 and 15 of a `/proc/PID/stat` line, counted after the command name, which is in
/// parentheses and may hold spaces and parentheses of its own.
fn parse_user_system_ticks(stat: &str) -> Option<(u64, u64)> {
    let (_, after_name) = stat.rsplit_once(')')?;
    // After the name: state (field 3) ... utime (14), stime (15).
    let mut fields = after_name.split_whitespace().skip(11);
    let user = fields.next()?.parse().ok()?;
    let system = fields.next()?.parse().ok()?;
    Some((user, system))
}

/// How many descriptors a process has open (`/proc/PID/fd`); zero when it cannot be read.
pub fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// A field of `/proc/PID/status` in kB (`"VmRSS:"`, `"VmHWM:"`); zero when it cannot be
/// read.
pub fn status_kb(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))?
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_and_system_ticks_are_fields_14_and_15_after_a_name_with_spaces() {
        let stat = "4242 (a (b) c) S 1 4242 4242 0 -1 4194560 100 0 0 0 37 12 0 0 20 0 1 0";
        assert_eq!(parse_user_system_ticks(stat), Some((37, 12)));
        assert_eq!(parse_user_system_ticks("4242 (short) S 1"), None);
    }

    #[test]
    fn this_process_has_spent_some_cpu() {
        let spin = std::time::Instant::now();
        while spin.elapsed() < std::time::Duration::from_millis(50) {}
        let (user, system) = user_system_ticks(std::process::id());
        assert!(user + system > 0);
    }

    #[test]
    fn port_from_every_kind_of_readiness_line() {
        assert_eq!(
            port_of("Listening on ('127.0.0.1', 41765) tcp"),
            Some(41765)
        );
        assert_eq!(port_of("Listening on ('::1', 80, 0, 0) udp"), Some(80));
        assert_eq!(port_of("Listening on 127.0.0.1:41765\n"), Some(41765));
        assert_eq!(port_of("Listening on [::1]:8080"), Some(8080));
        assert_eq!(port_of("LISTENING 5000"), Some(5000));
        assert_eq!(port_of("Listening on '/tmp/x' unix"), None);
        assert_eq!(port_of("Listening on 127.0.0.1"), None);
        assert_eq!(port_of("hello"), None);
    }

    fn sh(script: &str) -> Command {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", script]);
        cmd
    }

    #[test]
    fn readiness_line_then_stop_collects_status_and_stderr() {
        let p = Process::start(
            "sh",
            // The trap comes first: SIGTERM may follow the readiness line at once.
            sh("trap 'echo bye >&2; exit 3' TERM; echo oops >&2; echo 'Listening on 127.0.0.1:4242'; while :; do sleep 0.05; done"),
        )
        .expect("starts");
        assert_eq!(p.ready(), "Listening on 127.0.0.1:4242");
        assert_eq!(p.port(), Some(4242));
        assert!(p.pid() > 0);
        assert!(p.status_kb("VmRSS:") > 0);
        assert!(p.open_fds() > 0);
        let (status, stderr) = p.stop().expect("stops");
        assert_eq!(status.code(), Some(3));
        assert_eq!(stderr, "oops\nbye\n");
    }

    #[test]
    fn a_process_that_exits_before_its_readiness_line_is_an_error_with_its_stderr() {
        let err = Process::start("sh", sh("echo 'no such port' >&2; exit 2")).unwrap_err();
        match &err {
            Error::NotReady { status, stderr, .. } => {
                assert_eq!(status.and_then(|s| s.code()), Some(2));
                assert_eq!(stderr, "no such port\n");
            }
            other => panic!("{other:?}"),
        }
        assert!(err.to_string().contains("no such port"), "{err}");
    }

    #[test]
    fn a_process_that_exits_by_itself_is_seen_to_and_its_stderr_read() {
        let mut p = Process::spawn("sh", sh("echo gone >&2; exit 4"), Stderr::Piped).unwrap();
        let deadline = Instant::now() + PATIENCE;
        while !p.has_exited() {
            assert!(Instant::now() < deadline, "sh did not exit");
            std::thread::yield_now();
        }
        let (status, stderr) = p.wait().unwrap();
        assert_eq!((status.code(), stderr.as_str()), (Some(4), "gone\n"));
    }

    #[test]
    fn spawn_failure_names_the_program() {
        let err = Process::start("nope", Command::new("/nonexistent/nope")).unwrap_err();
        assert!(matches!(err, Error::Spawn { .. }), "{err:?}");
        assert_eq!(err.to_string(), "cannot start nope");
    }

    #[test]
    fn drop_kills_and_reaps() {
        let p = Process::start("sh", sh("echo ready; exec sleep 60")).expect("starts");
        let pid = p.pid();
        drop(p);
        // Reaped: the pid no longer names our child.
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}/stat")).exists()
                || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                    .is_ok_and(|s| !s.contains("(sleep)"))
        );
    }
}
