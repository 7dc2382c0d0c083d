//! `getnameinfo`: reverse lookup of a socket address.

use std::io;
use std::net::SocketAddr;

use dns_lookup::LookupErrorKind;

use crate::error::{Error, ErrorKind};
use crate::pyrepr::PyAddr;

/// `NI_NUMERICHOST`: return the address in numeric form, never ask DNS.
pub const NI_NUMERICHOST: i32 = libc::NI_NUMERICHOST;
/// `NI_NUMERICSERV`: return the port number, not the service name.
pub const NI_NUMERICSERV: i32 = libc::NI_NUMERICSERV;
/// `NI_NOFQDN`: for local hosts, return only the host part of the name.
pub const NI_NOFQDN: i32 = libc::NI_NOFQDN;
/// `NI_NAMEREQD`: fail with `EAI_NONAME` if the address has no name (instead of returning it
/// in numeric form).
pub const NI_NAMEREQD: i32 = libc::NI_NAMEREQD;
/// `NI_DGRAM`: look the port up among the `udp` services (default `tcp`).
pub const NI_DGRAM: i32 = libc::NI_DGRAM;

/// Reverse lookup: the host name and service name of a socket address, as libc's `getnameinfo`
/// and Python's `socket.getnameinfo` return them, with `NI_*` flags ([`NI_NUMERICHOST`],
/// [`NI_NUMERICSERV`], [`NI_NOFQDN`], [`NI_NAMEREQD`], [`NI_DGRAM`]).
///
/// Implemented with `dns_lookup::getnameinfo` (the same buffer sizes as Python's), whose error
/// keeps the `EAI_*` number; it is turned into this crate's [`Error`] here.
///
/// # Errors
///
/// [`ErrorKind::Lookup`] with the `EAI_*` number and libc's message (for example `EAI_NONAME`
/// with [`NI_NAMEREQD`] for an address without a name), [`ErrorKind::Os`] for `EAI_SYSTEM`,
/// [`ErrorKind::NonUtf8`] for a name that is not UTF-8.
///
/// # Examples
///
/// ```
/// let addr: std::net::SocketAddr = "127.0.0.1:22".parse().unwrap();
/// let (host, service) =
///     resolver::getnameinfo(&addr, resolver::NI_NUMERICHOST | resolver::NI_NUMERICSERV)?;
/// assert_eq!((host.as_str(), service.as_str()), ("127.0.0.1", "22"));
/// # Ok::<(), resolver::Error>(())
/// ```
pub fn getnameinfo(addr: &SocketAddr, flags: i32) -> Result<(String, String), Error> {
    let subject = || format!("address {}", PyAddr(addr));
    match dns_lookup::getnameinfo(addr, flags) {
        Ok(found) => {
            log::debug!("getnameinfo({addr}, {flags:#x}) -> {found:?}");
            Ok(found)
        }
        Err(err) => {
            let code = err.error_num();
            let err = match err.kind() {
                LookupErrorKind::System => Error::from_io(io::Error::from(err), subject()),
                // dns-lookup reports text that is not UTF-8 as an io::Error with number 0.
                LookupErrorKind::IO if code == 0 => Error::new(
                    ErrorKind::NonUtf8,
                    subject(),
                    io::Error::from(err).to_string(),
                ),
                _ => Error::from_eai(code, subject()),
            };
            log::debug!("getnameinfo({addr}, {flags:#x}): {err}");
            Err(err)
        }
    }
}
