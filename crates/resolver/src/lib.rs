//! Name and address resolution for the socket tutorial, over libc and `dns-lookup`.
//!
//! Python 3 has two paths from text to addresses, and this crate offers both:
//!
//! - [`socket_addr`]: what `bind`, `connect` and `sendto` take (Python's `setipaddr`), with every
//!   host and port form the tutorial teaches;
//! - [`getaddrinfo`]: libc's `getaddrinfo`, with Python's result shape and libc's order, numbers
//!   and messages; and [`getnameinfo`] and [`gethostname`] beside it.
//!
//! [`PyAddr`] and [`AddrInfo`]'s `Display` print addresses the way Python does, as the tutorial
//! shows them.
//!
//! # Examples
//!
//! ```
//! use resolver::{socket_addr, Family, PyAddr, Transport};
//!
//! let addr = socket_addr("localhost", "www", Family::V4, Transport::Tcp)?;
//! assert_eq!(PyAddr(&addr).to_string(), "('127.0.0.1', 80)");
//! # Ok::<(), resolver::Error>(())
//! ```
#![deny(missing_docs)]

mod addrinfo;
mod error;
mod host;
mod hostname;
mod nameinfo;
mod pyrepr;
mod sockaddr;

pub use addrinfo::{
    getaddrinfo, AddrInfo, Hints, AI_ADDRCONFIG, AI_ALL, AI_CANONNAME, AI_NUMERICHOST,
    AI_NUMERICSERV, AI_PASSIVE, AI_V4MAPPED,
};
pub use error::{Error, ErrorKind};
pub use host::encode_host;
pub use hostname::gethostname;
pub use nameinfo::{getnameinfo, NI_DGRAM, NI_NAMEREQD, NI_NOFQDN, NI_NUMERICHOST, NI_NUMERICSERV};
pub use pyrepr::{ipv6_text, PyAddr};
pub use sockaddr::{socket_addr, socket_addr_numeric, Family, Transport};
