//! Operating the server: a stdout nobody reads never stalls service,
//! every transport in one process, SIGHUP restarts that lose nothing, counters while it
//! runs.

use std::io::Read;
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::process::{ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use e2e::{bench_report, bin, client, read_all, temp_dir, Process, Server, Stderr, PATIENCE};

const GREETING: &[u8] = b"Thank you for connecting";

/// The first number after `label ` in a summary line.
fn count(summary: &str, label: &str) -> u64 {
    summary
        .split(&format!("{label} "))
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no {label:?} in {summary:?}"))
}

fn is_summary(line: &str) -> bool {
    line.starts_with("greet-server: accepted ")
}

pub(crate) fn signal(pid: u32, signal: i32) {
    let pid = libc::pid_t::try_from(pid).expect("pid fits pid_t");
    // SAFETY: kill(2) on a server this test started (directly or through a restart) and
    // that has not exited yet: the test waits for its summary before it lets it go.
    let rc = unsafe { libc::kill(pid, signal) };
    assert_eq!(rc, 0, "kill: {}", std::io::Error::last_os_error());
}

/// A server whose stdout and stderr the test reads line by line while it runs, across
/// restarts (the new servers share both pipes).
pub(crate) struct Watched {
    /// The first server, through the shared harness: killed and reaped on drop.
    pub(crate) first: Process,
    /// stderr lines read so far that were not waited for.
    seen: Vec<String>,
}

impl Watched {
    pub(crate) fn start(args: &[&str], env: &[(&str, &str)]) -> Watched {
        let mut cmd = Command::new(bin("greet-server"));
        cmd.args(args).envs(env.iter().copied());
        let first =
            Process::spawn("greet-server", cmd, Stderr::Piped).unwrap_or_else(|e| panic!("{e}"));
        Watched {
            first,
            seen: Vec::new(),
        }
    }

    pub(crate) fn next_stdout(&self) -> String {
        self.first
            .next_line(PATIENCE)
            .expect("a line on the server's stdout")
    }

    /// The next stderr line that satisfies `want`, within [`PATIENCE`]; the others are kept.
    pub(crate) fn stderr_line(&mut self, what: &str, want: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.first.next_stderr_line(left) {
                Some(line) if want(&line) => return line,
                Some(line) => self.seen.push(line),
                None => panic!("no line: {what}; saw {:#?}", self.seen),
            }
        }
    }

    /// SIGHUP to `pid`, then the new server's pid from the old one's stderr line.
    pub(crate) fn restart(&mut self, pid: u32) -> u32 {
        signal(pid, libc::SIGHUP);
        let line = self.stderr_line("restart: pid N is ready", |l| {
            l.contains("restart: pid ") || l.contains("restart failed")
        });
        assert!(!line.contains("failed"), "{line}");
        let (_, rest) = line.split_once("restart: pid ").expect("pid");
        rest.split(' ').next().unwrap().parse().expect("a pid")
    }

    /// After SIGTERM to the last server: every stderr line up to EOF (all servers exited;
    /// the harness reads until then, within [`PATIENCE`]).
    pub(crate) fn rest_of_stderr(mut self) -> Vec<String> {
        let (_, rest) = self.first.wait().expect("wait for the first server");
        self.seen.extend(rest.lines().map(str::to_string));
        self.seen
    }
}

/// The port in a readiness line.
fn port_of(line: &str) -> u16 {
    e2e::port_of(line).unwrap_or_else(|| panic!("no port in {line:?}"))
}

/// Reads one line from a pipe byte by byte, so that nothing after it is read.
fn first_line(stdout: &mut ChildStdout) -> String {
    let mut line = Vec::new();
    let mut byte = [0u8];
    while stdout.read(&mut byte).expect("read stdout") == 1 && byte[0] != b'\n' {
        line.push(byte[0]);
    }
    String::from_utf8(line).expect("UTF-8 readiness line")
}

#[test]
fn a_stdout_nobody_reads_never_stalls_service_and_the_counts_add_up() {
    let mut server = Command::new(bin("greet-server"))
        .args(["--host", "127.0.0.1", "--port", "0", "--threads", "2"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn greet-server");
    let mut stdout = server.stdout.take().expect("piped stdout");
    let ready = first_line(&mut stdout);
    assert!(ready.starts_with("Listening on ('127.0.0.1', "), "{ready}");
    // From here on nobody reads stdout until the server has exited: the pipe (64 KiB) fills
    // after about 1,500 lines, and before the log writer it stalled every loop.
    let out = client(&[
        "bench",
        "--json",
        "--port",
        &port_of(&ready).to_string(),
        "-n",
        "20000",
        "-c",
        "64",
        "--timeout",
        "10s",
        "--duration",
        "120s",
    ]);
    let report = bench_report(&out);
    assert_eq!(report.ok, 20000, "{report:?}");
    assert_eq!(report.errors.total, 0, "{report:?}");

    let signalled = Instant::now();
    signal(server.id(), libc::SIGTERM);
    let status = server.wait().expect("wait for greet-server");
    let took = signalled.elapsed();
    assert!(status.success(), "{status}");
    assert!(
        took < Duration::from_secs(10),
        "SIGTERM took {took:?} with a stuck stdout"
    );
    let mut stderr = String::new();
    server
        .stderr
        .take()
        .expect("piped stderr")
        .read_to_string(&mut stderr)
        .expect("read stderr");
    let summary = stderr.lines().find(|l| is_summary(l)).expect("a summary");
    assert_eq!(count(summary, "greeted"), 20000, "{summary}");
    let logged = count(summary, "logged");
    let dropped = count(summary, "log lines dropped");
    assert_eq!(logged + dropped, 20000, "{summary}");
    assert!(
        dropped > 0,
        "a pipe nobody reads cannot take 20,000 lines: {summary}"
    );

    // The server is gone: what the pipe holds is exactly what was counted as logged, whole
    // lines only.
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).expect("read stdout");
    assert!(rest.is_empty() || rest.ends_with('\n'), "a partial line");
    let lines: Vec<&str> = rest.lines().collect();
    assert_eq!(lines.len() as u64, logged, "{summary}");
    assert!(
        lines
            .iter()
            .all(|l| l.starts_with("Got connection from ('127.0.0.1', ")),
        "a malformed line"
    );
}

#[test]
fn one_server_serves_tcp_udp_and_unix_on_one_port_number() {
    let dir = temp_dir("all-transports");
    let path = dir.join("greet.sock");
    let shown = path.to_str().unwrap();
    let server = Server::start(&[
        "--tcp",
        "--udp",
        "--unix",
        shown,
        "--host",
        "127.0.0.1",
        "--port",
        "0",
    ]);
    let tcp = server.ready().to_string();
    let udp = server.next_line().expect("a second readiness line");
    let unix = server.next_line().expect("a third readiness line");
    let port = server.port();
    assert_eq!(tcp, format!("Listening on ('127.0.0.1', {port}) tcp"));
    // --port 0: UDP binds the port TCP got.
    assert_eq!(udp, format!("Listening on ('127.0.0.1', {port}) udp"));
    assert_eq!(unix, format!("Listening on '{shown}' unix"));

    let port = port.to_string();
    for args in [
        vec!["--host", "127.0.0.1", "--port", &port],
        vec!["--udp", "--host", "127.0.0.1", "--port", &port],
        vec!["--unix", shown],
    ] {
        let out = client(&args);
        assert!(out.status.success(), "{args:?}: {out:?}");
        assert_eq!(out.stdout, [GREETING, b"\n"].concat(), "{args:?}");
    }
    let (status, stderr) = server.terminate();
    assert!(status.success(), "{stderr}");
    assert!(
        stderr.contains("accepted 2, greeted 2, errors 0, datagrams 1,"),
        "{stderr}"
    );
    assert!(!path.exists(), "the socket file is removed at exit");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_named_port_serves_tcp_and_udp_on_that_number() {
    // A port free for both transports right now (the test binds then releases it).
    let port = loop {
        let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = tcp.local_addr().unwrap().port();
        if std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            break port.to_string();
        }
    };
    let server = Server::start(&["--udp", "--tcp", "--host", "127.0.0.1", "--port", &port]);
    assert_eq!(
        server.ready(),
        format!("Listening on ('127.0.0.1', {port}) tcp")
    );
    assert_eq!(
        server.next_line().as_deref(),
        Some(format!("Listening on ('127.0.0.1', {port}) udp").as_str())
    );
    let out = client(&["--udp", "--host", "127.0.0.1", "--port", &port]);
    assert!(out.status.success(), "{out:?}");
    let stream = TcpStream::connect(server.addr()).unwrap();
    assert_eq!(read_all(stream).unwrap(), GREETING);
}

#[test]
fn ten_restarts_under_load_lose_no_client() {
    let dir = temp_dir("restart");
    let path = dir.join("greet.sock");
    let shown = path.to_str().unwrap();
    let mut servers = Watched::start(
        &[
            "--tcp",
            "--unix",
            shown,
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--threads",
            "2",
        ],
        &[],
    );
    let ready = servers.next_stdout();
    let port = port_of(&ready).to_string();
    assert_eq!(
        servers.next_stdout(),
        format!("Listening on '{shown}' unix")
    );

    const N: u64 = 30_000;
    const STEP: u64 = 2_000;
    let bench = Command::new(bin("greet-client"))
        .args(["bench", "--json", "--port", &port, "-c", "64"])
        .args([
            "-n",
            &N.to_string(),
            "--timeout",
            "20s",
            "--duration",
            "300s",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start greet-client bench");
    let mut bench = Some(bench);

    let mut pid = servers.first.pid();
    let mut logged = 0u64;
    for restart in 1..=10 {
        // Restart every STEP greetings, so every restart happens under load.
        while logged < restart * STEP {
            let line = servers.next_stdout();
            if line.starts_with("Got connection from ") {
                logged += 1;
            }
        }
        pid = servers.restart(pid);
        let still_running = bench
            .as_mut()
            .map(|b| b.try_wait().expect("try_wait").is_none());
        assert_eq!(
            still_running,
            Some(true),
            "bench finished before restart {restart}: raise N"
        );
    }
    // The socket file survived ten hand-overs and is served.
    let out = client(&["--unix", shown]);
    assert!(out.status.success(), "{out:?}");

    // Keep reading stdout so that the logs never fill the pipe (not that it would matter).
    let stdout = servers.first.take_stdout();
    std::thread::spawn(move || while stdout.recv().is_ok() {});
    let out = bench
        .take()
        .unwrap()
        .wait_with_output()
        .expect("bench output");
    let report = bench_report(&out);
    let errors = report.errors;
    assert_eq!(report.ok, N, "{report:?}");
    assert_eq!(errors.refused, 0, "{report:?}");
    assert_eq!(errors.reset, 0, "{report:?}");
    assert_eq!(errors.wrong_payload, 0, "a truncated greeting: {report:?}");
    assert_eq!(errors.total, 0, "{report:?}");
    assert_eq!(report.not_started, 0, "{report:?}");

    signal(pid, libc::SIGTERM);
    let stderr = servers.rest_of_stderr();
    let summaries: Vec<&String> = stderr.iter().filter(|l| is_summary(l)).collect();
    assert_eq!(summaries.len(), 11, "one summary per server: {stderr:#?}");
    let accepted: u64 = summaries.iter().map(|s| count(s, "accepted")).sum();
    let greeted: u64 = summaries.iter().map(|s| count(s, "greeted")).sum();
    let errors: u64 = summaries.iter().map(|s| count(s, "errors")).sum();
    // Every bench connection, and the one Unix client.
    assert_eq!(accepted, N + 1, "{summaries:#?}");
    assert_eq!(greeted, N + 1, "{summaries:#?}");
    assert_eq!(errors, 0, "{summaries:#?}");
    assert!(!path.exists(), "the last server removes the socket file");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_new_server_that_fails_leaves_the_old_one_serving() {
    let dir = temp_dir("restart-fails");
    let hangs = dir.join("hangs.sh");
    std::fs::write(&hangs, "#!/bin/sh\nexec sleep 60\n").unwrap();
    std::fs::set_permissions(&hangs, std::fs::Permissions::from_mode(0o755)).unwrap();
    let cases = [
        ("/bin/false", "exited (exit status: 1) before it was ready"),
        ("/no/such/greet-server", "start /no/such/greet-server: "),
        (
            hangs.to_str().unwrap(),
            "was not ready within 300ms (--restart-timeout); stopped it",
        ),
    ];
    for (binary, why) in cases {
        let mut server = Watched::start(
            &[
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--upgrade-binary",
                binary,
                "--restart-timeout",
                "300ms",
            ],
            &[],
        );
        let ready = server.next_stdout();
        signal(server.first.pid(), libc::SIGHUP);
        let line = server.stderr_line("restart failed", |l| l.contains("restart"));
        assert!(
            line.starts_with("greet-server: restart failed: ")
                && line.contains(why)
                && line.ends_with("; still serving"),
            "{binary}: {line}"
        );
        // The old server still serves, and can still be restarted.
        let stream = TcpStream::connect(("127.0.0.1", port_of(&ready))).unwrap();
        assert_eq!(read_all(stream).unwrap(), GREETING, "{binary}");
        signal(server.first.pid(), libc::SIGTERM);
        let stderr = server.rest_of_stderr();
        let summary = stderr.iter().find(|l| is_summary(l)).expect("a summary");
        assert!(summary.contains("accepted 1, greeted 1"), "{summary}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn under_systemd_the_restart_names_the_new_main_process() {
    let dir = temp_dir("notify");
    let notify = dir.join("notify");
    let systemd = std::os::unix::net::UnixDatagram::bind(&notify).unwrap();
    systemd.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut server = Watched::start(
        &["--host", "127.0.0.1", "--port", "0", "--quiet"],
        &[("NOTIFY_SOCKET", notify.to_str().unwrap())],
    );
    let mut buf = [0u8; 256];
    let n = systemd.recv(&mut buf).expect("READY=1 at start");
    assert_eq!(&buf[..n], b"READY=1");
    let _ = server.next_stdout();
    let new = server.restart(server.first.pid());
    let n = systemd.recv(&mut buf).expect("the restart's notification");
    assert_eq!(
        String::from_utf8_lossy(&buf[..n]),
        format!("MAINPID={new}\nREADY=1")
    );
    signal(new, libc::SIGTERM);
    let stderr = server.rest_of_stderr();
    assert_eq!(
        stderr.iter().filter(|l| is_summary(l)).count(),
        2,
        "{stderr:#?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn sigusr1_prints_the_counts_and_the_server_goes_on() {
    let mut server = Watched::start(
        &["--host", "127.0.0.1", "--port", "0", "--threads", "2"],
        &[],
    );
    let addr = ("127.0.0.1", port_of(&server.next_stdout()));
    for _ in 0..3 {
        assert_eq!(
            read_all(TcpStream::connect(addr).unwrap()).unwrap(),
            GREETING
        );
    }
    for _ in 0..3 {
        assert!(server.next_stdout().starts_with("Got connection from "));
    }
    signal(server.first.pid(), libc::SIGUSR1);
    let line = server.stderr_line("a summary on SIGUSR1", is_summary);
    // Greeted is published before the lines go to the log writer, so it is exact once the
    // lines were read; the writer counts a line as logged only after write(2) returned,
    // which may be just after the test read it.
    assert!(
        line.starts_with(
            "greet-server: accepted 3, greeted 3, errors 0, datagrams 0, rate-limited 0, logged "
        ) && line.ends_with(", log lines dropped 0"),
        "{line}"
    );
    assert!(count(&line, "logged") <= 3, "{line}");
    // Still serving.
    assert_eq!(
        read_all(TcpStream::connect(addr).unwrap()).unwrap(),
        GREETING
    );
    signal(server.first.pid(), libc::SIGTERM);
    let stderr = server.rest_of_stderr();
    let last = stderr
        .iter()
        .rfind(|l| is_summary(l))
        .expect("a final summary");
    assert!(
        last.starts_with("greet-server: accepted 4, greeted 4,"),
        "{last}"
    );
}

#[test]
fn stats_interval_prints_the_counts_while_running() {
    let mut server = Watched::start(
        &[
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--quiet",
            "--stats-interval",
            "100ms",
        ],
        &[],
    );
    let addr = ("127.0.0.1", port_of(&server.next_stdout()));
    assert_eq!(
        read_all(TcpStream::connect(addr).unwrap()).unwrap(),
        GREETING
    );
    // Two reports without any signal, the second (at least) after the greeting.
    server.stderr_line("a first periodic summary", is_summary);
    let line = server.stderr_line("a summary counting the greeting", |l| {
        is_summary(l) && l.contains("accepted 1, greeted 1")
    });
    assert!(!line.contains("logged"), "--quiet logs nothing: {line}");
    signal(server.first.pid(), libc::SIGTERM);
    server.rest_of_stderr();
}
