//! The access log's `text` and `json` lines: one per connection, written when it ends (and
//! one per datagram), with the time, transport, peer, outcome, bytes sent and duration.
//!
//! The `tutorial` format (`Got connection from (...)`, printed as each client is greeted) is
//! `service.rs`'s own: it is the tutorial's output, byte for byte, and costs nothing more.
//!
//! Lines are appended to the loop's per-turn buffer, which the log sink (`logsink.rs`) hands
//! to its writer thread: formatting here never waits on stdout.

use std::io::Write;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use netcore::PeerAddr;

use greet_server::cli::LogFormat;

/// How a connection (or a datagram) ended, as the access log and the metrics name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The whole greeting went to the kernel before an orderly close.
    Greeted,
    /// The peer reset the connection (or stopped reading for good) before it had it all.
    Reset,
    /// The greeting waited too long for a peer that did not read it.
    TimedOut,
    /// The server stopped before the greeting was out.
    Shutdown,
    /// Any other I/O error.
    Error,
    /// A PROXY header that was malformed, too long, too slow or missing.
    ProxyError,
    /// A connection from outside `--proxy-trusted`: refused.
    ProxyUntrusted,
    /// Over `--max-connections`: refused at once.
    RefusedLimit,
    /// Over `--max-per-source`: refused at once.
    RefusedPerSource,
    /// A datagram not answered: its source passed `--udp-rate`.
    RateLimited,
}

impl Outcome {
    /// The word in log lines and in the metrics' labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Greeted => "greeted",
            Outcome::Reset => "reset",
            Outcome::TimedOut => "timed-out",
            Outcome::Shutdown => "shutdown",
            Outcome::Error => "error",
            Outcome::ProxyError => "proxy-error",
            Outcome::ProxyUntrusted => "proxy-untrusted",
            Outcome::RefusedLimit => "refused-limit",
            Outcome::RefusedPerSource => "refused-per-source",
            Outcome::RateLimited => "rate-limited",
        }
    }
}

/// The transport a line is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Tcp,
    Udp,
    Unix,
}

impl Transport {
    fn as_str(self) -> &'static str {
        match self {
            Transport::Tcp => "tcp",
            Transport::Udp => "udp",
            Transport::Unix => "unix",
        }
    }

    /// The transport of a stream connection with this peer.
    pub fn of(peer: &PeerAddr) -> Transport {
        match peer {
            PeerAddr::Inet(_) => Transport::Tcp,
            PeerAddr::Unix(_) => Transport::Unix,
        }
    }
}

/// One line's fields.
#[derive(Debug)]
pub struct Entry<'a> {
    pub transport: Transport,
    /// The socket's own peer: for a connection through a load balancer, the balancer.
    pub peer: &'a PeerAddr,
    /// The client a PROXY header named, beside the real peer.
    pub client: Option<SocketAddr>,
    pub outcome: Outcome,
    /// Bytes written to the peer.
    pub sent: u64,
    /// From the accept to the close (zero for a datagram).
    pub duration: Duration,
}

/// Appends `entry` as one `format` line (`text` or `json`) stamped `at`; nothing for
/// `tutorial`, whose lines are written as clients are greeted.
pub fn append(out: &mut Vec<u8>, format: LogFormat, at: SystemTime, entry: &Entry<'_>) {
    let time = humantime::format_rfc3339_millis(at);
    let millis = entry.duration.as_secs_f64() * 1000.0;
    // Writing into a Vec cannot fail.
    let _ = match format {
        LogFormat::Tutorial => return,
        LogFormat::Text => {
            let _ = write!(
                out,
                "{time} {} peer={}",
                entry.transport.as_str(),
                TextPeer(entry.peer)
            );
            if let Some(client) = entry.client {
                let _ = write!(out, " client={client}");
            }
            writeln!(
                out,
                " outcome={} sent={} duration_ms={millis:.3}",
                entry.outcome.as_str(),
                entry.sent
            )
        }
        LogFormat::Json => {
            let _ = write!(
                out,
                "{{\"time\":\"{time}\",\"transport\":\"{}\",\"peer\":",
                entry.transport.as_str()
            );
            match entry.peer {
                PeerAddr::Inet(addr) => {
                    let _ = write!(out, "\"{addr}\"");
                }
                PeerAddr::Unix(Some(path)) => json_string(out, &path.to_string_lossy()),
                PeerAddr::Unix(None) => out.extend_from_slice(b"\"\""),
            }
            if let Some(client) = entry.client {
                let _ = write!(out, ",\"client\":\"{client}\"");
            }
            writeln!(
                out,
                ",\"outcome\":\"{}\",\"sent\":{},\"duration_ms\":{millis:.3}}}",
                entry.outcome.as_str(),
                entry.sent
            )
        }
    };
}

/// A peer in a `text` line: `192.0.2.1:5000`, `[2001:db8::1]:5000`, or a Unix path (quoted
/// and escaped when it holds a space, a quote or a control character: one line stays one
/// record); an unnamed Unix peer is `""`.
struct TextPeer<'a>(&'a PeerAddr);

impl std::fmt::Display for TextPeer<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            PeerAddr::Inet(addr) => write!(f, "{addr}"),
            PeerAddr::Unix(Some(path)) => {
                let text = path.to_string_lossy();
                let plain = !text.is_empty()
                    && text
                        .chars()
                        .all(|c| !c.is_control() && c != ' ' && c != '"' && c != '\\');
                if plain {
                    f.write_str(&text)
                } else {
                    write!(f, "\"{}\"", text.escape_debug())
                }
            }
            PeerAddr::Unix(None) => f.write_str("\"\""),
        }
    }
}

/// `text` as a JSON string literal (RFC 8259: `"`, `\` and control characters escaped).
fn json_string(out: &mut Vec<u8>, text: &str) {
    out.push(b'"');
    for c in text.chars() {
        let _ = match c {
            '"' => write!(out, "\\\""),
            '\\' => write!(out, "\\\\"),
            '\n' => write!(out, "\\n"),
            '\r' => write!(out, "\\r"),
            '\t' => write!(out, "\\t"),
            c if u32::from(c) < 0x20 => write!(out, "\\u{:04x}", u32::from(c)),
            c => write!(out, "{c}"),
        };
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn line(format: LogFormat, entry: &Entry<'_>) -> String {
        let mut out = Vec::new();
        // 2024-02-29T12:34:56.789Z
        let at = SystemTime::UNIX_EPOCH + Duration::from_millis(1_709_210_096_789);
        append(&mut out, format, at, entry);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn text_and_json_lines_carry_every_field() {
        let peer = PeerAddr::Inet("127.0.0.1:40000".parse().unwrap());
        let entry = Entry {
            transport: Transport::Tcp,
            peer: &peer,
            client: Some("[2001:db8::7]:5000".parse().unwrap()),
            outcome: Outcome::Greeted,
            sent: 24,
            duration: Duration::from_micros(1_234),
        };
        assert_eq!(
            line(LogFormat::Text, &entry),
            "2024-02-29T12:34:56.789Z tcp peer=127.0.0.1:40000 client=[2001:db8::7]:5000 \
             outcome=greeted sent=24 duration_ms=1.234\n"
        );
        assert_eq!(
            line(LogFormat::Json, &entry),
            "{\"time\":\"2024-02-29T12:34:56.789Z\",\"transport\":\"tcp\",\
             \"peer\":\"127.0.0.1:40000\",\"client\":\"[2001:db8::7]:5000\",\
             \"outcome\":\"greeted\",\"sent\":24,\"duration_ms\":1.234}\n"
        );
        assert_eq!(line(LogFormat::Tutorial, &entry), "");
    }

    #[test]
    fn unix_peers_stay_one_field() {
        let odd = PeerAddr::Unix(Some(PathBuf::from("/tmp/a b\"\n.sock")));
        let entry = Entry {
            transport: Transport::Unix,
            peer: &odd,
            client: None,
            outcome: Outcome::Reset,
            sent: 0,
            duration: Duration::ZERO,
        };
        assert_eq!(
            line(LogFormat::Text, &entry),
            "2024-02-29T12:34:56.789Z unix peer=\"/tmp/a b\\\"\\n.sock\" outcome=reset \
             sent=0 duration_ms=0.000\n"
        );
        let json = line(LogFormat::Json, &entry);
        assert!(json.contains("\"peer\":\"/tmp/a b\\\"\\n.sock\""), "{json}");
        let unnamed = PeerAddr::Unix(None);
        let entry = Entry {
            peer: &unnamed,
            ..entry
        };
        assert!(line(LogFormat::Text, &entry).contains(" peer=\"\" "));
        assert!(line(LogFormat::Json, &entry).contains("\"peer\":\"\","));
    }

    #[test]
    fn json_strings_escape_control_characters() {
        let mut out = Vec::new();
        json_string(&mut out, "a\u{1}\\\"\té");
        assert_eq!(String::from_utf8(out).unwrap(), "\"a\\u0001\\\\\\\"\\té\"");
    }
}
