//! A TCP proxy: every client is piped to TARGET, bytes both ways.
//!
//! ```text
//! cargo run -p netcore --example proxy LISTEN_ADDR TARGET
//! proxy 127.0.0.1:0 127.0.0.1:6379        # to a TCP server
//! proxy 127.0.0.1:0 /run/app.sock         # to a Unix-domain socket (any TARGET that is
//!                                         # not an IP address and port is a path)
//! ```
//!
//! What it shows: `Control::pipe`. Each accepted client gets an outgoing connection (its
//! id comes back at once; bytes sent before the connect completes are queued) and the two
//! are piped: the loop moves the bytes with back-pressure, passes a half-close on, and a
//! reset or a refused target on as a reset.

use std::net::SocketAddr;
use std::path::PathBuf;

use netcore::{Config, Conn, EventLoop, Handler, ListenOptions};

enum Target {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

struct Proxy {
    target: Target,
}

impl Handler for Proxy {
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        let client = conn.id();
        let ctl = conn.control();
        let upstream = match &self.target {
            Target::Tcp(addr) => ctl.connect(*addr, ()),
            Target::Unix(path) => ctl.connect_unix(path, ()),
        };
        ctl.pipe(client, upstream);
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(listen), Some(target)) = (args.next(), args.next()) else {
        return Err("usage: proxy LISTEN_ADDR TARGET (host:port or a Unix socket path)".into());
    };
    let target = match target.parse() {
        Ok(addr) => Target::Tcp(addr),
        Err(_) => Target::Unix(PathBuf::from(target)),
    };
    let listener = netcore::tcp_listener(listen.parse()?, &ListenOptions::default())?;
    let mut event_loop = EventLoop::new(Config::default())?;
    println!("Listening on {}", listener.local_addr()?);
    event_loop.add_tcp_listener(listener)?;
    event_loop.run(&mut Proxy { target })?;
    Ok(())
}
