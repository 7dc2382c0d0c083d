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
//! neither slow the others nor grow the server's memory. A line longer than `MAX_LINE`
//! without a newline is cut there and sent as it is.

use std::collections::BTreeMap;
use std::sync::Arc;

use netcore::{Closed, Config, Conn, ConnId, Control, EventLoop, Handler, ListenOptions};

/// Output a client may have waiting before it counts as not reading.
const MAX_PENDING: usize = 1 << 20;
const MAX_LINE: usize = 8 * 1024;

#[derive(Default)]
struct Chat {
    /// Every client, with the start of a line it has not finished yet.
    clients: BTreeMap<ConnId, Vec<u8>>,
}

impl Chat {
    fn broadcast(&mut self, ctl: &mut Control<'_>, from: ConnId, line: &[u8]) {
        let line: Arc<[u8]> = Arc::from(line);
        for &to in self.clients.keys().filter(|&&to| to != from) {
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
        self.clients.insert(conn.id(), Vec::new());
    }

    fn on_data(&mut self, conn: &mut Conn<'_>, mut data: &[u8]) {
        let from = conn.id();
        let mut partial = self.clients.remove(&from).unwrap_or_default();
        while !data.is_empty() {
            let room = MAX_LINE - partial.len();
            let (end, complete) = match data.iter().take(room).position(|&b| b == b'\n') {
                Some(i) => (i + 1, true),
                None => (data.len().min(room), partial.len() + data.len() >= MAX_LINE),
            };
            partial.extend_from_slice(&data[..end]);
            data = &data[end..];
            if complete {
                self.broadcast(conn.control(), from, &partial);
                partial.clear();
            }
        }
        self.clients.insert(from, partial);
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
