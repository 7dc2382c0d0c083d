//! `greet-client lookup`: the tutorial's lookup script, over `resolver::getaddrinfo`, and its
//! reverse, over `resolver::getnameinfo`.
//!
//! Output is what the tutorial's Python prints: `pprint.pprint(socket.getaddrinfo(...))` with the
//! family and type as numbers, then `socket.gethostname()`. `--json` prints one JSON document
//! instead. A failed lookup exits with status 1 and one line on stderr.

use std::process::ExitCode;

use resolver::{pformat, AddrInfo, Hints, PyVal};
use serde::Serialize;

use crate::{output, pyjson};

/// Resolve HOST and SERVICE with getaddrinfo and print the list as Python's pprint does, then
/// this machine's hostname (the tutorial's lookup script).
///
/// The hints default to Python's `socket.getaddrinfo(HOST, SERVICE)`: any family, any type,
/// any protocol, no flags. `lookup localhost www` thus prints only the TCP entry, because the
/// services database lists `www` for TCP only.
#[derive(clap::Args, Debug)]
#[command(after_help = clap_dist::examples_help(crate::man_page::LOOKUP_EXAMPLES))]
pub struct LookupArgs {
    /// Host name or numeric address to resolve (with --reverse: the numeric address to look up;
    /// with --no-host: the SERVICE).
    #[arg(value_hint = clap::ValueHint::Hostname, value_name = "HOST", required_unless_present = "no_host", allow_hyphen_values = true, value_parser = parse_positional)]
    pub host: Option<String>,

    /// Service name or port number [default: none, port 0] (with --reverse: the port number
    /// [default: 0]). A negative number is a service, as for Python (`lookup localhost -1`);
    /// -4 and -6 stay flags.
    #[arg(value_hint = clap::ValueHint::Other, value_name = "SERVICE", conflicts_with = "no_host", allow_hyphen_values = true, value_parser = parse_positional)]
    pub service: Option<String>,

    /// A null host, Python's None: the one argument is then the SERVICE, and the result is
    /// the loopback address, or with --passive the wildcard address (for bind).
    /// `lookup --no-host --passive 80` is Python's `getaddrinfo(None, 80, 0, 0, 0,
    /// AI_PASSIVE)`. (`""` is not None: getaddrinfo refuses an empty name, as in Python.)
    #[arg(long)]
    pub no_host: bool,

    /// IPv4 addresses only (family AF_INET) [default: any family].
    #[arg(short = '4', conflicts_with = "ipv6")]
    pub ipv4: bool,

    /// IPv6 addresses only (family AF_INET6) [default: any family].
    #[arg(short = '6')]
    pub ipv6: bool,

    /// Socket type: stream, dgram, raw, seqpacket, or a number [default: any type, 0]. With
    /// --reverse, dgram looks the port up among UDP services (NI_DGRAM).
    #[arg(value_hint = clap::ValueHint::Other, long = "type", value_name = "TYPE", value_parser = parse_socktype)]
    pub socktype: Option<i32>,

    /// Protocol number (6 TCP, 17 UDP, 132 SCTP) or name (tcp, udp, sctp); 0 means any.
    #[arg(value_hint = clap::ValueHint::Other, long, value_name = "N", value_parser = parse_proto, default_value = "0")]
    pub proto: i32,

    /// AI_PASSIVE: with no usable host, return the wildcard address (for bind).
    #[arg(long)]
    pub passive: bool,

    /// AI_CANONNAME: report the canonical name in the first entry.
    #[arg(long)]
    pub canonname: bool,

    /// AI_NUMERICHOST: HOST must be a numeric address; never asks DNS. With --reverse:
    /// NI_NUMERICHOST, print the address, not its name.
    #[arg(long)]
    pub numeric_host: bool,

    /// AI_NUMERICSERV: SERVICE must be a port number. With --reverse: NI_NUMERICSERV, print
    /// the port number, not the service name.
    #[arg(long)]
    pub numeric_serv: bool,

    /// AI_ADDRCONFIG: only families this machine has an address for.
    #[arg(long)]
    pub addrconfig: bool,

    /// AI_V4MAPPED: with -6 and no IPv6 address, return IPv4-mapped IPv6 addresses.
    #[arg(long)]
    pub v4mapped: bool,

    /// AI_ALL: with --v4mapped, return IPv6 and IPv4-mapped addresses both.
    #[arg(long)]
    pub all: bool,

    /// Reverse lookup with getnameinfo: HOST is a numeric address, SERVICE a port number;
    /// prints (host, service) as Python's socket.getnameinfo does.
    #[arg(long, conflicts_with_all = ["ipv4", "ipv6", "proto", "passive", "canonname", "addrconfig", "v4mapped", "all", "no_host"])]
    pub reverse: bool,

    /// With --reverse: NI_NAMEREQD, fail if the address has no name.
    #[arg(long, requires = "reverse")]
    pub name_required: bool,

    /// With --reverse: NI_NOFQDN, only the host part of a local name.
    #[arg(long, requires = "reverse")]
    pub no_fqdn: bool,

    /// Print one JSON document instead: {"hostname": ..., "addresses": [{"family": 2, "type":
    /// 1, "proto": 6, "canonname": "", "address": ["127.0.0.1", 80]}]}; an IPv6 address is
    /// [host, port, flowinfo, scope_id]. On failure: {"error": {"code": -2, "message": ...}}.
    #[arg(long)]
    pub json: bool,
}

/// Runs the lookup and prints its result; exit status 0, or 1 when the lookup fails or its
/// output cannot be written.
pub fn run(args: &LookupArgs) -> ExitCode {
    let outcome = if args.reverse {
        reverse(args)
    } else {
        forward(args)
    };
    let text = match outcome {
        Ok(text) => text,
        Err(failure) => {
            output::stderr_line(&failure.line);
            if args.json {
                print_stdout(&failure.json);
            }
            return ExitCode::FAILURE;
        }
    };
    if print_stdout(&text) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// A failed lookup: the stderr line and the JSON document.
struct Failure {
    line: String,
    json: String,
}

fn forward(args: &LookupArgs) -> Result<String, Failure> {
    let hints = hints(args);
    // With --no-host, the one positional argument is the service.
    let (host, service) = if args.no_host {
        (None, args.host.as_deref())
    } else {
        (args.host.as_deref(), args.service.as_deref())
    };
    let label = ["lookup", host.unwrap_or("--no-host")]
        .into_iter()
        .chain(service)
        .collect::<Vec<_>>()
        .join(" ");
    let found = resolver::getaddrinfo(host, service, &hints).map_err(|e| failure(&label, &e))?;
    let hostname = resolver::gethostname().map_err(|e| failure(&label, &e))?;
    Ok(if args.json {
        let doc = ForwardDoc {
            hostname: &hostname,
            addresses: found.iter().map(EntryDoc::new).collect(),
        };
        json_line(&label, &doc)?
    } else {
        let list = PyVal::List(found.iter().map(PyVal::from).collect());
        format!("{}\n{}\n", pformat(&list), hostname)
    })
}

fn reverse(args: &LookupArgs) -> Result<String, Failure> {
    let port = args.service.as_deref().unwrap_or("0");
    // clap makes HOST required with --reverse (which conflicts with --no-host).
    let host = args.host.as_deref().unwrap_or_default();
    let label = format!("lookup --reverse {host} {port}");
    // As Python's getnameinfo: the address must be numeric, the port a number 0-65535.
    let port_ok = !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit());
    if !port_ok || port.parse::<u16>().is_err() {
        return Err(Failure {
            line: format!("{label}: port must be a number 0-65535"),
            json: error_json(None, "port must be a number 0-65535"),
        });
    }
    let numeric = Hints {
        socktype: libc_sock_dgram(),
        flags: resolver::AI_NUMERICHOST,
        ..Hints::default()
    };
    let found =
        resolver::getaddrinfo(Some(host), Some(port), &numeric).map_err(|e| failure(&label, &e))?;
    let Some(first) = found.first() else {
        return Err(Failure {
            line: format!("{label}: no address"),
            json: error_json(None, "no address"),
        });
    };
    let mut flags = 0;
    if args.numeric_host {
        flags |= resolver::NI_NUMERICHOST;
    }
    if args.numeric_serv {
        flags |= resolver::NI_NUMERICSERV;
    }
    if args.name_required {
        flags |= resolver::NI_NAMEREQD;
    }
    if args.no_fqdn {
        flags |= resolver::NI_NOFQDN;
    }
    if args.socktype == Some(libc_sock_dgram()) {
        flags |= resolver::NI_DGRAM;
    }
    let (host, service) =
        resolver::getnameinfo(&first.address, flags).map_err(|e| failure(&label, &e))?;
    let hostname = resolver::gethostname().map_err(|e| failure(&label, &e))?;
    Ok(if args.json {
        let doc = ReverseDoc {
            hostname: &hostname,
            host: &host,
            service: &service,
        };
        json_line(&label, &doc)?
    } else {
        let pair = PyVal::Tuple(vec![PyVal::Str(host), PyVal::Str(service)]);
        format!("{}\n{}\n", pformat(&pair), hostname)
    })
}

fn hints(args: &LookupArgs) -> Hints {
    let mut flags = 0;
    for (on, flag) in [
        (args.passive, resolver::AI_PASSIVE),
        (args.canonname, resolver::AI_CANONNAME),
        (args.numeric_host, resolver::AI_NUMERICHOST),
        (args.numeric_serv, resolver::AI_NUMERICSERV),
        (args.addrconfig, resolver::AI_ADDRCONFIG),
        (args.v4mapped, resolver::AI_V4MAPPED),
        (args.all, resolver::AI_ALL),
    ] {
        if on {
            flags |= flag;
        }
    }
    Hints {
        family: if args.ipv4 {
            resolver::Family::V4.af()
        } else if args.ipv6 {
            resolver::Family::V6.af()
        } else {
            resolver::Family::Any.af()
        },
        socktype: args.socktype.unwrap_or(0),
        protocol: args.proto,
        flags,
    }
}

fn libc_sock_dgram() -> i32 {
    resolver::Transport::Udp.socktype()
}

fn failure(label: &str, err: &resolver::Error) -> Failure {
    let line = match err.code() {
        Some(code) => format!("{label}: [Errno {code}] {}", err.reason()),
        None => format!("{label}: {}", err.reason()),
    };
    Failure {
        line,
        json: error_json(err.code(), err.reason()),
    }
}

/// The `--json` document of a failure; empty in the (impossible) case that it does not
/// serialise, so that stdout never holds half a document (the stderr line says what failed).
fn error_json(code: Option<i32>, message: &str) -> String {
    let doc = ErrorDoc {
        error: ErrorBody { code, message },
    };
    pyjson::to_line(&doc).unwrap_or_else(|e| {
        log::error!("cannot write the error document as JSON: {e}");
        String::new()
    })
}

/// `doc` as the `--json` output line, or the failure that says it could not be written.
fn json_line<T: Serialize>(label: &str, doc: &T) -> Result<String, Failure> {
    pyjson::to_line(doc).map_err(|e| Failure {
        line: format!("{label}: cannot write JSON: {e}"),
        json: String::new(),
    })
}

/// Writes to stdout; `false` (after saying why on stderr) when the output was lost. A closed
/// stdout (`| head`) is not an error.
fn print_stdout(text: &str) -> bool {
    match output::stdout(text.as_bytes()) {
        Ok(()) => true,
        Err(e) => {
            output::stderr_line(format_args!("greet-client: {e:#}"));
            false
        }
    }
}

/// HOST and SERVICE take values that start with `-` (clap's `allow_hyphen_values`, which keeps
/// `-4` and `-6` flags because both are known short flags), so that a negative port number is
/// a SERVICE as in Python (`lookup localhost -1`: `EAI_SERVICE`). Anything else that starts
/// with `-` is a mistyped flag, refused as a bad argument.
fn parse_positional(s: &str) -> Result<String, String> {
    match s.strip_prefix('-') {
        Some(rest) if !rest.is_empty() && !rest.bytes().all(|b| b.is_ascii_digit()) => Err(
            format!("{s:?} is not a flag of lookup; a value starting with '-' must be a negative number"),
        ),
        _ => Ok(s.to_owned()),
    }
}

fn parse_socktype(s: &str) -> Result<i32, String> {
    match s {
        "stream" => Ok(1),
        "dgram" => Ok(2),
        "raw" => Ok(3),
        "rdm" => Ok(4),
        "seqpacket" => Ok(5),
        _ => s.parse::<i32>().map_err(|_| {
            format!("{s:?} is not a socket type: stream, dgram, raw, seqpacket or a number")
        }),
    }
}

fn parse_proto(s: &str) -> Result<i32, String> {
    match s {
        "tcp" => Ok(6),
        "udp" => Ok(17),
        "sctp" => Ok(132),
        _ => s
            .parse::<i32>()
            .map_err(|_| format!("{s:?} is not a protocol: tcp, udp, sctp or a number")),
    }
}

/// Forward lookup's `--json` document: `{"hostname": ..., "addresses": [...]}`.
/// Field order is the document's key order.
#[derive(Serialize)]
struct ForwardDoc<'a> {
    hostname: &'a str,
    addresses: Vec<EntryDoc<'a>>,
}

/// One getaddrinfo entry: `{"family": 2, "type": 1, "proto": 6, "canonname": "", "address":
/// ["127.0.0.1", 80]}`, numbers as the tutorial prints them.
#[derive(Serialize)]
struct EntryDoc<'a> {
    family: i32,
    #[serde(rename = "type")]
    socktype: i32,
    proto: i32,
    canonname: &'a str,
    address: AddressDoc,
}

impl<'a> EntryDoc<'a> {
    fn new(ai: &'a AddrInfo) -> Self {
        EntryDoc {
            family: ai.family,
            socktype: ai.socktype,
            proto: ai.protocol,
            canonname: &ai.canonname,
            address: AddressDoc::new(&ai.address),
        }
    }
}

/// Python's address tuple as a JSON array: `[host, port]`, or for IPv6
/// `[host, port, flowinfo, scope_id]`.
#[derive(Serialize)]
#[serde(untagged)]
enum AddressDoc {
    V4(String, u16),
    V6(String, u16, u32, u32),
}

impl AddressDoc {
    fn new(addr: &std::net::SocketAddr) -> Self {
        match addr {
            std::net::SocketAddr::V4(a) => AddressDoc::V4(a.ip().to_string(), a.port()),
            std::net::SocketAddr::V6(a) => AddressDoc::V6(
                resolver::ipv6_text(a.ip()),
                a.port(),
                a.flowinfo(),
                a.scope_id(),
            ),
        }
    }
}

/// Reverse lookup's `--json` document: `{"hostname": ..., "host": ..., "service": ...}`.
#[derive(Serialize)]
struct ReverseDoc<'a> {
    hostname: &'a str,
    host: &'a str,
    service: &'a str,
}

/// A failure's `--json` document: `{"error": {"code": -2, "message": "..."}}`, `code` `null`
/// where no `EAI_*` or OS number applies.
#[derive(Serialize)]
struct ErrorDoc<'a> {
    error: ErrorBody<'a>,
}

/// The body of [`ErrorDoc`].
#[derive(Serialize)]
struct ErrorBody<'a> {
    code: Option<i32>,
    message: &'a str,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_and_proto_names() {
        assert_eq!(parse_socktype("dgram"), Ok(2));
        assert_eq!(parse_socktype("5"), Ok(5));
        assert!(parse_socktype("bogus").is_err());
        assert_eq!(parse_proto("sctp"), Ok(132));
    }
}
