//! `greet-server`: the socket tutorial's greeting server, on netcore.

mod ratelimit;
mod service;

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use netcore::{Config, EventLoop, ListenOptions, ShutdownHandle};
use resolver::{Family, PyAddr, Transport};

use ratelimit::ReplyLimiter;
use service::{GreetService, Stats};

const EXAMPLES: &str = "\
Examples:
  greet-server                          the tutorial: this host's name, port 12345, TCP
  greet-server --host 127.0.0.1 --port 0    an ephemeral port (printed on the first line)
  greet-server --udp --port 5000        answer each datagram with the message
  greet-server --unix /tmp/greet.sock   serve a Unix-domain socket
  greet-server --backlog 5              the tutorial's listen(5) (see README: not the default)";

/// The socket tutorial's greeting server: for every client, print
/// `Got connection from (host, port)`, send the message, close.
///
/// At start it prints one line per listener on stdout, e.g.
/// `Listening on ('127.0.0.1', 12345) tcp`, so scripts can wait for it. SIGINT or SIGTERM
/// stops accepting, finishes every greeting already accepted, prints a summary on stderr and
/// exits 0; a second signal exits at once.
#[derive(Debug, Parser)]
#[command(version, after_help = EXAMPLES)]
struct Args {
    /// Host to bind: a name, an IPv4 or IPv6 address, or "" for every address.
    /// [default: this machine's hostname, as the tutorial's gethostname()]
    #[arg(long)]
    host: Option<String>,

    /// Port to bind: a number (0 = any free port), or a service name such as "qotd".
    #[arg(long, default_value = "12345")]
    port: String,

    /// Serve UDP instead of TCP: each datagram is answered with the message, sent to its
    /// source.
    #[arg(long)]
    udp: bool,

    /// Serve a Unix-domain stream socket at PATH instead of TCP. A stale socket file is
    /// replaced; any other file at PATH is never touched.
    #[arg(long, value_name = "PATH", conflicts_with = "udp")]
    unix: Option<PathBuf>,

    /// Use IPv4 only when resolving --host.
    #[arg(short = '4', conflicts_with = "ipv6")]
    ipv4: bool,

    /// Use IPv6 only when resolving --host.
    #[arg(short = '6')]
    ipv6: bool,

    /// listen() backlog. [default: the system's maximum, /proc/sys/net/core/somaxconn]
    #[arg(long, value_name = "N")]
    backlog: Option<u32>,

    /// The greeting sent to every client.
    #[arg(long, default_value = "Thank you for connecting", value_name = "TEXT")]
    message: String,

    /// Read the greeting from a file instead (any bytes, any size).
    #[arg(long, value_name = "PATH", conflicts_with = "message")]
    message_file: Option<PathBuf>,

    /// Event loops, one per thread, each with its own SO_REUSEPORT listener.
    /// [default: the number of cores]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
    threads: Option<u16>,

    /// Stop accepting while this many connections are open (per loop).
    #[arg(long, value_name = "N")]
    max_connections: Option<usize>,

    /// Close a connection that has done nothing for this long.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = humantime::parse_duration)]
    idle_timeout: Duration,

    /// Close a connection whose greeting is not all written within this long (a client
    /// that never reads).
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = humantime::parse_duration)]
    write_timeout: Duration,

    /// UDP: answer at most N datagrams per second from each source address, loopback
    /// included (0: no limit). Without this flag a limit of 20 per second applies to
    /// non-loopback sources only: a greeting service must not become a traffic amplifier
    /// for spoofed sources.
    #[arg(long, value_name = "N")]
    udp_rate: Option<u32>,

    /// Do not print a line per connection.
    #[arg(short, long)]
    quiet: bool,
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let args = Args::parse();
    match run(&args) {
        Ok(stats) => {
            eprintln!(
                "greet-server: accepted {}, greeted {}, errors {}, datagrams {}, rate-limited {}",
                stats.accepted, stats.greeted, stats.errors, stats.datagrams, stats.limited
            );
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("greet-server: {message}");
            ExitCode::FAILURE
        }
    }
}

/// What the server listens on, before it is split between loops.
enum Listener {
    Tcp(std::net::TcpListener),
    Udp(std::net::UdpSocket),
    Unix(std::os::unix::net::UnixListener, PathBuf),
}

fn run(args: &Args) -> Result<Stats, String> {
    let message: Arc<[u8]> = match &args.message_file {
        Some(path) => std::fs::read(path)
            .map_err(|e| format!("message file {}: {e}", path.display()))?
            .into(),
        None => args.message.as_bytes().into(),
    };
    let threads = usize::from(args.threads.unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(1, |n| u16::try_from(n.get()).unwrap_or(1))
    }));
    let listeners = bind(args, threads)?;
    announce(&listeners)?;

    let config = Config {
        idle_timeout: Some(args.idle_timeout),
        write_timeout: Some(args.write_timeout),
        max_connections: args.max_connections.unwrap_or(usize::MAX),
        ..Config::default()
    };
    let mut loops = Vec::with_capacity(listeners.len());
    let mut unix_path = None;
    for listener in listeners {
        let mut event_loop = EventLoop::new(config.clone()).map_err(|e| e.to_string())?;
        match listener {
            Listener::Tcp(l) => event_loop.add_tcp_listener(l).map(drop),
            Listener::Udp(s) => event_loop.add_udp_socket(s).map(drop),
            Listener::Unix(l, path) => {
                unix_path = Some(path);
                event_loop.add_unix_listener(l).map(drop)
            }
        }
        .map_err(|e| e.to_string())?;
        loops.push(event_loop);
    }
    let handles: Vec<ShutdownHandle> = loops.iter().map(EventLoop::shutdown_handle).collect();
    watch_signals(handles)?;

    let workers: Vec<_> = loops
        .into_iter()
        .enumerate()
        .map(|(i, mut event_loop)| {
            let limiter = match args.udp_rate {
                Some(0) => None,
                Some(rate) => Some(ReplyLimiter::new(rate, true, Instant::now())),
                None => Some(ReplyLimiter::new(
                    ratelimit::DEFAULT_RATE,
                    false,
                    Instant::now(),
                )),
            };
            let mut service = GreetService::new(Arc::clone(&message), args.quiet, limiter);
            std::thread::Builder::new()
                .name(format!("loop-{i}"))
                .spawn(move || event_loop.run(&mut service).map(|()| service.stats))
        })
        .collect();
    let mut total = Stats::default();
    let mut failure = None;
    for worker in workers {
        let joined = worker
            .map_err(|e| format!("start event loop thread: {e}"))?
            .join()
            .map_err(|_| "an event loop thread panicked".to_string())?;
        match joined {
            Ok(stats) => total += stats,
            Err(e) => failure = Some(e.to_string()),
        }
    }
    if let Some(path) = unix_path {
        if let Err(e) = std::fs::remove_file(&path) {
            log::warn!("remove {}: {e}", path.display());
        }
    }
    match failure {
        Some(message) => Err(message),
        None => Ok(total),
    }
}

/// Binds one listener per loop (they share the port through SO_REUSEPORT), or the one
/// Unix socket.
fn bind(args: &Args, threads: usize) -> Result<Vec<Listener>, String> {
    let backlog = args.backlog.unwrap_or_else(netcore::max_backlog);
    if let Some(path) = &args.unix {
        remove_stale_socket(path)?;
        let opts = ListenOptions {
            backlog,
            ..ListenOptions::default()
        };
        let listener = netcore::unix_listener(path, &opts).map_err(|e| e.to_string())?;
        return Ok(vec![Listener::Unix(listener, path.clone())]);
    }
    let host = match &args.host {
        Some(host) => host.clone(),
        None => resolver::gethostname().map_err(|e| e.to_string())?,
    };
    let family = match (args.ipv4, args.ipv6) {
        (true, _) => Family::V4,
        (_, true) => Family::V6,
        _ => Family::Any,
    };
    let transport = if args.udp {
        Transport::Udp
    } else {
        Transport::Tcp
    };
    let mut addr =
        resolver::socket_addr(&host, &args.port, family, transport).map_err(|e| e.to_string())?;
    let opts = ListenOptions {
        backlog,
        reuse_port: threads > 1,
        ..ListenOptions::default()
    };
    let mut listeners = Vec::with_capacity(threads);
    for _ in 0..threads {
        let listener = if args.udp {
            let socket = netcore::udp_socket(addr, &opts).map_err(|e| e.to_string())?;
            addr = socket.local_addr().map_err(|e| e.to_string())?;
            Listener::Udp(socket)
        } else {
            let listener = netcore::tcp_listener(addr, &opts).map_err(|e| e.to_string())?;
            addr = listener.local_addr().map_err(|e| e.to_string())?;
            Listener::Tcp(listener)
        };
        listeners.push(listener);
    }
    Ok(listeners)
}

/// A socket file left by a server that died may be replaced; anything else may not.
fn remove_stale_socket(path: &std::path::Path) -> Result<(), String> {
    use std::os::unix::fs::FileTypeExt;
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return Ok(());
    };
    if !meta.file_type().is_socket() {
        return Err(format!(
            "bind {}: the path exists and is not a socket (not removed)",
            path.display()
        ));
    }
    if std::os::unix::net::UnixStream::connect(path).is_ok() {
        return Err(format!(
            "bind {}: another server is listening on this socket",
            path.display()
        ));
    }
    log::info!("replacing stale socket {}", path.display());
    std::fs::remove_file(path).map_err(|e| format!("remove stale socket {}: {e}", path.display()))
}

/// The readiness lines: one per distinct address, flushed at once.
fn announce(listeners: &[Listener]) -> Result<(), String> {
    let mut out = std::io::stdout().lock();
    let mut seen: Vec<SocketAddr> = Vec::new();
    for listener in listeners {
        let line = match listener {
            Listener::Tcp(l) => {
                local(l.local_addr(), &mut seen)?.map(|a| format!("{} tcp", PyAddr(&a)))
            }
            Listener::Udp(s) => {
                local(s.local_addr(), &mut seen)?.map(|a| format!("{} udp", PyAddr(&a)))
            }
            Listener::Unix(_, path) => Some(format!("'{}' unix", path.display())),
        };
        if let Some(line) = line {
            writeln!(out, "Listening on {line}").map_err(|e| format!("stdout: {e}"))?;
        }
    }
    out.flush().map_err(|e| format!("stdout: {e}"))
}

fn local(
    addr: std::io::Result<SocketAddr>,
    seen: &mut Vec<SocketAddr>,
) -> Result<Option<SocketAddr>, String> {
    let addr = addr.map_err(|e| format!("getsockname: {e}"))?;
    if seen.contains(&addr) {
        return Ok(None);
    }
    seen.push(addr);
    Ok(Some(addr))
}

/// First SIGINT/SIGTERM: graceful stop of every loop. Second: exit at once.
fn watch_signals(handles: Vec<ShutdownHandle>) -> Result<(), String> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])
        .map_err(|e| format!("install signal handlers: {e}"))?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            let mut seen = 0;
            for signal in signals.forever() {
                seen += 1;
                if seen > 1 {
                    eprintln!("greet-server: second signal, exiting at once");
                    std::process::exit(128 + signal);
                }
                log::info!("signal {signal}: stopping");
                for handle in &handles {
                    handle.shutdown();
                }
            }
        })
        .map_err(|e| format!("start signal thread: {e}"))?;
    Ok(())
}
