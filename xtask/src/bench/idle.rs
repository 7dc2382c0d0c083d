//! RSS per idle connection: netcore's echo example holding connections that do nothing.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde::Serialize;

use super::measure::{start, ServerSpec, Tools};
use super::names::ServerName;

/// RSS per idle connection.
#[derive(Serialize)]
pub(super) struct Idle {
    connections: usize,
    rss_before_kb: u64,
    rss_after_kb: u64,
    pub bytes_per_connection: f64,
}

/// The echo example holding `count` connections that do nothing.
pub(super) fn idle_connections(tools: &Tools, count: usize) -> Result<Idle> {
    let spec = ServerSpec::of(tools, ServerName::NetcoreEcho, false)?;
    let (server, port) = start(&spec, None, false)?;
    let base_fds = server.open_fds();
    let rss_before = server.status_kb("VmRSS:");
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut held = Vec::with_capacity(count);
    for _ in 0..count {
        let stream = std::net::TcpStream::connect(addr)
            .with_context(|| format!("idle connection {}", held.len()))?;
        held.push(stream);
    }
    // Wait (bounded) until the server has accepted them all.
    let deadline = Instant::now() + Duration::from_secs(30);
    while server.open_fds() < base_fds + count && Instant::now() < deadline {
        std::thread::yield_now();
    }
    let accepted = server.open_fds().saturating_sub(base_fds);
    let rss_after = server.status_kb("VmRSS:");
    server.kill();
    drop(held);
    let per_conn = (rss_after.saturating_sub(rss_before)) as f64 * 1024.0 / accepted.max(1) as f64;
    eprintln!(
        "bench: idle connections: {accepted} held, RSS {rss_before} kB -> {rss_after} kB, {per_conn:.0} bytes each"
    );
    Ok(Idle {
        connections: accepted,
        rss_before_kb: rss_before,
        rss_after_kb: rss_after,
        bytes_per_connection: per_conn,
    })
}
