//! systemd socket activation end to end, with Debian's real `systemd-socket-activate`: it
//! binds the socket, waits for the first client, then execs `greet-server` with the socket
//! as descriptor 3 (`LISTEN_FDS=1`, `LISTEN_PID` = the same process). And the unit files
//! of `contrib/systemd/`, as `systemd-analyze verify` reads them and as the README shows
//! them.
//!
//! Without the tool these tests say so and pass, except under CI (`CI` set), where a missing
//! tool is a failure: `.ci/run` installs it.

use std::io::Read;
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use e2e::{bin, temp_dir, Process, Stderr, PATIENCE};

const GREETING: &[u8] = b"Thank you for connecting";

fn tool(name: &str) -> Option<PathBuf> {
    e2e::tool(name, "systemd")
}

/// A port free a moment ago; the caller retries if someone takes it first.
fn free_port() -> u16 {
    let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    probe.local_addr().unwrap().port()
}

/// `systemd-socket-activate` (later `greet-server`, the same process) in the background,
/// through the shared harness (killed and reaped on drop).
struct Activator(Process);

impl Activator {
    /// Starts `systemd-socket-activate [extra] -l LISTEN greet-server ARGS` and waits for it
    /// to say it listens (on stderr). `None` when the address was taken meanwhile.
    fn start(tool: &PathBuf, extra: &[&str], listen: &str, args: &[&str]) -> Option<Activator> {
        let mut cmd = Command::new(tool);
        cmd.args(extra)
            .args(["-l", listen])
            .arg(bin("greet-server"))
            .args(args);
        let process = Process::spawn("systemd-socket-activate", cmd, Stderr::Piped)
            .unwrap_or_else(|e| panic!("{e}"));
        let deadline = Instant::now() + PATIENCE;
        let mut said = String::new();
        while let Some(line) =
            process.next_stderr_line(deadline.saturating_duration_since(Instant::now()))
        {
            if line.starts_with("Listening on ") {
                return Some(Activator(process));
            }
            said.push_str(&line);
            said.push('\n');
        }
        process.kill();
        if said.contains("Address already in use") {
            return None;
        }
        panic!("systemd-socket-activate did not listen on {listen}: {said}");
    }

    /// Starts it on a free port of 127.0.0.1, retrying when another test took the port.
    fn start_on_free_port(tool: &PathBuf, extra: &[&str], args: &[&str]) -> (Activator, u16) {
        for _ in 0..10 {
            let port = free_port();
            if let Some(activator) =
                Activator::start(tool, extra, &format!("127.0.0.1:{port}"), args)
            {
                return (activator, port);
            }
        }
        panic!("no free port for systemd-socket-activate after 10 tries");
    }

    fn next_line(&self) -> Option<String> {
        self.0.next_line(PATIENCE)
    }

    /// SIGTERM, then the exit status and the rest of stderr.
    fn terminate(self) -> (std::process::ExitStatus, String) {
        self.0.stop().expect("stop systemd-socket-activate")
    }
}

fn greeting_over_tcp(addr: SocketAddr) -> (Vec<u8>, u16) {
    let mut stream = TcpStream::connect_timeout(&addr, PATIENCE).unwrap();
    let local = stream.local_addr().unwrap().port();
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut got = Vec::new();
    stream.read_to_end(&mut got).unwrap();
    (got, local)
}

#[test]
fn a_handed_tcp_listener_is_served() {
    let Some(tool) = tool("systemd-socket-activate") else {
        return;
    };
    let (activator, port) = Activator::start_on_free_port(&tool, &[], &["--threads", "2"]);
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    // The first client is what makes the tool start greet-server.
    let (first, first_port) = greeting_over_tcp(addr);
    assert_eq!(first, GREETING);
    assert_eq!(
        activator.next_line().unwrap(),
        format!("Listening on ('127.0.0.1', {port}) tcp")
    );
    let (second, second_port) = greeting_over_tcp(addr);
    assert_eq!(second, GREETING);
    let mut logged = [
        activator.next_line().unwrap(),
        activator.next_line().unwrap(),
    ];
    logged.sort();
    let mut want =
        [first_port, second_port].map(|p| format!("Got connection from ('127.0.0.1', {p})"));
    want.sort();
    assert_eq!(logged, want);
    let (status, stderr) = activator.terminate();
    assert!(status.success(), "{status}: {stderr}");
    assert!(
        stderr.contains("greet-server: accepted 2, greeted 2, errors 0,"),
        "{stderr}"
    );
}

#[test]
fn a_handed_udp_socket_is_served() {
    let Some(tool) = tool("systemd-socket-activate") else {
        return;
    };
    let (activator, port) = Activator::start_on_free_port(&tool, &["--datagram"], &[]);
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let local = socket.local_addr().unwrap().port();
    // Loopback does not lose datagrams in practice, but a resend keeps the test honest.
    socket
        .set_read_timeout(Some(Duration::from_secs(1)))
        .unwrap();
    let deadline = Instant::now() + PATIENCE;
    let mut buf = [0u8; 1024];
    let (n, from) = loop {
        socket.send_to(b"hello", ("127.0.0.1", port)).unwrap();
        match socket.recv_from(&mut buf) {
            Ok(got) => break got,
            Err(e) if Instant::now() < deadline => eprintln!("no reply yet ({e}); resending"),
            Err(e) => panic!("no reply from the activated server: {e}"),
        }
    };
    assert_eq!(&buf[..n], GREETING);
    assert_eq!(from, SocketAddr::from(([127, 0, 0, 1], port)));
    assert_eq!(
        activator.next_line().unwrap(),
        format!("Listening on ('127.0.0.1', {port}) udp")
    );
    assert_eq!(
        activator.next_line().unwrap(),
        format!("Got datagram from ('127.0.0.1', {local})")
    );
    let (status, stderr) = activator.terminate();
    assert!(status.success(), "{status}: {stderr}");
}

#[test]
fn a_handed_unix_listener_is_served_and_its_file_left_to_its_owner() {
    let Some(tool) = tool("systemd-socket-activate") else {
        return;
    };
    let dir = temp_dir("activation-unix");
    let path = dir.join("greet.sock");
    let shown = path.to_str().unwrap();
    let activator =
        Activator::start(&tool, &[], shown, &[]).expect("a fresh Unix path is never in use");
    // Connecting starts greet-server, which serves the socket it is handed.
    let mut client = std::os::unix::net::UnixStream::connect(&path).unwrap();
    client.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut got = Vec::new();
    client.read_to_end(&mut got).unwrap();
    assert_eq!(got, GREETING);
    assert_eq!(
        activator.next_line().unwrap(),
        format!("Listening on '{shown}' unix")
    );
    let (status, stderr) = activator.terminate();
    assert!(status.success(), "{status}: {stderr}");
    assert!(
        stderr.contains("greet-server: accepted 1, greeted 1,"),
        "{stderr}"
    );
    // The socket file belongs to whoever bound it (systemd, here): never removed.
    assert!(path.exists(), "the handed socket's file was removed");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_handed_unix_datagram_socket_is_refused_naming_its_descriptor() {
    let Some(tool) = tool("systemd-socket-activate") else {
        return;
    };
    let dir = temp_dir("activation-unix-dgram");
    let path = dir.join("greet.sock");
    let mut activator = Activator::start(&tool, &["--datagram"], path.to_str().unwrap(), &[])
        .expect("a fresh Unix path is never in use");
    // A datagram starts greet-server, which must refuse the socket and exit.
    let client = std::os::unix::net::UnixDatagram::unbound().unwrap();
    client.send_to(b"hello", &path).unwrap();
    let deadline = Instant::now() + PATIENCE;
    while !activator.0.has_exited() {
        assert!(Instant::now() < deadline, "greet-server did not exit");
        std::thread::yield_now();
    }
    let (status, stderr) = activator.0.wait().expect("greet-server's status");
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("greet-server: socket activation: fd 3: a Unix socket at ")
            && stderr.contains("only stream listeners are served"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A port free for both TCP and UDP on 127.0.0.1 a moment ago.
fn free_port_for_both() -> u16 {
    for _ in 0..100 {
        let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = tcp.local_addr().unwrap().port();
        if UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no port free for TCP and UDP after 100 tries");
}

/// greet.socket's case: `ListenStream=` and `ListenDatagram=` on one port. The tool binds one
/// type per run, but passes on the descriptors it was handed ("file descriptors from
/// sd_listen_fds() will be passed through"), so two of them nested hand over a TCP
/// listener (fd 3) and a UDP socket (fd 4) on the same address, as systemd does.
#[test]
fn tcp_and_udp_on_one_port_each_get_their_listening_line() {
    let Some(tool) = tool("systemd-socket-activate") else {
        return;
    };
    let port = free_port_for_both();
    let listen = format!("127.0.0.1:{port}");
    let inner = tool.to_str().expect("UTF-8 tool path");
    let activator = Activator::start(&tool, &["-l", &listen, inner, "--datagram"], &listen, &[])
        .expect("the port was free a moment ago");
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let (greeting, _) = greeting_over_tcp(addr);
    assert_eq!(greeting, GREETING);
    let announced = [
        activator.next_line().unwrap(),
        activator.next_line().unwrap(),
    ];
    assert_eq!(
        announced,
        [
            format!("Listening on ('127.0.0.1', {port}) tcp"),
            format!("Listening on ('127.0.0.1', {port}) udp"),
        ]
    );
    // And both are served.
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(1)))
        .unwrap();
    let deadline = Instant::now() + PATIENCE;
    let mut buf = [0u8; 1024];
    let n = loop {
        socket.send_to(b"", addr).unwrap();
        match socket.recv_from(&mut buf) {
            Ok((n, _)) => break n,
            Err(e) if Instant::now() < deadline => eprintln!("no reply yet ({e}); resending"),
            Err(e) => panic!("no UDP reply from the activated server: {e}"),
        }
    };
    assert_eq!(&buf[..n], GREETING);
    let (status, stderr) = activator.terminate();
    assert!(status.success(), "{status}: {stderr}");
    assert!(stderr.contains("accepted 1, greeted 1,"), "{stderr}");
}

/// The folder of the unit files, `contrib/systemd/`.
fn contrib_systemd() -> PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../contrib/systemd")
}

/// `contrib/systemd/`'s units as systemd reads them: `systemd-analyze verify` finds no
/// unknown key, bad value or missing unit. It also checks that `ExecStart=`'s program exists,
/// so the service is verified with the built binary in place of
/// `/usr/local/bin/greet-server`; `--man=no`: the man page is not installed here.
#[test]
fn the_contrib_unit_files_pass_systemd_analyze_verify() {
    let Some(analyze) = tool("systemd-analyze") else {
        return;
    };
    let dir = temp_dir("units");
    let installed = "/usr/local/bin/greet-server";
    let service = std::fs::read_to_string(contrib_systemd().join("greet.service")).unwrap();
    assert!(
        service.contains(&format!("ExecStart={installed}")),
        "{service}"
    );
    let built = bin("greet-server");
    let service = service.replace(installed, built.to_str().expect("UTF-8 path"));
    std::fs::write(dir.join("greet.service"), service).unwrap();
    std::fs::copy(
        contrib_systemd().join("greet.socket"),
        dir.join("greet.socket"),
    )
    .unwrap();
    let out = Command::new(analyze)
        .args(["verify", "--man=no"])
        .arg(dir.join("greet.socket"))
        .arg(dir.join("greet.service"))
        .output()
        .expect("run systemd-analyze");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{said}");
    // An unknown key or section is only a warning (status 0), naming the file.
    let about_ours: Vec<&str> = said.lines().filter(|l| l.contains("greet.")).collect();
    assert!(about_ours.is_empty(), "{said}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The README shows the units without their comments: each of its `ini` blocks opens with
/// the file it comes from, and every line of it is a line of that file.
#[test]
fn the_readme_shows_lines_of_the_contrib_unit_files() {
    let readme = std::fs::read_to_string(contrib_systemd().join("../../README.md")).unwrap();
    let mut shown = 0;
    for block in readme.split("```ini\n").skip(1) {
        let block = block.split("```").next().unwrap_or_default();
        let mut lines = block.lines();
        let source = lines.next().unwrap_or_default();
        let Some(name) = source
            .strip_prefix("# contrib/systemd/")
            .and_then(|rest| rest.split_whitespace().next())
        else {
            continue;
        };
        let file = std::fs::read_to_string(contrib_systemd().join(name)).unwrap();
        for line in lines.filter(|l| !l.is_empty()) {
            assert!(
                file.lines().any(|l| l == line),
                "README's {line:?} is not in contrib/systemd/{name}"
            );
        }
        shown += 1;
    }
    assert_eq!(shown, 2, "the README shows greet.socket and greet.service");
}
