//! An HTTP `CONNECT` proxy: a client names its target (`CONNECT example.com:443 HTTP/1.1`),
//! the proxy connects to it by name, answers `200` and pipes the two.
//!
//! ```text
//! cargo run -p netcore --example connect_proxy [ADDR]    # ADDR defaults to 127.0.0.1:0
//! curl --proxytunnel --proxy http://ADDR http://localhost:8080/
//! ```
//!
//! What it shows: `Conn::connect_name`. The name is resolved off the loop, on its worker
//! pool (a numeric address without a thread), its addresses are tried in turn, and the
//! outcome comes to `on_connect`: the tunnel, or a `502` naming every address's error (or
//! the resolver's). The client is paused meanwhile: what it sends behind its request waits
//! and goes to the target first. A request other than `CONNECT` gets a `405`.

use netcore::{Config, Conn, ConnId, ConnectError, EventLoop, Handler, ListenOptions, PeerAddr};

struct Proxy;

/// Each connection's state: `None` for a client, `Some(client)` for a client's upstream.
impl Handler<(), Option<ConnId>> for Proxy {
    fn on_data(&mut self, conn: &mut Conn<'_, Option<ConnId>>, input: &[u8]) -> usize {
        let Some(end) = input.windows(4).position(|w| w == b"\r\n\r\n") else {
            return 0; // the request head is not all there yet
        };
        let head = String::from_utf8_lossy(&input[..end]);
        let target = head
            .strip_prefix("CONNECT ")
            .and_then(|rest| rest.split(' ').next());
        let Some((host, port)) = target.and_then(|target| target.rsplit_once(':')) else {
            conn.send(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n");
            conn.close();
            return input.len();
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let client = conn.id();
        conn.pause_reading();
        conn.connect_name(host, port, Some(client));
        end + 4
    }

    fn on_connect(
        &mut self,
        conn: &mut Conn<'_, Option<ConnId>>,
        outcome: Result<&PeerAddr, &ConnectError>,
    ) {
        let (Some(client), upstream) = (*conn.state(), conn.id()) else {
            return;
        };
        let ctl = conn.control();
        match outcome {
            Ok(_) if ctl.send(client, b"HTTP/1.1 200 Connection established\r\n\r\n") => {
                ctl.pipe(client, upstream);
                ctl.resume_reading(client);
            }
            Ok(_) => _ = ctl.abort(upstream), // the client has left
            Err(err) => {
                let body = format!("{err}\n");
                let head = format!(
                    "HTTP/1.1 502 Bad Gateway\r\nContent-Length: {}\r\n\r\n",
                    body.len()
                );
                ctl.send_owned(client, (head + &body).into_bytes());
                ctl.close(client);
            }
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let listen = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:0".into());
    let listener = netcore::tcp_listener(listen.parse()?, &ListenOptions::default())?;
    let mut event_loop = EventLoop::new(Config::default())?;
    println!("Listening on {}", listener.local_addr()?);
    event_loop.add_tcp_listener(listener)?;
    event_loop.run(&mut Proxy)?;
    Ok(())
}
