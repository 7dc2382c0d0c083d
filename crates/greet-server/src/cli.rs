//! The command line: flags, their help, and the completions and man page made from them.
//!
//! `greet-server __generate DIR` (hidden, checked before clap parses anything) writes
//! `DIR/completions/{greet-server.bash,_greet-server,greet-server.fish}` and
//! `DIR/man/man1/greet-server.1` from these same definitions; `cargo xtask dist` runs it on
//! the release binary, so what ships cannot drift from `--help`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{CommandFactory, Parser};

use crate::cidr::Cidr;

/// The socket tutorial's greeting server: for every client, print
/// `Got connection from (host, port)`, send the message, close.
///
/// At start it prints one line per listener on stdout, e.g.
/// `Listening on ('127.0.0.1', 12345) tcp`, so scripts can wait for it. SIGINT or SIGTERM
/// stops accepting, finishes every greeting already accepted, prints a summary on stderr and
/// exits 0; a second signal exits at once. SIGUSR1 prints the summary without stopping.
///
/// SIGHUP restarts without losing a client: a new copy of the server (this binary, or
/// --upgrade-binary) is started with the listening sockets, and once it is ready this one
/// stops accepting and finishes its greetings. If the new one fails, this one keeps serving.
///
/// The `Got connection from` lines never hold up a client: when stdout is not read fast
/// enough, lines are dropped and counted (`log lines dropped N` in the summary).
///
/// Started by systemd (socket activation: LISTEN_PID and LISTEN_FDS name this process), it
/// serves the TCP, UDP and Unix sockets it was handed instead of binding; --tcp, --host,
/// --port, --udp and --unix are then not used. Under systemd (NOTIFY_SOCKET), it says
/// READY=1 once serving, and a restart names the new main process (MAINPID=).
///
/// Diagnostics go to stderr, each line stamped with its RFC 3339 UTC time: warnings by
/// default; RUST_LOG chooses more or less, as env_logger reads it (RUST_LOG=info: restarts,
/// refused PROXY headers; RUST_LOG=debug: everything; RUST_LOG=error: errors only). The same
/// warning repeated (such as `accept: Too many open files`) is printed at most once a second,
/// saying how many repeats were not shown.
#[derive(Debug, Parser)]
#[command(version, after_help = clap_dist::examples_help(crate::man_page::EXAMPLES))]
pub struct Args {
    /// Host to bind: a name, an IPv4 or IPv6 address, or "" for every address (IPv6 and
    /// IPv4 both: "::" dual-stack, where IPv4 clients show as ('::ffff:127.0.0.1', ...);
    /// with -4 only 0.0.0.0, with -6 only "::").
    /// [default: this machine's hostname, as the tutorial's gethostname()]
    #[arg(value_hint = clap::ValueHint::Hostname, long)]
    pub host: Option<String>,

    /// Port to bind: a number (0 = any free port), or a service name such as "qotd".
    #[arg(value_hint = clap::ValueHint::Other, long, default_value = "12345", value_parser = port_arg)]
    pub port: String,

    /// Serve TCP: the default when no transport is named; with --udp or --unix, name it
    /// to serve TCP too.
    #[arg(long)]
    pub tcp: bool,

    /// Serve UDP: each datagram is answered with the message, sent to its source. With
    /// --tcp, on the same port number (with --port 0, the port TCP got), as inetd does.
    #[arg(long)]
    pub udp: bool,

    /// Serve a Unix-domain stream socket at PATH (alone, or with --tcp and --udp). A stale
    /// socket file is replaced; any other file at PATH is never touched.
    #[arg(value_hint = clap::ValueHint::FilePath, long, value_name = "PATH")]
    pub unix: Option<PathBuf>,

    /// With --unix: the socket file's permission bits, in octal (660: owner and group may
    /// connect; connecting needs write permission). Set as the file is created, never
    /// looser for a moment. [default: 777 minus the umask]
    #[arg(value_hint = clap::ValueHint::Other, long, value_name = "MODE", requires = "unix", value_parser = parse_mode)]
    pub unix_mode: Option<u32>,

    /// Use IPv4 only when resolving --host.
    #[arg(short = '4', conflicts_with = "ipv6")]
    pub ipv4: bool,

    /// Use IPv6 only when resolving --host.
    #[arg(short = '6')]
    pub ipv6: bool,

    /// listen() backlog. [default: the system's maximum, /proc/sys/net/core/somaxconn]
    #[arg(value_hint = clap::ValueHint::Other, long, value_name = "N")]
    pub backlog: Option<u32>,

    /// The greeting sent to every client.
    #[arg(value_hint = clap::ValueHint::Other, long, default_value = "Thank you for connecting", value_name = "TEXT")]
    pub message: String,

    /// Read the greeting from a file instead: any bytes, up to 16 MiB (RFC 865 asks for
    /// under 512 characters; large greetings are served on purpose, and the cap turns a wrong
    /// path into an error rather than the machine's memory). Only a regular file: a
    /// directory, FIFO or device (/dev/zero) is refused at start.
    #[arg(value_hint = clap::ValueHint::FilePath, long, value_name = "PATH", conflicts_with = "message")]
    pub message_file: Option<PathBuf>,

    /// Event loops, one per thread, each with its own SO_REUSEPORT listener.
    /// [default: the number of cores]
    #[arg(value_hint = clap::ValueHint::Other, long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
    pub threads: Option<u16>,

    /// At most N connections open in the whole process, across all loops; at least 1
    /// [default: no limit]. A loop that alone holds N stops accepting (the rest wait in the
    /// backlog); a connection another loop accepts past N is refused at once (a reset) and
    /// counted (`over max-connections` in the summary, outcome refused-limit).
    #[arg(value_hint = clap::ValueHint::Other, long, value_name = "N", value_parser = parse_max_connections)]
    pub max_connections: Option<usize>,

    /// TCP: at most N connections open at once from one client address (the PROXY header's
    /// client, with --proxy-protocol), across all loops; past it a connection is refused at
    /// once (a reset) and counted (`over max-per-source` in the summary, outcome
    /// refused-per-source). [default: no limit]
    #[arg(value_hint = clap::ValueHint::Other, long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_per_source: Option<u32>,

    /// Close a connection that has done nothing for this long.
    #[arg(value_hint = clap::ValueHint::Other, long, value_name = "DURATION", default_value = "10s", value_parser = clap_dist::positive_duration)]
    pub idle_timeout: Duration,

    /// Close a connection that takes none of its pending greeting for this long (a client
    /// that never reads); a slow client that keeps reading is not cut off.
    #[arg(value_hint = clap::ValueHint::Other, long, value_name = "DURATION", default_value = "10s", value_parser = clap_dist::positive_duration)]
    pub write_timeout: Duration,

    /// UDP: answer at most N datagrams per second from each source address, loopback
    /// included (0: no limit). Without this flag a limit of 20 per second applies to
    /// non-loopback sources only: a greeting service must not become a traffic amplifier
    /// for spoofed sources.
    #[arg(value_hint = clap::ValueHint::Other, long, value_name = "N")]
    pub udp_rate: Option<u32>,

    /// TCP: every TCP connection must first send a PROXY protocol header (v1 or v2, as
    /// HAProxy's send-proxy and send-proxy-v2 do); the client it names is the one logged. A
    /// connection whose header is malformed, too long or too slow is closed and counted.
    /// Unix-domain listeners (--unix, or one handed over by systemd) are greeted directly.
    #[arg(long)]
    pub proxy_protocol: bool,

    /// With --proxy-protocol: honour a PROXY header only from these sources (addresses or
    /// CIDR blocks, comma-separated: 10.0.0.0/8,2001:db8::/32,127.0.0.1), as HAProxy's
    /// `tcp-request connection expect-proxy layer4 if { src ... }` and nginx's
    /// `set_real_ip_from` do. A connection from any other source is refused at once (a
    /// reset, no greeting) and counted (`proxy untrusted` in the summary, outcome
    /// proxy-untrusted). Without it every source is trusted, and the server says so at start:
    /// any client that reaches the port can then name any address as itself.
    #[arg(value_hint = clap::ValueHint::Other, long, value_name = "CIDR[,CIDR...]", value_delimiter = ',', requires = "proxy_protocol", value_parser = Cidr::parse)]
    pub proxy_trusted: Vec<Cidr>,

    /// With --proxy-protocol: close a connection whose header is not complete within this
    /// long.
    #[arg(value_hint = clap::ValueHint::Other, long, value_name = "DURATION", default_value = "3s", value_parser = clap_dist::positive_duration)]
    pub proxy_timeout: Duration,

    /// Do not print a line per connection.
    #[arg(short, long)]
    pub quiet: bool,

    /// The line per connection on stdout. `tutorial`: `Got connection from (...)` as each
    /// client is greeted, the tutorial's output. `text` and `json`: one line when each
    /// connection ends (and one per datagram) with an RFC 3339 UTC time in milliseconds, the
    /// transport, the peer (and the client a PROXY header named, beside it), the outcome
    /// (greeted, reset, timed-out, shutdown, error, proxy-error, proxy-untrusted,
    /// refused-limit, refused-per-source, rate-limited), bytes sent and the duration, e.g.
    /// `2024-02-29T12:34:56.789Z tcp peer=127.0.0.1:40000 outcome=greeted sent=24
    /// duration_ms=0.041`; `json` writes the same fields as one JSON object per line.
    #[arg(long, value_enum, value_name = "FORMAT", default_value_t = LogFormat::Tutorial)]
    pub log_format: LogFormat,

    /// Serve the counts for Prometheus at http://ADDR/metrics (text exposition format,
    /// e.g. --metrics 127.0.0.1:9100; port 0: any free port, printed as a last readiness
    /// line `Listening on (...) metrics`). Counters: accepted, connections by outcome (as
    /// the access log's), datagrams received and rate-limited, accept errors, log lines
    /// written and dropped; gauges: open connections, restarts done; a histogram of the
    /// greeting's duration. Served by the first event loop, like any connection. The
    /// counters carry on across SIGHUP restarts (the new server continues from the old
    /// one's totals), so a scrape never sees one go down.
    #[arg(value_hint = clap::ValueHint::Other, long, value_name = "ADDR")]
    pub metrics: Option<std::net::SocketAddr>,

    /// Print the summary line on stderr every DURATION while running (SIGUSR1 prints it
    /// at once).
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub stats_interval: Option<Duration>,

    /// On SIGHUP, start PATH as the new server (with these same arguments) instead of this
    /// binary's own path: a binary upgrade.
    #[arg(long, value_name = "PATH")]
    pub upgrade_binary: Option<PathBuf>,

    /// On SIGHUP: how long the new server may take to become ready before it is stopped
    /// and this one keeps serving.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = clap_dist::positive_duration)]
    pub restart_timeout: Duration,
}

/// `--log-format`: what the line per connection looks like.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// `Got connection from ('127.0.0.1', 53788)`, as each client is greeted.
    #[default]
    Tutorial,
    /// `key=value` fields after the time, when each connection ends.
    Text,
    /// One JSON object per line, when each connection ends.
    Json,
}

impl Args {
    /// The message every client gets: `--message`, or the contents of `--message-file`
    /// (an error names the file).
    pub fn greeting(&self) -> Result<std::sync::Arc<[u8]>, String> {
        Ok(match &self.message_file {
            Some(path) => clap_dist::read_file_arg(path, clap_dist::MESSAGE_MAX)
                .map_err(|e| format!("message file {e}"))?
                .into(),
            None => self.message.as_bytes().into(),
        })
    }

    /// Whether to serve TCP: named, or no transport named at all.
    pub fn serves_tcp(&self) -> bool {
        self.tcp || (!self.udp && self.unix.is_none())
    }

    /// What to say on stderr at start about the sources trusted to send a PROXY header:
    /// with --proxy-protocol and no --proxy-trusted, that every source is.
    pub fn trust_notice(&self) -> Option<&'static str> {
        (self.proxy_protocol && self.proxy_trusted.is_empty()).then_some(
            "--proxy-protocol without --proxy-trusted: a PROXY header is honoured from every \
             source, so any client that reaches the port can name any address as itself; \
             name the load balancers with --proxy-trusted CIDR[,CIDR...]",
        )
    }

    /// Checks what clap cannot express; a message for a usage error (exit status 2).
    pub fn check(&self) -> Result<(), clap::Error> {
        let conflict = |message: &str| {
            Args::command().error(clap::error::ErrorKind::ArgumentConflict, message)
        };
        if self.proxy_protocol && !self.serves_tcp() {
            return Err(conflict("--proxy-protocol applies to TCP: add --tcp"));
        }
        if self.stats_interval.is_some_and(|d| d.is_zero()) {
            return Err(conflict("--stats-interval must be more than 0"));
        }
        Ok(())
    }
}

/// A port number 0-65535 or a service name (looked up later): a bad number is a bad
/// argument (exit 2), as the README says.
fn port_arg(text: &str) -> Result<String, String> {
    resolver::check_port(text)
        .map(|()| text.to_owned())
        .map_err(|e| e.reason().to_owned())
}

/// `--max-connections`: 0 would never accept anyone, so it is refused rather than obeyed.
fn parse_max_connections(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(0) => Err("0 would never accept a connection; omit the flag for no limit".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}

/// An octal file mode, `0` to `777` (a leading `0` or `0o` is allowed).
fn parse_mode(text: &str) -> Result<u32, String> {
    let digits = text.strip_prefix("0o").unwrap_or(text);
    match u32::from_str_radix(digits, 8) {
        Ok(mode) if mode <= 0o777 && !digits.starts_with('+') => Ok(mode),
        _ => Err("an octal mode from 0 to 777 is expected, e.g. 660".into()),
    }
}

/// Writes the shell completions (bash, zsh, fish) and the man page under `dir`.
pub fn generate(dir: &Path) -> anyhow::Result<()> {
    clap_dist::generate(
        Args::command(),
        "greet-server",
        dir,
        &crate::man_page::MAN_PAGE,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_definitions_are_consistent() {
        Args::command().debug_assert();
    }

    #[test]
    fn completions_and_man_page_are_written_and_name_the_flags() {
        let dir =
            std::env::temp_dir().join(format!("greet-server-generate-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        generate(&dir).unwrap();
        for (file, flag) in [
            ("completions/greet-server.bash", "--proxy-protocol"),
            ("completions/_greet-server", "--proxy-timeout"),
            ("completions/greet-server.fish", "proxy-protocol"),
            ("man/man1/greet-server.1", "proxy\\-protocol"),
            ("man/man1/greet-server.1", "RUST_LOG"),
            ("man/man1/greet-server.1", "log\\-format"),
        ] {
            let text =
                std::fs::read_to_string(dir.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
            assert!(text.contains(flag), "{file} does not mention {flag}");
            assert!(
                text.contains("message"),
                "{file} does not mention --message"
            );
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
