//! Starting a server in the background and reading its readiness line, without sleeping.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::Duration;

/// How long a server may take to print its readiness line on a loaded machine.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// A server running in the background, its stdout read line by line on a thread.
///
/// A guard: however the caller leaves (an error, `?`, a panic such as a failed print to a
/// closed stdout), dropping it kills the server and waits for it, so no server outlives
/// the task. [`Server::stop`] is the orderly way (SIGTERM, then its summary).
#[derive(Debug)]
pub struct Server {
    /// `None` once stopped or reaped.
    child: Option<Child>,
    lines: Receiver<String>,
    pub name: String,
}

impl Server {
    /// Starts `cmd` and waits for its first stdout line (the readiness line).
    pub fn start(name: &str, mut cmd: Command) -> Result<(Server, String), String> {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("start {name}: {e}"))?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| format!("{name}: no stdout"))?;
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let server = Server {
            child: Some(child),
            lines,
            name: name.to_string(),
        };
        match server.lines.recv_timeout(READY_TIMEOUT) {
            Ok(ready) => Ok((server, ready)),
            Err(_) => {
                let (_, stderr) = server.stop()?;
                Err(format!("{name} printed no readiness line: {stderr}"))
            }
        }
    }

    /// The next stdout line, waiting up to `timeout`.
    pub fn next_line(&self, timeout: Duration) -> Option<String> {
        self.lines.recv_timeout(timeout).ok()
    }

    /// SIGTERM, then waits; returns the exit status and stderr.
    pub fn stop(mut self) -> Result<(std::process::ExitStatus, String), String> {
        let child = self
            .child
            .take()
            .ok_or_else(|| format!("{}: already stopped", self.name))?;
        let pid = libc::pid_t::try_from(child.id())
            .map_err(|_| format!("{}: pid out of range", self.name))?;
        // SAFETY: kill(2) with a pid we spawned and still own (not yet waited for), so it
        // cannot name a recycled process.
        if unsafe { libc::kill(pid, libc::SIGTERM) } != 0 {
            return Err(format!(
                "SIGTERM {}: {}",
                self.name,
                std::io::Error::last_os_error()
            ));
        }
        let output = child
            .wait_with_output()
            .map_err(|e| format!("wait for {}: {e}", self.name))?;
        Ok((
            output.status,
            String::from_utf8_lossy(&output.stderr).into_owned(),
        ))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // Not stopped in order: kill (SIGKILL, it cannot be ignored) and reap.
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The port in a readiness line such as `Listening on ('127.0.0.1', 41765) tcp`.
pub fn port_of(ready: &str) -> Option<u16> {
    let (_, rest) = ready.split_once("', ")?;
    let end = rest.find(|c: char| !c.is_ascii_digit())?;
    rest[..end].parse().ok()
}

#[cfg(test)]
mod tests {
    use super::port_of;

    #[test]
    fn port_from_readiness_lines() {
        assert_eq!(
            port_of("Listening on ('127.0.0.1', 41765) tcp"),
            Some(41765)
        );
        assert_eq!(port_of("Listening on ('::1', 80, 0, 0) udp"), Some(80));
        assert_eq!(port_of("Listening on '/tmp/x' unix"), None);
    }
}
