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
//! general engine's calls (`examples/proxy.rs` does the same in one call, `Control::pipe`),
//! and the loop keeping each connection's state (`Side`: no map keyed by connection). Each accepted client
//! gets an outgoing connection (`Control::connect` returns its id at once; bytes sent before
//! it completes are queued). Data read from one side is sent to the other; when the other
//! side's pending output passes `HIGH_WATER`, reading this side pauses, and
//! `Handler::on_flushed` (at `Config::low_water`) resumes it. So a client that never reads
//! holds the sender back through TCP's own windows, and the forwarder buffers at most about
//! `HIGH_WATER` plus one read per direction. A half-close (EOF) is passed on at once
//! (`Control::shutdown_write`); once both directions are done, both close. A reset or a
//! failed connect on one side aborts the other.

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

/// Each connection's state, kept by the loop: the other side of its pipe, and whether its
/// own input has ended.
#[derive(Default)]
struct Side {
    other: Option<ConnId>,
    read_done: bool,
}

struct Forward {
    target: Target,
}

impl Handler<(), Side> for Forward {
    fn on_open(&mut self, conn: &mut Conn<'_, Side>) {
        let client = conn.id();
        let upstream = Side {
            other: Some(client),
            read_done: false,
        };
        let upstream = match &self.target {
            Target::Tcp(addr) => conn.control().connect(*addr, upstream),
            Target::Unix(path) => conn.control().connect_unix(path, upstream),
        };
        conn.state().other = Some(upstream);
    }

    fn on_data(&mut self, conn: &mut Conn<'_, Side>, data: &[u8]) -> usize {
        if let Some(other) = conn.state().other {
            let ctl = conn.control();
            ctl.send(other, data);
            if ctl.pending(other).is_some_and(|n| n > HIGH_WATER) {
                conn.pause_reading();
            }
        }
        data.len()
    }

    fn on_flushed(&mut self, conn: &mut Conn<'_, Side>) {
        if let Some(other) = conn.state().other {
            conn.control().resume_reading(other);
        }
    }

    fn on_read_closed(&mut self, conn: &mut Conn<'_, Side>) {
        conn.state().read_done = true;
        let Some(other) = conn.state().other else {
            return conn.close();
        };
        let ctl = conn.control();
        ctl.shutdown_write(other);
        if ctl.state(other).is_some_and(|s| s.read_done) {
            ctl.close(other);
            conn.close();
        }
    }

    fn on_close(&mut self, ctl: &mut Control<'_, Side>, closed: &Closed<'_, Side>) {
        let Some(other) = closed.state.other else {
            return;
        };
        match closed.reason {
            CloseReason::Done => ctl.close(other),
            _ => ctl.abort(other),
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
    event_loop.run(&mut Forward { target })?;
    Ok(())
}
