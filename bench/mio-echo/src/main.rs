//! A bench peer: an echo server on raw mio, one thread, as mio's own documentation says to
//! write one. It is the baseline that netcore's `examples/echo.rs` is measured against
//! (`cargo xtask bench`), not part of the product.
//!
//! ```text
//! mio-echo [ADDR]     # ADDR defaults to 127.0.0.1:0; prints `Listening on ADDR` first
//! ```
//!
//! Each socket is registered once, edge-triggered, for reading and writing. Readable: read
//! into one shared buffer until `WouldBlock`, write each chunk straight back, and keep what the
//! socket did not take in the connection's own output buffer. Writable: flush that buffer.
//! Past 1 MiB of unsent output a connection is not read (back-pressure) until it drains; the
//! edge it then lacks is made up by reading again after the flush. EOF: flush, then close.

use std::io::{self, ErrorKind, Read, Write};
use std::net::SocketAddr;

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use slab::Slab;

const LISTENER: Token = Token(usize::MAX);
/// One read buffer for every connection, as large as netcore's.
const READ_CHUNK: usize = 64 * 1024;
/// Stop reading a connection whose unsent output passes this (netcore's default too).
const MAX_PENDING: usize = 1 << 20;

struct Connection {
    stream: TcpStream,
    /// Output the socket has not taken yet; `out[sent..]` is still to write.
    out: Vec<u8>,
    sent: usize,
    /// Stopped reading because `out` is over [`MAX_PENDING`]; input may be waiting.
    read_paused: bool,
    /// The peer sent EOF: close once `out` is written.
    eof: bool,
}

/// What to do with a connection after handling its event.
enum Next {
    Keep,
    Close,
}

impl Connection {
    fn pending(&self) -> usize {
        self.out.len() - self.sent
    }

    /// Writes `data`, or queues it behind output that is already waiting.
    fn send(&mut self, data: &[u8]) -> io::Result<()> {
        let mut written = 0;
        if self.pending() == 0 {
            written = write_some(&mut self.stream, data)?;
        }
        if written < data.len() {
            if self.sent > 0 && self.sent == self.out.len() {
                self.out.clear();
                self.sent = 0;
            }
            self.out.extend_from_slice(&data[written..]);
        }
        Ok(())
    }

    /// Writes queued output until it is gone or the socket is full.
    fn flush(&mut self) -> io::Result<()> {
        while self.pending() > 0 {
            let n = write_some(&mut self.stream, &self.out[self.sent..])?;
            if n == 0 {
                return Ok(());
            }
            self.sent += n;
        }
        self.out.clear();
        self.sent = 0;
        Ok(())
    }

    /// Reads until `WouldBlock`, EOF or back-pressure, echoing every chunk.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<()> {
        loop {
            if self.pending() > MAX_PENDING {
                self.read_paused = true;
                return Ok(());
            }
            match self.stream.read(buf) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(());
                }
                Ok(n) => self.send(&buf[..n])?,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    fn on_event(&mut self, readable: bool, writable: bool, buf: &mut [u8]) -> io::Result<Next> {
        if writable {
            self.flush()?;
        }
        let resume = self.read_paused && self.pending() <= MAX_PENDING / 2;
        if (readable || resume) && !self.eof {
            self.read_paused = false;
            self.read(buf)?;
        }
        Ok(if self.eof && self.pending() == 0 {
            Next::Close
        } else {
            Next::Keep
        })
    }
}

/// One `write`: how much the socket took, 0 when it is full.
fn write_some(stream: &mut TcpStream, data: &[u8]) -> io::Result<usize> {
    loop {
        match stream.write(data) {
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(0),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = std::env::args().nth(1);
    let addr: SocketAddr = addr.as_deref().unwrap_or("127.0.0.1:0").parse()?;
    let mut listener = TcpListener::bind(addr)?;
    let mut poll = Poll::new()?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    let mut out = io::stdout().lock();
    writeln!(out, "Listening on {}", listener.local_addr()?)?;
    out.flush()?;
    drop(out);

    let mut events = Events::with_capacity(1024);
    let mut conns: Slab<Connection> = Slab::new();
    let mut buf = vec![0u8; READ_CHUNK];
    loop {
        match poll.poll(&mut events, None) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.into()),
        }
        for event in &events {
            if event.token() == LISTENER {
                accept_all(&listener, &poll, &mut conns);
                continue;
            }
            let key = event.token().0;
            let Some(conn) = conns.get_mut(key) else {
                continue;
            };
            let readable = event.is_readable() || event.is_read_closed() || event.is_error();
            let writable = event.is_writable() || event.is_error();
            match conn.on_event(readable, writable, &mut buf) {
                Ok(Next::Keep) => {}
                Ok(Next::Close) | Err(_) => {
                    let mut conn = conns.remove(key);
                    let _ = poll.registry().deregister(&mut conn.stream);
                }
            }
        }
    }
}

/// Accepts until `WouldBlock`. Any other error ends this round (the bench raises the
/// descriptor limit, so `EMFILE` is not expected here).
fn accept_all(listener: &TcpListener, poll: &Poll, conns: &mut Slab<Connection>) {
    loop {
        match listener.accept() {
            Ok((mut stream, _)) => {
                let entry = conns.vacant_entry();
                let token = Token(entry.key());
                let registered = poll.registry().register(
                    &mut stream,
                    token,
                    Interest::READABLE | Interest::WRITABLE,
                );
                if registered.is_ok() {
                    entry.insert(Connection {
                        stream,
                        out: Vec::new(),
                        sent: 0,
                        read_paused: false,
                        eof: false,
                    });
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => return,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => {
                eprintln!("mio-echo: accept: {e}");
                return;
            }
        }
    }
}
