//! A TCP forwarder: accepts clients and pipes each one to TARGET, bytes both ways.
//!
//! ```text
//! cargo run -p netcore --example forward LISTEN_ADDR TARGET
//! forward 127.0.0.1:0 127.0.0.1:12345      # to a TCP server
//! forward 127.0.0.1:0 /run/app.sock         # to a Unix-domain socket (any TARGET that is
//!                                           # not an IP address and port is a path)
//! ```
//!
//! What it shows: one socket piped into another with bounded memory, by hand, with the
//! general engine's calls (`examples/proxy.rs` does the same in one call, `Control::pipe`). Each accepted client
//! gets an outgoing connection (`Control::connect` returns its id at once; bytes sent before
//! it completes are queued). Data read from one side is sent to the other; when the other
//! side's pending output passes `HIGH_WATER`, reading this side pauses, and
//! `Handler::on_flushed` (at `Config::low_water`) resumes it. So a client that never reads
//! holds the sender back through TCP's own windows, and the forwarder buffers at most about
//! `HIGH_WATER` plus one read per direction. A half-close (EOF) is passed on at once
//! (`Control::shutdown_write`); once both directions are done, both close. A reset or a
//! failed connect on one side aborts the other.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use netcore::{
    CloseReason, Closed, Config, Conn, ConnId, Control, EventLoop, Handler, ListenOptions,
};

const HIGH_WATER: usize = 256 * 1024;
const LOW_WATER: usize = 64 * 1024;

enum Target {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

/// One side of a pipe: who gets what it sends, and whether its input has ended.
struct Side {
    other: ConnId,
    read_done: bool,
}

struct Forward {
    target: Target,
    sides: HashMap<ConnId, Side>,
}

impl Handler for Forward {
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        let client = conn.id();
        let ctl = conn.control();
        let upstream = match &self.target {
            Target::Tcp(addr) => ctl.connect(*addr, 0),
            Target::Unix(path) => ctl.connect_unix(path, 0),
        };
        self.sides.insert(
            client,
            Side {
                other: upstream,
                read_done: false,
            },
        );
        self.sides.insert(
            upstream,
            Side {
                other: client,
                read_done: false,
            },
        );
    }

    fn on_data(&mut self, conn: &mut Conn<'_>, data: &[u8]) -> usize {
        let Some(side) = self.sides.get(&conn.id()) else {
            return data.len();
        };
        let other = side.other;
        let ctl = conn.control();
        ctl.send(other, data);
        if ctl.pending(other).is_some_and(|n| n > HIGH_WATER) {
            conn.pause_reading();
        }
        data.len()
    }

    fn on_flushed(&mut self, conn: &mut Conn<'_>) {
        if let Some(side) = self.sides.get(&conn.id()) {
            conn.control().resume_reading(side.other);
        }
    }

    fn on_read_closed(&mut self, conn: &mut Conn<'_>) {
        let id = conn.id();
        let Some(side) = self.sides.get_mut(&id) else {
            return conn.close();
        };
        side.read_done = true;
        let other = side.other;
        let ctl = conn.control();
        ctl.shutdown_write(other);
        if self.sides.get(&other).is_some_and(|s| s.read_done) {
            ctl.close(other);
            conn.close();
        }
    }

    fn on_close(&mut self, ctl: &mut Control<'_>, closed: &Closed<'_>) {
        let Some(side) = self.sides.remove(&closed.id) else {
            return;
        };
        match closed.reason {
            CloseReason::Done => ctl.close(side.other),
            _ => ctl.abort(side.other),
        };
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(listen), Some(target)) = (args.next(), args.next()) else {
        return Err("usage: forward LISTEN_ADDR TARGET (host:port or a Unix socket path)".into());
    };
    let target = match target.parse() {
        Ok(addr) => Target::Tcp(addr),
        Err(_) => Target::Unix(PathBuf::from(target)),
    };
    let listener = netcore::tcp_listener(listen.parse()?, &ListenOptions::default())?;
    let config = Config {
        low_water: LOW_WATER,
        ..Config::default()
    };
    let mut event_loop = EventLoop::new(config)?;
    println!("Listening on {}", listener.local_addr()?);
    event_loop.add_tcp_listener(listener)?;
    event_loop.run(&mut Forward {
        target,
        sides: HashMap::new(),
    })?;
    Ok(())
}
