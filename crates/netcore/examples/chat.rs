//! A line-based chat server: every line a client sends goes to every other client.
//!
//! ```text
//! cargo run -p netcore --example chat [ADDR]     # ADDR defaults to 127.0.0.1:0
//! nc 127.0.0.1 PORT                              # in two terminals; type lines
//! ```
//!
//! What it shows: acting on *other* connections from a callback (`Control::send_shared` by
//! `ConnId`), and keeping one slow client from costing the others. A line is queued once
//! (`Arc<[u8]>`) and shared by every recipient; a client that does not read its share is
//! disconnected (`Control::abort`) once its pending output passes `MAX_PENDING`, so it can
//! neither slow the others nor grow the server's memory. `on_data` handles one line per
//! call and leaves the start of an unfinished line to the loop, which hands it back with
//! what arrives next (kept input). A line longer than `MAX_LINE` without a newline is cut
//! there and sent as it is.

use std::collections::BTreeSet;
use std::sync::Arc;

use netcore::{Closed, Config, Conn, ConnId, Control, EventLoop, Handler, ListenOptions};

/// Output a client may have waiting before it counts as not reading.
const MAX_PENDING: usize = 1 << 20;
const MAX_LINE: usize = 8 * 1024;

#[derive(Default)]
struct Chat {
    clients: BTreeSet<ConnId>,
}

impl Chat {
    fn broadcast(&mut self, ctl: &mut Control<'_>, from: ConnId, line: &[u8]) {
        let line: Arc<[u8]> = Arc::from(line);
        for &to in self.clients.iter().filter(|&&to| to != from) {
            ctl.send_shared(to, &line);
            if ctl.pending(to).is_some_and(|n| n > MAX_PENDING) {
                ctl.abort(to); // a reader this slow is gone; its on_close removes it
            }
        }
    }
}

impl Handler for Chat {
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        // Lines are small and interactive: without this, Nagle's algorithm holds a line's
        // last segment until the client's delayed ACK (40 ms) comes back.
        let _ = conn.set_nodelay(true);
        self.clients.insert(conn.id());
    }

    /// One line per call: the loop keeps a line's start until its newline arrives.
    fn on_data(&mut self, conn: &mut Conn<'_>, input: &[u8]) -> usize {
        let end = match input.iter().take(MAX_LINE).position(|&b| b == b'\n') {
            Some(newline) => newline + 1,
            None if input.len() >= MAX_LINE => MAX_LINE,
            None => return 0,
        };
        let from = conn.id();
        self.broadcast(conn.control(), from, &input[..end]);
        end
    }

    fn on_close(&mut self, _: &mut Control<'_>, closed: &Closed<'_>) {
        self.clients.remove(&closed.id);
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = std::env::args().nth(1);
    let addr = addr.as_deref().unwrap_or("127.0.0.1:0").parse()?;
    let listener = netcore::tcp_listener(addr, &ListenOptions::default())?;
    let mut event_loop = EventLoop::new(Config::default())?;
    println!("Listening on {}", listener.local_addr()?);
    event_loop.add_tcp_listener(listener)?;
    event_loop.run(&mut Chat::default())?;
    Ok(())
}
