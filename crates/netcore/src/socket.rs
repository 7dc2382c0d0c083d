//! Building listening and datagram sockets with the options `std` and `mio` do not expose
//! (backlog, `SO_REUSEPORT`, `IPV6_V6ONLY`), before they are handed to an event loop.

use std::fmt;
use std::io;
use std::net::{self, SocketAddr};
use std::os::unix::net as unix;
use std::path::Path;

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use crate::error::{Error, ErrorKind};

/// How to build a listening socket.
///
/// # Examples
///
/// ```
/// let opts = netcore::ListenOptions { backlog: 5, ..Default::default() };
/// let listener = netcore::tcp_listener("127.0.0.1:0".parse()?, &opts)?;
/// assert!(listener.local_addr()?.port() != 0);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenOptions {
    /// The `listen()` backlog. The default is [`max_backlog()`]: a small one (the tutorial's
    /// 5) overflows under a burst of clients, and Linux then drops handshakes it answered with
    /// SYN cookies, leaving clients waiting for a greeting that never comes.
    pub backlog: u32,
    /// Set `SO_REUSEPORT`, so that several loops can each own a listener on one port and the
    /// kernel spreads connections between them.
    pub reuse_port: bool,
    /// For IPv6 addresses: accept IPv6 only (`IPV6_V6ONLY`), not IPv4-mapped peers too.
    pub v6_only: bool,
}

impl Default for ListenOptions {
    fn default() -> ListenOptions {
        ListenOptions {
            backlog: max_backlog(),
            reuse_port: false,
            v6_only: true,
        }
    }
}

/// The system's largest `listen()` backlog (`/proc/sys/net/core/somaxconn`), or 4096 where it
/// cannot be read. The kernel silently caps any larger value to it.
///
/// # Examples
///
/// ```
/// assert!(netcore::max_backlog() >= 128);
/// ```
pub fn max_backlog() -> u32 {
    std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(4096)
}

/// Creates a non-blocking TCP listener on `addr`, with `SO_REUSEADDR` (so a restarted server
/// does not wait out `TIME_WAIT`) and the given options.
///
/// # Errors
///
/// [`ErrorKind::Bind`] when the address is in use or not allowed; the message names `addr`.
pub fn tcp_listener(addr: SocketAddr, opts: &ListenOptions) -> Result<net::TcpListener, Error> {
    let socket = inet_socket(addr, Type::STREAM, Protocol::TCP, opts)?;
    socket
        .set_reuse_address(true)
        .map_err(|e| Error::new(ErrorKind::Socket, format!("set SO_REUSEADDR on {addr}"), e))?;
    bind_listen(&socket, &SockAddr::from(addr), addr, opts)?;
    Ok(socket.into())
}

/// Creates `count` TCP listeners on one address, each with `SO_REUSEPORT`, for one event loop
/// each: the kernel spreads incoming connections between them (by a hash of the peer's
/// address and port), so `count` loops on `count` threads share the work with no lock
/// between them. Port 0 picks one free port for all of them.
///
/// `opts.reuse_port` is set whatever it was. netcore starts no threads: running the loops is
/// the caller's part.
///
/// # Errors
///
/// [`ErrorKind::Bind`] when the address is in use by a socket without `SO_REUSEPORT` (or by
/// another user), as for [`tcp_listener`].
///
/// # Examples
///
/// ```
/// use netcore::{EventLoop, ListenOptions};
///
/// let listeners =
///     netcore::tcp_listeners_reuse_port("127.0.0.1:0".parse()?, 2, &ListenOptions::default())?;
/// let port = listeners[0].local_addr()?.port();
/// assert!(listeners.iter().all(|l| l.local_addr().unwrap().port() == port));
/// for listener in listeners {
///     let mut event_loop: EventLoop = EventLoop::new(netcore::Config::default())?;
///     event_loop.add_tcp_listener(listener)?;
///     // ... std::thread::spawn(move || event_loop.run(&mut handler));
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn tcp_listeners_reuse_port(
    addr: SocketAddr,
    count: usize,
    opts: &ListenOptions,
) -> Result<Vec<net::TcpListener>, Error> {
    let opts = ListenOptions {
        reuse_port: true,
        ..*opts
    };
    let mut listeners = Vec::with_capacity(count);
    let mut addr = addr;
    for _ in 0..count {
        let listener = tcp_listener(addr, &opts)?;
        if addr.port() == 0 {
            addr = listener
                .local_addr()
                .map_err(|e| Error::new(ErrorKind::Socket, format!("getsockname {addr}"), e))?;
        }
        listeners.push(listener);
    }
    Ok(listeners)
}

/// Creates a non-blocking UDP socket bound to `addr` (`SO_REUSEPORT` and `IPV6_V6ONLY` as in
/// `opts`; the backlog is not used).
///
/// # Errors
///
/// [`ErrorKind::Bind`] when the address is in use or not allowed; the message names `addr`.
pub fn udp_socket(addr: SocketAddr, opts: &ListenOptions) -> Result<net::UdpSocket, Error> {
    let socket = inet_socket(addr, Type::DGRAM, Protocol::UDP, opts)?;
    socket
        .bind(&SockAddr::from(addr))
        .map_err(|e| Error::new(ErrorKind::Bind, format!("bind {addr}"), e))?;
    Ok(socket.into())
}

/// Creates a non-blocking Unix-domain stream listener at `path`.
///
/// The path must not exist; deciding whether an existing file may be replaced (a stale socket
/// of a dead server may, anything else may not) is the caller's policy.
///
/// # Errors
///
/// [`ErrorKind::Bind`] when the path exists or its directory is not writable; the message
/// names the path.
pub fn unix_listener(path: &Path, opts: &ListenOptions) -> Result<unix::UnixListener, Error> {
    let shown = path.display();
    let socket = Socket::new(Domain::UNIX, Type::STREAM.nonblocking().cloexec(), None)
        .map_err(|e| Error::new(ErrorKind::Socket, format!("socket for {shown}"), e))?;
    let addr = SockAddr::unix(path)
        .map_err(|e| Error::new(ErrorKind::Bind, format!("bind {shown}"), e))?;
    bind_listen(&socket, &addr, shown, opts)?;
    Ok(socket.into())
}

/// Binds `socket` to `addr` and listens with `opts.backlog`; `shown` names the address in
/// errors ([`ErrorKind::Bind`], [`ErrorKind::Listen`]).
fn bind_listen(
    socket: &Socket,
    addr: &SockAddr,
    shown: impl fmt::Display,
    opts: &ListenOptions,
) -> Result<(), Error> {
    socket
        .bind(addr)
        .map_err(|e| Error::new(ErrorKind::Bind, format!("bind {shown}"), e))?;
    let backlog = i32::try_from(opts.backlog).unwrap_or(i32::MAX);
    socket
        .listen(backlog)
        .map_err(|e| Error::new(ErrorKind::Listen, format!("listen on {shown}"), e))
}

fn inet_socket(
    addr: SocketAddr,
    ty: Type,
    protocol: Protocol,
    opts: &ListenOptions,
) -> Result<Socket, Error> {
    let socket_err =
        |what: &str, e: io::Error| Error::new(ErrorKind::Socket, format!("{what} for {addr}"), e);
    // SOCK_NONBLOCK | SOCK_CLOEXEC at creation: no extra fcntl calls.
    let socket = Socket::new(
        Domain::for_address(addr),
        ty.nonblocking().cloexec(),
        Some(protocol),
    )
    .map_err(|e| socket_err("socket", e))?;
    if addr.is_ipv6() {
        socket
            .set_only_v6(opts.v6_only)
            .map_err(|e| socket_err("set IPV6_V6ONLY", e))?;
    }
    if opts.reuse_port {
        socket
            .set_reuse_port(true)
            .map_err(|e| socket_err("set SO_REUSEPORT", e))?;
    }
    Ok(socket)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reuse_port_lets_two_listeners_share_a_port() {
        let opts = ListenOptions {
            reuse_port: true,
            ..ListenOptions::default()
        };
        let a = tcp_listener("127.0.0.1:0".parse().unwrap(), &opts).unwrap();
        let addr = a.local_addr().unwrap();
        let b = tcp_listener(addr, &opts).unwrap();
        assert_eq!(b.local_addr().unwrap(), addr);
    }

    #[test]
    fn bind_error_names_the_address() {
        let a = tcp_listener("127.0.0.1:0".parse().unwrap(), &ListenOptions::default()).unwrap();
        let addr = a.local_addr().unwrap();
        let err = tcp_listener(addr, &ListenOptions::default()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Bind);
        assert_eq!(err.io_error().kind(), io::ErrorKind::AddrInUse);
        assert!(
            err.to_string().starts_with(&format!("bind {addr}: ")),
            "{err}"
        );
    }

    #[test]
    fn unix_listener_refuses_an_existing_path() {
        let dir = std::env::temp_dir().join(format!("netcore-sock-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("taken");
        std::fs::write(&path, b"not a socket").unwrap();
        let err = unix_listener(&path, &ListenOptions::default()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Bind);
        assert!(err.to_string().contains("taken"));
        assert_eq!(std::fs::read(&path).unwrap(), b"not a socket");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
