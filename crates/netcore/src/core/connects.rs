//! Outgoing connects: the error [`Handler::on_connect`](crate::Handler::on_connect) gets
//! when one fails ([`ConnectError`]), and connects by name
//! ([`Control::connect_name`](crate::Control::connect_name)):
//! the name resolved on the loop's worker pool, its addresses tried in turn.
//!
//! Every outgoing connect is in [`PendingConnects`] from its start until it completes or
//! ends. While it is, the loop's one end-of-life path (`close`) asks
//! [`connect_ended`] first: a connect by name with addresses left moves on to the next one
//! (the same connection, id and state, a new socket), and one that is out of addresses gets
//! its [`ConnectError`] for `on_connect` before `on_close`.
//!
//! A connection by name exists from the call on, so that everything the handler may do
//! with a connect in progress (send, pipe, pause, abort, set a deadline) works while its
//! name is being resolved too. Until then its socket is a placeholder: an unconnected TCP
//! socket, which the loop treats as a connect still in progress (mio's recipe finds it not
//! connected: no error, no peer), under the idle deadline, so a lookup that hangs ends the
//! connect with [`CloseReason::Timeout`].

use std::collections::HashMap;
#[cfg(feature = "resolver")]
use std::collections::VecDeque;
use std::fmt;
use std::io;
#[cfg(feature = "resolver")]
use std::net::SocketAddr;

use super::Core;
#[cfg(feature = "resolver")]
use super::{Continuation, Work};
#[cfg(feature = "resolver")]
use crate::connection::{Connection, Stream};
use crate::id::{CloseReason, ConnId, PeerAddr};

/// Why an outgoing connect did not complete, as [`Handler::on_connect`](crate::Handler::on_connect)
/// gets it: every address tried with its error, in order, or the resolver's error for a
/// name that did not resolve.
///
/// Its `Display` form names the target first, then what happened to each address:
/// `connect localhost:9: [::1]:9: Connection refused (os error 111); 127.0.0.1:9:
/// Connection refused (os error 111)`, or `connect nosuch.invalid:80: host
/// "nosuch.invalid": [Errno -2] Name or service not known`.
///
/// # Examples
///
/// ```
/// use netcore::{Conn, ConnectError, Handler, PeerAddr};
///
/// struct Client;
///
/// impl Handler for Client {
///     fn on_connect(&mut self, conn: &mut Conn<'_>, outcome: Result<&PeerAddr, &ConnectError>) {
///         match outcome {
///             Ok(addr) => eprintln!("connected to {addr:?}"),
///             Err(err) => {
///                 for (addr, error) in err.attempts() {
///                     eprintln!("{addr:?}: {error}");
///                 }
///             }
///         }
///         let _ = conn;
///     }
/// }
/// # let _ = Client;
/// ```
#[derive(Debug)]
pub struct ConnectError {
    target: String,
    attempts: Vec<(PeerAddr, io::Error)>,
    #[cfg(feature = "resolver")]
    resolve: Option<resolver::Error>,
    /// What failed before any address could be tried (no socket, a full worker pool).
    before: Option<io::Error>,
    reason: CloseReason,
}

impl ConnectError {
    /// What the connect was asked for: `host:port` for a connect by name (`[host]:port`
    /// for an IPv6 literal), the address or path otherwise.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// Every address tried, in order, with its error (the last one's is why the connect
    /// failed); empty when the name did not resolve, or the connect ended before it tried
    /// one (the loop stopped, the handler aborted it, its deadline passed while the name
    /// was being resolved).
    pub fn attempts(&self) -> &[(PeerAddr, io::Error)] {
        &self.attempts
    }

    /// The resolver's error, for a name that did not resolve. Its
    /// [`code`](resolver::Error::code) is the number Python's `socket.gaierror` carries
    /// (`-2`, `EAI_NONAME`, for an unknown name).
    #[cfg(feature = "resolver")]
    pub fn resolve_error(&self) -> Option<&resolver::Error> {
        self.resolve.as_ref()
    }

    /// The reason [`Handler::on_close`](crate::Handler::on_close) gets for this connection
    /// next: the last address's ([`CloseReason::Refused`], [`CloseReason::ConnectFailed`],
    /// [`CloseReason::Timeout`]), or what ended the connect otherwise.
    pub fn reason(&self) -> CloseReason {
        self.reason
    }

    /// A connect that failed before it had a socket.
    pub(crate) fn at_once(peer: &PeerAddr, err: io::Error, reason: CloseReason) -> ConnectError {
        ConnectError {
            target: show(peer),
            attempts: vec![(peer.clone(), err)],
            #[cfg(feature = "resolver")]
            resolve: None,
            before: None,
            reason,
        }
    }

    /// A connect by name that failed before it could try an address.
    #[cfg(feature = "resolver")]
    fn before_any(target: String, err: io::Error, reason: CloseReason) -> ConnectError {
        ConnectError {
            target,
            attempts: Vec::new(),
            resolve: None,
            before: Some(err),
            reason,
        }
    }

    #[cfg(feature = "resolver")]
    fn unresolved(target: String, err: resolver::Error, reason: CloseReason) -> ConnectError {
        ConnectError {
            target,
            attempts: Vec::new(),
            resolve: Some(err),
            before: None,
            reason,
        }
    }
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "connect {}: ", self.target)?;
        let mut parts = Vec::new();
        #[cfg(feature = "resolver")]
        if let Some(err) = &self.resolve {
            parts.push(err.to_string());
        }
        if let Some(err) = &self.before {
            parts.push(err.to_string());
        }
        match &self.attempts[..] {
            // A plain connect: its address is the target already.
            [(addr, err)] if show(addr) == self.target => parts.push(err.to_string()),
            attempts => parts.extend(
                attempts
                    .iter()
                    .map(|(addr, err)| format!("{}: {err}", show(addr))),
            ),
        }
        let ended_otherwise = matches!(self.reason, CloseReason::Aborted | CloseReason::Shutdown);
        if ended_otherwise || parts.is_empty() {
            parts.push(describe(self.reason).to_string());
        }
        f.write_str(&parts.join("; "))
    }
}

/// The OS error is part of the `Display` form, so `source()` returns `None`.
impl std::error::Error for ConnectError {}

/// The outgoing connects in progress, by connection.
#[derive(Debug, Default)]
pub(crate) struct PendingConnects {
    by_id: HashMap<ConnId, Pending>,
}

#[derive(Debug, Default)]
struct Pending {
    /// `host:port` for a connect by name; a plain connect's target is its peer.
    target: Option<String>,
    /// Addresses still to try after the current one.
    #[cfg(feature = "resolver")]
    left: VecDeque<SocketAddr>,
    /// Addresses that failed, with their errors.
    attempts: Vec<(PeerAddr, io::Error)>,
    /// A socket is connecting to the connection's peer (not so while the name resolves).
    trying: bool,
    /// The error the loop saw for the current attempt (`SO_ERROR`), before the close that
    /// follows it.
    error: Option<io::Error>,
    #[cfg(feature = "resolver")]
    resolve: Option<resolver::Error>,
}

impl PendingConnects {
    /// A plain connect (one address: the connection's peer) has started.
    pub(crate) fn begin(&mut self, id: ConnId) {
        let pending = Pending {
            trying: true,
            ..Pending::default()
        };
        self.by_id.insert(id, pending);
    }

    /// The connect completed.
    pub(crate) fn connected(&mut self, id: ConnId) {
        if !self.by_id.is_empty() {
            self.by_id.remove(&id);
        }
    }

    /// Whether `id` is an outgoing connect still in progress. Asked at every close: a loop
    /// with no connect in progress answers without a lookup.
    #[inline]
    pub(crate) fn is_pending(&self, id: ConnId) -> bool {
        !self.by_id.is_empty() && self.by_id.contains_key(&id)
    }

    /// The loop saw why the current attempt failed.
    pub(crate) fn attempt_failed(&mut self, id: ConnId, err: &io::Error) {
        if let Some(pending) = self.by_id.get_mut(&id) {
            pending.error = Some(copy_error(err));
        }
    }
}

/// Connection `id`, an outgoing connect in progress, is ending with `reason`. Returns
/// `None` when its next address is being tried instead (the connection lives on), or the
/// error to hand to `on_connect` before it closes.
pub(crate) fn connect_ended<T>(
    core: &mut Core<T>,
    id: ConnId,
    reason: CloseReason,
) -> Option<ConnectError> {
    let pending = core.connects.by_id.get_mut(&id)?;
    let peer = core.conns.get(id).map(|c| c.peer().clone());
    let failed = matches!(
        reason,
        CloseReason::Refused | CloseReason::ConnectFailed(_) | CloseReason::Timeout
    );
    if std::mem::take(&mut pending.trying) && failed {
        if let Some(peer) = &peer {
            let err = pending
                .error
                .take()
                .unwrap_or_else(|| io::Error::new(io::ErrorKind::TimedOut, describe(reason)));
            pending.attempts.push((peer.clone(), err));
        }
    }
    #[cfg(feature = "resolver")]
    if failed && next_address(core, id) {
        return None;
    }
    let pending = core.connects.by_id.remove(&id)?;
    let target = match (pending.target, &peer) {
        (Some(target), _) => target,
        (None, Some(peer)) => show(peer),
        (None, None) => String::new(),
    };
    Some(ConnectError {
        target,
        attempts: pending.attempts,
        #[cfg(feature = "resolver")]
        resolve: pending.resolve,
        before: None,
        reason,
    })
}

/// Starts a connect by name; see [`Control::connect_name`](crate::Control::connect_name).
#[cfg(feature = "resolver")]
pub(crate) fn connect_name<T>(core: &mut Core<T>, host: &str, port: &str, state: T) -> ConnId {
    use resolver::{Family, Transport};
    let target = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    // Numeric forms need no lookup, and so no thread.
    if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) {
        match resolver::socket_addr_numeric(host, port, Family::Any, Transport::Tcp) {
            Ok(addr) => return core.connect_tcp(addr, state),
            // A name, to be looked up (a host with a colon never is: it was an IPv6 literal).
            Err(err) if err.eai_code() == Some(libc::EAI_NONAME) && !host.contains(':') => {}
            Err(err) => {
                let reason = CloseReason::ConnectFailed(io_kind(&err));
                return fail_at_once(core, ConnectError::unresolved(target, err, reason), state);
            }
        }
    }
    let placeholder = match placeholder_socket() {
        Ok(socket) => socket,
        Err(err) => {
            let reason = CloseReason::from_connect(&err);
            return fail_at_once(core, ConnectError::before_any(target, err, reason), state);
        }
    };
    let id = core.conns.next_id();
    let (host, port) = (host.to_owned(), port.to_owned());
    let lookup = move || resolver::socket_addrs(&host, &port, Family::Any, Transport::Tcp);
    let then: Continuation<T> = Box::new(move |core, found| {
        if let Ok(found) = found.downcast() {
            resolved(core, id, *found);
        }
    });
    if let Err(err) = core.submit_blocking(lookup, then) {
        let err = io::Error::new(io::ErrorKind::WouldBlock, err.to_string());
        let reason = CloseReason::ConnectFailed(io::ErrorKind::WouldBlock);
        return fail_at_once(core, ConnectError::before_any(target, err, reason), state);
    }
    let inserted = insert_resolving(core, placeholder, target, state);
    debug_assert_eq!(inserted, id, "the lookup was submitted for this id");
    id
}

/// The connection of a connect by name whose name is being resolved: a placeholder
/// socket, and its pending connect.
#[cfg(feature = "resolver")]
fn insert_resolving<T>(
    core: &mut Core<T>,
    placeholder: mio::net::TcpStream,
    target: String,
    state: T,
) -> ConnId {
    let conn = Connection::connecting(
        Stream::Tcp(placeholder),
        unresolved_peer(),
        state,
        core.env.now,
    );
    let id = core.conns.insert(conn);
    let pending = Pending {
        target: Some(target),
        ..Pending::default()
    };
    core.connects.by_id.insert(id, pending);
    // Settling registers it (the placeholder raises one event, found not connected) and
    // gives it the idle deadline, which bounds the lookup.
    core.work.push_back(Work::Settle(id));
    id
}

/// The lookup for connection `id` is back.
#[cfg(feature = "resolver")]
fn resolved<T>(core: &mut Core<T>, id: ConnId, found: Result<Vec<SocketAddr>, resolver::Error>) {
    let Some(pending) = core.connects.by_id.get_mut(&id) else {
        return; // the connection ended while its name was being resolved
    };
    let reason = match found {
        Ok(addrs) => {
            pending.left = addrs.into();
            if next_address(core, id) {
                return;
            }
            let last = core.connects.by_id.get(&id).and_then(|p| p.attempts.last());
            last.map_or(
                CloseReason::ConnectFailed(io::ErrorKind::NotFound),
                |(_, e)| CloseReason::from_connect(e),
            )
        }
        Err(err) => {
            let reason = CloseReason::ConnectFailed(io_kind(&err));
            pending.resolve = Some(err);
            reason
        }
    };
    if let Some(c) = core.conns.get_mut(id) {
        c.end(reason);
        core.work.push_back(Work::Settle(id));
    }
}

/// Starts a connect to the next address of connection `id` that takes one, in place of
/// the socket it has; addresses whose `connect` fails at once are recorded and skipped.
/// Returns `false` when none is left.
#[cfg(feature = "resolver")]
fn next_address<T>(core: &mut Core<T>, id: ConnId) -> bool {
    let (Some(pending), Some(c)) = (core.connects.by_id.get_mut(&id), core.conns.get_mut(id))
    else {
        return false;
    };
    while let Some(addr) = pending.left.pop_front() {
        match mio::net::TcpStream::connect(addr) {
            Ok(stream) => {
                log::debug!("connect {:?}: trying {addr}", pending.target);
                drop(c.reconnect(Stream::Tcp(stream), PeerAddr::Inet(addr), core.env.now));
                pending.trying = true;
                core.work.push_back(Work::Settle(id));
                return true;
            }
            Err(err) => pending.attempts.push((PeerAddr::Inet(addr), err)),
        }
    }
    false
}

/// A connect by name that failed before its connection existed: reported as a connect
/// that failed at once is (`on_connect`, then `on_close`, once the callback returns).
#[cfg(feature = "resolver")]
fn fail_at_once<T>(core: &mut Core<T>, error: ConnectError, state: T) -> ConnId {
    log::debug!("{error}");
    let id = core.conns.next_id();
    core.conns.burn(id);
    core.work.push_back(Work::ConnectFailed {
        id,
        peer: unresolved_peer(),
        state,
        reason: error.reason,
        error,
    });
    id
}

/// The peer of a connection by name until its name is resolved (and in
/// [`Closed::peer`](crate::Closed::peer) when it never was): the unspecified address.
#[cfg(feature = "resolver")]
fn unresolved_peer() -> PeerAddr {
    PeerAddr::Inet(SocketAddr::from(([0, 0, 0, 0], 0)))
}

#[cfg(feature = "resolver")]
fn placeholder_socket() -> io::Result<mio::net::TcpStream> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::STREAM.nonblocking().cloexec(), None)?;
    Ok(mio::net::TcpStream::from_std(socket.into()))
}

/// The `io::ErrorKind` of a resolver error, as `io::Error::from` converts it.
#[cfg(feature = "resolver")]
fn io_kind(err: &resolver::Error) -> io::ErrorKind {
    use resolver::ErrorKind as Kind;
    match err.kind() {
        Kind::Os => err.os_error().map_or(io::ErrorKind::Other, io::Error::kind),
        Kind::NulByte | Kind::InvalidHost | Kind::InvalidPort | Kind::FamilyMismatch => {
            io::ErrorKind::InvalidInput
        }
        _ => io::ErrorKind::Other,
    }
}

/// An `io::Error` is not `Clone`; the OS error number (or kind and message) is all of it.
fn copy_error(err: &io::Error) -> io::Error {
    match err.raw_os_error() {
        Some(code) => io::Error::from_raw_os_error(code),
        None => io::Error::new(err.kind(), err.to_string()),
    }
}

fn show(addr: &PeerAddr) -> String {
    match addr {
        PeerAddr::Inet(addr) => addr.to_string(),
        PeerAddr::Unix(Some(path)) => path.display().to_string(),
        PeerAddr::Unix(None) => "an unnamed Unix socket".to_string(),
    }
}

fn describe(reason: CloseReason) -> &'static str {
    match reason {
        CloseReason::Timeout => "timed out",
        CloseReason::Shutdown => "the event loop shut down",
        CloseReason::Aborted => "aborted",
        CloseReason::Refused => "refused",
        _ => "failed",
    }
}

#[cfg(all(test, feature = "resolver"))]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::{Closed, Config, Conn, Control, EventLoop, Handler, TimerId};

    /// A port on 127.0.0.1 that refuses: bound, then closed again.
    fn refusing() -> SocketAddr {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("address")
    }

    /// Starts one connect by name as if its lookup had given `addrs`, and records what the
    /// handler hears of it.
    struct Client {
        addrs: Vec<SocketAddr>,
        started: bool,
        connected: Option<PeerAddr>,
        /// Each failed address and its error's kind, and the error's `Display` form.
        failed: Option<(Vec<(PeerAddr, io::ErrorKind)>, String)>,
        closed: Option<CloseReason>,
    }

    impl Handler for Client {
        fn on_timer(&mut self, ctl: &mut Control<'_>, _: TimerId) {
            if std::mem::replace(&mut self.started, true) {
                return ctl.stop(); // the bound on the whole test
            }
            let placeholder = placeholder_socket().expect("a socket");
            let id = insert_resolving(ctl.core_mut(), placeholder, "test.example:80".into(), ());
            resolved(ctl.core_mut(), id, Ok(std::mem::take(&mut self.addrs)));
        }

        fn on_connect(&mut self, conn: &mut Conn<'_>, outcome: Result<&PeerAddr, &ConnectError>) {
            match outcome {
                Ok(addr) => {
                    self.connected = Some(addr.clone());
                    conn.close();
                }
                Err(err) => {
                    let attempts = err.attempts().iter().map(|(a, e)| (a.clone(), e.kind()));
                    self.failed = Some((attempts.collect(), err.to_string()));
                }
            }
        }

        fn on_close(&mut self, ctl: &mut Control<'_>, closed: &Closed<'_>) {
            self.closed = Some(closed.reason);
            ctl.stop();
        }
    }

    fn run(addrs: Vec<SocketAddr>) -> Client {
        let mut event_loop = EventLoop::new(Config::default()).expect("a loop");
        let now = Instant::now();
        event_loop.set_timer(now);
        event_loop.set_timer(now + Duration::from_secs(20));
        let mut client = Client {
            addrs,
            started: false,
            connected: None,
            failed: None,
            closed: None,
        };
        event_loop.run(&mut client).expect("run");
        client
    }

    #[test]
    fn the_addresses_are_tried_in_order_until_one_connects() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let open = listener.local_addr().expect("address");
        let client = run(vec![refusing(), refusing(), open]);
        assert_eq!(client.connected, Some(PeerAddr::Inet(open)));
        assert!(client.failed.is_none(), "{:?}", client.failed);
        assert_eq!(client.closed, Some(CloseReason::Done));
    }

    #[test]
    fn when_every_address_fails_each_error_is_reported_in_order() {
        let addrs = vec![refusing(), refusing(), refusing()];
        let client = run(addrs.clone());
        assert_eq!(client.connected, None);
        let (attempts, shown) = client.failed.expect("on_connect heard of the failure");
        let refused: Vec<_> = addrs
            .iter()
            .map(|a| (PeerAddr::Inet(*a), io::ErrorKind::ConnectionRefused))
            .collect();
        assert_eq!(attempts, refused);
        assert_eq!(client.closed, Some(CloseReason::Refused));
        let parts: Vec<String> = addrs
            .iter()
            .map(|a| format!("{a}: {}", io::Error::from_raw_os_error(libc::ECONNREFUSED)))
            .collect();
        assert_eq!(
            shown,
            format!("connect test.example:80: {}", parts.join("; "))
        );
    }
}
