//! Ending a child process within a deadline: a signal, a bounded wait, SIGKILL for what is
//! left, and the reaping that leaves no zombie.
//!
//! [`Process`](crate::Process) stops the servers the tests and xtask start with it, and
//! greet-server's SIGHUP restart stops a new server that failed together with everything it
//! started ([`Target::Group`]): the same steps, so one implementation.
//!
//! # Examples
//!
//! ```
//! use std::time::Duration;
//! use proc_harness::supervise::{stop, Target};
//!
//! let mut child = std::process::Command::new("sleep").arg("60").spawn()?;
//! let stopped = stop(&mut child, Target::Process, libc::SIGTERM, Duration::from_secs(30))?;
//! // sleep does not catch SIGTERM: it ended by the signal, no SIGKILL was needed.
//! assert!(!stopped.killed);
//! # Ok::<(), std::io::Error>(())
//! ```

use std::process::{Child, ExitStatus};
use std::time::{Duration, Instant};

/// The longest pause between two looks at a child that has not exited yet.
const MAX_PAUSE: Duration = Duration::from_millis(20);

/// Whom a signal goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// The child alone.
    Process,
    /// The process group the child leads (started with `setpgid(0, 0)` or
    /// `CommandExt::process_group(0)`): the child and whatever it started that stayed in its
    /// group. The group's id stays the child's pid while any member lives, reaped or not.
    Group,
}

/// How [`stop`] ended a child.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stopped {
    /// The child's exit status.
    pub status: ExitStatus,
    /// Whether SIGKILL had to be sent: the child (or, for a group, a member) was still there
    /// at the deadline, or the first signal could not be sent.
    pub killed: bool,
}

/// Sends `signal` to process `pid`, or to the group it leads. A process or group that is
/// already gone is not an error: there is nothing left to signal.
///
/// `pid` must be a child of this process that has not been reaped (`Child::id` before
/// `wait` returned): only then can the number not have been reused by another process.
///
/// # Errors
///
/// The OS error of `kill(2)` other than `ESRCH`, or `InvalidInput` for a pid out of range.
pub fn signal(pid: u32, target: Target, signal: i32) -> std::io::Result<()> {
    let pid = libc::pid_t::try_from(pid)
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
    let to = match target {
        Target::Process => pid,
        Target::Group => -pid,
    };
    // SAFETY: kill(2) takes plain integers; the caller's child is not reaped, so neither its
    // pid nor the group id it leads names another process.
    if unsafe { libc::kill(to, signal) } == 0 {
        return Ok(());
    }
    let err = std::io::Error::last_os_error();
    if err.raw_os_error() == Some(libc::ESRCH) {
        return Ok(());
    }
    Err(err)
}

/// Waits until `child` has exited or `deadline` has passed: its status, or `None` at the
/// deadline (the child still runs). Reaps it when it exited; `Child` keeps the status, so
/// asking again returns it again.
///
/// # Errors
///
/// The OS error of `waitpid(2)`.
pub fn wait_until(child: &mut Child, deadline: Instant) -> std::io::Result<Option<ExitStatus>> {
    let mut status = None;
    poll_until(deadline, || {
        status = child.try_wait()?;
        Ok(status.is_some())
    })?;
    Ok(status)
}

/// Stops `child`: sends `first` to `target`, waits up to `grace` for the child to exit
/// (with [`Target::Group`]: and for every member of its group to be gone), then sends SIGKILL
/// to what is left and reaps the child. For a group, it then waits up to `grace` again for
/// the killed members to be gone: SIGKILL is delivered at once, but a process closes its
/// descriptors (listening sockets, pipes) only as it exits.
///
/// `first` may be 0, the null signal of `kill(2)`: nothing is sent, so this waits for a
/// child that is ending by itself and kills it only at the deadline.
///
/// Orphaned members of a group are reaped by init (or the nearest subreaper); until then
/// they count as present, which only the deadlines bound.
///
/// # Errors
///
/// The OS error of `waitpid(2)`; the child is then not known to be reaped.
pub fn stop(
    child: &mut Child,
    target: Target,
    first: i32,
    grace: Duration,
) -> std::io::Result<Stopped> {
    let pid = child.id();
    let deadline = Instant::now() + grace;
    if signal(pid, target, first).is_ok() {
        if let Some(status) = wait_until(child, deadline)? {
            if target == Target::Process || group_gone_by(pid, deadline) {
                return Ok(Stopped {
                    status,
                    killed: false,
                });
            }
        }
    }
    // Nothing to do on a failure: the child itself cannot refuse SIGKILL, and is waited for.
    let _ = signal(pid, target, libc::SIGKILL);
    let status = child.wait()?;
    if target == Target::Group {
        group_gone_by(pid, Instant::now() + grace);
    }
    Ok(Stopped {
        status,
        killed: true,
    })
}

/// Whether process group `pgid` is empty by `deadline`.
fn group_gone_by(pgid: u32, deadline: Instant) -> bool {
    poll_until(deadline, || Ok(!group_alive(pgid))).unwrap_or(false)
}

/// Whether any process is left in group `pgid` (a zombie counts until it is reaped).
fn group_alive(pgid: u32) -> bool {
    let Ok(pgid) = libc::pid_t::try_from(pgid) else {
        return false;
    };
    // SAFETY: signal 0 only checks that the group has a member this process may signal.
    if unsafe { libc::kill(-pgid, 0) } == 0 {
        return true;
    }
    std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

/// Asks `done` until it says yes (true) or `deadline` passes (false), with pauses that grow
/// from 1 ms to [`MAX_PAUSE`]: a child that exits at once costs no more than a millisecond,
/// one that takes its time is not asked hundreds of times a second.
fn poll_until(
    deadline: Instant,
    mut done: impl FnMut() -> std::io::Result<bool>,
) -> std::io::Result<bool> {
    let mut pause = Duration::from_millis(1);
    loop {
        if done()? {
            return Ok(true);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(false);
        }
        std::thread::sleep(pause.min(left));
        pause = (pause * 2).min(MAX_PAUSE);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::BufRead;
    use std::os::unix::process::{CommandExt, ExitStatusExt};
    use std::process::{Command, Stdio};

    /// Starts `sh -c script` in a process group of its own and waits for its first stdout
    /// line, which the script prints once its traps are set: a signal sent before that
    /// would find the shell's default action.
    fn started(script: &str) -> (Child, String) {
        let mut child = Command::new("sh")
            .args(["-c", script])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .process_group(0)
            .spawn()
            .expect("spawn sh");
        let stdout = child.stdout.take().expect("piped");
        let mut line = String::new();
        std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read the ready line");
        (child, line.trim().to_string())
    }

    /// A generous grace for a loaded machine: a child that exits on the signal is never
    /// killed for being slow.
    const GENEROUS: Duration = Duration::from_secs(30);

    #[test]
    fn a_child_that_exits_on_the_signal_is_not_killed() {
        let (mut child, ready) =
            started("trap 'exit 3' TERM; echo ready; while :; do sleep 0.05; done");
        assert_eq!(ready, "ready");
        let stopped = stop(&mut child, Target::Process, libc::SIGTERM, GENEROUS).unwrap();
        assert_eq!(stopped.status.code(), Some(3));
        assert!(!stopped.killed);
    }

    #[test]
    fn a_child_that_ignores_the_signal_is_killed_at_the_deadline_and_reaped() {
        // An ignored signal stays ignored across exec, so `sleep` ignores SIGTERM too.
        let (mut child, _) = started("trap '' TERM; echo ready; exec sleep 60");
        let pid = child.id();
        let grace = Duration::from_millis(200);
        let started = Instant::now();
        let stopped = stop(&mut child, Target::Process, libc::SIGTERM, grace).unwrap();
        assert!(started.elapsed() >= grace, "killed before the deadline");
        assert_eq!(stopped.status.signal(), Some(libc::SIGKILL));
        assert!(stopped.killed);
        // Reaped: no zombie under its pid (a new process may have taken the number).
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        assert!(!stat.contains("(sleep) Z"), "{stat}");
    }

    #[test]
    fn a_group_is_stopped_with_what_its_leader_started() {
        // The leader exits on SIGTERM, the process it started in its group ignores it.
        let (mut child, member) =
            started("trap 'exit 0' TERM; sh -c 'trap \"\" TERM; echo $$; exec sleep 60' & wait");
        let member: u32 = member.parse().expect("the member's pid");
        let stopped = stop(
            &mut child,
            Target::Group,
            libc::SIGTERM,
            Duration::from_millis(200),
        )
        .unwrap();
        assert!(stopped.killed, "the member outlived the deadline: SIGKILL");
        assert_eq!(
            stopped.status.code(),
            Some(0),
            "the leader exited on SIGTERM"
        );
        // Gone, or a zombie until init reaps it: never still running.
        let stat = std::fs::read_to_string(format!("/proc/{member}/stat")).unwrap_or_default();
        assert!(
            stat.is_empty() || !stat.contains("(sleep)") || stat.contains(") Z "),
            "{stat}"
        );
    }

    #[test]
    fn wait_until_returns_none_at_the_deadline_and_the_status_once_exited() {
        let mut child = Command::new("sleep").arg("60").spawn().unwrap();
        let soon = Instant::now() + Duration::from_millis(50);
        assert_eq!(wait_until(&mut child, soon).unwrap(), None);
        signal(child.id(), Target::Process, libc::SIGTERM).unwrap();
        let status = wait_until(&mut child, Instant::now() + GENEROUS).unwrap();
        assert_eq!(status.and_then(|s| s.signal()), Some(libc::SIGTERM));
    }
}
