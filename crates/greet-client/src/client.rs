//! The tutorial's client: connect (or send a datagram), print the reply.

use std::io::{self, Read};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use resolver::{Family, PyAddr, Transport};

#[derive(Debug, clap::Args)]
pub struct ClientArgs {
    /// Server host: a name, an IPv4 or IPv6 address, or "<broadcast>" (UDP).
    /// [default: this machine's hostname, as the tutorial's gethostname()]
    #[arg(value_hint = clap::ValueHint::Hostname, long)]
    host: Option<String>,

    /// Server port: a number or a service name.
    #[arg(value_hint = clap::ValueHint::Other, long, default_value = "12345", value_parser = port_arg)]
    port: String,

    /// The host, as nc takes it (`greet-client 127.0.0.1 12345`): the same as --host. A host
    /// named like a subcommand (lookup, bench, help) is given with --host.
    #[arg(value_hint = clap::ValueHint::Hostname, value_name = "HOST", conflicts_with = "host")]
    host_arg: Option<String>,

    /// The port, as nc takes it: the same as --port.
    #[arg(value_hint = clap::ValueHint::Other, value_name = "PORT", conflicts_with = "port", value_parser = port_arg)]
    port_arg: Option<String>,

    /// Use UDP: send a datagram, print the reply; resend on loss until --timeout.
    #[arg(long)]
    udp: bool,

    /// Connect to a Unix-domain stream socket at PATH instead.
    #[arg(value_hint = clap::ValueHint::FilePath, long, value_name = "PATH", conflicts_with = "udp")]
    unix: Option<PathBuf>,

    /// Use IPv4 only when resolving --host.
    #[arg(short = '4', conflicts_with = "ipv6")]
    ipv4: bool,

    /// Use IPv6 only when resolving --host.
    #[arg(short = '6')]
    ipv6: bool,

    /// Read at most this many bytes (the tutorial's recv(1024)). Reading stops at the first
    /// of: the server closes, BYTES have arrived, or, once something has arrived, nothing
    /// more arrives for --read-idle (a server that sends a banner and keeps the connection
    /// open); what arrived is printed.
    #[arg(value_hint = clap::ValueHint::Other, long, default_value_t = 1024, value_name = "BYTES", value_parser = clap::value_parser!(u32).range(1..))]
    bufsize: u32,

    /// Once some of the reply has arrived, stop reading (and print it) when nothing more
    /// arrives for this long.
    #[arg(value_hint = clap::ValueHint::Other, long, default_value = "300ms", value_name = "DURATION", value_parser = humantime::parse_duration)]
    read_idle: Duration,

    /// Give up when the whole exchange takes longer than this (more than 0). A host with
    /// several addresses (localhost: ::1, then 127.0.0.1) has each tried in turn, in
    /// getaddrinfo's order, within this one timeout.
    #[arg(value_hint = clap::ValueHint::Other, long, default_value = "10s", value_name = "DURATION", value_parser = clap_dist::positive_duration)]
    timeout: Duration,
}

/// A port number 0-65535 or a service name (looked up later): a bad number is a bad
/// argument (exit 2), as the README says.
pub fn port_arg(text: &str) -> Result<String, String> {
    resolver::check_port(text)
        .map(|()| text.to_owned())
        .map_err(|e| e.reason().to_owned())
}

impl ClientArgs {
    /// The host named by --host or the HOST argument.
    fn host(&self) -> Option<&str> {
        self.host.as_deref().or(self.host_arg.as_deref())
    }

    /// The port named by the PORT argument, or --port.
    fn port(&self) -> &str {
        self.port_arg.as_deref().unwrap_or(&self.port)
    }
}

pub fn run(args: &ClientArgs) -> Result<()> {
    let mut reply = exchange(args)?;
    reply.push(b'\n');
    crate::output::stdout(&reply)
}

/// When to stop reading a stream reply.
#[derive(Debug, Clone, Copy)]
struct ReadRule {
    deadline: Instant,
    limit: usize,
    idle: Duration,
}

fn exchange(args: &ClientArgs) -> Result<Vec<u8>> {
    let deadline = Instant::now() + args.timeout;
    let limit = args.bufsize as usize;
    let rule = ReadRule {
        deadline,
        limit,
        idle: args.read_idle,
    };
    if let Some(path) = &args.unix {
        let shown = path.display();
        let stream = std::os::unix::net::UnixStream::connect(path)
            .with_context(|| format!("connect {shown}"))?;
        return read_reply(stream, rule, &format!("{shown}"), |s, t| {
            s.set_read_timeout(t)
        });
    }
    let family = Family::from_flags(args.ipv4, args.ipv6);
    let transport = if args.udp {
        Transport::Udp
    } else {
        Transport::Tcp
    };
    let addrs = resolver::socket_addrs_or_hostname(args.host(), args.port(), family, transport)
        .map_err(|e| explain_default_host(anyhow::Error::new(e), args.host()))?;
    let broadcast = args.host() == Some("<broadcast>");
    // Each address in turn, as nc and Python's socket.create_connection do; the first that
    // connects (TCP) or answers (UDP) is the one read from. Every failure is reported.
    let mut failures = Vec::new();
    for (i, addr) in addrs.iter().enumerate() {
        let shown = PyAddr(addr).to_string();
        let attempt = attempt_deadline(deadline, addrs.len() - i);
        let outcome = if args.udp {
            udp_exchange(*addr, broadcast, attempt, limit, &shown)
        } else {
            match connect(*addr, attempt, &shown) {
                // Connected: the reply may take the whole timeout.
                Ok(stream) => {
                    return read_reply(stream, rule, &shown, |s, t| s.set_read_timeout(t))
                }
                Err(e) => Err(e),
            }
        };
        match outcome {
            Ok(reply) => return Ok(reply),
            Err(e) => {
                log::info!("{e:#}; trying the next address");
                failures.push(format!("{e:#}"));
            }
        }
    }
    Err(anyhow!(failures.join("; ")))
}

/// A failure to resolve the host, explained when no host was given (neither --host nor
/// HOST): the name was the tutorial's default, this machine's, which a container or a fresh
/// VM often does not list in /etc/hosts. greet-server says the same
/// (`clap_dist::explain_default_host`).
fn explain_default_host(e: anyhow::Error, host: Option<&str>) -> anyhow::Error {
    clap_dist::explain_default_host(
        e,
        host.is_some(),
        "--host 127.0.0.1 (a server on this machine) or the server's name",
    )
}

fn connect(addr: SocketAddr, deadline: Instant, shown: &str) -> Result<TcpStream> {
    TcpStream::connect_timeout(&addr, remaining(deadline, shown)?)
        .map_err(|e| describe(e, "connect", shown))
}

/// The deadline of one attempt when `left` addresses (this one included) remain to be
/// tried: an equal share of the time left, but at least 2 s (or all of it, if less), so
/// a first address that never answers cannot starve the rest, and a slow but working one
/// is not cut short. Go's net.Dialer shares its timeout the same way.
fn attempt_deadline(deadline: Instant, left: usize) -> Instant {
    const SANE_MINIMUM: Duration = Duration::from_secs(2);
    let now = Instant::now();
    let remaining = deadline.saturating_duration_since(now);
    let share = remaining / u32::try_from(left.max(1)).unwrap_or(u32::MAX);
    let share = share.max(SANE_MINIMUM.min(remaining));
    now + share
}

/// Reads until EOF, `limit` bytes, or (once something has arrived) `idle` without more;
/// within the deadline. What arrived before the deadline is the reply; nothing at all is a
/// timeout, and an EOF before any byte an error.
fn read_reply<S: Read>(
    mut stream: S,
    rule: ReadRule,
    shown: &str,
    set_timeout: impl Fn(&S, Option<Duration>) -> io::Result<()>,
) -> Result<Vec<u8>> {
    let mut reply = vec![0; rule.limit];
    let mut got = 0;
    while got < rule.limit {
        let left = rule.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() && got > 0 {
            break;
        }
        let left = remaining(rule.deadline, shown)?;
        let wait = if got > 0 { rule.idle.min(left) } else { left };
        // A zero read timeout would mean "none" (and std refuses it).
        set_timeout(&stream, Some(wait.max(Duration::from_millis(1))))
            .with_context(|| format!("set timeout on {shown}"))?;
        match stream.read(&mut reply[got..]) {
            // A server that closes without a word (a PROXY-protocol server read directly, a
            // full one shedding load) has not replied: an empty line would pass for one.
            Ok(0) if got == 0 => bail!("recv from {shown}: connection closed with no data"),
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e)
                if got > 0
                    && matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
            {
                log::debug!(
                    "nothing more from {shown} for {:?}: printing what arrived",
                    rule.idle
                );
                break;
            }
            Err(e) => return Err(describe(e, "recv from", shown)),
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
) -> Result<Vec<u8>> {
    let local: SocketAddr = if addr.is_ipv4() {
        (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = UdpSocket::bind(local).with_context(|| format!("bind {local}"))?;
    if broadcast {
        socket.set_broadcast(true).context("set SO_BROADCAST")?;
    } else {
        // A connected socket hears the ICMP port-unreachable as ECONNREFUSED, so a closed
        // port is reported at once instead of after the whole timeout.
        socket
            .connect(addr)
            .map_err(|e| describe(e, "connect", shown))?;
    }
    let mut reply = vec![0; limit.max(1)];
    let mut resend_every = Duration::from_millis(200);
    loop {
        socket
            .send_to(b"", addr)
            .map_err(|e| describe(e, "sendto", shown))?;
        let resend_at = Instant::now() + resend_every;
        resend_every = (resend_every * 2).min(Duration::from_secs(2));
        loop {
            let now = Instant::now();
            if now >= deadline {
                bail!("no reply from {shown} within the timeout");
            }
            if now >= resend_at {
                break;
            }
            let wait = resend_at.min(deadline) - now;
            socket
                .set_read_timeout(Some(wait.max(Duration::from_millis(1))))
                .context("set timeout")?;
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
                Err(e) => return Err(describe(e, "recvfrom", shown)),
            }
        }
    }
}

fn remaining(deadline: Instant, shown: &str) -> Result<Duration> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        bail!("no reply from {shown} within the timeout");
    }
    Ok(left)
}

/// One line naming the operation and the address; a timed-out read says so in words
/// rather than as "Resource temporarily unavailable".
fn describe(err: io::Error, op: &str, shown: &str) -> anyhow::Error {
    match err.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
            anyhow!("{op} {shown}: timed out")
        }
        _ => anyhow::Error::new(err).context(format!("{op} {shown}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The wording and the rule (only a default host) are clap_dist's, tested there; what is
    // the client's own is what it tells the user to use.
    #[test]
    fn an_unresolvable_default_host_suggests_a_server_on_this_machine() {
        let failed = anyhow!("host \"vm\": [Errno -2] Name or service not known");
        let explained = format!("{:#}", explain_default_host(failed, None));
        assert!(explained.contains("use --host 127.0.0.1 (a server on this machine)"));
    }
}
