//! Python's `pprint.pformat` for the values the tutorial's lookup script prints: the list of
//! `getaddrinfo` tuples and the `getnameinfo` pair.

use crate::addrinfo::AddrInfo;
use crate::pyrepr::{ipv6_text, py_str};

/// A Python value, as far as `getaddrinfo` and `getnameinfo` results need: an `int`, a `str`, a
/// `tuple` or a `list`. [`pformat`] prints it.
///
/// `From<&AddrInfo>` gives a `getaddrinfo` entry as Python's 5-tuple
/// `(family, type, proto, canonname, sockaddr)`, the address as [`PyAddr`](crate::PyAddr)'s
/// tuple.
///
/// # Examples
///
/// ```
/// use resolver::{pformat, PyVal};
/// let pair = PyVal::Tuple(vec![PyVal::Str("localhost".into()), PyVal::Str("ssh".into())]);
/// assert_eq!(pformat(&pair), "('localhost', 'ssh')");
/// assert_eq!(pformat(&PyVal::Tuple(vec![PyVal::Int(1)])), "(1,)");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PyVal {
    /// An `int`.
    Int(i64),
    /// A `str`, shown with [`py_str`].
    Str(String),
    /// A `tuple`; one item is shown as `(x,)`.
    Tuple(Vec<PyVal>),
    /// A `list`.
    List(Vec<PyVal>),
}

impl From<&AddrInfo> for PyVal {
    /// One `getaddrinfo` entry as Python's tuple: `(2, 1, 6, '', ('127.0.0.1', 80))`, or for
    /// IPv6 `(10, 1, 6, '', ('::1', 80, 0, 0))`.
    fn from(ai: &AddrInfo) -> Self {
        let address = match ai.address {
            std::net::SocketAddr::V4(a) => PyVal::Tuple(vec![
                PyVal::Str(a.ip().to_string()),
                PyVal::Int(i64::from(a.port())),
            ]),
            std::net::SocketAddr::V6(a) => PyVal::Tuple(vec![
                PyVal::Str(ipv6_text(a.ip())),
                PyVal::Int(i64::from(a.port())),
                PyVal::Int(i64::from(a.flowinfo())),
                PyVal::Int(i64::from(a.scope_id())),
            ]),
        };
        PyVal::Tuple(vec![
            PyVal::Int(i64::from(ai.family)),
            PyVal::Int(i64::from(ai.socktype)),
            PyVal::Int(i64::from(ai.protocol)),
            PyVal::Str(ai.canonname.clone()),
            address,
        ])
    }
}

/// Python's `repr`.
fn repr(v: &PyVal) -> String {
    match v {
        PyVal::Int(n) => n.to_string(),
        PyVal::Str(s) => py_str(s),
        PyVal::Tuple(items) if items.len() == 1 => format!("({},)", repr(&items[0])),
        PyVal::Tuple(items) => format!(
            "({})",
            items.iter().map(repr).collect::<Vec<_>>().join(", ")
        ),
        PyVal::List(items) => format!(
            "[{}]",
            items.iter().map(repr).collect::<Vec<_>>().join(", ")
        ),
    }
}

/// Python's `pprint.pformat(value)` with the default width of 80, for ints, strings without
/// white space (host and service names), tuples and lists: a value whose `repr` fits stays on
/// one line; a list or tuple that does not fit puts one item per line.
///
/// Strings are never split (Python splits a long `str` with white space at its spaces; host and
/// service names have none).
///
/// # Examples
///
/// The tutorial's `pprint.pprint(socket.getaddrinfo('127.0.0.1', 'www'))`:
///
/// ```
/// use resolver::{getaddrinfo, pformat, Hints, PyVal};
///
/// let found = getaddrinfo(Some("127.0.0.1"), Some("www"), &Hints::default())?;
/// let list = PyVal::List(found.iter().map(PyVal::from).collect());
/// assert_eq!(pformat(&list), "[(2, 1, 6, '', ('127.0.0.1', 80))]");
///
/// // Too long for one line: one item per line, as Python prints it.
/// let entry = PyVal::from(&found[0]);
/// assert_eq!(
///     pformat(&PyVal::List(vec![entry; 3])),
///     "[(2, 1, 6, '', ('127.0.0.1', 80)),\n (2, 1, 6, '', ('127.0.0.1', 80)),\n \
///      (2, 1, 6, '', ('127.0.0.1', 80))]"
/// );
/// # Ok::<(), resolver::Error>(())
/// ```
pub fn pformat(v: &PyVal) -> String {
    const WIDTH: usize = 80;

    fn format(v: &PyVal, out: &mut String, indent: usize, allowance: usize) {
        let rep = repr(v);
        let max_width = WIDTH.saturating_sub(indent + allowance);
        match v {
            PyVal::List(items) if rep.chars().count() > max_width && !items.is_empty() => {
                out.push('[');
                format_items(items, out, indent, allowance + 1);
                out.push(']');
            }
            PyVal::Tuple(items) if rep.chars().count() > max_width && !items.is_empty() => {
                let end = if items.len() == 1 { ",)" } else { ")" };
                out.push('(');
                format_items(items, out, indent, allowance + end.len());
                out.push_str(end);
            }
            _ => out.push_str(&rep),
        }
    }

    fn format_items(items: &[PyVal], out: &mut String, indent: usize, allowance: usize) {
        let indent = indent + 1;
        for (i, item) in items.iter().enumerate() {
            let last = i + 1 == items.len();
            if i > 0 {
                out.push_str(",\n");
                out.push_str(&" ".repeat(indent));
            }
            format(item, out, indent, if last { allowance } else { 1 });
        }
    }

    let mut out = String::new();
    format(v, &mut out, 0, 0);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(canon: &str, host: &str, v6: bool) -> PyVal {
        let mut addr = vec![PyVal::Str(host.to_owned()), PyVal::Int(80)];
        if v6 {
            addr.extend([PyVal::Int(0), PyVal::Int(0)]);
        }
        PyVal::Tuple(vec![
            PyVal::Int(if v6 { 10 } else { 2 }),
            PyVal::Int(1),
            PyVal::Int(6),
            PyVal::Str(canon.to_owned()),
            PyVal::Tuple(addr),
        ])
    }

    #[test]
    fn addr_info_as_python_tuple() {
        // The same text as AddrInfo's Display (Python's repr), IPv6 scope id as the 4th field.
        for (family, address, want) in [
            (2, "127.0.0.1:80", "(2, 1, 6, 'c', ('127.0.0.1', 80))"),
            (
                10,
                "[fe80::1%3]:22",
                "(10, 1, 6, 'c', ('fe80::1', 22, 0, 3))",
            ),
            (
                10,
                "[::1.2.3.4]:7",
                "(10, 1, 6, 'c', ('::1.2.3.4', 7, 0, 0))",
            ),
        ] {
            let ai = AddrInfo {
                family,
                socktype: 1,
                protocol: 6,
                canonname: "c".to_owned(),
                address: address.parse().unwrap(),
            };
            assert_eq!(pformat(&PyVal::from(&ai)), want);
            assert_eq!(ai.to_string(), want);
        }
    }

    #[test]
    fn short_list_on_one_line() {
        let list = PyVal::List(vec![entry("", "127.0.0.1", false)]);
        assert_eq!(pformat(&list), "[(2, 1, 6, '', ('127.0.0.1', 80))]");
    }

    #[test]
    fn long_list_one_tuple_per_line() {
        // Expected strings printed by Python 3's pprint.pformat.
        let list = PyVal::List(vec![
            entry("", "::1", true),
            entry("", "127.0.0.1", false),
            entry("", "127.0.0.1", false),
        ]);
        assert_eq!(
            pformat(&list),
            "[(10, 1, 6, '', ('::1', 80, 0, 0)),\n (2, 1, 6, '', ('127.0.0.1', 80)),\n \
             (2, 1, 6, '', ('127.0.0.1', 80))]"
        );
    }

    #[test]
    fn width_boundaries_as_python() {
        // pprint.pformat([(2, 1, 6, 'x'*n, A), (2, 2, 17, 'y'*n, A)]) for n = 45 and 46: an item
        // splits when its repr passes 78 characters (80, less the indent and the ',' or ']').
        let pair = |n: usize| {
            let mut udp = entry(&"y".repeat(n), "127.0.0.1", false);
            if let PyVal::Tuple(items) = &mut udp {
                items[1] = PyVal::Int(2);
                items[2] = PyVal::Int(17);
            }
            PyVal::List(vec![entry(&"x".repeat(n), "127.0.0.1", false), udp])
        };
        let (x, y) = ("x".repeat(45), "y".repeat(45));
        assert_eq!(
            pformat(&pair(45)),
            format!(
                "[(2, 1, 6, '{x}', ('127.0.0.1', 80)),\n (2, 2, 17, '{y}', ('127.0.0.1', 80))]"
            )
        );
        let (x, y) = ("x".repeat(46), "y".repeat(46));
        assert_eq!(
            pformat(&pair(46)),
            format!(
                "[(2, 1, 6, '{x}', ('127.0.0.1', 80)),\n (2,\n  2,\n  17,\n  '{y}',\n  ('127.0.0.1', 80))]"
            )
        );
    }

    #[test]
    fn long_tuple_one_item_per_line() {
        let long = "x".repeat(70);
        let list = PyVal::List(vec![entry(&long, "127.0.0.1", false)]);
        assert_eq!(
            pformat(&list),
            format!("[(2,\n  1,\n  6,\n  '{long}',\n  ('127.0.0.1', 80))]")
        );
    }
}
