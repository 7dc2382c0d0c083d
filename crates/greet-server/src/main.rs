//! `greet-server`: the socket tutorial's greeting server, on netcore.

mod ratelimit;
mod service;

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use clap::Parser;
use netcore::{Config, EventLoop, ListenOptions, ShutdownHandle};
use resolver::{Family, PyAddr, Transport};

use greet_server::activation::{self, Activated};
use greet_server::cli::{self, Args};
use ratelimit::ReplyLimiter;
use service::{GreetService, Stats};

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if let Some(request) = clap_dist::request(&argv, "greet-server") {
        return match request.and_then(|dir| cli::generate(&dir)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(message) => {
                eprintln!("greet-server: {message}");
                ExitCode::FAILURE
            }
        };
    }
    let args = Args::parse_from(argv);
    // Before any thread starts: taking the sockets also removes LISTEN_* from the
    // environment.
    let activated = match activation::take_listeners() {
        Ok(activated) => activated,
        Err(message) => {
            eprintln!("greet-server: socket activation: {message}");
            return ExitCode::FAILURE;
        }
    };
    match run(&args, activated) {
        Ok(stats) => {
            // The fields and their order are what scripts parse; the proxy count is added
            // only where it means something, so the line without the flag is unchanged.
            let proxy = if args.proxy_protocol {
                format!(", proxy errors {}", stats.proxy_errors)
            } else {
                String::new()
            };
            eprintln!(
                "greet-server: accepted {}, greeted {}, errors {}, datagrams {}, rate-limited {}{proxy}",
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

fn run(args: &Args, activated: Option<Vec<Activated>>) -> Result<Stats, String> {
    let message: Arc<[u8]> = match &args.message_file {
        Some(path) => clap_dist::read_file_arg(path, clap_dist::MESSAGE_MAX)
            .map_err(|e| format!("message file {e}"))?
            .into(),
        None => args.message.as_bytes().into(),
    };
    let threads = usize::from(args.threads.unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(1, |n| u16::try_from(n.get()).unwrap_or(1))
    }));
    let listeners = match activated {
        Some(sockets) => share(sockets, threads)?,
        None => bind(args, threads)?,
    };
    announce(listeners.iter().flatten())?;

    let config = Config {
        idle_timeout: Some(args.idle_timeout),
        write_timeout: Some(args.write_timeout),
        max_connections: args.max_connections.unwrap_or(usize::MAX),
        ..Config::default()
    };
    let mut loops = Vec::with_capacity(listeners.len());
    let mut unix_path = None;
    for group in listeners {
        let mut event_loop = EventLoop::new(config.clone()).map_err(|e| e.to_string())?;
        for listener in group {
            match listener {
                Listener::Tcp(l) => event_loop.add_tcp_listener(l).map(drop),
                Listener::Udp(s) => event_loop.add_udp_socket(s).map(drop),
                Listener::Unix(l, path) => {
                    unix_path = Some(path);
                    event_loop.add_unix_listener(l).map(drop)
                }
            }
            .map_err(|e| e.to_string())?;
        }
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
            if args.proxy_protocol {
                service = service.with_proxy_protocol(args.proxy_timeout);
            }
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

/// The sockets systemd handed over, for every loop: each loop polls its own duplicate of
/// each socket, and whichever loop is woken first accepts (or receives).
fn share(sockets: Vec<Activated>, threads: usize) -> Result<Vec<Vec<Listener>>, String> {
    let mut groups: Vec<Vec<Listener>> = (0..threads).map(|_| Vec::new()).collect();
    for socket in sockets {
        for group in groups.iter_mut().skip(1) {
            let copy = match &socket {
                Activated::Tcp(l) => l.try_clone().map(Listener::Tcp),
                Activated::Udp(s) => s.try_clone().map(Listener::Udp),
            };
            group.push(copy.map_err(|e| format!("duplicate a socket-activation descriptor: {e}"))?);
        }
        if let Some(first) = groups.first_mut() {
            first.push(match socket {
                Activated::Tcp(l) => Listener::Tcp(l),
                Activated::Udp(s) => Listener::Udp(s),
            });
        }
    }
    Ok(groups)
}

/// Binds one listener per loop (they share the port through SO_REUSEPORT), or the one
/// Unix socket; each in its own group, one group per loop.
fn bind(args: &Args, threads: usize) -> Result<Vec<Vec<Listener>>, String> {
    let backlog = args.backlog.unwrap_or_else(netcore::max_backlog);
    if let Some(path) = &args.unix {
        remove_stale_socket(path)?;
        let opts = ListenOptions {
            backlog,
            ..ListenOptions::default()
        };
        let listener = netcore::unix_listener(path, &opts).map_err(|e| e.to_string())?;
        return Ok(vec![vec![Listener::Unix(listener, path.clone())]]);
    }
    let family = Family::from_flags(args.ipv4, args.ipv6);
    let transport = if args.udp {
        Transport::Udp
    } else {
        Transport::Tcp
    };
    let mut addr =
        resolver::socket_addr_or_hostname(args.host.as_deref(), &args.port, family, transport)
            .map_err(|e| e.to_string())?;
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
        listeners.push(vec![listener]);
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
fn announce<'a>(listeners: impl Iterator<Item = &'a Listener>) -> Result<(), String> {
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
