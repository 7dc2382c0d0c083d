//! A bench peer: an HTTP `CONNECT` proxy on tokio's current-thread runtime, the twin of
//! netcore's `connect_proxy` example, written as a tokio user would: a task per client that
//! reads the request head, connects to the named target (`TcpStream::connect((host, port))`
//! resolves the name on tokio's blocking pool and tries each address in turn), answers
//! `200` and joins the two with `copy_bidirectional`, or answers `502` with the error. Not
//! part of the product.
//!
//! ```text
//! tokio-connect-proxy [ADDR]    # ADDR defaults to 127.0.0.1:0; prints `Listening on ADDR`
//! ```

use std::io;

use tokio::io::{copy_bidirectional, AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let listen = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:0".into());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    runtime.block_on(async {
        let listener = TcpListener::bind(&listen).await?;
        println!("Listening on {}", listener.local_addr()?);
        loop {
            match listener.accept().await {
                Ok((client, _)) => {
                    tokio::spawn(tunnel(client));
                }
                // Out of descriptors and the like: say so and go on accepting.
                Err(e) => eprintln!("tokio-connect-proxy: accept: {e}"),
            }
        }
    })
}

async fn tunnel(client: TcpStream) -> io::Result<()> {
    // Buffered: the head is read line by line, and what the client sent behind it stays
    // in the buffer for `copy_bidirectional`.
    let mut client = BufReader::new(client);
    let mut request = String::new();
    client.read_line(&mut request).await?;
    let mut line = String::new();
    while client.read_line(&mut line).await? > 2 {
        line.clear(); // a header line; the head ends with an empty one
    }
    let target = request
        .strip_prefix("CONNECT ")
        .and_then(|rest| rest.split(' ').next());
    let Some((host, port)) = target.and_then(|target| target.rsplit_once(':')) else {
        return client
            .write_all(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
            .await;
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let connected = match port.parse::<u16>() {
        Ok(port) => TcpStream::connect((host, port)).await,
        Err(e) => Err(io::Error::new(io::ErrorKind::InvalidInput, e)),
    };
    match connected {
        Ok(mut upstream) => {
            client
                .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                .await?;
            copy_bidirectional(&mut client, &mut upstream).await?;
        }
        Err(err) => {
            let body = format!("{err}\n");
            let head = format!(
                "HTTP/1.1 502 Bad Gateway\r\nContent-Length: {}\r\n\r\n",
                body.len()
            );
            client.write_all((head + &body).as_bytes()).await?;
        }
    }
    Ok(())
}
