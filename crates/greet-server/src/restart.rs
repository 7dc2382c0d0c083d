//! SIGHUP: restart without losing a client, as nginx's binary upgrade does.
//!
//! The running server starts a new copy of itself (its own path, or `--upgrade-binary`) as
//! its child, with the same arguments, handing it every listening socket the way systemd
//! does (`LISTEN_FDS`, `LISTEN_PID`, `LISTEN_FDNAMES` naming each socket's role; see
//! `activation.rs`, which the new server uses to take them). The sockets themselves pass,
//! not copies bound anew: connections the kernel has queued stay queued for whichever
//! process accepts first, and no client is ever refused.
//!
//! The new server says it is ready by writing `READY=1` on one end of a socket pair (the
//! readiness channel), which it inherits as the descriptor named by `GREET_READY_FD` (after
//! its readiness lines and once its loops run); the old one waits for that within
//! `--restart-timeout`, then hands on its metrics' totals on the same channel
//! (`metrics.rs`), stops accepting and drains exactly as on SIGTERM. The channel also tells
//! a failure at once: a new server that exits closes it. If the new server fails or is not ready in time, it is
//! stopped and the old one keeps serving, saying why on stderr. The new server starts in a
//! process group of its own, and a failed one is stopped with its whole group: whatever it
//! started inherited the listening sockets too, and must not keep them (clients would
//! queue in a backlog nobody accepts from). One that became ready stays in its group. Both share stdout and
//! stderr, so the new server's lines go where the old one's went, and the old one's
//! summary still appears when it has drained.
//!
//! Under systemd (`NOTIFY_SOCKET` set), the old server tells systemd `MAINPID=<new>` and
//! `READY=1` once the new one is ready, so that systemd follows the new main process
//! (`Type=notify`; see `contrib/systemd/greet.service`).

use anyhow::{anyhow, bail, Context, Result};
use std::ffi::{CString, OsStr};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use netcore::ShutdownHandle;
use proc_harness::supervise::{self, Target};

use greet_server::socket_file::{self, FileId};

use greet_server::activation::FIRST_FD;

/// The variable naming the readiness pipe's descriptor in the new server.
pub const READY_FD_VAR: &str = "GREET_READY_FD";
/// How long a new server that failed readiness has to stop on SIGTERM before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(2);

/// The listening sockets to hand on, each a duplicate with its role (`tcp`, `udp`, `unix`,
/// `unix-keep`).
pub type Sockets = Vec<(OwnedFd, &'static str)>;

/// Restarts on SIGHUP; shared by the signal thread and the restart thread.
#[derive(Debug)]
pub struct Restarter {
    /// `None` once the server stops (SIGTERM) or has handed over: the duplicates are
    /// closed then, so that the sockets close when the loops let go of theirs.
    sockets: Mutex<Option<Sockets>>,
    program: Option<PathBuf>,
    /// The socket file handed on with role `unix`: what this server bound, passed to the new
    /// server in `GREET_UNIX_FILE`.
    unix_file: Option<FileId>,
    timeout: Duration,
    handles: Vec<ShutdownHandle>,
    busy: AtomicBool,
    handed_over: AtomicBool,
    /// The new server while it is starting (0: none).
    pending: AtomicU32,
    /// Given the channel to the new server once it is ready (the metrics' totals go on
    /// through it).
    on_handover: Mutex<Option<HandoverHook>>,
}

/// What runs at a handover, with the readiness channel (a socket pair: the new server
/// reads what the old one writes back).
pub struct HandoverHook(pub Box<dyn FnOnce(OwnedFd) + Send>);

impl std::fmt::Debug for HandoverHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HandoverHook")
    }
}

impl Restarter {
    /// `program`: `--upgrade-binary`, or `None` for this binary's own path; `unix_file`: the
    /// identity of the socket file among `sockets` (role `unix`).
    pub fn new(
        sockets: Sockets,
        program: Option<PathBuf>,
        unix_file: Option<FileId>,
        timeout: Duration,
        handles: Vec<ShutdownHandle>,
    ) -> Restarter {
        Restarter {
            sockets: Mutex::new(Some(sockets)),
            program,
            unix_file,
            timeout,
            handles,
            busy: AtomicBool::new(false),
            handed_over: AtomicBool::new(false),
            pending: AtomicU32::new(0),
            on_handover: Mutex::new(None),
        }
    }

    /// Runs `hook` with the channel to the new server when one is ready, before this one
    /// stops accepting.
    pub fn on_handover(&self, hook: HandoverHook) {
        if let Ok(mut slot) = self.on_handover.lock() {
            *slot = Some(hook);
        }
    }

    /// Whether a new server took over the sockets (then the Unix socket file is its own).
    pub fn handed_over(&self) -> bool {
        self.handed_over.load(Ordering::Acquire)
    }

    /// SIGHUP: starts a restart on its own thread, unless one is under way or the server is
    /// stopping.
    pub fn request(self: &Arc<Self>) {
        if self.busy.swap(true, Ordering::AcqRel) {
            if self.handed_over() {
                say!(
                    "greet-server: SIGHUP: this server has handed over to a new one and is \
                     draining; ignored"
                );
            } else {
                say!("greet-server: SIGHUP: a restart is already under way; ignored");
            }
            return;
        }
        let this = Arc::clone(self);
        let spawned = std::thread::Builder::new()
            .name("restart".into())
            .spawn(move || {
                this.restart();
                if !this.handed_over() {
                    this.busy.store(false, Ordering::Release);
                }
            });
        if let Err(e) = spawned {
            say!("greet-server: restart failed: start a thread: {e}; still serving");
            self.busy.store(false, Ordering::Release);
        }
    }

    /// SIGTERM/SIGINT: no restart from now on; a new server still starting is stopped too
    /// (its process group; the restart thread then reaps it and ends what is left).
    pub fn stop(&self) {
        if let Ok(mut sockets) = self.sockets.lock() {
            *sockets = None;
        }
        let pid = self.pending.load(Ordering::Acquire);
        if pid != 0 {
            // Its group: the new server leads one (setpgid in `ExecPlan::exec`).
            if let Err(e) = supervise::signal(pid, Target::Group, libc::SIGTERM) {
                log::warn!("stop the new server (pid {pid}): {e}");
            }
        }
    }

    fn restart(&self) {
        let started = Instant::now();
        match self.start_new() {
            Ok(Some((pid, channel))) => {
                if let Some(HandoverHook(hook)) =
                    self.on_handover.lock().ok().and_then(|mut h| h.take())
                {
                    hook(channel);
                }
                if let Err(e) = sd_notify(&format!("MAINPID={pid}\nREADY=1")) {
                    say!("greet-server: restart: tell systemd the new main process: {e:#}");
                }
                say!(
                    "greet-server: restart: pid {pid} is ready ({} ms); pid {} stops accepting \
                     and finishes its greetings",
                    started.elapsed().as_millis(),
                    std::process::id()
                );
                self.handed_over.store(true, Ordering::Release);
                if let Ok(mut sockets) = self.sockets.lock() {
                    *sockets = None;
                }
                for handle in &self.handles {
                    handle.shutdown();
                }
            }
            Ok(None) => say!("greet-server: SIGHUP while stopping; ignored"),
            Err(why) => say!("greet-server: restart failed: {why:#}; still serving"),
        }
    }

    /// Starts the new server and waits for its readiness: its pid and the readiness
    /// channel, `None` when stopping.
    fn start_new(&self) -> Result<Option<(u32, OwnedFd)>> {
        let program = match &self.program {
            Some(path) => path.clone(),
            None => own_path()?,
        };
        let shown = program.display().to_string();
        // One end stays here, the other goes to the new server only. A socket pair rather
        // than a pipe: once ready, the new server reads on it what this one hands on.
        let (ready_r, ready_w) = socket_pair().context("create the readiness channel")?;
        let mut child = {
            let guard = self
                .sockets
                .lock()
                .map_err(|_| anyhow!("the socket list is poisoned"))?;
            let Some(sockets) = guard.as_ref() else {
                return Ok(None);
            };
            let plan = ExecPlan::new(&program, sockets, &ready_w, self.unix_file)?;
            spawn(&program, plan).with_context(|| format!("start {shown}"))?
        };
        drop(ready_w);
        let pid = child.id();
        self.pending.store(pid, Ordering::Release);
        let result = ready_r
            .try_clone()
            .map_err(Wait::Failed)
            .and_then(|r| wait_ready(r, Instant::now() + self.timeout));
        self.pending.store(0, Ordering::Release);
        match result {
            Ok(()) => Ok(Some((pid, ready_r))),
            Err(Wait::Closed) => {
                // It is ending: it has STOP_GRACE to exit by itself. What it started may live
                // on in its group, with the listening sockets: that is stopped either way.
                let exited = supervise::wait_until(&mut child, Instant::now() + STOP_GRACE);
                stop_group(&mut child);
                let how = match exited {
                    Ok(Some(status)) => format!("exited ({status})"),
                    Ok(None) => "closed its readiness pipe and was stopped".into(),
                    Err(e) => format!("could not be waited for ({e})"),
                };
                Err(anyhow!("{shown} (pid {pid}) {how} before it was ready"))
            }
            Err(Wait::Timeout) => {
                stop_group(&mut child);
                Err(anyhow!(
                    "{shown} (pid {pid}) was not ready within {} (--restart-timeout); stopped it",
                    humantime::format_duration(self.timeout)
                ))
            }
            Err(Wait::Failed(e)) => {
                stop_group(&mut child);
                Err(anyhow!("waiting for {shown} (pid {pid}): {e}; stopped it"))
            }
        }
    }
}

/// A pipe, both ends close-on-exec: (read, write).
#[cfg(test)]
pub fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: pipe2 writes two descriptors into the array we pass, of the right length.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: pipe2 succeeded, so both are new descriptors that nothing else owns.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// A connected pair of Unix stream sockets, both close-on-exec.
fn socket_pair() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let (a, b) = std::os::unix::net::UnixStream::pair()?;
    Ok((a.into(), b.into()))
}

/// This binary's path. Replaced on disk (an upgrade by `install` or `mv`), the kernel names
/// the running one `PATH (deleted)`: the new file at PATH is then the one to start.
fn own_path() -> Result<PathBuf> {
    let path = std::env::current_exe().context("find this binary's path")?;
    if !path.exists() {
        if let Some(text) = path.to_str() {
            if let Some(stripped) = text.strip_suffix(" (deleted)") {
                return Ok(PathBuf::from(stripped));
            }
        }
    }
    Ok(path)
}

enum Wait {
    Closed,
    Timeout,
    Failed(std::io::Error),
}

/// Reads the readiness pipe until `READY=1`, its end, or `deadline`.
fn wait_ready(pipe: OwnedFd, deadline: Instant) -> Result<(), Wait> {
    let mut got = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Wait::Timeout);
        }
        let mut poll = libc::pollfd {
            fd: pipe.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = libc::c_int::try_from(left.as_millis().max(1)).unwrap_or(libc::c_int::MAX);
        // SAFETY: one valid pollfd for a descriptor we own, for the duration of the call.
        let n = unsafe { libc::poll(&mut poll, 1, ms) };
        if n < 0 {
            let err = std::io::Error::last_os_error();
            if err.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(Wait::Failed(err));
        }
        if n == 0 {
            continue;
        }
        let mut buf = [0u8; 64];
        // SAFETY: reading into a buffer we own, of the length given.
        let read = unsafe { libc::read(pipe.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        match read {
            0 => return Err(Wait::Closed),
            n if n < 0 => {
                let err = std::io::Error::last_os_error();
                if err.kind() != std::io::ErrorKind::Interrupted {
                    return Err(Wait::Failed(err));
                }
            }
            n => {
                got.extend_from_slice(&buf[..n.unsigned_abs()]);
                if got.split(|&b| b == b'\n').any(|line| line == b"READY=1") {
                    return Ok(());
                }
                if got.len() > 4096 {
                    return Err(Wait::Failed(std::io::Error::other(
                        "no READY=1 in 4 kB of readiness messages",
                    )));
                }
            }
        }
    }
}

/// Ends a new server that failed, with its whole process group (whatever it started, which
/// inherited the listening sockets): SIGTERM, then SIGKILL to what is left after
/// [`STOP_GRACE`]; the new server itself is reaped either way.
fn stop_group(child: &mut Child) {
    if let Err(e) = supervise::stop(child, Target::Group, libc::SIGTERM, STOP_GRACE) {
        log::warn!("stop the new server (pid {}): {e}", child.id());
    }
}

/// Everything the child needs between fork and exec, prepared before the fork so that the
/// child only moves descriptors, writes its pid into a buffer and calls `execve`.
struct ExecPlan {
    path: CString,
    /// Kept alive for `argv_ptrs`.
    _argv: Vec<CString>,
    /// Kept alive for `envp_ptrs`.
    _env: Vec<CString>,
    /// `LISTEN_PID=` followed by room for the pid and its NUL.
    pid_entry: Vec<u8>,
    argv_ptrs: Vec<*const libc::c_char>,
    envp_ptrs: Vec<*const libc::c_char>,
    /// (source, target): duplicates above every target, moved down to 3, 4, ...
    moves: Vec<(OwnedFd, RawFd)>,
}

// SAFETY: the raw pointers point into the CStrings and the buffer owned by the same plan,
// which is only used by the closure that owns it (in the child, after fork).
unsafe impl Send for ExecPlan {}
// SAFETY: as above; the plan is never shared, only moved into the pre_exec closure.
unsafe impl Sync for ExecPlan {}

const PID_PREFIX: &[u8] = b"LISTEN_PID=";

impl ExecPlan {
    fn new(
        program: &std::path::Path,
        sockets: &Sockets,
        ready: &OwnedFd,
        unix_file: Option<FileId>,
    ) -> Result<ExecPlan> {
        let cstr = |bytes: &[u8]| {
            CString::new(bytes)
                .with_context(|| format!("a NUL byte in {:?}", String::from_utf8_lossy(bytes)))
        };
        let path = cstr(program.as_os_str().as_bytes())?;
        let mut argv = vec![path.clone()];
        for arg in std::env::args_os().skip(1) {
            argv.push(cstr(arg.as_bytes())?);
        }
        let count = sockets.len();
        let ready_target = FIRST_FD + RawFd::try_from(count).context("too many sockets")?;
        let names: Vec<&str> = sockets.iter().map(|(_, name)| *name).collect();
        let mut env = Vec::new();
        for (key, value) in std::env::vars_os() {
            if [
                "LISTEN_PID",
                "LISTEN_FDS",
                "LISTEN_FDNAMES",
                READY_FD_VAR,
                socket_file::VAR,
            ]
            .iter()
            .any(|k| key == OsStr::new(k))
            {
                continue;
            }
            let mut entry = key.as_bytes().to_vec();
            entry.push(b'=');
            entry.extend_from_slice(value.as_bytes());
            env.push(cstr(&entry)?);
        }
        env.push(cstr(format!("LISTEN_FDS={count}").as_bytes())?);
        env.push(cstr(
            format!("LISTEN_FDNAMES={}", names.join(":")).as_bytes(),
        )?);
        env.push(cstr(format!("{READY_FD_VAR}={ready_target}").as_bytes())?);
        if let Some(id) = unix_file {
            env.push(cstr(
                format!("{}={}", socket_file::VAR, id.to_env()).as_bytes(),
            )?);
        }
        let mut pid_entry = PID_PREFIX.to_vec();
        pid_entry.resize(PID_PREFIX.len() + 21, 0);

        // Duplicates above the highest target, so that moving one down never lands on
        // another's source.
        let above = ready_target + 1;
        let mut moves = Vec::with_capacity(count + 1);
        let sources = sockets
            .iter()
            .map(|(fd, _)| fd.as_fd())
            .chain([ready.as_fd()]);
        for (i, fd) in sources.enumerate() {
            // SAFETY: F_DUPFD_CLOEXEC on a descriptor we own returns a new one we own.
            let dup = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, above) };
            if dup < 0 {
                bail!("duplicate a socket: {}", std::io::Error::last_os_error());
            }
            // SAFETY: `dup` was just returned by fcntl and nothing else owns it.
            let dup = unsafe { OwnedFd::from_raw_fd(dup) };
            let target = FIRST_FD + RawFd::try_from(i).context("too many sockets")?;
            moves.push((dup, target));
        }
        let argv_ptrs = argv
            .iter()
            .map(|a| a.as_ptr())
            .chain([std::ptr::null()])
            .collect();
        let mut plan = ExecPlan {
            path,
            _argv: argv,
            _env: env,
            pid_entry,
            argv_ptrs,
            envp_ptrs: Vec::new(),
            moves,
        };
        plan.envp_ptrs = plan
            ._env
            .iter()
            .map(|e| e.as_ptr())
            .chain([plan.pid_entry.as_ptr().cast(), std::ptr::null()])
            .collect();
        Ok(plan)
    }

    /// In the child, between fork and exec: only async-signal-safe calls (setpgid, dup2,
    /// getpid, execve) and writes into memory allocated before the fork.
    fn exec(&mut self) -> std::io::Error {
        // Its own process group, so that a failure is stopped with everything it started.
        // Done in the child before exec, and spawn() returns only after the exec: no moment
        // when the old server could signal a group that does not exist yet.
        // SAFETY: setpgid is async-signal-safe; (0, 0) makes this process a group leader.
        if unsafe { libc::setpgid(0, 0) } < 0 {
            return std::io::Error::last_os_error();
        }
        for (source, target) in &self.moves {
            // SAFETY: dup2 is async-signal-safe; both descriptors are valid in the child
            // (the source was inherited, the target is a number we choose). The target
            // loses close-on-exec, so the new server inherits it.
            if unsafe { libc::dup2(source.as_raw_fd(), *target) } < 0 {
                return std::io::Error::last_os_error();
            }
        }
        // SAFETY: getpid is async-signal-safe and cannot fail.
        let pid = unsafe { libc::getpid() };
        write_decimal(&mut self.pid_entry[PID_PREFIX.len()..], pid.unsigned_abs());
        // SAFETY: execve is async-signal-safe; the path, argv and envp are NUL-terminated
        // strings in arrays ending with a null pointer, all owned by this plan. It returns
        // only on failure.
        unsafe {
            libc::execve(
                self.path.as_ptr(),
                self.argv_ptrs.as_ptr(),
                self.envp_ptrs.as_ptr(),
            );
        }
        std::io::Error::last_os_error()
    }
}

/// Writes `n` in decimal and a NUL into `buf` (at least 11 bytes), without allocating.
fn write_decimal(buf: &mut [u8], mut n: u32) {
    let mut digits = [0u8; 10];
    let mut len = 0;
    loop {
        digits[len] = b'0' + (n % 10) as u8;
        len += 1;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for i in 0..len {
        buf[i] = digits[len - 1 - i];
    }
    buf[len] = 0;
}

fn spawn(program: &std::path::Path, mut plan: ExecPlan) -> std::io::Result<Child> {
    let mut cmd = Command::new(program);
    // SAFETY: the closure runs in the child between fork and exec, and calls only
    // async-signal-safe functions (setpgid, dup2, getpid, execve) on memory prepared before the
    // fork (`ExecPlan::exec`); it never allocates. It returns only if execve failed, and
    // std then reports that error from spawn().
    unsafe {
        cmd.pre_exec(move || Err(plan.exec()));
    }
    cmd.spawn()
}

/// In a server started by a restart: the readiness pipe named by `GREET_READY_FD`, taken
/// and the variable removed. Call it before any thread starts.
pub fn take_ready_fd() -> Option<OwnedFd> {
    let value = std::env::var(READY_FD_VAR).ok();
    // No other thread exists yet, so nothing reads the environment meanwhile.
    std::env::remove_var(READY_FD_VAR);
    let fd: RawFd = value?.trim().parse().ok()?;
    if fd < FIRST_FD {
        return None;
    }
    // SAFETY: fcntl(F_GETFD) only reads the descriptor's flags; on a closed descriptor it
    // fails with EBADF and touches nothing.
    if unsafe { libc::fcntl(fd, libc::F_GETFD) } == -1 {
        log::warn!("{READY_FD_VAR}={fd} is not open; no readiness to report");
        return None;
    }
    // SAFETY: the descriptor is open, and was passed to this process for this use only (the
    // variable is removed, so it is taken once).
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // Not for the servers this one may start in turn.
    if let Err(e) = rustix_cloexec(&fd) {
        log::warn!("{READY_FD_VAR}: set close-on-exec: {e}");
    }
    Some(fd)
}

fn rustix_cloexec(fd: &OwnedFd) -> std::io::Result<()> {
    // SAFETY: F_SETFD on a descriptor we own.
    if unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Tells whoever started this server that it is ready: the restarting server through its
/// pipe, or else systemd (`Type=notify`) through `NOTIFY_SOCKET`. False only when the
/// restarting server could not be told (it gave up waiting and keeps serving).
pub fn notify_ready(pipe: Option<OwnedFd>) -> bool {
    match pipe {
        Some(fd) => {
            let mut file = std::fs::File::from(fd);
            if let Err(e) = std::io::Write::write_all(&mut file, b"READY=1\n") {
                log::warn!("tell the old server we are ready: {e}");
                return false;
            }
        }
        None => {
            if let Err(e) = sd_notify("READY=1") {
                log::warn!("tell systemd we are ready: {e:#}");
            }
        }
    }
    true
}

/// Sends `message` to the service manager's `NOTIFY_SOCKET` (`sd_notify(3)`); nothing
/// when the variable is not set.
pub fn sd_notify(message: &str) -> Result<()> {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return Ok(());
    };
    let socket = std::os::unix::net::UnixDatagram::unbound().context("create a datagram socket")?;
    let bytes = path.as_bytes();
    let sent = if let Some(name) = bytes.strip_prefix(b"@") {
        use std::os::linux::net::SocketAddrExt;
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)
            .with_context(|| format!("NOTIFY_SOCKET={}", path.to_string_lossy()))?;
        socket.send_to_addr(message.as_bytes(), &addr)
    } else {
        socket.send_to(message.as_bytes(), &path)
    };
    sent.map(drop)
        .with_context(|| format!("NOTIFY_SOCKET={}", path.to_string_lossy()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pids_are_written_in_decimal_with_a_nul() {
        for (n, want) in [
            (0u32, "0"),
            (7, "7"),
            (4242, "4242"),
            (u32::MAX, "4294967295"),
        ] {
            let mut buf = [b'x'; 11];
            write_decimal(&mut buf, n);
            let end = buf.iter().position(|&b| b == 0).unwrap();
            assert_eq!(&buf[..end], want.as_bytes());
        }
    }

    #[test]
    fn readiness_is_a_line_and_a_closed_pipe_is_a_failure() {
        let (r, w) = pipe().unwrap();
        std::io::Write::write_all(&mut std::fs::File::from(w), b"STATUS=x\nREADY=1\n").unwrap();
        assert!(wait_ready(r, Instant::now() + Duration::from_secs(30)).is_ok());

        let (r, w) = pipe().unwrap();
        drop(w);
        assert!(matches!(
            wait_ready(r, Instant::now() + Duration::from_secs(30)),
            Err(Wait::Closed)
        ));

        let (r, _w) = pipe().unwrap();
        assert!(matches!(
            wait_ready(r, Instant::now() + Duration::from_millis(50)),
            Err(Wait::Timeout)
        ));
    }

    #[test]
    fn sd_notify_sends_one_datagram() {
        use std::os::linux::net::SocketAddrExt;
        // An abstract socket (`@name`, as systemd may give): no file to clean up.
        let name = format!("greet-server-test-notify-{}", std::process::id());
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(&name).unwrap();
        let listener = std::os::unix::net::UnixDatagram::bind_addr(&addr).unwrap();
        // The variable is read here only; tests in this crate do not otherwise use it.
        std::env::set_var("NOTIFY_SOCKET", format!("@{name}"));
        let sent = sd_notify("READY=1");
        std::env::remove_var("NOTIFY_SOCKET");
        sent.unwrap();
        let mut buf = [0u8; 64];
        let n = listener.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1");
    }
}
