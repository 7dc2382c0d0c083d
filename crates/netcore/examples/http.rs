//! HTTP/1.1 "plaintext": every request gets `200 OK` and `Hello, World!`, with keep-alive
//! and pipelining.
//!
//! ```text
//! cargo run -p netcore --example http [ADDR]     # ADDR defaults to 127.0.0.1:0
//! wrk -t1 -c10 -d5s http://ADDR/
//! ```
//!
//! What it shows: kept input and connection state. `on_data` answers one request per call
//! and returns its length; the loop keeps a request head that is not complete yet and calls
//! again at once while whole ones are left (a pipelined batch), so there is no
//! per-connection buffer here; what is left of a body to drop is the connection's state.
//!
//! Every request gets these 78 bytes (no `Date`, no `Server`):
//! `HTTP/1.1 200 OK\r\nContent-Length: 13\r\nContent-Type: text/plain\r\n\r\nHello, World!`.
//! A body announced by `Content-Length` is read and dropped, whatever its size (the
//! connection's state counts what is left of it). `Connection: close` is
//! answered, then the connection closed. A head longer than 8 KiB gets a 431, a bad
//! `Content-Length` or a `Transfer-Encoding` a 400, then the connection is closed.

use netcore::{Config, Conn, EventLoop, Handler, ListenOptions};

const RESPONSE: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\nContent-Type: text/plain\r\n\r\nHello, World!";
const BAD_REQUEST: &[u8] =
    b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
const HEAD_TOO_LARGE: &[u8] = b"HTTP/1.1 431 Request Header Fields Too Large\r\n\
    Content-Length: 0\r\nConnection: close\r\n\r\n";

/// The longest request head accepted, `\r\n\r\n` included.
const MAX_HEAD: usize = 8 * 1024;

/// What the request head at the front of the input says, once it is all there.
enum Head {
    Complete {
        /// The head's length, `\r\n\r\n` included.
        len: usize,
        body_len: usize,
        /// `Connection: close`: the connection ends after the response.
        closes: bool,
    },
    Partial,
    /// The error response to send before closing.
    Rejected(&'static [u8]),
}

struct Http;

/// Each connection's state (netcore keeps it): bytes of the current request's body still
/// to read and drop.
impl Handler<(), usize> for Http {
    fn on_open(&mut self, conn: &mut Conn<'_, usize>) {
        // A pipelined batch's last responses would otherwise wait for the client's delayed
        // ACK of the first ones (Nagle).
        let _ = conn.set_nodelay(true);
    }

    fn on_data(&mut self, conn: &mut Conn<'_, usize>, input: &[u8]) -> usize {
        let body_left = *conn.state();
        if body_left > 0 {
            let dropped = body_left.min(input.len());
            *conn.state() -= dropped;
            return dropped;
        }
        match parse_head(input) {
            Head::Complete {
                len,
                body_len,
                closes,
            } => {
                conn.send(RESPONSE);
                if closes {
                    conn.close();
                }
                *conn.state() = body_len;
                len
            }
            Head::Partial => 0,
            Head::Rejected(response) => {
                conn.send(response);
                conn.close();
                input.len()
            }
        }
    }
}

/// Reads the request head at the front of `buf`; only the headers that frame the request
/// or end the connection matter here.
fn parse_head(buf: &[u8]) -> Head {
    let window = &buf[..buf.len().min(MAX_HEAD)];
    let Some(end) = window.windows(4).position(|w| w == b"\r\n\r\n") else {
        return if buf.len() >= MAX_HEAD {
            Head::Rejected(HEAD_TOO_LARGE)
        } else {
            Head::Partial
        };
    };
    let mut body_len = 0;
    let mut closes = false;
    // Lines end in `\r\n`: the `\r` left by splitting at `\n` goes with the trimming.
    for line in buf[..end].split(|&b| b == b'\n').skip(1) {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            return Head::Rejected(BAD_REQUEST);
        };
        let name = line[..colon].trim_ascii();
        let value = line[colon + 1..].trim_ascii();
        if name.eq_ignore_ascii_case(b"content-length") {
            match std::str::from_utf8(value).ok().and_then(|v| v.parse().ok()) {
                Some(len) => body_len = len,
                None => return Head::Rejected(BAD_REQUEST),
            }
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            return Head::Rejected(BAD_REQUEST);
        } else if name.eq_ignore_ascii_case(b"connection") {
            closes = value
                .split(|&b| b == b',')
                .any(|token| token.trim_ascii().eq_ignore_ascii_case(b"close"));
        }
    }
    Head::Complete {
        len: end + 4,
        body_len,
        closes,
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = std::env::args().nth(1);
    let addr = addr.as_deref().unwrap_or("127.0.0.1:0").parse()?;
    let listener = netcore::tcp_listener(addr, &ListenOptions::default())?;
    let mut event_loop = EventLoop::new(Config::default())?;
    println!("Listening on {}", listener.local_addr()?);
    event_loop.add_tcp_listener(listener)?;
    event_loop.run(&mut Http)?;
    Ok(())
}
