//! The tutorial's client: connect (or send a datagram), print the reply.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use resolver::{Family, PyAddr, Transport};

#[derive(Debug, clap::Args)]
pub struct ClientArgs {
    /// Server host: a name, an IPv4 or IPv6 address, or "<broadcast>" (UDP).
    /// [default: this machine's hostname, as the tutorial's gethostname()]
    #[arg(long)]
    host: Option<String>,

    /// Server port: a number or a service name.
    #[arg(long, default_value = "12345", value_parser = port_arg)]
    port: String,

    /// Use UDP: send a datagram, print the reply; resend on loss until --timeout.
    #[arg(long)]
    udp: bool,

    /// Connect to a Unix-domain stream socket at PATH instead.
    #[arg(long, value_name = "PATH", conflicts_with = "udp")]
    unix: Option<PathBuf>,

    /// Use IPv4 only when resolving --host.
    #[arg(short = '4', conflicts_with = "ipv6")]
    ipv4: bool,

    /// Use IPv6 only when resolving --host.
    #[arg(short = '6')]
    ipv6: bool,

    /// Read at most this many bytes (the tutorial's recv(1024)); reading also stops when
    /// the server closes.
    #[arg(long, default_value_t = 1024, value_name = "BYTES", value_parser = clap::value_parser!(u32).range(1..))]
    bufsize: u32,

    /// Give up when the whole exchange takes longer than this.
    #[arg(long, default_value = "10s", value_name = "DURATION", value_parser = humantime::parse_duration)]
    timeout: Duration,
}

/// A port number 0-65535 or a service name (looked up later): a bad number is a bad
/// argument (exit 2), as the README says.
pub fn port_arg(text: &str) -> Result<String, String> {
    resolver::check_port(text)
        .map(|()| text.to_owned())
        .map_err(|e| e.reason().to_owned())
}

pub fn run(args: &ClientArgs) -> ExitCode {
    match exchange(args) {
        Ok(reply) => {
            let mut out = io::stdout().lock();
            // A closed stdout (`| head -c0`) is not the server's fault: exit 0 all the same.
            let _ = out
                .write_all(&reply)
                .and_then(|()| out.write_all(b"\n"))
                .and_then(|()| out.flush());
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("greet-client: {message}");
            ExitCode::FAILURE
        }
    }
}

fn exchange(args: &ClientArgs) -> Result<Vec<u8>, String> {
    let deadline = Instant::now() + args.timeout;
    let limit = args.bufsize as usize;
    if let Some(path) = &args.unix {
        let shown = path.display();
        let stream = std::os::unix::net::UnixStream::connect(path)
            .map_err(|e| format!("connect {shown}: {e}"))?;
        return read_reply(stream, deadline, limit, &format!("{shown}"), |s, t| {
            s.set_read_timeout(t)
        });
    }
    let family = Family::from_flags(args.ipv4, args.ipv6);
    let transport = if args.udp {
        Transport::Udp
    } else {
        Transport::Tcp
    };
    let addr =
        resolver::socket_addr_or_hostname(args.host.as_deref(), &args.port, family, transport)
            .map_err(|e| e.to_string())?;
    let shown = PyAddr(&addr).to_string();
    if args.udp {
        let broadcast = args.host.as_deref() == Some("<broadcast>");
        return udp_exchange(addr, broadcast, deadline, limit, &shown);
    }
    let stream = TcpStream::connect_timeout(&addr, remaining(deadline, &shown)?)
        .map_err(|e| describe(&e, "connect", &shown))?;
    read_reply(stream, deadline, limit, &shown, |s, t| {
        s.set_read_timeout(t)
    })
}

/// Reads until EOF or `limit` bytes, within the deadline.
fn read_reply<S: Read>(
    mut stream: S,
    deadline: Instant,
    limit: usize,
    shown: &str,
    set_timeout: impl Fn(&S, Option<Duration>) -> io::Result<()>,
) -> Result<Vec<u8>, String> {
    let mut reply = vec![0; limit];
    let mut got = 0;
    while got < limit {
        set_timeout(&stream, Some(remaining(deadline, shown)?))
            .map_err(|e| format!("set timeout on {shown}: {e}"))?;
        match stream.read(&mut reply[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(describe(&e, "recv from", shown)),
        }
    }
    reply.truncate(got);
    Ok(reply)
}

/// Sends a datagram and waits for the reply, resending on loss (a datagram may be lost;
/// the server answers each one).
fn udp_exchange(
    addr: SocketAddr,
    broadcast: bool,
    deadline: Instant,
    limit: usize,
    shown: &str,
) -> Result<Vec<u8>, String> {
    let local: SocketAddr = if addr.is_ipv4() {
        (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = UdpSocket::bind(local).map_err(|e| format!("bind {local}: {e}"))?;
    if broadcast {
        socket
            .set_broadcast(true)
            .map_err(|e| format!("set SO_BROADCAST: {e}"))?;
    } else {
        // A connected socket hears the ICMP port-unreachable as ECONNREFUSED, so a closed
        // port is reported at once instead of after the whole timeout.
        socket
            .connect(addr)
            .map_err(|e| describe(&e, "connect", shown))?;
    }
    let mut reply = vec![0; limit.max(1)];
    let mut resend_every = Duration::from_millis(200);
    loop {
        socket
            .send_to(b"", addr)
            .map_err(|e| describe(&e, "sendto", shown))?;
        let resend_at = Instant::now() + resend_every;
        resend_every = (resend_every * 2).min(Duration::from_secs(2));
        loop {
            let now = Instant::now();
            if now >= deadline {
                return Err(format!("no reply from {shown} within the timeout"));
            }
            if now >= resend_at {
                break;
            }
            let wait = resend_at.min(deadline) - now;
            socket
                .set_read_timeout(Some(wait.max(Duration::from_millis(1))))
                .map_err(|e| format!("set timeout: {e}"))?;
            match socket.recv_from(&mut reply) {
                Ok((n, from)) if broadcast || from == addr => {
                    reply.truncate(n.min(limit));
                    return Ok(reply);
                }
                Ok((_, from)) => log::debug!("ignoring a datagram from {from}"),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock
                            | io::ErrorKind::TimedOut
                            | io::ErrorKind::Interrupted
                    ) => {}
                Err(e) => return Err(describe(&e, "recvfrom", shown)),
            }
        }
    }
}

fn remaining(deadline: Instant, shown: &str) -> Result<Duration, String> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(format!("no reply from {shown} within the timeout"));
    }
    Ok(left)
}

/// One line naming the operation and the address; a timed-out read says so in words
/// rather than as "Resource temporarily unavailable".
fn describe(err: &io::Error, op: &str, shown: &str) -> String {
    match err.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
            format!("{op} {shown}: timed out")
        }
        _ => format!("{op} {shown}: {err}"),
    }
}
