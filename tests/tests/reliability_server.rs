//! greet-server's promises about what it shares with other processes: the Unix socket file
//! it removes at exit, the listening sockets a failed restart handed to a child, the port
//! another server already serves, a stderr that cannot be written, and which listeners
//! `--proxy-protocol` applies to.

use std::io::Read;
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Instant;

use crate::operations::{signal, Watched};
use e2e::{bin, client, read_all, supervise, temp_dir, Process, Server, Stderr, PATIENCE};

const GREETING: &[u8] = b"Thank you for connecting";

fn greeting_over_unix(path: &Path) -> Vec<u8> {
    let mut stream = UnixStream::connect(path).expect("connect to the Unix socket");
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut got = Vec::new();
    stream.read_to_end(&mut got).expect("read the greeting");
    got
}

// Defect 4: the socket file removed at exit.

#[test]
fn exit_leaves_a_unix_path_that_is_no_longer_its_socket() {
    let dir = temp_dir("unix-replaced");
    let path = dir.join("greet.sock");
    let shown = path.to_str().unwrap();

    // A regular file put in the socket's place.
    let server = Server::start(&["--unix", shown]);
    std::fs::remove_file(&path).unwrap();
    std::fs::write(&path, b"not the server's").unwrap();
    let (status, stderr) = server.terminate();
    assert!(status.success(), "{stderr}");
    assert_eq!(
        std::fs::read(&path).expect("the file that replaced the socket is still there"),
        b"not the server's"
    );
    std::fs::remove_file(&path).unwrap();

    // Another server's socket, bound after the first one's file was removed.
    let first = Server::start(&["--unix", shown]);
    std::fs::remove_file(&path).unwrap();
    let second = Server::start(&["--unix", shown]);
    let (status, stderr) = first.terminate();
    assert!(status.success(), "{stderr}");
    assert_eq!(
        greeting_over_unix(&path),
        GREETING,
        "the second server is still reachable"
    );
    // The second one's own file is still its own: removed at its exit.
    let (status, stderr) = second.terminate();
    assert!(status.success(), "{stderr}");
    assert!(!path.exists(), "the server removes its own socket file");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_restarted_server_leaves_a_unix_path_that_is_no_longer_its_socket() {
    let dir = temp_dir("unix-replaced-restart");
    let path = dir.join("greet.sock");
    let shown = path.to_str().unwrap();
    let mut servers = Watched::start(&["--unix", shown], &[]);
    assert_eq!(
        servers.next_stdout(),
        format!("Listening on '{shown}' unix")
    );
    signal(servers.first.pid(), libc::SIGHUP);
    let line = servers.stderr_line("restart: pid N is ready", |l| l.contains("restart"));
    let new: u32 = line
        .split_once("restart: pid ")
        .and_then(|(_, rest)| rest.split(' ').next())
        .and_then(|pid| pid.parse().ok())
        .unwrap_or_else(|| panic!("no new pid in {line:?}"));
    assert_eq!(
        servers.next_stdout(),
        format!("Listening on '{shown}' unix")
    );
    assert_eq!(greeting_over_unix(&path), GREETING);

    // The new server owns the handed socket's file, but only while it is that socket.
    std::fs::remove_file(&path).unwrap();
    std::fs::write(&path, b"not the server's").unwrap();
    signal(new, libc::SIGTERM);
    let stderr = servers.rest_of_stderr();
    assert_eq!(
        stderr
            .iter()
            .filter(|l| l.starts_with("greet-server: accepted "))
            .count(),
        2,
        "{stderr:#?}"
    );
    assert_eq!(
        std::fs::read(&path).expect("the file that replaced the socket is still there"),
        b"not the server's"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

// Defect 5: a failed restart's grandchildren.

/// A process the test must not leave behind: killed on drop if it still runs, recognised by
/// its command line so that a recycled pid is never hit.
struct Survivor {
    pid: Option<libc::pid_t>,
}

impl Survivor {
    fn from_file(path: &Path) -> Survivor {
        let pid = std::fs::read_to_string(path)
            .ok()
            .and_then(|text| text.trim().parse().ok());
        Survivor { pid }
    }

    /// Whether the process is alive (not gone, not a zombie) and still `sleep`.
    fn alive(&self) -> bool {
        let Some(pid) = self.pid else { return false };
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let state = stat.rsplit_once(") ").map(|(_, rest)| rest.chars().next());
        cmdline.starts_with(b"sleep") && state != Some(Some('Z'))
    }
}

impl Drop for Survivor {
    fn drop(&mut self) {
        if let (true, Some(pid)) = (self.alive(), self.pid) {
            // SAFETY: kill(2) on the test's own `sleep`, checked by its command line above.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}

#[test]
fn a_failed_upgrade_leaves_no_process_holding_the_listening_sockets() {
    let dir = temp_dir("restart-orphan");
    let pid_file = dir.join("sleep.pid");
    let script = dir.join("never-ready.sh");
    // The shell does not exec its last command: `sleep` is a grandchild of the server, with
    // the listening sockets (and the readiness pipe) it inherited. Its output goes nowhere,
    // so that it holds none of the server's pipes either.
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nexec >/dev/null 2>&1\nsleep 40 &\necho $! > '{}'\nwait\n",
            pid_file.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut server = Watched::start(
        &[
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--threads",
            "2",
            "--upgrade-binary",
            script.to_str().unwrap(),
            "--restart-timeout",
            "1s",
        ],
        &[],
    );
    let ready = server.next_stdout();
    let port = e2e::port_of(&ready).unwrap_or_else(|| panic!("no port in {ready:?}"));
    signal(server.first.pid(), libc::SIGHUP);
    let line = server.stderr_line("restart failed", |l| l.contains("restart"));
    let survivor = Survivor::from_file(&pid_file);
    assert!(
        line.starts_with("greet-server: restart failed: ") && line.contains("not ready within"),
        "{line}"
    );
    assert!(survivor.pid.is_some(), "the script never started sleep");
    signal(server.first.pid(), libc::SIGTERM);
    let stderr = server.rest_of_stderr();
    assert!(
        stderr
            .iter()
            .any(|l| l.starts_with("greet-server: accepted ")),
        "{stderr:#?}"
    );

    // The server is gone, and so must be every process that inherited its listeners. One
    // that is dying is gone within moments; `sleep 40` would outlive this bound by far.
    let deadline = Instant::now() + std::time::Duration::from_secs(10);
    while survivor.alive() {
        assert!(
            Instant::now() < deadline,
            "the failed successor's sleep survived the server, with its listeners"
        );
        std::thread::yield_now();
    }
    // Nothing accepts on the port any more (a survivor's backlog would take the connect).
    let connected = TcpStream::connect(("127.0.0.1", port));
    assert!(
        matches!(&connected, Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused),
        "port {port} after the server exited: {connected:?}"
    );
    drop(survivor);
    let _ = std::fs::remove_dir_all(&dir);
}

// Defect 6: a port another server serves.

/// Starts `greet-server ARGS` expecting it to refuse to start: its status and stderr. A
/// server that starts anyway fails the test (and is killed).
fn refused(args: &[&str]) -> (ExitStatus, String) {
    let mut cmd = Command::new(bin("greet-server"));
    cmd.args(args);
    match Process::start("greet-server", cmd) {
        Ok(started) => panic!(
            "greet-server {args:?} started on a port another server serves: {}",
            started.ready()
        ),
        Err(proc_harness::Error::NotReady { status, stderr, .. }) => {
            (status.expect("an exit status"), stderr)
        }
        Err(other) => panic!("{other}"),
    }
}

#[test]
fn a_port_another_server_serves_is_in_use_for_tcp_and_udp() {
    for transport in ["--tcp", "--udp"] {
        let first = Server::local(&[transport, "--threads", "2"]);
        let port = first.port().to_string();
        let (status, stderr) = refused(&[
            transport,
            "--host",
            "127.0.0.1",
            "--port",
            &port,
            "--threads",
            "2",
        ]);
        assert_eq!(status.code(), Some(1), "{transport}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{transport}: {stderr}");
        assert!(
            stderr.contains(&format!("127.0.0.1:{port}")) && stderr.contains("in use"),
            "{transport}: {stderr}"
        );
        // The first server still serves, alone.
        if transport == "--tcp" {
            let stream = TcpStream::connect(first.addr()).unwrap();
            assert_eq!(read_all(stream).unwrap(), GREETING);
        } else {
            let out = client(&["--udp", "--host", "127.0.0.1", "--port", &port]);
            assert!(out.status.success(), "{out:?}");
        }
        let (status, stderr) = first.terminate();
        assert!(status.success(), "{stderr}");

        // Once it is gone the port is free again, TIME_WAIT of its greeted connection
        // notwithstanding (the server closes first).
        let again = Server::start(&[
            transport,
            "--host",
            "127.0.0.1",
            "--port",
            &port,
            "--threads",
            "2",
        ]);
        assert!(again.ready().contains(&port), "{}", again.ready());
        let (status, stderr) = again.terminate();
        assert!(status.success(), "{stderr}");
    }
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
    // Signal 0 sends nothing: only the bounded wait.
    let stopped = supervise::stop(child, supervise::Target::Process, 0, PATIENCE)
        .expect("wait for greet-server");
    assert!(!stopped.killed, "greet-server did not exit");
    stopped.status
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

// Defect 8: --proxy-protocol and Unix listeners.

#[test]
fn proxy_protocol_applies_to_tcp_and_unix_clients_are_greeted_directly() {
    let dir = temp_dir("proxy-unix");
    let path = dir.join("greet.sock");
    let shown = path.to_str().unwrap();
    let server = Server::local(&["--tcp", "--unix", shown, "--proxy-protocol"]);
    assert_eq!(
        server.next_line().as_deref(),
        Some(format!("Listening on '{shown}' unix").as_str())
    );
    assert_eq!(greeting_over_unix(&path), GREETING);
    let mut stream = TcpStream::connect(server.addr()).unwrap();
    std::io::Write::write_all(
        &mut stream,
        b"PROXY TCP4 192.0.2.7 127.0.0.1 4567 12345\r\n",
    )
    .unwrap();
    assert_eq!(read_all(stream).unwrap(), GREETING);
    let (status, stderr) = server.terminate();
    assert!(status.success(), "{stderr}");
    assert!(
        stderr.contains(
            "accepted 2, greeted 2, errors 0, datagrams 0, rate-limited 0, proxy errors 0"
        ),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn proxy_protocol_without_tcp_is_refused_on_the_command_line() {
    let out = e2e::server_output(&["--unix", "/nonexistent/greet.sock", "--proxy-protocol"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--proxy-protocol applies to TCP"),
        "{stderr}"
    );
}

#[test]
fn a_handed_unix_listener_under_proxy_protocol_greets_unix_clients_directly() {
    let Some(tool) = e2e::tool("systemd-socket-activate", "systemd") else {
        return;
    };
    let dir = temp_dir("proxy-unix-activation");
    let path = dir.join("greet.sock");
    let shown = path.to_str().unwrap();
    let mut cmd = Command::new(&tool);
    cmd.args(["-l", shown])
        .arg(bin("greet-server"))
        .arg("--proxy-protocol");
    let activator = Process::spawn("systemd-socket-activate", cmd, Stderr::Piped)
        .unwrap_or_else(|e| panic!("{e}"));
    wait_for_activator(&activator, shown);
    // Connecting starts greet-server, which serves the socket it was handed.
    assert_eq!(greeting_over_unix(&path), GREETING);
    assert_eq!(
        activator.next_line(PATIENCE).as_deref(),
        Some(format!("Listening on '{shown}' unix").as_str())
    );
    assert_eq!(greeting_over_unix(&path), GREETING);
    let (status, stderr) = activator.stop().expect("stop greet-server");
    assert!(status.success(), "{status}: {stderr}");
    assert!(
        stderr.contains(
            "accepted 2, greeted 2, errors 0, datagrams 0, rate-limited 0, proxy errors 0"
        ),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Waits for `systemd-socket-activate` to say it listens on `what` (on stderr).
fn wait_for_activator(activator: &Process, what: &str) {
    let deadline = Instant::now() + PATIENCE;
    let mut said = Vec::new();
    while let Some(line) =
        activator.next_stderr_line(deadline.saturating_duration_since(Instant::now()))
    {
        if line.starts_with("Listening on ") {
            return;
        }
        said.push(line);
    }
    panic!("systemd-socket-activate did not listen on {what}: {said:#?}");
}
