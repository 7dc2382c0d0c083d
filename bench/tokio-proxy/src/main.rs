//! A bench peer: a TCP proxy on tokio's current-thread runtime, the twin of netcore's `proxy`
//! example, written as a tokio user would: a task per client that connects to the target and
//! joins the two with `copy_bidirectional` (back-pressure and half-close included). Not part
//! of the product.
//!
//! ```text
//! tokio-proxy LISTEN_ADDR TARGET    # prints `Listening on ADDR` first
//! ```
//!
//! `LISTEN_ADDR` is a socket address (`127.0.0.1:0` for any free port). `TARGET` is a socket
//! address (`127.0.0.1:6379`, `[::1]:8080`), or else the path of a Unix socket. A client
//! whose target cannot be reached is reset, so the failure reaches it as a refused connect
//! would.

use std::future::Future;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::io::{copy_bidirectional, AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream, UnixStream};

#[derive(Debug)]
enum Target {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(listen), Some(target)) = (args.next(), args.next()) else {
        return Err(
            "usage: tokio-proxy LISTEN_ADDR TARGET (host:port or a Unix socket path)".into(),
        );
    };
    let listen: SocketAddr = listen.parse()?;
    let target = match target.parse() {
        Ok(addr) => Target::Tcp(addr),
        Err(_) => Target::Unix(target.into()),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    runtime.block_on(serve(listen, Arc::new(target)))
}

async fn serve(listen: SocketAddr, target: Arc<Target>) -> Result<(), Box<dyn std::error::Error>> {
    let listener = TcpListener::bind(listen).await?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "Listening on {}", listener.local_addr()?)?;
    out.flush()?;
    drop(out);
    loop {
        match listener.accept().await {
            Ok((client, _)) => {
                tokio::spawn(proxy(client, target.clone()));
            }
            // Out of descriptors and the like: say so and go on accepting.
            Err(e) => eprintln!("tokio-proxy: accept: {e}"),
        }
    }
}

async fn proxy(client: TcpStream, target: Arc<Target>) {
    // Both ends carry requests and replies: Nagle would hold a small write back until the
    // peer's delayed ACK.
    let _ = client.set_nodelay(true);
    match &*target {
        Target::Tcp(addr) => {
            let connect = async {
                let server = TcpStream::connect(addr).await?;
                server.set_nodelay(true)?;
                io::Result::Ok(server)
            };
            join(client, connect, &target).await;
        }
        Target::Unix(path) => join(client, UnixStream::connect(path), &target).await,
    }
}

/// Copies both ways between the client and the target until both sides are done, or resets
/// the client if the target cannot be reached.
async fn join<S>(
    mut client: TcpStream,
    connect: impl Future<Output = io::Result<S>>,
    target: &Target,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    match connect.await {
        Ok(mut server) => {
            let _ = copy_bidirectional(&mut client, &mut server).await;
        }
        Err(e) => {
            eprintln!("tokio-proxy: connect to {target:?}: {e}");
            // Dropped with a zero linger, the client gets a reset instead of a FIN: a
            // refused target is passed on as a refusal, not as an empty reply.
            let _ = client.set_zero_linger();
        }
    }
}
