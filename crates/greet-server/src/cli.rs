//! The command line: flags, their help, and the completions and man page made from them.
//!
//! `greet-server __generate DIR` (hidden, checked before clap parses anything) writes
//! `DIR/completions/{greet-server.bash,_greet-server,greet-server.fish}` and
//! `DIR/man/man1/greet-server.1` from these same definitions; `cargo xtask dist` runs it on
//! the release binary, so what ships cannot drift from `--help`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{CommandFactory, Parser};

const EXAMPLES: &str = "\
Examples:
  greet-server                          the tutorial: this host's name, port 12345, TCP
  greet-server --host 127.0.0.1 --port 0    an ephemeral port (printed on the first line)
  greet-server --udp --port 5000        answer each datagram with the message
  greet-server --unix /tmp/greet.sock   serve a Unix-domain socket
  greet-server --backlog 5              the tutorial's listen(5) (see README: not the default)
  greet-server --proxy-protocol --port 7000    behind HAProxy (send-proxy or send-proxy-v2)
  systemd-socket-activate -l 12345 greet-server    serve a socket handed over by systemd";

/// The socket tutorial's greeting server: for every client, print
/// `Got connection from (host, port)`, send the message, close.
///
/// At start it prints one line per listener on stdout, e.g.
/// `Listening on ('127.0.0.1', 12345) tcp`, so scripts can wait for it. SIGINT or SIGTERM
/// stops accepting, finishes every greeting already accepted, prints a summary on stderr and
/// exits 0; a second signal exits at once.
///
/// Started by systemd (socket activation: LISTEN_PID and LISTEN_FDS name this process), it
/// serves the TCP and UDP sockets it was handed instead of binding; --host, --port, --udp and
/// --unix are then not used.
#[derive(Debug, Parser)]
#[command(version, after_help = EXAMPLES)]
pub struct Args {
    /// Host to bind: a name, an IPv4 or IPv6 address, or "" for every address.
    /// [default: this machine's hostname, as the tutorial's gethostname()]
    #[arg(long)]
    pub host: Option<String>,

    /// Port to bind: a number (0 = any free port), or a service name such as "qotd".
    #[arg(long, default_value = "12345")]
    pub port: String,

    /// Serve UDP instead of TCP: each datagram is answered with the message, sent to its
    /// source.
    #[arg(long)]
    pub udp: bool,

    /// Serve a Unix-domain stream socket at PATH instead of TCP. A stale socket file is
    /// replaced; any other file at PATH is never touched.
    #[arg(long, value_name = "PATH", conflicts_with = "udp")]
    pub unix: Option<PathBuf>,

    /// Use IPv4 only when resolving --host.
    #[arg(short = '4', conflicts_with = "ipv6")]
    pub ipv4: bool,

    /// Use IPv6 only when resolving --host.
    #[arg(short = '6')]
    pub ipv6: bool,

    /// listen() backlog. [default: the system's maximum, /proc/sys/net/core/somaxconn]
    #[arg(long, value_name = "N")]
    pub backlog: Option<u32>,

    /// The greeting sent to every client.
    #[arg(long, default_value = "Thank you for connecting", value_name = "TEXT")]
    pub message: String,

    /// Read the greeting from a file instead: any bytes, up to 16 MiB (RFC 865 asks for
    /// under 512 characters; large greetings are served on purpose, and the cap turns a wrong
    /// path into an error rather than the machine's memory). Only a regular file: a
    /// directory, FIFO or device (/dev/zero) is refused at start.
    #[arg(long, value_name = "PATH", conflicts_with = "message")]
    pub message_file: Option<PathBuf>,

    /// Event loops, one per thread, each with its own SO_REUSEPORT listener.
    /// [default: the number of cores]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
    pub threads: Option<u16>,

    /// Stop accepting while this many connections are open (per loop).
    #[arg(long, value_name = "N")]
    pub max_connections: Option<usize>,

    /// Close a connection that has done nothing for this long.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = humantime::parse_duration)]
    pub idle_timeout: Duration,

    /// Close a connection that takes none of its pending greeting for this long (a client
    /// that never reads); a slow client that keeps reading is not cut off.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = humantime::parse_duration)]
    pub write_timeout: Duration,

    /// UDP: answer at most N datagrams per second from each source address, loopback
    /// included (0: no limit). Without this flag a limit of 20 per second applies to
    /// non-loopback sources only: a greeting service must not become a traffic amplifier
    /// for spoofed sources.
    #[arg(long, value_name = "N")]
    pub udp_rate: Option<u32>,

    /// TCP: every connection must first send a PROXY protocol header (v1 or v2, as HAProxy's
    /// send-proxy and send-proxy-v2 do); the client it names is the one logged. A
    /// connection whose header is malformed, too long or too slow is closed and counted.
    #[arg(long, conflicts_with_all = ["udp", "unix"])]
    pub proxy_protocol: bool,

    /// With --proxy-protocol: close a connection whose header is not complete within this
    /// long.
    #[arg(long, value_name = "DURATION", default_value = "3s", value_parser = humantime::parse_duration)]
    pub proxy_timeout: Duration,

    /// Do not print a line per connection.
    #[arg(short, long)]
    pub quiet: bool,
}

/// Writes the shell completions (bash, zsh, fish) and the man page under `dir`.
pub fn generate(dir: &Path) -> Result<(), String> {
    clap_dist::generate(Args::command(), "greet-server", dir)
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
