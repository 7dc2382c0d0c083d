//! The independent load generator, `bench/loadgen`, and ours against the same server, pinned
//! as in the CPU measures: ours must reach at least 0.95x its rate while checking every byte.

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use super::measure::{pinned, run_load, start, Load, ServerSpec, Tools};
use super::names::{Scenario, ServerName};
use super::stats::median;

/// The independent load generator against ours.
#[derive(Serialize)]
pub(super) struct LoadgenCheck {
    loadgen_rate: f64,
    greet_client_rate: f64,
    pub ratio: f64,
}

/// What `bench/loadgen` prints (the part read here).
#[derive(Deserialize)]
struct LoadgenOutput {
    conns: u64,
    ok: u64,
    conn_per_s: f64,
}

/// Three runs of each against greet-server (one loop), started fresh per run; the medians.
pub(super) fn loadgen_check(tools: &Tools) -> Result<LoadgenCheck> {
    let mut theirs = Vec::new();
    let mut ours = Vec::new();
    let spec = ServerSpec::of(tools, ServerName::Greet(1), false)?;
    let load = Load {
        pinned: true,
        ..Load::tcp(Scenario::LoadgenCheck, 50_000, 64)
    };
    for _ in 0..3 {
        let (server, port) = start(&spec, Some(0), tools.taskset)?;
        let out = pinned(&tools.loadgen, tools.taskset.then_some(1))
            .args(["tcp", "--port", &port.to_string()])
            .args(["-n", &load.n.to_string(), "-c", &load.c.to_string()])
            .args(["--max-secs", "60"])
            .stderr(std::process::Stdio::inherit())
            .output()
            .context("run bench/loadgen")?;
        let measured: LoadgenOutput = serde_json::from_slice(&out.stdout).with_context(|| {
            format!(
                "bench/loadgen printed no report: {}",
                String::from_utf8_lossy(&out.stdout)
            )
        })?;
        if measured.ok != measured.conns {
            eprintln!(
                "bench: loadgen: only {} of {} connections got the greeting",
                measured.ok, measured.conns
            );
        }
        theirs.push(measured.conn_per_s);
        ours.push(run_load(tools, port, &load)?.rate);
        server.kill();
    }
    let (t, o) = (median(&theirs), median(&ours));
    eprintln!(
        "bench: loadgen {t:.0}/s vs greet-client bench {o:.0}/s: {:.3}x",
        o / t
    );
    Ok(LoadgenCheck {
        loadgen_rate: t,
        greet_client_rate: o,
        ratio: o / t,
    })
}
