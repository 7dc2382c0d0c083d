//! A bench peer: the HTTP/1.1 "plaintext" server on tokio's current-thread runtime, the twin
//! of netcore's `http` example, written as a tokio user would: a task per connection that
//! reads into a `Vec<u8>`, answers every complete request buffered (keep-alive and
//! pipelining), with one `write_all` per batch. Not part of the product.
//!
//! ```text
//! tokio-http [ADDR]     # ADDR defaults to 127.0.0.1:0; prints `Listening on ADDR` first
//! ```
//!
//! Every request, whatever its method and target, gets these 78 bytes (no `Date`, no
//! `Server`: the netcore twin sends exactly the same):
//!
//! ```text
//! HTTP/1.1 200 OK\r\n
//! Content-Length: 13\r\n
//! Content-Type: text/plain\r\n
//! \r\n
//! Hello, World!
//! ```
//!
//! A request body announced by `Content-Length` is read and dropped, so a POST does not
//! desynchronise the connection. `Connection: close` is answered, then the connection is
//! closed. A head longer than 8 KiB gets a 431, a bad `Content-Length` or a
//! `Transfer-Encoding` (chunked bodies are not part of this benchmark) a 400, then the
//! connection is closed.

use std::io::Write;
use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const RESPONSE: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\nContent-Type: text/plain\r\n\r\nHello, World!";
const BAD_REQUEST: &[u8] =
    b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
const HEAD_TOO_LARGE: &[u8] = b"HTTP/1.1 431 Request Header Fields Too Large\r\n\
    Content-Length: 0\r\nConnection: close\r\n\r\n";

/// The longest request head accepted, `\r\n\r\n` included.
const MAX_HEAD: usize = 8 * 1024;
/// Each connection's initial read buffer: room for 16 pipelined requests of wrk or a browser.
const READ_CHUNK: usize = 16 * 1024;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = std::env::args().nth(1);
    let addr: SocketAddr = addr.as_deref().unwrap_or("127.0.0.1:0").parse()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    runtime.block_on(serve(addr))
}

async fn serve(addr: SocketAddr) -> Result<(), Box<dyn std::error::Error>> {
    let listener = TcpListener::bind(addr).await?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "Listening on {}", listener.local_addr()?)?;
    out.flush()?;
    drop(out);
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(serve_connection(stream));
            }
            // Out of descriptors and the like: say so and go on accepting.
            Err(e) => eprintln!("tokio-http: accept: {e}"),
        }
    }
}

/// What the request head at the front of the buffer says, once it is all there.
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

/// Answers the peer's requests until it closes, an error, or a request that ends the
/// connection.
async fn serve_connection(mut stream: TcpStream) {
    // A pipelined batch's last responses would otherwise wait for the client's delayed ACK
    // of the first ones (Nagle).
    let _ = stream.set_nodelay(true);
    let mut input = Vec::with_capacity(READ_CHUNK);
    let mut output = Vec::new();
    // What is left of the current request's body: read and dropped, whatever its size.
    let mut body_left: usize = 0;
    loop {
        match stream.read_buf(&mut input).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let mut parsed = 0;
        let mut close = false;
        while !close {
            let skipped = body_left.min(input.len() - parsed);
            parsed += skipped;
            body_left -= skipped;
            if body_left > 0 {
                break;
            }
            match parse_head(&input[parsed..]) {
                Head::Complete {
                    len,
                    body_len,
                    closes,
                } => {
                    output.extend_from_slice(RESPONSE);
                    parsed += len;
                    body_left = body_len;
                    close = closes;
                }
                Head::Partial => break,
                Head::Rejected(response) => {
                    output.extend_from_slice(response);
                    close = true;
                }
            }
        }
        input.drain(..parsed);
        if !output.is_empty() {
            if stream.write_all(&output).await.is_err() {
                return;
            }
            output.clear();
        }
        if close {
            return;
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
