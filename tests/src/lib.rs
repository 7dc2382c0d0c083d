//! Helpers for the end-to-end tests: find the real binaries, start a server on an ephemeral
//! port and read its readiness line (never a fixed sleep), make unique temporary folders.

use std::os::fd::FromRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

pub use bench_report::{BenchReport, Mode};
pub use proc_harness::{lines, port_of, supervise, Process, Stderr, PATIENCE};

/// The path of a workspace binary (`greet-server`, `greet-client`), built once per test
/// process with the same cargo that runs the tests.
pub fn bin(name: &str) -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    let dir = BUILT.get_or_init(|| {
        let status = Command::new(env!("CARGO"))
            .args([
                "build",
                "--quiet",
                "-p",
                "greet-server",
                "-p",
                "greet-client",
            ])
            .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(".."))
            .status()
            .expect("run cargo build");
        assert!(status.success(), "cargo build of the binaries failed");
        // target/debug/deps/e2e-<hash> -> target/debug
        let exe = std::env::current_exe().expect("current_exe");
        exe.parent()
            .and_then(Path::parent)
            .expect("test binary lives in target/<profile>/deps")
            .to_path_buf()
    });
    dir.join(name)
}

/// A `greet-server` running in the background (a [`Process`] of the shared harness);
/// killed and reaped on drop.
#[derive(Debug)]
pub struct Server(Process);

impl Server {
    /// Starts `greet-server ARGS` and waits for its readiness line.
    pub fn start(args: &[&str]) -> Server {
        let mut cmd = Command::new(bin("greet-server"));
        cmd.args(args);
        Server::spawn(cmd, args)
    }

    /// Starts `greet-server --host 127.0.0.1 --port 0 EXTRA`: the local server on an
    /// ephemeral port most tests want.
    pub fn local(extra: &[&str]) -> Server {
        Server::start(&[&["--host", "127.0.0.1", "--port", "0"], extra].concat())
    }

    /// Starts `greet-server ARGS` with at most `nofile` open descriptors (`RLIMIT_NOFILE`).
    pub fn start_with_fd_limit(args: &[&str], nofile: u64) -> Server {
        use std::os::unix::process::CommandExt;
        let mut cmd = Command::new(bin("greet-server"));
        cmd.args(args);
        // SAFETY: the closure runs in the child between fork and exec and calls only
        // setrlimit, which is async-signal-safe.
        unsafe {
            cmd.pre_exec(move || {
                let limit = libc::rlimit {
                    rlim_cur: nofile,
                    rlim_max: nofile,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        Server::spawn(cmd, args)
    }

    fn spawn(cmd: Command, args: &[&str]) -> Server {
        match Process::start("greet-server", cmd) {
            Ok(process) => Server(process),
            Err(e) => panic!("greet-server {args:?} did not start: {e}"),
        }
    }

    /// The readiness line, e.g. `Listening on ('127.0.0.1', 41765) tcp`.
    pub fn ready(&self) -> &str {
        self.0.ready()
    }

    /// The port from the readiness line.
    pub fn port(&self) -> u16 {
        self.0
            .port()
            .unwrap_or_else(|| panic!("no port in the readiness line {:?}", self.ready()))
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> std::net::SocketAddr {
        ([127, 0, 0, 1], self.port()).into()
    }

    /// The next stdout line, or `None` after [`PATIENCE`].
    pub fn next_line(&self) -> Option<String> {
        self.0.next_line(PATIENCE)
    }

    /// The next stderr line, or `None` after `timeout` (or at its end).
    pub fn next_stderr_line(&self, timeout: Duration) -> Option<String> {
        self.0.next_stderr_line(timeout)
    }

    /// The server's on-CPU time so far, summed over its threads (`schedstat`).
    pub fn cpu_time(&self) -> Duration {
        self.0.cpu_time()
    }

    /// How many descriptors the server has open.
    pub fn open_fds(&self) -> usize {
        self.0.open_fds()
    }

    /// A field of `/proc/PID/status` in kB (`VmRSS:`, `VmHWM:`).
    pub fn status_kb(&self, field: &str) -> u64 {
        self.0.status_kb(field)
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.0.pid()
    }

    /// Sends `signal` to the server.
    pub fn signal(&self, signal: i32) {
        if let Err(e) = self.0.signal(signal) {
            panic!(
                "{e}: {}",
                std::error::Error::source(&e).map_or(String::new(), ToString::to_string)
            );
        }
    }

    /// SIGTERM, then the exit status and the rest of stderr.
    pub fn terminate(self) -> (ExitStatus, String) {
        self.signal(libc::SIGTERM);
        self.terminate_after_signal()
    }

    /// Waits for a server already signalled to exit; its status and the rest of stderr.
    pub fn terminate_after_signal(self) -> (ExitStatus, String) {
        self.0.wait().expect("wait for greet-server")
    }
}

/// Runs `greet-client ARGS` to completion.
pub fn client(args: &[&str]) -> Output {
    Command::new(bin("greet-client"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run greet-client")
}

/// Runs `greet-client ARGS` to completion with its stdout and stderr sent to `stdout` and
/// `stderr` (what goes there is not in the returned [`Output`]).
pub fn client_with_stdio(args: &[&str], stdout: Stdio, stderr: Stdio) -> Output {
    Command::new(bin("greet-client"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .output()
        .expect("run greet-client")
}

/// `/dev/full` for writing: every write fails with `ENOSPC`, as on a full disk.
pub fn dev_full() -> Stdio {
    std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .expect("open /dev/full")
        .into()
}

/// The write end of a pipe whose read end is already closed: every write fails with
/// `EPIPE`, as for `| head` once head has exited.
pub fn closed_pipe() -> Stdio {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills the two-element array it is given.
    let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    assert_eq!(rc, 0, "pipe2: {}", std::io::Error::last_os_error());
    // SAFETY: both descriptors were just created by pipe2 and are owned by nothing else.
    let (read, write) = unsafe {
        (
            std::os::fd::OwnedFd::from_raw_fd(fds[0]),
            std::os::fd::OwnedFd::from_raw_fd(fds[1]),
        )
    };
    drop(read);
    write.into()
}

/// A TCP peer on `127.0.0.1:0` on std threads that hands each of its first `connections`
/// accepted streams to `serve` (on a thread of its own), then stops accepting. Returns its
/// port. `serve` must bound its own time.
pub fn serve_each(connections: usize, serve: fn(std::net::TcpStream)) -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let port = listener.local_addr().expect("local_addr").port();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(connections) {
            let Ok(stream) = stream else { continue };
            std::thread::spawn(move || serve(stream));
        }
    });
    port
}

/// The report `greet-client bench --json` printed, typed; panics with the output when it
/// printed none.
pub fn bench_report(out: &Output) -> BenchReport {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("no bench JSON ({e}): {out:?}"))
}

/// Runs `greet-client --host 127.0.0.1 --port PORT EXTRA` to completion: the client of a
/// [`Server::local`].
pub fn local_client(port: impl std::fmt::Display, extra: &[&str]) -> Output {
    let port = port.to_string();
    client(&[&["--host", "127.0.0.1", "--port", &port], extra].concat())
}

/// Runs `greet-server ARGS` expecting it to exit by itself (a startup error).
pub fn server_output(args: &[&str]) -> Output {
    Command::new(bin("greet-server"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run greet-server")
}

/// A new empty folder for one test, unique across parallel tests and processes.
pub fn temp_dir(name: &str) -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("e2e-{}-{n}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create temp dir");
    dir
}

/// Reads a stream to EOF, within [`PATIENCE`].
pub fn read_all(mut stream: std::net::TcpStream) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    stream.set_read_timeout(Some(PATIENCE))?;
    let mut got = Vec::new();
    stream.read_to_end(&mut got)?;
    Ok(got)
}

/// `SO_LINGER {on, 0}`: closing the stream then sends a reset instead of a FIN.
pub fn set_linger_zero(stream: &std::net::TcpStream) {
    let fd = std::os::unix::io::AsRawFd::as_raw_fd(stream);
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: setsockopt on a socket we own, with a correctly sized linger struct.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            std::ptr::addr_of!(linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "SO_LINGER: {}", std::io::Error::last_os_error());
}

/// An installed tool's path, or `None` (after saying why) when it is missing and the test
/// may be skipped. Under CI (`CI` set) a missing tool is a failure: `.ci/run` installs
/// `package`.
pub fn tool(name: &str, package: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let found = std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/bin", "/sbin", "/bin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| p.is_file());
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "{name} is not installed, and CI must run this test (.ci/run installs package {package})"
        );
        eprintln!("SKIPPED: {name} is not installed (Debian package {package}); not testing it");
    }
    found
}

/// Polls `cond` until it holds; panics naming `what` after [`PATIENCE`]. For conditions a
/// server shows only from outside (descriptors, refused connects), not for its readiness,
/// which its readiness line tells.
pub fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + PATIENCE;
    while !cond() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        std::thread::yield_now();
    }
}

/// `GET path` over HTTP/1.1 to `addr`, read until the server closes (within [`PATIENCE`]):
/// the status and the body.
pub fn http_get(addr: std::net::SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect_timeout(&addr, PATIENCE)?;
    stream.set_read_timeout(Some(PATIENCE))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut reply = Vec::new();
    stream.read_to_end(&mut reply)?;
    let reply = String::from_utf8_lossy(&reply).into_owned();
    let (head, body) = reply.split_once("\r\n\r\n").unwrap_or((&reply, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("not an HTTP reply: {head:?}")))?;
    // Chunked bodies (Prometheus's API may send them) are joined.
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_string()
    };
    Ok((status, body))
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if size == 0 || rest.len() < size {
            break;
        }
        out.push_str(&rest[..size]);
        body = rest[size..].trim_start_matches("\r\n");
    }
    out
}

/// A free TCP port on 127.0.0.1 as of now (bound, then released): for a tool that cannot
/// be told to take port 0. Whoever uses it must retry on a clash.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind 127.0.0.1:0")
}

/// HAProxy started by [`haproxy`]; stopped on drop. SIGTERM, so that the master stops and
/// reaps its worker (killed, it would leave the worker to init), SIGKILL if it outlasts
/// [`PATIENCE`].
#[derive(Debug)]
pub struct HaProxy(std::process::Child);

impl Drop for HaProxy {
    fn drop(&mut self) {
        use proc_harness::supervise::{stop, Target};
        let _ = stop(&mut self.0, Target::Process, libc::SIGTERM, PATIENCE);
    }
}

/// Starts the `haproxy` binary on `config` in master-worker mode (`-Ws`) and waits until it
/// says it is ready, `READY=1` on a notify socket as systemd would get it: by then every
/// frontend is bound. Its log is `haproxy.log` beside `config`. `Err` with that log when it
/// exited first (a port taken since it was chosen says `cannot bind`).
pub fn haproxy(binary: &Path, config: &Path) -> Result<HaProxy, String> {
    let dir = config.parent().expect("the config's folder");
    let notify_path = dir.join("notify.sock");
    let _ = std::fs::remove_file(&notify_path);
    let notify = std::os::unix::net::UnixDatagram::bind(&notify_path).expect("notify socket");
    // The wait for a message is also how often it looks whether HAProxy exited.
    notify
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let log_path = dir.join("haproxy.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let child = Command::new(binary)
        .arg("-Ws")
        .arg("-f")
        .arg(config)
        .env("NOTIFY_SOCKET", &notify_path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawn haproxy");
    let mut proxy = HaProxy(child);
    let deadline = std::time::Instant::now() + PATIENCE;
    let mut message = [0u8; 512];
    loop {
        if let Ok(n) = notify.recv(&mut message) {
            // `RELOADING=1` comes first, then `READY=1` with the master's pid.
            if message[..n].split(|&b| b == b'\n').any(|l| l == b"READY=1") {
                return Ok(proxy);
            }
        }
        if let Some(status) = proxy.0.try_wait().unwrap() {
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            return Err(format!("haproxy exited ({status}): {log}"));
        }
        assert!(
            std::time::Instant::now() < deadline,
            "haproxy never said READY=1: {}",
            std::fs::read_to_string(&log_path).unwrap_or_default()
        );
    }
}
