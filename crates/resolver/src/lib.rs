//! Name and address resolution for the socket tutorial, over libc and `dns-lookup`.
//!
//! Python 3 has two paths from text to addresses, and this crate offers both, named for what
//! they do:
//!
//! - [`socket_addr`]: what `bind`, `connect` and `sendto` take (Python's `setipaddr`), with every
//!   host and port form the tutorial teaches: a name, a dotted quad with glibc's short forms
//!   (`127.1`, `0x7f.1`), an integer (`2130706433`), `""` (any address), `"<broadcast>"`, an IPv6
//!   address with an optional `%scope`; a port number or a service name (`"www"`).
//!   [`socket_addr_numeric`] is the same without name resolution.
//! - [`getaddrinfo`]: libc's `getaddrinfo` as Python's `socket.getaddrinfo` shows it: the same
//!   entries in the same order, family, type and protocol as raw numbers, `canonname` `""` where
//!   libc gives none, errors with the `EAI_*` number and libc's message. [`getnameinfo`] (reverse
//!   lookup, `NI_*` flags) and [`gethostname`] complete it.
//!
//! [`PyAddr`] and [`AddrInfo`]'s `Display` print addresses the way Python does, as the tutorial
//! shows them: `('127.0.0.1', 48437)`, `(2, 1, 6, '', ('127.0.0.1', 80))`; [`pformat`] prints
//! a [`PyVal`] (such as a list of `getaddrinfo` entries) as Python's `pprint.pformat` does.
//!
//! # Examples
//!
//! The tutorial's server binds `(gethostname(), 12345)`:
//!
//! ```
//! use resolver::{socket_addr, Family, PyAddr, Transport};
//!
//! let addr = socket_addr("127.0.0.1", "12345", Family::Any, Transport::Tcp)?;
//! assert_eq!(PyAddr(&addr).to_string(), "('127.0.0.1', 12345)");
//! // The tutorial's host forms:
//! for host in ["127.1", "0x7f.1", "2130706433"] {
//!     assert_eq!(socket_addr(host, "www", Family::V4, Transport::Tcp)?.to_string(), "127.0.0.1:80");
//! }
//! # Ok::<(), resolver::Error>(())
//! ```
//!
//! Its lookup script, `getaddrinfo(host, 'www')`:
//!
//! ```
//! use resolver::{getaddrinfo, Hints};
//!
//! let found = getaddrinfo(Some("127.0.0.1"), Some("www"), &Hints::default())?;
//! let shown: Vec<String> = found.iter().map(|ai| ai.to_string()).collect();
//! assert_eq!(shown, ["(2, 1, 6, '', ('127.0.0.1', 80))"]);
//! # Ok::<(), resolver::Error>(())
//! ```
//!
//! Every error names its input and, where libc gave one, its number:
//!
//! ```
//! let err = resolver::socket_addr("127.0.0.1", "nosuchservice", resolver::Family::V4,
//!                                 resolver::Transport::Tcp).unwrap_err();
//! assert_eq!(err.to_string(), r#"port "nosuchservice": [Errno -8] Servname not supported for ai_socktype"#);
//! ```
//!
//! # Deliberate differences from Python
//!
//! Where Python 3 defines the behaviour, this crate matches it (its tests compare thousands of
//! cases with `python3` on the machine), except for these choices:
//!
//! - **A NUL byte** in a host or service is an [`ErrorKind::NulByte`] error. Python's
//!   `getaddrinfo` silently cuts the string there (`"127.0.0.1\0junk"` resolves as `127.0.0.1`).
//! - **A numeric service above 65535** is an error. glibc reads the service with `strtoul` and
//!   wraps it modulo 65536 (`"70000"` becomes port 4464). [`getaddrinfo`] reports it as libc and
//!   Python report a negative or too large number: `EAI_SERVICE`,
//!   `[Errno -8] Servname not supported for ai_socktype`, so a caller sees one code for every
//!   service outside 0-65535. [`socket_addr`] and [`check_port`] refuse every port outside
//!   0-65535 with an [`ErrorKind::InvalidPort`] error, as Python's `bind` does.
//! - **Non-ASCII names** are IDNA-encoded per UTS #46, as browsers do ([`encode_host`]). Python
//!   uses IDNA 2003, which maps `ß` to `ss` and `ς` to `σ`, so `"faß.de"` is `fass.de` there and
//!   `xn--fa-hia.de` here. ASCII names pass through unchanged after Python's own label checks.
//! - **[`socket_addr`] accepts more than Python's `bind`**: the integer host form (Python 3
//!   refuses an `int` host), service names as ports (Python takes only an integer), and it keeps
//!   an IPv6 `%scope` (Python 3 replaces the scope id with the tuple's fourth field, 0 by
//!   default). `""` with [`Family::Any`] is `0.0.0.0` (Python's `AF_UNSPEC` lookup would fail
//!   with "wildcard resolved to multiple address").
//!
//! # What `dns-lookup` leaves to its users, handled here
//!
//! `dns-lookup` 4 is used where it does the job right ([`gethostname`], [`getnameinfo`]). Its
//! `getaddrinfo` wrapper loses information, so [`getaddrinfo`] calls libc directly: the `EAI_*`
//! number is kept (dns-lookup's error loses it once it becomes an `io::Error`), a missing
//! canonical name is `""` (not `None`), text that is not UTF-8 is an [`ErrorKind::NonUtf8`] error
//! (dns-lookup `unwrap`s it), socket types and protocols stay numbers (glibc's SCTP
//! `SOCK_SEQPACKET` entries have no enum there), and a call with neither host nor service is
//! refused before libc is asked, with `EAI_NONAME` as Python gives.
//!
//! # Logging
//!
//! Every lookup logs its arguments and outcome at `debug` level through the `log` crate.
#![deny(missing_docs)]

mod addrinfo;
mod error;
mod host;
mod hostname;
mod nameinfo;
mod pprint;
mod pyrepr;
mod sockaddr;

pub use addrinfo::{
    getaddrinfo, AddrInfo, Hints, AI_ADDRCONFIG, AI_ALL, AI_CANONNAME, AI_NUMERICHOST,
    AI_NUMERICSERV, AI_PASSIVE, AI_V4MAPPED,
};
pub use error::{Error, ErrorKind};
pub use host::{check_port, encode_host};
pub use hostname::gethostname;
pub use nameinfo::{getnameinfo, NI_DGRAM, NI_NAMEREQD, NI_NOFQDN, NI_NUMERICHOST, NI_NUMERICSERV};
pub use pprint::{pformat, PyVal};
pub use pyrepr::{ipv6_text, py_str, PyAddr};
pub use sockaddr::{
    socket_addr, socket_addr_numeric, socket_addr_or_hostname, socket_addrs,
    socket_addrs_or_hostname, Family, Transport,
};
