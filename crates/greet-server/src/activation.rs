//! systemd socket activation (`sd_listen_fds(3)`): the sockets a service manager opened for
//! this process and handed over as descriptors 3, 4, ...
//!
//! The protocol: `LISTEN_PID` is the process the sockets are meant for (a child that merely
//! inherited the variables must not take them), `LISTEN_FDS` how many there are, and the
//! optional `LISTEN_FDNAMES` their names, separated by colons. The variables are removed once
//! read, so that nothing this process starts believes the sockets are its own.
//!
//! Each descriptor is checked before it is used: a TCP listener (`SOCK_STREAM`, listening,
//! IPv4 or IPv6), a UDP socket (`SOCK_DGRAM`, IPv4 or IPv6) or a Unix-domain stream listener
//! bound to a path; anything else (a connected stream, a Unix datagram socket, a pipe) is
//! refused with an error naming the descriptor.
//!
//! A restart (SIGHUP, see `restart.rs`) hands the sockets on the same way, naming each by
//! its role: `tcp`, `udp`, `unix` (a socket file the new server owns and removes at exit),
//! `unix-keep` (one it must leave, such as systemd's) or `metrics` (the `--metrics`
//! listener, a TCP listener; systemd may name one so too). A socket named by a role must be
//! of that kind.

use anyhow::{anyhow, bail, Context, Result};
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixListener;

use socket2::{Protocol, Socket, Type};

use crate::listen::Listener;

/// The first descriptor passed (`SD_LISTEN_FDS_START`).
pub const FIRST_FD: RawFd = 3;
/// More descriptors than this is a broken environment rather than a configuration.
pub const MAX_FDS: usize = 4096;

/// Takes the sockets passed to this process, each checked, set non-blocking and
/// close-on-exec, with its name (empty when none was given); `Ok(None)` when it was not
/// socket-activated.
///
/// Call it before any thread starts: it removes the environment variables.
///
/// # Errors
///
/// A variable that does not parse, a descriptor that is not open, or one that is not a
/// TCP listener, UDP socket or Unix listener (or not of the role its name says): one line
/// naming the variable or descriptor.
pub fn take_listeners() -> Result<Option<Vec<(Listener, String)>>> {
    let pid = env_text("LISTEN_PID");
    let fds = env_text("LISTEN_FDS");
    let names = env_text("LISTEN_FDNAMES");
    for var in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] {
        // No other thread exists yet (see above), so nothing reads the environment meanwhile.
        std::env::remove_var(var);
    }
    let Some(handed) = parse_env(
        pid.as_deref(),
        fds.as_deref(),
        names.as_deref(),
        std::process::id(),
    )
    .map_err(anyhow::Error::msg)?
    else {
        return Ok(None);
    };
    let names: Vec<&str> = names
        .as_deref()
        .map_or_else(Vec::new, |n| n.split(':').collect());
    let mut sockets = Vec::with_capacity(handed.len());
    for (i, Handed { fd, label }) in handed.into_iter().enumerate() {
        let name = names.get(i).copied().unwrap_or_default();
        let socket = take_fd(fd, &label)?;
        check_role(&socket, name, &label)?;
        sockets.push((socket, name.to_string()));
    }
    Ok(Some(sockets))
}

/// A variable's value, lossily as text: one that is not UTF-8 then fails to parse with an
/// error naming it, instead of passing for an unset variable.
fn env_text(var: &str) -> Option<String> {
    std::env::var_os(var).map(|v| v.to_string_lossy().into_owned())
}

/// A descriptor the environment says was handed over, with the label errors name it by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handed {
    /// The descriptor: 3, 4, ... in order.
    pub fd: RawFd,
    /// `fd N`, or `fd N (NAME)` when `LISTEN_FDNAMES` names it.
    pub label: String,
}

/// What `LISTEN_PID`, `LISTEN_FDS` and `LISTEN_FDNAMES` (their values, `None` when unset)
/// say was handed to the process `our_pid`: `None` when nothing was meant for it. A pure
/// function of the strings: nothing is opened or checked here.
///
/// # Errors
///
/// A variable that does not parse, or more than 4096 descriptors: one line naming the
/// variable.
pub fn parse_env(
    pid: Option<&str>,
    fds: Option<&str>,
    names: Option<&str>,
    our_pid: u32,
) -> Result<Option<Vec<Handed>>, String> {
    let Some(count) = handed_count(pid, fds, our_pid)? else {
        return Ok(None);
    };
    let names: Vec<&str> = names.map_or_else(Vec::new, |n| n.split(':').collect());
    let mut handed = Vec::with_capacity(count);
    for i in 0..count {
        let fd = FIRST_FD + RawFd::try_from(i).map_err(|_| "LISTEN_FDS: too many")?;
        let label = match names.get(i) {
            // Escaped: a name is the environment's to choose, and an error stays one line.
            Some(name) if !name.is_empty() => format!("fd {fd} ({})", name.escape_debug()),
            _ => format!("fd {fd}"),
        };
        handed.push(Handed { fd, label });
    }
    Ok(Some(handed))
}

/// How many descriptors were passed to the process `our_pid`, given `LISTEN_PID` and
/// `LISTEN_FDS`; `None` when none were meant for it.
pub fn handed_count(
    pid: Option<&str>,
    fds: Option<&str>,
    our_pid: u32,
) -> Result<Option<usize>, String> {
    let Some(fds) = fds else {
        return Ok(None);
    };
    let Some(pid) = pid else {
        log::debug!("LISTEN_FDS={fds} without LISTEN_PID: not for us");
        return Ok(None);
    };
    let pid: u32 = pid
        .trim()
        .parse()
        .map_err(|_| format!("LISTEN_PID={pid:?}: not a process id"))?;
    if pid != our_pid {
        log::debug!("LISTEN_PID={pid} is not this process ({our_pid}): not for us");
        return Ok(None);
    }
    let count: usize = fds
        .trim()
        .parse()
        .map_err(|_| format!("LISTEN_FDS={fds:?}: not a number of descriptors"))?;
    if count > MAX_FDS {
        return Err(format!(
            "LISTEN_FDS={count}: more than {MAX_FDS} descriptors"
        ));
    }
    Ok((count > 0).then_some(count))
}

/// A socket named by a role must be of that kind; other names are the service manager's.
fn check_role(socket: &Listener, name: &str, label: &str) -> Result<()> {
    let fits = match name {
        "tcp" | "metrics" => matches!(socket, Listener::Tcp(_)),
        "udp" => matches!(socket, Listener::Udp(_)),
        "unix" | "unix-keep" => matches!(socket, Listener::Unix(..)),
        _ => true,
    };
    if fits {
        Ok(())
    } else {
        Err(anyhow!("{label}: named {name:?} but it is {socket:?}"))
    }
}

/// Takes ownership of descriptor `fd` if it is open, then checks it.
fn take_fd(fd: RawFd, label: &str) -> Result<Listener> {
    // SAFETY: fcntl(F_GETFD) only reads the descriptor's flags; on a closed descriptor it
    // fails with EBADF and touches nothing.
    if unsafe { libc::fcntl(fd, libc::F_GETFD) } == -1 {
        let err = std::io::Error::last_os_error();
        bail!("LISTEN_FDS names {label}, which is not open: {err}");
    }
    // SAFETY: the descriptor is open (checked just above) and, by the sd_listen_fds
    // protocol, was handed to this process for its own use: nothing else in the process
    // owns or closes it, and it is taken once because the variables were removed.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    classify(owned, label)
}

/// Checks that `fd` is a TCP listener or a UDP socket, sets it close-on-exec and
/// non-blocking, and returns it as such.
pub fn classify(fd: OwnedFd, label: &str) -> Result<Listener> {
    let socket = Socket::from(fd);
    let kind = socket
        .r#type()
        .with_context(|| format!("{label}: not a socket"))?;
    let local = socket
        .local_addr()
        .with_context(|| format!("{label}: getsockname"))?;
    if local.is_unix() {
        return classify_unix(socket, &local, kind, label);
    }
    let Some(addr) = local.as_socket() else {
        bail!(
            "{label}: not an IPv4 or IPv6 socket ({:?}); only TCP listeners and UDP sockets \
             are served",
            local.domain()
        );
    };
    let protocol = socket
        .protocol()
        .with_context(|| format!("{label}: getsockopt SO_PROTOCOL"))?;
    // Service managers pass sockets open on exec; ours must not leak into children.
    socket
        .set_cloexec(true)
        .with_context(|| format!("{label}: set close-on-exec"))?;
    socket
        .set_nonblocking(true)
        .with_context(|| format!("{label}: set non-blocking"))?;
    if kind == Type::STREAM && matches!(protocol, None | Some(Protocol::TCP)) {
        let listening = socket
            .is_listener()
            .with_context(|| format!("{label}: getsockopt SO_ACCEPTCONN"))?;
        if !listening {
            bail!(
                "{label}: a TCP socket on {addr} that is not listening (use ListenStream=, \
                 not Accept=yes)"
            );
        }
        return Ok(Listener::Tcp(socket.into()));
    }
    if kind == Type::DGRAM && matches!(protocol, None | Some(Protocol::UDP)) {
        return Ok(Listener::Udp(socket.into()));
    }
    Err(anyhow!(
        "{label}: a socket on {addr} of type {kind:?}, protocol {protocol:?}; only TCP \
         listeners and UDP sockets are served"
    ))
}

/// A Unix-domain stream listener bound to a path (what `--unix PATH` serves).
fn classify_unix(
    socket: Socket,
    local: &socket2::SockAddr,
    kind: Type,
    label: &str,
) -> Result<Listener> {
    let Some(path) = local.as_pathname().map(std::path::Path::to_path_buf) else {
        bail!(
            "{label}: a Unix socket with no path; only TCP listeners, UDP sockets and \
             Unix stream listeners bound to a path are served"
        );
    };
    let shown = path.display();
    if kind != Type::STREAM {
        bail!(
            "{label}: a Unix socket at {shown} of type {kind:?}; only stream listeners are \
             served"
        );
    }
    let listening = socket
        .is_listener()
        .with_context(|| format!("{label}: getsockopt SO_ACCEPTCONN"))?;
    if !listening {
        bail!("{label}: a Unix socket at {shown} that is not listening");
    }
    socket
        .set_cloexec(true)
        .and_then(|()| socket.set_nonblocking(true))
        .with_context(|| format!("{label}: set close-on-exec and non-blocking"))?;
    Ok(Listener::Unix(
        UnixListener::from(OwnedFd::from(socket)),
        path,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_dir::TestDir;
    use std::net::{TcpListener, UdpSocket};

    #[test]
    fn the_variables_decide_whether_sockets_were_handed() {
        let ours = 4242;
        // LISTEN_PID, LISTEN_FDS, and the count (Err: a one-line error).
        type Row = (
            Option<&'static str>,
            Option<&'static str>,
            Result<Option<usize>, ()>,
        );
        let table: &[Row] = &[
            (None, None, Ok(None)),
            (Some("4242"), None, Ok(None)),
            (None, Some("2"), Ok(None)),
            (Some("1"), Some("2"), Ok(None)),
            (Some("4242"), Some("2"), Ok(Some(2))),
            (Some("4242"), Some("0"), Ok(None)),
            (Some("4242"), Some("1"), Ok(Some(1))),
            (Some("x"), Some("1"), Err(())),
            (Some("4242"), Some("-1"), Err(())),
            (Some("4242"), Some("many"), Err(())),
            (Some("4242"), Some("100000"), Err(())),
        ];
        for (pid, fds, want) in table {
            let got = handed_count(*pid, *fds, ours);
            match (&got, want) {
                (Ok(n), Ok(m)) => assert_eq!(n, m, "{pid:?} {fds:?}"),
                (Err(e), Err(())) => {
                    assert!(e.to_string().contains("LISTEN_"), "{e:#}");
                }
                _ => panic!("{pid:?} {fds:?}: {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn a_value_that_is_not_utf8_is_not_taken_for_unset() {
        use std::os::unix::ffi::OsStrExt;
        // A name no other test reads, so setting it cannot race with them.
        let var = "GREET_ACTIVATION_TEST_NOT_UTF8";
        std::env::set_var(var, std::ffi::OsStr::from_bytes(b"1\xff"));
        let text = env_text(var);
        std::env::remove_var(var);
        assert_eq!(text.as_deref(), Some("1\u{fffd}"));
        let err = handed_count(Some("7"), text.as_deref(), 7).unwrap_err();
        assert!(err.starts_with("LISTEN_FDS=\"1\u{fffd}\""), "{err}");
        assert_eq!(env_text("GREET_ACTIVATION_TEST_UNSET"), None);
    }

    #[test]
    fn a_tcp_listener_is_served_non_blocking() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let Listener::Tcp(listener) = classify(listener.into(), "fd 3").unwrap() else {
            panic!("not TCP");
        };
        assert_eq!(listener.local_addr().unwrap(), addr);
        let err = listener.accept().unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::WouldBlock);
    }

    #[test]
    fn a_udp_socket_is_served_non_blocking() {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        let Listener::Udp(socket) = classify(socket.into(), "fd 4").unwrap() else {
            panic!("not UDP");
        };
        let err = socket.recv_from(&mut [0; 8]).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::WouldBlock);
    }

    #[test]
    fn a_unix_listener_is_served_with_its_path_and_checked_against_its_name() {
        let dir = TestDir::new("activation-unix");
        let path = dir.join("s");
        let unix = UnixListener::bind(&path).unwrap();
        let socket = classify(unix.into(), "fd 3").unwrap();
        let Listener::Unix(listener, got) = &socket else {
            panic!("not Unix: {socket:?}");
        };
        assert_eq!(got, &path);
        assert_eq!(
            listener.accept().unwrap_err().kind(),
            std::io::ErrorKind::WouldBlock
        );
        assert!(check_role(&socket, "unix", "fd 3").is_ok());
        assert!(check_role(&socket, "greet", "fd 3").is_ok());
        let err = format!(
            "{:#}",
            check_role(&socket, "tcp", "fd 3 (tcp)").unwrap_err()
        );
        assert!(err.starts_with("fd 3 (tcp): named \"tcp\""), "{err}");
    }

    #[test]
    fn other_descriptors_are_refused_with_their_name() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let connected = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let err = format!(
            "{:#}",
            classify(connected.into(), "fd 5 (web)").unwrap_err()
        );
        assert!(
            err.starts_with("fd 5 (web): a TCP socket on 127.0.0.1:")
                && err.contains("not listening"),
            "{err}"
        );

        let dir = TestDir::new("activation-unix-datagram");
        let unix = std::os::unix::net::UnixDatagram::bind(dir.join("d")).unwrap();
        let err = format!("{:#}", classify(unix.into(), "fd 6").unwrap_err());
        assert!(err.starts_with("fd 6: a Unix socket at "), "{err}");

        let file = std::fs::File::open("/dev/null").unwrap();
        let err = format!("{:#}", classify(file.into(), "fd 7").unwrap_err());
        assert!(err.starts_with("fd 7: not a socket"), "{err}");

        let raw = Socket::new(socket2::Domain::IPV4, Type::RAW, Some(Protocol::ICMPV4));
        if let Ok(raw) = raw {
            // Only where raw sockets are allowed (root); elsewhere there is nothing to test.
            let err = format!("{:#}", classify(raw.into(), "fd 8").unwrap_err());
            assert!(err.contains("only TCP listeners and UDP sockets"), "{err}");
        }
    }
}
