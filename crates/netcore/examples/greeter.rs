//! A minimal greeting server: each client gets one message, then an orderly close.
//!
//! ```text
//! cargo run -p netcore --example greeter [ADDR]     # ADDR defaults to 127.0.0.1:0
//! nc 127.0.0.1 PORT
//! ```
//!
//! The fast path: `accept4`, one `write`, one `read` that finds nothing, `close`; the
//! connection is never registered with the poller.

use std::sync::Arc;

use netcore::{Config, Conn, EventLoop, Handler, ListenOptions};

struct Greeter {
    /// Shared by every connection: what a slow client leaves unread is not copied.
    message: Arc<[u8]>,
}

impl Handler for Greeter {
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        conn.send_shared(&self.message);
        conn.close();
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = std::env::args().nth(1);
    let addr = addr.as_deref().unwrap_or("127.0.0.1:0").parse()?;
    let listener = netcore::tcp_listener(addr, &ListenOptions::default())?;
    let mut event_loop = EventLoop::new(Config::default())?;
    println!("Listening on {}", listener.local_addr()?);
    event_loop.add_tcp_listener(listener)?;
    let mut greeter = Greeter {
        message: Arc::from(&b"Thank you for connecting\n"[..]),
    };
    event_loop.run(&mut greeter)?;
    Ok(())
}
