//! The sockets the server listens on, wherever they come from: bound here from the flags
//! (`--host`, `--port`, `--tcp`, `--udp`, `--unix`), handed over by systemd (socket
//! activation, see `activation.rs`), or handed on by the server this one replaces (a SIGHUP
//! restart, which passes them the way systemd does).
//!
//! One type, [`Listener`], for a socket of any origin. [`Sockets::open`] gets them and
//! arranges them as the server needs them: a group per event loop, a duplicate of each to
//! hand on at a restart, and the Unix socket file this server is to remove at exit.
//! [`Sockets::announce`] prints the readiness lines.
//!
//! Binding is where the tutorial's defaults meet the machine: the default host is this
//! machine's name, which may not resolve (the error then says so, and what to give
//! instead); `--host ""` is every address, dual-stack where IPv6 exists; TCP and UDP share
//! one port number; a stale Unix socket file is replaced, any other file never.

use anyhow::{bail, Context, Result};
use std::io::Write;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};

use netcore::{EventLoop, ListenOptions};
use resolver::{Family, PyAddr, Transport};
use socket2::{Domain, Socket, Type};

use crate::cli::Args;
use crate::socket_file::{FileId, SocketFile};

/// A listening socket: bound here, handed over by systemd, or handed on by a restart.
#[derive(Debug)]
pub enum Listener {
    Tcp(TcpListener),
    Udp(UdpSocket),
    /// A Unix stream listener and the path it is bound to.
    Unix(UnixListener, PathBuf),
}

impl Listener {
    /// The role a restart names it by (`LISTEN_FDNAMES`); `owned`: whether the Unix socket
    /// file is this server's to remove (`unix`), or to leave (`unix-keep`).
    pub fn role(&self, owned: bool) -> &'static str {
        match self {
            Listener::Tcp(_) => "tcp",
            Listener::Udp(_) => "udp",
            Listener::Unix(..) if owned => "unix",
            Listener::Unix(..) => "unix-keep",
        }
    }

    /// Another descriptor for the same socket.
    pub fn try_clone(&self) -> std::io::Result<Listener> {
        Ok(match self {
            Listener::Tcp(l) => Listener::Tcp(l.try_clone()?),
            Listener::Udp(s) => Listener::Udp(s.try_clone()?),
            Listener::Unix(l, path) => Listener::Unix(l.try_clone()?, path.clone()),
        })
    }

    /// Serves it from `event_loop`.
    ///
    /// # Errors
    ///
    /// netcore could not register it.
    pub fn add_to<M, T: Default>(
        self,
        event_loop: &mut EventLoop<M, T>,
    ) -> Result<(), netcore::Error> {
        match self {
            Listener::Tcp(l) => event_loop.add_tcp_listener(l).map(drop),
            Listener::Udp(s) => event_loop.add_udp_socket(s).map(drop),
            Listener::Unix(l, _) => event_loop.add_unix_listener(l).map(drop),
        }
    }

    /// What its readiness line names: `('127.0.0.1', 12345) tcp`, `'/run/g.sock' unix`.
    fn described(&self) -> Result<String> {
        let inet = |addr: std::io::Result<SocketAddr>, kind: &str| {
            addr.map(|a| format!("{} {kind}", PyAddr(&a)))
                .context("getsockname")
        };
        match self {
            Listener::Tcp(l) => inet(l.local_addr(), "tcp"),
            Listener::Udp(s) => inet(s.local_addr(), "udp"),
            Listener::Unix(_, path) => Ok(format!("'{}' unix", path.display())),
        }
    }

    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Listener::Tcp(l) => l.as_fd(),
            Listener::Udp(s) => s.as_fd(),
            Listener::Unix(l, _) => l.as_fd(),
        }
    }
}

/// The listening sockets with their descriptors in the three places the server needs them.
#[derive(Debug)]
pub struct Sockets {
    /// One group per event loop: every loop polls its own descriptor of each socket it
    /// serves, and whichever loop is woken first accepts (or receives).
    pub groups: Vec<Vec<Listener>>,
    /// A duplicate of every listening socket with its role, for a restart to hand on.
    pub handover: Vec<(OwnedFd, &'static str)>,
    /// The Unix socket file this server removes at exit, if it is its own.
    pub unix_file: Option<SocketFile>,
}

impl Sockets {
    /// The sockets handed over (`handed`, each with its `LISTEN_FDNAMES` name), or else
    /// those the flags name, bound now; for `--threads` event loops (default: one per
    /// core). `restarted`: they come
    /// from a restart (not systemd), which passed the identity of the socket file the old
    /// server bound (`passed`, see `socket_file.rs`).
    ///
    /// # Errors
    ///
    /// A host or port that does not resolve, a bind that fails (one line naming the
    /// address or path), a descriptor that cannot be duplicated.
    pub fn open(
        args: &Args,
        handed: Option<Vec<(Listener, String)>>,
        restarted: bool,
        passed: Option<FileId>,
    ) -> Result<Sockets> {
        let threads = usize::from(args.threads.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(1, |n| u16::try_from(n.get()).unwrap_or(1))
        }));
        let (groups, handover, unix_file) = match handed {
            Some(sockets) => {
                // A Unix socket file handed on by a restart is this server's to remove
                // (while it is the socket the old server bound); one from systemd (or named
                // otherwise) is not.
                let owned = sockets.iter().find_map(|(socket, name)| match socket {
                    Listener::Unix(_, path) if restarted && name == "unix" => {
                        SocketFile::handed(path, passed)
                    }
                    _ => None,
                });
                let sockets: Vec<Listener> =
                    sockets.into_iter().map(|(socket, _)| socket).collect();
                // One duplicate per socket, not per loop: the loops share each one.
                let handover = handover(&sockets, owned.is_some())?;
                (share(sockets, threads)?, handover, owned)
            }
            None => {
                let (groups, file) = bind(args, threads)?;
                let handover = handover(groups.iter().flatten(), file.is_some())?;
                (groups, handover, file)
            }
        };
        Ok(Sockets {
            groups,
            handover,
            unix_file,
        })
    }

    /// The readiness lines on stdout, `Listening on ('127.0.0.1', 12345) tcp`: one per
    /// distinct address and transport, flushed at once.
    ///
    /// # Errors
    ///
    /// stdout cannot be written.
    pub fn announce(&self) -> Result<()> {
        let mut out = std::io::stdout().lock();
        let mut seen: Vec<String> = Vec::new();
        for listener in self.groups.iter().flatten() {
            let line = listener.described()?;
            if seen.contains(&line) {
                continue;
            }
            writeln!(out, "Listening on {line}").context("stdout")?;
            seen.push(line);
        }
        out.flush().context("stdout")
    }
}

/// A duplicate of each of `listeners` with its role, for a restart to hand on; `owned`:
/// whether the Unix socket file is this server's (see [`Listener::role`]).
fn handover<'a>(
    listeners: impl IntoIterator<Item = &'a Listener>,
    owned: bool,
) -> Result<Vec<(OwnedFd, &'static str)>> {
    listeners
        .into_iter()
        .map(|listener| {
            let fd = listener.as_fd().try_clone_to_owned();
            fd.map(|fd| (fd, listener.role(owned)))
                .context("duplicate a listening socket")
        })
        .collect()
}

/// Sockets handed over, for every loop: the first loop gets each socket, the others a
/// duplicate of it.
fn share(sockets: Vec<Listener>, threads: usize) -> Result<Vec<Vec<Listener>>> {
    let mut groups: Vec<Vec<Listener>> = (0..threads).map(|_| Vec::new()).collect();
    for socket in sockets {
        for group in groups.iter_mut().skip(1) {
            group.push(
                socket
                    .try_clone()
                    .context("duplicate a socket-activation descriptor")?,
            );
        }
        if let Some(first) = groups.first_mut() {
            first.push(socket);
        }
    }
    Ok(groups)
}

/// Binds what the flags name, in groups, one group per loop: TCP and UDP one listener per
/// loop each (each transport's listeners share the port through SO_REUSEPORT, and UDP takes
/// the port number TCP got), the one Unix socket in the first group; with it the socket file
/// this server created, to remove at exit.
fn bind(args: &Args, threads: usize) -> Result<(Vec<Vec<Listener>>, Option<SocketFile>)> {
    let backlog = args.backlog.unwrap_or_else(netcore::max_backlog);
    let (tcp, udp) = (args.serves_tcp(), args.udp);
    let mut groups = Vec::new();
    let mut file = None;
    if tcp || udp {
        let family = Family::from_flags(args.ipv4, args.ipv6);
        let transport = if tcp { Transport::Tcp } else { Transport::Udp };
        let mut addr =
            resolver::socket_addr_or_hostname(args.host.as_deref(), &args.port, family, transport)
                .map_err(|e| explain_default_host(anyhow::Error::new(e), args.host.as_deref()))?;
        // `--host ""` is every address. With neither -4 nor -6 that is IPv6's `::` with
        // IPV6_V6ONLY off, which takes IPv4 clients too (as Python's
        // `socket.create_server(("", port), family=AF_INET6, dualstack_ipv6=True)`), or
        // `0.0.0.0` on a machine without IPv6.
        let dual_stack = args.host.as_deref() == Some("") && family == Family::Any && has_ipv6();
        if dual_stack {
            addr = SocketAddr::new(std::net::Ipv6Addr::UNSPECIFIED.into(), addr.port());
        }
        let opts = ListenOptions {
            backlog,
            reuse_port: threads > 1,
            v6_only: !dual_stack,
        };
        groups = bind_inet(addr, tcp, udp, threads, &opts)?;
    }
    if let Some(path) = &args.unix {
        remove_stale_socket(path)?;
        let opts = ListenOptions {
            backlog,
            ..ListenOptions::default()
        };
        let listener = with_umask(args.unix_mode, || netcore::unix_listener(path, &opts))?;
        file = SocketFile::bound(path);
        let unix = Listener::Unix(listener, path.clone());
        match groups.first_mut() {
            Some(first) => first.push(unix),
            None => groups.push(vec![unix]),
        }
    }
    Ok((groups, file))
}

/// A failure to resolve the host, explained when no `--host` was given: the name was the
/// tutorial's default, this machine's, which a container or a fresh VM often does not list
/// in /etc/hosts (the wording is greet-client's too: `clap_dist::explain_default_host`).
fn explain_default_host(e: anyhow::Error, host: Option<&str>) -> anyhow::Error {
    clap_dist::explain_default_host(
        e,
        host.is_some(),
        "--host 127.0.0.1 (this machine only) or --host '' (every address)",
    )
}

/// With `--port 0`: how many ports to try before giving up when the one found free is
/// taken before it is bound (with both TCP and UDP: the same UDP port is taken).
const SAME_PORT_ATTEMPTS: usize = 8;

/// TCP and UDP listeners on `addr`, one of each per loop, UDP on the port TCP got.
fn bind_inet(
    addr: SocketAddr,
    tcp: bool,
    udp: bool,
    threads: usize,
    opts: &ListenOptions,
) -> Result<Vec<Vec<Listener>>> {
    let mut attempt = 1;
    loop {
        let mut groups: Vec<Vec<Listener>> = (0..threads).map(|_| Vec::new()).collect();
        match bind_inet_into(&mut groups, addr, tcp, udp, opts) {
            Err(e) if addr.port() == 0 && in_use(&e) && attempt < SAME_PORT_ATTEMPTS => {
                log::debug!("{e:#}; another port");
                attempt += 1;
            }
            bound => return bound.map(|()| groups),
        }
    }
}

/// One attempt of [`bind_inet`], into `groups` (one per loop, empty).
fn bind_inet_into(
    groups: &mut [Vec<Listener>],
    addr: SocketAddr,
    tcp: bool,
    udp: bool,
    opts: &ListenOptions,
) -> Result<()> {
    let mut at = addr;
    for (wanted, kind) in [(tcp, Type::STREAM), (udp, Type::DGRAM)] {
        if !wanted {
            continue;
        }
        if opts.reuse_port {
            at = unshared_port(at, kind, opts)?;
        }
        for group in groups.iter_mut() {
            // Each loop's socket on the port the first one got (`--port 0` included).
            group.push(if kind == Type::STREAM {
                let listener = netcore::tcp_listener(at, opts)?;
                at = listener.local_addr()?;
                Listener::Tcp(listener)
            } else {
                let socket = netcore::udp_socket(at, opts)?;
                at = socket.local_addr()?;
                Listener::Udp(socket)
            });
        }
    }
    Ok(())
}

/// `SO_REUSEPORT` lets any socket of the same user join a port's group, so another server
/// on the port would silently take a share of the clients. Before binding the loops'
/// listeners, this binds one socket of the same kind without it (and does not listen): it
/// fails with "Address already in use" when any other process serves `addr`. TCP sets
/// `SO_REUSEADDR`, as the listeners do, so that connections in `TIME_WAIT` do not count.
/// Returns the address bound (with port 0: a port nobody holds), then closes the socket.
fn unshared_port(addr: SocketAddr, kind: Type, opts: &ListenOptions) -> Result<SocketAddr> {
    let probe = || -> std::io::Result<SocketAddr> {
        let socket = Socket::new(Domain::for_address(addr), kind, None)?;
        if addr.is_ipv6() {
            socket.set_only_v6(opts.v6_only)?;
        }
        if kind == Type::STREAM {
            socket.set_reuse_address(true)?;
        }
        socket.bind(&addr.into())?;
        socket
            .local_addr()?
            .as_socket()
            .ok_or_else(|| std::io::Error::other("not an IP address"))
    };
    probe().with_context(|| format!("bind {addr}"))
}

/// Whether `e` is "Address already in use".
fn in_use(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        let kind = match (
            cause.downcast_ref::<netcore::Error>(),
            cause.downcast_ref::<std::io::Error>(),
        ) {
            (Some(netcore), _) => Some(netcore.io_error().kind()),
            (None, Some(io)) => Some(io.kind()),
            (None, None) => None,
        };
        kind == Some(std::io::ErrorKind::AddrInUse)
    })
}

/// Runs `create` with the umask that makes a new socket file's mode exactly `mode` (bind(2)
/// creates it as 0777 minus the umask), then restores the umask: no moment with a looser
/// mode, as a chmod after bind would leave.
fn with_umask<T>(mode: Option<u32>, create: impl FnOnce() -> T) -> T {
    let Some(mode) = mode else {
        return create();
    };
    // SAFETY: umask(2) cannot fail. It is process-wide: this runs before any other thread of
    // ours starts (the loops and the signal thread start later), so nothing else creates a
    // file meanwhile.
    let old = unsafe { libc::umask(!mode & 0o777) };
    let created = create();
    // SAFETY: as above.
    unsafe { libc::umask(old) };
    created
}

/// Whether this machine can make IPv6 sockets at all.
fn has_ipv6() -> bool {
    Socket::new(Domain::IPV6, Type::STREAM, None).is_ok()
}

/// A socket file left by a server that died may be replaced; anything else may not.
fn remove_stale_socket(path: &Path) -> Result<()> {
    use std::os::unix::fs::FileTypeExt;
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return Ok(());
    };
    if !meta.file_type().is_socket() {
        bail!(
            "bind {}: the path exists and is not a socket (not removed)",
            path.display()
        );
    }
    if std::os::unix::net::UnixStream::connect(path).is_ok() {
        bail!(
            "bind {}: another server is listening on this socket",
            path.display()
        );
    }
    log::info!("replacing stale socket {}", path.display());
    std::fs::remove_file(path).with_context(|| format!("remove stale socket {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    // The wording and the rule (only a default host) are clap_dist's, tested there; what is
    // the server's own is what it tells the user to use.
    #[test]
    fn an_unresolvable_default_host_suggests_loopback_or_every_address() {
        let failed = anyhow::anyhow!("host \"vm\": [Errno -2] Name or service not known");
        let explained = format!("{:#}", explain_default_host(failed, None));
        assert!(explained.contains("use --host 127.0.0.1 (this machine only) or --host ''"));
    }

    #[test]
    fn a_handed_socket_is_shared_by_every_loop_and_handed_on_by_its_role() {
        let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = tcp.local_addr().unwrap();
        let args =
            <Args as clap::Parser>::try_parse_from(["greet-server", "--threads", "3"]).unwrap();
        let handed = vec![(Listener::Tcp(tcp), "tcp".to_string())];
        let sockets = Sockets::open(&args, Some(handed), false, None).unwrap();
        assert_eq!(sockets.groups.len(), 3);
        for group in &sockets.groups {
            let [Listener::Tcp(l)] = group.as_slice() else {
                panic!("{group:?}");
            };
            assert_eq!(l.local_addr().unwrap(), addr);
        }
        // One to hand on, not one per loop: a restarted server shares it again.
        let roles: Vec<_> = sockets.handover.iter().map(|(_, role)| *role).collect();
        assert_eq!(roles, ["tcp"]);
        assert!(sockets.unix_file.is_none());
    }
}
