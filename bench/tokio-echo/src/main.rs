//! A bench peer: an echo server on tokio's current-thread runtime (one core, as the netcore
//! and raw-mio echo servers it is measured against), written as tokio's own examples write
//! one: a task per connection with a `read` / `write_all` loop. Not part of the product.
//!
//! ```text
//! tokio-echo [ADDR]     # ADDR defaults to 127.0.0.1:0; prints `Listening on ADDR` first
//! ```

use std::io::Write;
use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Each connection's read buffer (the bench's messages are at most 4 KiB).
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
                tokio::spawn(echo(stream));
            }
            // Out of descriptors and the like: say so and go on accepting.
            Err(e) => eprintln!("tokio-echo: accept: {e}"),
        }
    }
}

/// Sends back what the peer sends until its EOF or an error.
async fn echo(mut stream: TcpStream) {
    let mut buf = vec![0u8; READ_CHUNK];
    loop {
        let n = match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if stream.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}
