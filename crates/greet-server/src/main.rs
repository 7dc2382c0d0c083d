//! `greet-server`: the socket tutorial's greeting server, on netcore.

#[macro_use]
mod say;

mod accesslog;
mod limits;
mod logger;
mod logsink;
mod metrics;
mod ratelimit;
mod restart;
mod service;
mod socket_file;
mod stats;

use anyhow::{anyhow, bail, Context, Result};
use std::io::Write;
use std::net::SocketAddr;
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use netcore::{Config, EventLoop, ListenOptions, ShutdownHandle};
use resolver::{Family, PyAddr, Transport};
use socket2::{Domain, Socket, Type};

use greet_server::activation::{self, Activated};
use greet_server::cli::{self, Args};
use limits::{ConnectionLimit, SourceLimit};
use metrics::Metrics;
use ratelimit::ReplyLimiter;
use restart::{HandoverHook, Restarter};
use service::GreetService;
use socket_file::{FileId, SocketFile};
use stats::{Live, Published, Reporter, Shown, Stats, Summary};

/// After the loops have drained: how long the log writer may take to write what is queued
/// before the server exits anyway, counting the rest as dropped.
const LOG_FLUSH_GRACE: Duration = Duration::from_secs(1);

fn main() -> ExitCode {
    logger::init();
    match serve() {
        Ok(()) => ExitCode::SUCCESS,
        // clap prints its own messages and ignores a failed write; the rest is ours.
        Err(e) if e.downcast_ref::<clap::Error>().is_some() => {
            clap_dist::exit_status("greet-server", &e)
        }
        Err(e) => {
            say!("greet-server: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn serve() -> Result<()> {
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if let Some(request) = clap_dist::request(&argv, "greet-server") {
        let dir = request.map_err(anyhow::Error::msg)?;
        return cli::generate(&dir);
    }
    let args = Args::try_parse_from(argv)?;
    args.check()?;
    if let Some(notice) = args.trust_notice() {
        say!("greet-server: {notice}");
    }
    // Before any thread starts: taking the sockets (and the readiness pipe of a restart, and
    // the identity of the socket file it hands on) also removes LISTEN_* (GREET_READY_FD,
    // GREET_UNIX_FILE) from the environment.
    let ready = restart::take_ready_fd();
    let passed = socket_file::take_passed();
    let activated = activation::take_listeners().context("socket activation")?;
    let summary = run(&args, activated, ready, passed)?;
    say!("{summary}");
    Ok(())
}

/// What the server listens on, before it is split between loops.
enum Listener {
    Tcp(std::net::TcpListener),
    Udp(std::net::UdpSocket),
    Unix(std::os::unix::net::UnixListener, PathBuf),
}

fn run(
    args: &Args,
    mut activated: Option<Vec<(Activated, String)>>,
    ready: Option<OwnedFd>,
    passed: Option<FileId>,
) -> Result<Summary> {
    let message: Arc<[u8]> = match &args.message_file {
        Some(path) => clap_dist::read_file_arg(path, clap_dist::MESSAGE_MAX)
            .map_err(|e| anyhow::anyhow!("message file {e}"))?
            .into(),
        None => args.message.as_bytes().into(),
    };
    let threads = usize::from(args.threads.unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(1, |n| u16::try_from(n.get()).unwrap_or(1))
    }));
    let metrics_listener = metrics::listener(args.metrics, activated.as_mut())?;
    let (listeners, mut handover, unix_file): (_, restart::Sockets, _) = match activated {
        Some(sockets) => {
            // A Unix socket file handed on by a restart is this server's to remove (while it
            // is the socket the old server bound); one from systemd (or named otherwise) is
            // not.
            let restarted = ready.is_some();
            let owned = sockets.iter().find_map(|(socket, name)| match socket {
                Activated::Unix(_, path) if restarted && name == "unix" => {
                    SocketFile::handed(path, passed)
                }
                _ => None,
            });
            let handover = sockets
                .iter()
                .map(|(socket, _)| duplicate(socket, owned.is_some()))
                .collect::<Result<_, _>>()?;
            let sockets = sockets.into_iter().map(|(socket, _)| socket).collect();
            (share(sockets, threads)?, handover, owned)
        }
        None => {
            let (groups, file) = bind(args, threads)?;
            let handover = groups
                .iter()
                .flatten()
                .map(|listener| duplicate_listener(listener, file.is_some()))
                .collect::<Result<_, _>>()?;
            (groups, handover, file)
        }
    };
    // Before the readiness lines: a signal sent once they are out is handled (it waits in
    // the handler's pipe until the signal thread starts), never the default action.
    let signals =
        signal_hook::iterator::Signals::new(SIGNALS).context("install signal handlers")?;
    if let Some(listener) = &metrics_listener {
        let fd = listener.as_fd().try_clone_to_owned();
        handover.push((fd.context("duplicate the metrics listener")?, "metrics"));
    }
    announce(listeners.iter().flatten(), metrics_listener.as_ref())?;
    let (writer, sink) = if args.quiet {
        (None, None)
    } else {
        let out = std::io::stdout()
            .as_fd()
            .try_clone_to_owned()
            .context("duplicate stdout")?;
        let (writer, sink) = logsink::start(out)?;
        (Some(writer), Some(sink))
    };

    let config = Config {
        idle_timeout: Some(args.idle_timeout),
        write_timeout: Some(args.write_timeout),
        max_connections: args.max_connections.unwrap_or(usize::MAX),
        ..Config::default()
    };
    let mut loops = Vec::with_capacity(listeners.len());
    for group in listeners {
        let mut event_loop = EventLoop::new(config.clone())?;
        for listener in group {
            match listener {
                Listener::Tcp(l) => event_loop.add_tcp_listener(l).map(drop),
                Listener::Udp(s) => event_loop.add_udp_socket(s).map(drop),
                Listener::Unix(l, _) => event_loop.add_unix_listener(l).map(drop),
            }?;
        }
        loops.push(event_loop);
    }
    let metrics_id = match (metrics_listener, loops.first_mut()) {
        (Some(listener), Some(first)) => Some(first.add_tcp_listener(listener)?),
        _ => None,
    };
    let handles: Vec<ShutdownHandle> = loops.iter().map(EventLoop::shutdown_handle).collect();
    let live = Live {
        loops: loops
            .iter()
            .map(|l| (l.counters(), Arc::new(Published::default())))
            .collect(),
        log: sink.as_ref().map(logsink::LogSink::counter),
        shown: Shown::of(args),
    };
    let counters: Vec<_> = live.loops.iter().map(|(c, _)| Arc::clone(c)).collect();
    let published: Vec<_> = live.loops.iter().map(|(_, p)| Arc::clone(p)).collect();
    let metrics = Arc::new(Metrics::new(live.clone()));
    let reporter = Reporter::new(live, args.stats_interval)?;
    let restarter = Arc::new(Restarter::new(
        handover,
        args.upgrade_binary.clone(),
        unix_file.as_ref().map(SocketFile::id),
        args.restart_timeout,
        handles.clone(),
    ));
    if metrics_id.is_some() {
        let successor = Arc::clone(&metrics);
        restarter.on_handover(HandoverHook(Box::new(move |channel| {
            successor.hand_over(channel);
        })));
        if let Some(ready) = &ready {
            metrics.follow(
                ready
                    .try_clone()
                    .context("duplicate the readiness channel")?,
            )?;
        }
    }
    watch_signals(signals, handles, Arc::clone(&restarter), reporter)?;

    let limit = args
        .max_connections
        .map(|n| Arc::new(ConnectionLimit::new(n)));
    let per_source = args.max_per_source.map(|n| Arc::new(SourceLimit::new(n)));
    let workers: Vec<_> = loops
        .into_iter()
        .zip(published)
        .enumerate()
        .map(|(i, (mut event_loop, published))| {
            let limiter = match args.udp_rate {
                Some(0) => None,
                Some(rate) => Some(ReplyLimiter::new(rate, true, Instant::now())),
                None => Some(ReplyLimiter::new(
                    ratelimit::DEFAULT_RATE,
                    false,
                    Instant::now(),
                )),
            };
            let mut service =
                GreetService::new(Arc::clone(&message), sink.clone(), limiter, published)
                    .with_log_format(args.log_format)
                    .with_limits(limit.clone(), per_source.clone())
                    .timed(metrics_id.is_some());
            if let (0, Some(id)) = (i, metrics_id) {
                service = service.with_metrics(id, Arc::clone(&metrics));
            }
            if args.proxy_protocol {
                let trusted = (!args.proxy_trusted.is_empty()).then(|| args.proxy_trusted.clone());
                service = service.with_proxy_protocol(args.proxy_timeout, trusted);
            }
            std::thread::Builder::new()
                .name(format!("loop-{i}"))
                .spawn(move || event_loop.run(&mut service).map(|()| service.stats))
        })
        .collect();
    // Only the loops hold the log sink now: when they end, the writer sees the end.
    drop(sink);
    // A server started by a restart that could not say it is ready (the old one gave up on
    // it and goes on serving) leaves the socket file to the old one.
    let told = restart::notify_ready(ready);
    let unix_file = unix_file.filter(|_| told);
    let mut total = Stats::default();
    let mut failure = None;
    for worker in workers {
        let joined = worker
            .context("start event loop thread")?
            .join()
            .map_err(|_| anyhow!("an event loop thread panicked"))?;
        match joined {
            Ok(stats) => total += stats,
            Err(e) => failure = Some(anyhow::Error::from(e).context("event loop")),
        }
    }
    let log = writer.map(|w| w.finish(Instant::now() + LOG_FLUSH_GRACE));
    metrics.finish();
    // The socket file stays when a new server took it over.
    if let Some(file) = unix_file.filter(|_| !restarter.handed_over()) {
        file.remove();
    }
    match failure {
        Some(e) => Err(e),
        None => {
            let mut summary = Summary::new(&counters, total, Shown::of(args));
            summary.log = log;
            Ok(summary)
        }
    }
}

/// A duplicate of a listening socket to hand on at a restart, with its role.
fn duplicate(socket: &Activated, owned: bool) -> Result<(OwnedFd, &'static str)> {
    let fd = match socket {
        Activated::Tcp(l) => l.as_fd().try_clone_to_owned(),
        Activated::Udp(s) => s.as_fd().try_clone_to_owned(),
        Activated::Unix(l, _) => l.as_fd().try_clone_to_owned(),
    };
    fd.map(|fd| (fd, socket.role(owned)))
        .context("duplicate a listening socket")
}

/// The same for a socket this server bound (a Unix socket file it created is its own, when
/// `owned`).
fn duplicate_listener(listener: &Listener, owned: bool) -> Result<(OwnedFd, &'static str)> {
    let (fd, role) = match listener {
        Listener::Tcp(l) => (l.as_fd().try_clone_to_owned(), "tcp"),
        Listener::Udp(s) => (s.as_fd().try_clone_to_owned(), "udp"),
        Listener::Unix(l, _) if owned => (l.as_fd().try_clone_to_owned(), "unix"),
        Listener::Unix(l, _) => (l.as_fd().try_clone_to_owned(), "unix-keep"),
    };
    fd.map(|fd| (fd, role))
        .context("duplicate a listening socket")
}

/// The sockets systemd handed over, for every loop: each loop polls its own duplicate of
/// each socket, and whichever loop is woken first accepts (or receives).
fn share(sockets: Vec<Activated>, threads: usize) -> Result<Vec<Vec<Listener>>> {
    let mut groups: Vec<Vec<Listener>> = (0..threads).map(|_| Vec::new()).collect();
    for socket in sockets {
        for group in groups.iter_mut().skip(1) {
            let copy = match &socket {
                Activated::Tcp(l) => l.try_clone().map(Listener::Tcp),
                Activated::Udp(s) => s.try_clone().map(Listener::Udp),
                Activated::Unix(l, path) => l.try_clone().map(|l| Listener::Unix(l, path.clone())),
            };
            group.push(copy.context("duplicate a socket-activation descriptor")?);
        }
        if let Some(first) = groups.first_mut() {
            first.push(match socket {
                Activated::Tcp(l) => Listener::Tcp(l),
                Activated::Udp(s) => Listener::Udp(s),
                Activated::Unix(l, path) => Listener::Unix(l, path),
            });
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
                .map_err(|e| {
                    let e = anyhow::Error::new(e);
                    if args.host.is_some() {
                        return e;
                    }
                    // The tutorial's default: this machine's name, which a container or a
                    // fresh VM often does not list in /etc/hosts.
                    e.context(
                        "no --host given, and this machine's name (the default, as the \
                         tutorial's gethostname()) does not resolve; use --host 127.0.0.1 \
                         (this machine only) or --host '' (every address)",
                    )
                })?;
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
        match bind_inet_once(addr, tcp, udp, threads, opts) {
            Err(e) if addr.port() == 0 && in_use(&e) && attempt < SAME_PORT_ATTEMPTS => {
                log::debug!("{e:#}; another port");
                attempt += 1;
            }
            bound => return bound,
        }
    }
}

fn bind_inet_once(
    addr: SocketAddr,
    tcp: bool,
    udp: bool,
    threads: usize,
    opts: &ListenOptions,
) -> Result<Vec<Vec<Listener>>> {
    let mut groups: Vec<Vec<Listener>> = (0..threads).map(|_| Vec::new()).collect();
    let mut at = addr;
    for (wanted, kind) in [(tcp, Type::STREAM), (udp, Type::DGRAM)] {
        if !wanted {
            continue;
        }
        if opts.reuse_port {
            at = unshared_port(at, kind, opts)?;
        }
        for group in &mut groups {
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
    Ok(groups)
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
    socket2::Socket::new(socket2::Domain::IPV6, socket2::Type::STREAM, None).is_ok()
}

/// A socket file left by a server that died may be replaced; anything else may not.
fn remove_stale_socket(path: &std::path::Path) -> Result<()> {
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

/// The readiness lines: one per distinct address and transport, the metrics listener's
/// last, flushed at once.
fn announce<'a>(
    listeners: impl Iterator<Item = &'a Listener>,
    metrics: Option<&std::net::TcpListener>,
) -> Result<()> {
    let mut out = std::io::stdout().lock();
    let mut seen: Vec<String> = Vec::new();
    for listener in listeners {
        let name = |addr: std::io::Result<SocketAddr>, kind: &str| {
            addr.map(|a| format!("{} {kind}", PyAddr(&a)))
                .context("getsockname")
        };
        let line = match listener {
            Listener::Tcp(l) => name(l.local_addr(), "tcp")?,
            Listener::Udp(s) => name(s.local_addr(), "udp")?,
            Listener::Unix(_, path) => format!("'{}' unix", path.display()),
        };
        if seen.contains(&line) {
            continue;
        }
        writeln!(out, "Listening on {line}").context("stdout")?;
        seen.push(line);
    }
    if let Some(listener) = metrics {
        let addr = listener.local_addr().context("getsockname")?;
        writeln!(out, "Listening on {} metrics", PyAddr(&addr)).context("stdout")?;
    }
    out.flush().context("stdout")
}

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGUSR1};

/// The signals the server handles.
const SIGNALS: [i32; 4] = [SIGINT, SIGTERM, SIGHUP, SIGUSR1];

/// First SIGINT/SIGTERM: graceful stop of every loop. Second: exit at once. SIGHUP:
/// restart (see `restart.rs`). SIGUSR1: the summary line now (printed by the stats thread).
fn watch_signals(
    mut signals: signal_hook::iterator::Signals,
    handles: Vec<ShutdownHandle>,
    restarter: Arc<Restarter>,
    mut reporter: Reporter,
) -> Result<()> {
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            let mut seen = 0;
            for signal in signals.forever() {
                match signal {
                    SIGHUP => restarter.request(),
                    SIGUSR1 => reporter.report(),
                    _ => {
                        seen += 1;
                        if seen > 1 {
                            say!("greet-server: second signal, exiting at once");
                            std::process::exit(128 + signal);
                        }
                        log::info!("signal {signal}: stopping");
                        restarter.stop();
                        for handle in &handles {
                            handle.shutdown();
                        }
                    }
                }
            }
        })
        .context("start signal thread")?;
    Ok(())
}
