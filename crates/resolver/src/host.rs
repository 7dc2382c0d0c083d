//! Checks and encodes host and service strings before they reach the C library.

use std::borrow::Cow;
use std::ffi::CString;

use crate::error::{quote, Error, ErrorKind};

/// Longest DNS label, in bytes (RFC 1035).
const MAX_LABEL: usize = 63;

/// Prepares a host name for `getaddrinfo`: the ASCII form that is passed to the C library.
///
/// - A NUL byte is an error ([`ErrorKind::NulByte`]); Python silently cuts the name there.
/// - An ASCII name is kept as it is, after Python's own checks (its `idna` codec): every label but
///   the last must be 1 to 63 bytes, the last at most 63 (a trailing dot is allowed), so `"a..b"`
///   is an [`ErrorKind::InvalidHost`] error, as in Python, and never reaches DNS.
/// - A non-ASCII name is converted with IDNA per UTS #46 (non-transitional, as browsers do), for
///   example `"bücher.example"` becomes `"xn--bcher-kva.example"`. Python uses the older
///   IDNA 2003, which maps `ß` to `ss` (`"faß.de"` becomes `"fass.de"`); UTS #46 keeps it
///   (`"xn--fa-hia.de"`), as the name's owner registered it.
///
/// # Examples
///
/// ```
/// assert_eq!(resolver::encode_host("localhost").unwrap(), "localhost");
/// assert_eq!(resolver::encode_host("bücher.example").unwrap(), "xn--bcher-kva.example");
/// assert_eq!(resolver::encode_host("faß.de").unwrap(), "xn--fa-hia.de");
/// assert_eq!(
///     resolver::encode_host("a..b").unwrap_err().kind(),
///     resolver::ErrorKind::InvalidHost
/// );
/// assert_eq!(
///     resolver::encode_host("local\0host").unwrap_err().kind(),
///     resolver::ErrorKind::NulByte
/// );
/// ```
pub fn encode_host(host: &str) -> Result<Cow<'_, str>, Error> {
    let subject = || format!("host {}", quote(host));
    refuse_nul("host", host)?;
    let ascii: Cow<'_, str> = if host.is_ascii() {
        Cow::Borrowed(host)
    } else {
        match idna::domain_to_ascii(host) {
            Ok(encoded) => {
                log::debug!("IDNA (UTS #46): {host:?} -> {encoded:?}");
                Cow::Owned(encoded)
            }
            Err(_) => {
                return Err(Error::new(
                    ErrorKind::InvalidHost,
                    subject(),
                    "name cannot be encoded with IDNA (UTS #46)",
                ))
            }
        }
    };
    check_labels(&ascii).map_err(|reason| Error::new(ErrorKind::InvalidHost, subject(), reason))?;
    Ok(ascii)
}

/// Python's `idna` codec rules for an ASCII name (`encodings/idna.py`).
fn check_labels(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Ok(());
    }
    let labels: Vec<&str> = name.split('.').collect();
    if let Some((last, rest)) = labels.split_last() {
        if rest.iter().any(|l| l.is_empty() || l.len() > MAX_LABEL) {
            return Err("label empty or too long");
        }
        if last.len() > MAX_LABEL {
            return Err("label too long");
        }
    }
    Ok(())
}

/// Refuses a host or service string with a NUL byte, which no C string can hold (Python cuts
/// the string there), naming the input as `what` (`"host"` or `"service"`).
pub(crate) fn refuse_nul(what: &str, s: &str) -> Result<(), Error> {
    if s.contains('\0') {
        return Err(nul_byte(what, s));
    }
    Ok(())
}

/// `s` as a C string, or the [`refuse_nul`] error.
fn c_string(what: &str, s: &str) -> Result<CString, Error> {
    CString::new(s).map_err(|_| nul_byte(what, s))
}

/// The [`ErrorKind::NulByte`] error for the input `s`, named as `what`.
fn nul_byte(what: &str, s: &str) -> Error {
    Error::new(
        ErrorKind::NulByte,
        format!("{what} {}", quote(s)),
        format!("{what} contains a NUL byte"),
    )
}

/// The host as a C string (after [`encode_host`]).
pub(crate) fn host_cstring(host: &str) -> Result<CString, Error> {
    let ascii = encode_host(host)?;
    c_string("host", &ascii).map_err(|e| e.with_subject(format!("host {}", quote(host))))
}

/// Checks a service string and returns it as a C string.
///
/// glibc reads a service as a port number when `strtoul(service, &end, 10)` consumes all of it
/// (leading white space and a sign included). A negative number, or one too large for
/// `strtoul`, is an `EAI_SERVICE` error there, as Python shows it; a number from 65536 to
/// 2^64 - 1 glibc wraps modulo 65536 (`"70000"` is port 4464). We refuse every number outside
/// 0-65535 with the same `EAI_SERVICE` error, before libc is asked, so that a caller sees one
/// code for every out-of-range service.
pub(crate) fn service_cstring(service: &str) -> Result<CString, Error> {
    if let Some(value) = strtoul_port(service) {
        if !(0..=i128::from(u16::MAX)).contains(&value) {
            log::debug!("service {service:?}: port number {value} outside 0-65535");
            return Err(Error::from_eai(
                libc::EAI_SERVICE,
                format!("service {}", quote(service)),
            ));
        }
    }
    c_string("service", service)
}

/// Checks a port argument without looking anything up, for command-line parsers that must
/// refuse a bad port before doing anything: a number (as glibc reads one: optional sign, then
/// decimal digits) must be 0-65535, and the empty string is refused. Anything else is a
/// service name, which only a lookup can check.
///
/// # Errors
///
/// [`ErrorKind::InvalidPort`] naming the port.
///
/// # Examples
///
/// ```
/// assert!(resolver::check_port("12345").is_ok());
/// assert!(resolver::check_port("www").is_ok()); // a service name: looked up later
/// assert_eq!(
///     resolver::check_port("70000").unwrap_err().to_string(),
///     r#"port "70000": port number must be 0-65535"#
/// );
/// assert!(resolver::check_port("-5").is_err());
/// assert!(resolver::check_port("").is_err());
/// ```
pub fn check_port(port: &str) -> Result<(), Error> {
    let subject = || format!("port {}", quote(port));
    if port.is_empty() {
        return Err(Error::new(
            ErrorKind::InvalidPort,
            subject(),
            "a port number or service name is required",
        ));
    }
    match strtoul_port(port) {
        Some(value) if !(0..=i128::from(u16::MAX)).contains(&value) => Err(Error::new(
            ErrorKind::InvalidPort,
            subject(),
            "port number must be 0-65535",
        )),
        _ => Ok(()),
    }
}

/// The value glibc's `strtoul(s, &end, 10)` would read when it consumes the whole string, with
/// the sign applied, or `None` when glibc would treat the string as a service name.
/// Saturates far beyond the port range, which is all the caller needs.
fn strtoul_port(s: &str) -> Option<i128> {
    let body = s.trim_start_matches([' ', '\t', '\n', '\x0b', '\x0c', '\r']);
    let (negative, digits) = match body.as_bytes().first() {
        Some(b'-') => (true, &body[1..]),
        Some(b'+') => (false, &body[1..]),
        _ => (false, body),
    };
    if digits.is_empty() {
        // No digits: strtoul sets end to the start of the string, so only "" counts as a number
        // (port 0).
        return if s.is_empty() { Some(0) } else { None };
    }
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut value: i128 = 0;
    for b in digits.bytes() {
        value = (value * 10 + i128::from(b - b'0')).min(i128::from(u64::MAX) + 1);
    }
    Some(if negative { -value } else { value })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strtoul_forms() {
        assert_eq!(strtoul_port(""), Some(0));
        assert_eq!(strtoul_port("80"), Some(80));
        assert_eq!(strtoul_port(" +80"), Some(80));
        assert_eq!(strtoul_port("-1"), Some(-1));
        assert_eq!(strtoul_port("-0"), Some(0));
        assert_eq!(strtoul_port("  "), None);
        assert_eq!(strtoul_port("80 "), None);
        assert_eq!(strtoul_port("www"), None);
        assert_eq!(strtoul_port("+"), None);
        assert!(strtoul_port(&"9".repeat(10_000)).is_some_and(|v| v > 65535));
    }

    #[test]
    fn labels() {
        assert!(check_labels("").is_ok());
        assert!(check_labels("a.").is_ok());
        assert!(check_labels(".").is_err());
        assert!(check_labels("a..b").is_err());
        assert!(check_labels(&"a".repeat(63)).is_ok());
        assert!(check_labels(&"a".repeat(64)).is_err());
        assert!(check_labels(&format!("{}.b", "a".repeat(64))).is_err());
    }
}
