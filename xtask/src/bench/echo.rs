//! The echo section (also alone: `cargo xtask bench echo`): netcore's `examples/echo.rs`
//! against `bench/mio-echo` (raw mio) and `bench/tokio-echo`, each pinned to one core,
//! loaded by `greet-client bench --echo --requests 0` on the other, and netcore's CPU per
//! request as ratios to the two peers.

use anyhow::{bail, Result};
use serde::{Serialize, Serializer};

use super::measure::{Load, Row};
use super::names::{Scenario, ServerName};
use super::stats::{max_of, median_of, ratio};
use super::{number, percent, Measure, Round};

/// The echo loads: connections at once, message size.
const ECHO_LOADS: [(u32, u32); 4] = [(50, 64), (50, 4096), (500, 64), (500, 4096)];
const ECHO_REPS: usize = 3;
/// How long each echo measurement runs: 4 loads x 3 servers x 3 repetitions of this, plus
/// start-up, keep the section under a minute.
const ECHO_DURATION: &str = "1s";
/// netcore's echo example and its two peers, in the tables' order.
const ECHO_SERVERS: [ServerName; 3] = [
    ServerName::NetcoreEcho,
    ServerName::MioEcho,
    ServerName::TokioEcho,
];

/// The echo section: per load, medians and netcore's ratios to the peers.
#[derive(Serialize)]
pub(super) struct EchoSummary {
    repetitions: usize,
    duration: &'static str,
    loads: Vec<EchoLoadSummary>,
    pub cpu_per_req_vs_mio_max: Option<f64>,
    pub cpu_per_req_vs_tokio_max: Option<f64>,
    pub wrong_bytes: u64,
}

#[derive(Serialize)]
struct EchoLoadSummary {
    scenario: Scenario,
    connections: u32,
    size: u32,
    rate: PerEchoServer,
    server_cpu_us_per_req: PerEchoServer,
    /// The kernel's share of each server's CPU (`stime / (utime + stime)`), medians: what
    /// no engine's code can save.
    kernel_share: PerEchoServer,
    cpu_per_req_vs_mio: Option<f64>,
    cpu_per_req_vs_tokio: Option<f64>,
    wrong_bytes: u64,
    failures: u64,
}

/// One figure per echo server, in [`ECHO_SERVERS`]' order; written as
/// `{"netcore-echo": .., "mio-echo": .., "tokio-echo": ..}`.
struct PerEchoServer([Option<f64>; 3]);

impl Serialize for PerEchoServer {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(Some(ECHO_SERVERS.len()))?;
        for (name, value) in ECHO_SERVERS.iter().zip(&self.0) {
            map.serialize_entry(&name.to_string(), value)?;
        }
        map.end()
    }
}

fn scenario((connections, size): (u32, u32)) -> Scenario {
    Scenario::Echo { connections, size }
}

/// Every load against every echo server, each started fresh per measurement and pinned
/// to core 0, the load on core 1, [`ECHO_REPS`] times over.
pub(super) fn round() -> Round {
    let measure = |(connections, size)| Measure {
        load: Load {
            echo: Some(size),
            pinned: true,
            duration: ECHO_DURATION,
            ..Load::tcp(
                scenario((connections, size)),
                u64::from(connections),
                connections,
            )
        },
        servers: ECHO_SERVERS.to_vec(),
    };
    Round {
        reps: ECHO_REPS,
        measures: ECHO_LOADS.map(measure).into(),
    }
}

/// Medians per load and server, and netcore's ratios to the peers (the targets: CPU per
/// request at most 1.0x mio's and 0.85x tokio's), from the section's `rows`.
pub(super) fn summary(rows: &[Row]) -> EchoSummary {
    let mut loads = Vec::new();
    let (mut worst_mio, mut worst_tokio) = (None::<f64>, None::<f64>);
    for (connections, size) in ECHO_LOADS {
        let scenario = scenario((connections, size));
        let cpu =
            ECHO_SERVERS.map(|srv| median_of(rows, scenario, srv, |r| r.server_cpu_us_per_op));
        let rate = ECHO_SERVERS.map(|srv| median_of(rows, scenario, srv, |r| r.load.rate));
        let kernel = ECHO_SERVERS.map(|srv| median_of(rows, scenario, srv, |r| r.kernel_share));
        let [ours, mio, tokio] = cpu;
        let vs_mio = ratio(ours, mio);
        let vs_tokio = ratio(ours, tokio);
        worst_mio = max_of(worst_mio, vs_mio);
        worst_tokio = max_of(worst_tokio, vs_tokio);
        let of_load = rows.iter().filter(|r| r.scenario == scenario);
        loads.push(EchoLoadSummary {
            scenario,
            connections,
            size,
            rate: PerEchoServer(rate),
            server_cpu_us_per_req: PerEchoServer(cpu),
            kernel_share: PerEchoServer(kernel),
            cpu_per_req_vs_mio: vs_mio,
            cpu_per_req_vs_tokio: vs_tokio,
            wrong_bytes: of_load.clone().map(|r| r.load.wrong_bytes()).sum(),
            failures: of_load.map(|r| r.load.failures()).sum(),
        });
    }
    EchoSummary {
        repetitions: ECHO_REPS,
        duration: ECHO_DURATION,
        loads,
        cpu_per_req_vs_mio_max: worst_mio,
        cpu_per_req_vs_tokio_max: worst_tokio,
        wrong_bytes: rows.iter().map(|r| r.load.wrong_bytes()).sum(),
    }
}

pub(super) fn print_table(echo: &EchoSummary) {
    println!(
        "\n| echo load | req/s netcore | req/s mio | req/s tokio | CPU us/req netcore | mio | tokio | netcore/mio (<= 1.0x) | netcore/tokio (<= 0.85x) | kernel share netcore / mio / tokio | wrong bytes |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for l in &echo.loads {
        let ([r0, r1, r2], [c0, c1, c2]) = (l.rate.0, l.server_cpu_us_per_req.0);
        let [k0, k1, k2] = l.kernel_share.0.map(percent);
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {}x | {}x | {k0}% / {k1}% / {k2}% | {} |",
            l.scenario,
            number(r0, 0),
            number(r1, 0),
            number(r2, 0),
            number(c0, 2),
            number(c1, 2),
            number(c2, 2),
            number(l.cpu_per_req_vs_mio, 2),
            number(l.cpu_per_req_vs_tokio, 2),
            l.wrong_bytes,
        );
    }
}

/// netcore's echo must lose and corrupt nothing (the peers' faults are only reported).
pub(super) fn verdict(rows: &[Row]) -> Result<()> {
    let (failed, wrong) = rows
        .iter()
        .filter(|r| r.server == ServerName::NetcoreEcho)
        .fold((0, 0), |(f, w), r| {
            (f + r.load.failures(), w + r.load.wrong_bytes())
        });
    if failed > 0 || wrong > 0 {
        bail!("netcore's echo example failed {failed} requests, {wrong} wrong bytes");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echo_load_and_server_names_are_the_documented_ones() {
        let names: Vec<String> = ECHO_LOADS.map(|l| scenario(l).to_string()).into();
        assert_eq!(
            names,
            [
                "echo c=50 64 B",
                "echo c=50 4 KiB",
                "echo c=500 64 B",
                "echo c=500 4 KiB"
            ]
        );
        let json = serde_json::to_string(&PerEchoServer([Some(1.5), None, Some(2.0)])).unwrap();
        assert_eq!(
            json,
            r#"{"netcore-echo":1.5,"mio-echo":null,"tokio-echo":2.0}"#
        );
    }
}
