//! `getaddrinfo`, exactly as libc does it, with Python's result shape.

use std::ffi::{CStr, CString};
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::ptr;

use crate::error::{quote, Error, ErrorKind};
use crate::host::{host_cstring, service_cstring};
use crate::pyrepr::{py_str, PyAddr};

/// `AI_PASSIVE`: with no host, return the wildcard address (for `bind`) instead of loopback.
pub const AI_PASSIVE: i32 = libc::AI_PASSIVE;
/// `AI_CANONNAME`: fill in [`AddrInfo::canonname`] of the first result.
pub const AI_CANONNAME: i32 = libc::AI_CANONNAME;
/// `AI_NUMERICHOST`: the host must be a numeric address; never asks DNS.
pub const AI_NUMERICHOST: i32 = libc::AI_NUMERICHOST;
/// `AI_NUMERICSERV`: the service must be a port number; never reads the services database.
pub const AI_NUMERICSERV: i32 = libc::AI_NUMERICSERV;
/// `AI_ADDRCONFIG`: return IPv4 (IPv6) addresses only if the machine has one configured.
pub const AI_ADDRCONFIG: i32 = libc::AI_ADDRCONFIG;
/// `AI_V4MAPPED`: with family `AF_INET6` and no IPv6 address found, return IPv4-mapped ones.
pub const AI_V4MAPPED: i32 = libc::AI_V4MAPPED;
/// `AI_ALL`: with `AI_V4MAPPED`, return IPv6 and IPv4-mapped addresses both.
pub const AI_ALL: i32 = libc::AI_ALL;

/// The hints of a [`getaddrinfo`] call, as libc's `struct addrinfo` hints: every field is a raw
/// number, `0` meaning "any" (the default for all four).
///
/// # Examples
///
/// ```
/// let hints = resolver::Hints {
///     family: libc::AF_INET,
///     socktype: libc::SOCK_STREAM,
///     ..Default::default()
/// };
/// let found = resolver::getaddrinfo(Some("127.0.0.1"), Some("80"), &hints).unwrap();
/// assert_eq!(found.len(), 1);
/// assert_eq!(found[0].protocol, libc::IPPROTO_TCP);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Hints {
    /// Address family: `AF_UNSPEC` (0), `AF_INET` or `AF_INET6`.
    pub family: i32,
    /// Socket type: 0 for all, `SOCK_STREAM`, `SOCK_DGRAM`, `SOCK_RAW`, `SOCK_SEQPACKET`...
    pub socktype: i32,
    /// Protocol: 0 for all, `IPPROTO_TCP`, `IPPROTO_UDP`, `IPPROTO_SCTP`...
    pub protocol: i32,
    /// A bitwise OR of the `AI_*` constants ([`AI_PASSIVE`], [`AI_CANONNAME`], ...).
    pub flags: i32,
}

/// One result of [`getaddrinfo`]: Python's 5-tuple `(family, type, proto, canonname, sockaddr)`.
///
/// The numbers are kept as libc gives them, so values no enum lists (glibc's SCTP
/// `SOCK_SEQPACKET` entries, protocol 132) survive.
///
/// Its `Display` form is Python's `repr` of the tuple, with numbers for the family and type:
/// `(2, 1, 6, '', ('127.0.0.1', 80))`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AddrInfo {
    /// `ai_family`: `AF_INET` (2) or `AF_INET6` (10) on Linux.
    pub family: i32,
    /// `ai_socktype`: `SOCK_STREAM` (1), `SOCK_DGRAM` (2), `SOCK_RAW` (3), `SOCK_SEQPACKET` (5)...
    pub socktype: i32,
    /// `ai_protocol`: `IPPROTO_TCP` (6), `IPPROTO_UDP` (17), `IPPROTO_SCTP` (132), or 0.
    pub protocol: i32,
    /// `ai_canonname`, or `""` where libc gives none (it gives one only to the first result, and
    /// only with [`AI_CANONNAME`]), as Python does.
    pub canonname: String,
    /// The socket address, port included. For IPv6, the scope id is kept.
    pub address: SocketAddr,
}

impl fmt::Display for AddrInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "({}, {}, {}, {}, {})",
            self.family,
            self.socktype,
            self.protocol,
            py_str(&self.canonname),
            PyAddr(&self.address)
        )
    }
}

/// Resolves a host and a service to socket addresses, as libc's `getaddrinfo` and Python's
/// `socket.getaddrinfo` do: the same results in the same order, the same error numbers.
///
/// `host` may be a name (IDNA-encoded first when not ASCII, see [`encode_host`](crate::encode_host)),
/// a numeric IPv4 or IPv6 address, or `None` (the loopback address, or the wildcard address with
/// [`AI_PASSIVE`]). `service` may be a service name (`"www"`, `"ssh"`), a port number, or `None`
/// (port 0). Asking for neither is refused before libc is asked, with `EAI_NONAME`, the error
/// libc and Python give.
///
/// Differences from Python, on purpose:
/// - a NUL byte in the host or service is an [`ErrorKind::NulByte`] error (Python cuts the string
///   there and resolves the rest);
/// - a numeric service above 65535 is an `EAI_SERVICE` error, the one libc and Python give for a
///   negative number (glibc, and so Python, wraps `"70000"` to port 4464);
/// - a non-ASCII host is IDNA-encoded per UTS #46 (Python: IDNA 2003).
///
/// # Errors
///
/// [`ErrorKind::Lookup`] with the `EAI_*` number and libc's message (`EAI_SYSTEM` becomes
/// [`ErrorKind::Os`] with the OS error); the input errors above; [`ErrorKind::NonUtf8`] for a
/// canonical name that is not UTF-8 (Python raises `UnicodeDecodeError`).
///
/// # Examples
///
/// The tutorial's lookup, on a name every machine has:
///
/// ```
/// let found = resolver::getaddrinfo(Some("127.0.0.1"), Some("www"), &resolver::Hints::default())?;
/// assert_eq!(found[0].to_string(), "(2, 1, 6, '', ('127.0.0.1', 80))");
/// # Ok::<(), resolver::Error>(())
/// ```
///
/// Failures carry libc's number and message:
///
/// ```
/// let hints = resolver::Hints { flags: resolver::AI_NUMERICSERV, ..Default::default() };
/// let err = resolver::getaddrinfo(Some("127.0.0.1"), Some("www"), &hints).unwrap_err();
/// assert_eq!(err.eai_code(), Some(libc::EAI_NONAME));
/// assert_eq!(
///     err.to_string(),
///     r#"host "127.0.0.1", service "www": [Errno -2] Name or service not known"#
/// );
/// ```
pub fn getaddrinfo(
    host: Option<&str>,
    service: Option<&str>,
    hints: &Hints,
) -> Result<Vec<AddrInfo>, Error> {
    let subject = || subject(host, service);
    if host.is_none() && service.is_none() {
        // glibc answers this itself; dns-lookup refuses it with an error that has no number.
        return Err(Error::from_eai(libc::EAI_NONAME, subject()));
    }
    let c_host: Option<CString> = host
        .map(host_cstring)
        .transpose()
        .map_err(|e| e.with_subject(subject()))?;
    let c_service: Option<CString> = service
        .map(service_cstring)
        .transpose()
        .map_err(|e| e.with_subject(subject()))?;

    // SAFETY: an all-zero addrinfo is a valid value (null pointers, zero numbers), and the hints
    // struct libc expects has every field we do not set at zero.
    let mut c_hints: libc::addrinfo = unsafe { std::mem::zeroed() };
    c_hints.ai_flags = hints.flags;
    c_hints.ai_family = hints.family;
    c_hints.ai_socktype = hints.socktype;
    c_hints.ai_protocol = hints.protocol;

    let mut res: *mut libc::addrinfo = ptr::null_mut();
    // SAFETY: the host and service pointers are null or point to NUL-terminated strings that live
    // until the end of this function; hints points to an initialised struct; res is a valid
    // out-pointer. getaddrinfo is thread-safe.
    let rc = unsafe {
        libc::getaddrinfo(
            c_host.as_ref().map_or(ptr::null(), |s| s.as_ptr()),
            c_service.as_ref().map_or(ptr::null(), |s| s.as_ptr()),
            &c_hints,
            &mut res,
        )
    };
    if rc != 0 {
        let err = Error::from_gai_return(rc, subject());
        log::debug!("getaddrinfo({host:?}, {service:?}, {hints:?}): {err}");
        return Err(err);
    }
    let list = AddrInfoList(res);
    let mut out = Vec::new();
    let mut cur = list.0 as *const libc::addrinfo;
    while !cur.is_null() {
        // SAFETY: cur is a non-null node of the list getaddrinfo returned, which stays valid
        // until `list` is dropped at the end of this function.
        let node = unsafe { &*cur };
        out.push(convert(node, &subject)?);
        cur = node.ai_next;
    }
    log::debug!(
        "getaddrinfo({host:?}, {service:?}, {hints:?}): {} result(s)",
        out.len()
    );
    Ok(out)
}

/// Frees the list getaddrinfo returned, whatever happens while it is read.
struct AddrInfoList(*mut libc::addrinfo);

impl Drop for AddrInfoList {
    fn drop(&mut self) {
        if !self.0.is_null() {
            // SAFETY: the pointer came from a successful getaddrinfo and is freed only here.
            unsafe { libc::freeaddrinfo(self.0) };
        }
    }
}

fn convert(node: &libc::addrinfo, subject: &dyn Fn() -> String) -> Result<AddrInfo, Error> {
    // SAFETY: ai_addr points to ai_addrlen bytes owned by the list; sockaddr_from_raw checks the
    // family and length before reading a sockaddr_in or sockaddr_in6.
    let address = unsafe { sockaddr_from_raw(node.ai_addr, node.ai_addrlen) }.ok_or_else(|| {
        Error::new(
            ErrorKind::UnsupportedFamily,
            subject(),
            format!("libc returned an address of family {}", node.ai_family),
        )
    })?;
    let canonname = if node.ai_canonname.is_null() {
        String::new()
    } else {
        // SAFETY: a non-null ai_canonname is a NUL-terminated string owned by the list.
        let raw = unsafe { CStr::from_ptr(node.ai_canonname) };
        raw.to_str()
            .map_err(|_| {
                Error::new(
                    ErrorKind::NonUtf8,
                    subject(),
                    format!("canonical name is not UTF-8: {:?}", raw),
                )
            })?
            .to_owned()
    };
    Ok(AddrInfo {
        family: node.ai_family,
        socktype: node.ai_socktype,
        protocol: node.ai_protocol,
        canonname,
        address,
    })
}

/// Reads an IPv4 or IPv6 socket address.
///
/// # Safety
///
/// `addr` must be null or point to at least `len` readable bytes.
pub(crate) unsafe fn sockaddr_from_raw(
    addr: *const libc::sockaddr,
    len: libc::socklen_t,
) -> Option<SocketAddr> {
    if addr.is_null() || (len as usize) < std::mem::size_of::<libc::sa_family_t>() {
        return None;
    }
    // SAFETY: at least the family field is readable (checked above); read_unaligned because the
    // C library promises no alignment for the bytes behind a generic sockaddr pointer.
    let family = unsafe { ptr::read_unaligned(ptr::addr_of!((*addr).sa_family)) };
    match i32::from(family) {
        libc::AF_INET if len as usize >= std::mem::size_of::<libc::sockaddr_in>() => {
            // SAFETY: the family says sockaddr_in and the length covers it.
            let sin = unsafe { ptr::read_unaligned(addr as *const libc::sockaddr_in) };
            Some(SocketAddr::V4(SocketAddrV4::new(
                Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)),
                u16::from_be(sin.sin_port),
            )))
        }
        libc::AF_INET6 if len as usize >= std::mem::size_of::<libc::sockaddr_in6>() => {
            // SAFETY: the family says sockaddr_in6 and the length covers it.
            let sin6 = unsafe { ptr::read_unaligned(addr as *const libc::sockaddr_in6) };
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(sin6.sin6_addr.s6_addr),
                u16::from_be(sin6.sin6_port),
                // std keeps flowinfo as the raw field, and so do we.
                sin6.sin6_flowinfo,
                sin6.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

/// The input named in an error message.
fn subject(host: Option<&str>, service: Option<&str>) -> String {
    match (host, service) {
        (Some(h), Some(s)) => format!("host {}, service {}", quote(h), quote(s)),
        (Some(h), None) => format!("host {}", quote(h)),
        (None, Some(s)) => format!("service {}", quote(s)),
        (None, None) => "no host and no service".to_owned(),
    }
}
