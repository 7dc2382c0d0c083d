//! A minimal echo server: sends back what each client sends, until it closes.
//!
//! ```text
//! cargo run -p netcore --example echo [ADDR]     # ADDR defaults to 127.0.0.1:0
//! nc 127.0.0.1 PORT
//! ```
//!
//! The loop does the rest: partial writes are resumed, a client that sends without reading
//! stops being read once 1 MiB of replies waits for it (back-pressure), one that stops
//! reading is closed after the write timeout, an idle one after the idle timeout.

use netcore::{Config, Conn, EventLoop, Handler, ListenOptions};

struct Echo;

impl Handler for Echo {
    fn on_data(&mut self, conn: &mut Conn<'_>, data: &[u8]) -> usize {
        conn.send(data);
        data.len()
    }

    // The default `on_read_closed` closes in order once the echo is flushed.
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = std::env::args().nth(1);
    let addr = addr.as_deref().unwrap_or("127.0.0.1:0").parse()?;
    let listener = netcore::tcp_listener(addr, &ListenOptions::default())?;
    let mut event_loop = EventLoop::new(Config::default())?;
    println!("Listening on {}", listener.local_addr()?);
    event_loop.add_tcp_listener(listener)?;
    event_loop.run(&mut Echo)?;
    Ok(())
}
