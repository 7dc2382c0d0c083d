//! The run's figures and the README's targets: the summary (medians and their ratios, per
//! scenario and server), and [`TARGETS`], each README target with the figure it holds and
//! its bound, from which the verdict lines are printed.

use std::fmt;

use serde::Serialize;

use super::echo::EchoSummary;
use super::idle::Idle;
use super::loadgen::LoadgenCheck;
use super::measure::Row;
use super::names::{Scenario, ServerName};
use super::pairs::PairsSummary;
use super::stats::{median_of, ratio};

/// The README's performance targets, as ratios measured in this run.
#[derive(Serialize)]
pub(super) struct Summary {
    pub tcp_cpu_per_conn_vs_c: Option<f64>,
    pub udp_cpu_per_req_vs_c: Option<f64>,
    pub tcp_cpu_per_conn_vs_python: Option<f64>,
    pub tcp_rate_lg2_vs_c: Option<f64>,
    pub peak_rss_kb: Option<u64>,
    pub greet_server_failures: u64,
    pub scale_rate_200k_vs_10k: Option<f64>,
    pub idle_bytes_per_connection: Option<f64>,
    pub greet_client_vs_loadgen: Option<f64>,
    pub echo_cpu_per_req_vs_mio_max: Option<f64>,
    pub echo_cpu_per_req_vs_tokio_max: Option<f64>,
    pub echo_wrong_bytes: u64,
}

/// The summary of a whole run: greet-server's medians against its peers' in the scenarios
/// the README's targets name.
pub(super) fn summarize(
    rows: &[Row],
    idle: Option<&Idle>,
    loadgen: &LoadgenCheck,
    echo: &EchoSummary,
) -> Summary {
    use Scenario::{Scale10k, Scale200k, TcpLg2, TcpPinned, UdpPinned};
    use ServerName::{CGreet, Greet, Python};
    let cpu = |s, srv| median_of(rows, s, srv, |r| r.server_cpu_us_per_op);
    let rate = |s, srv| median_of(rows, s, srv, |r| r.load.rate);
    let ours = || rows.iter().filter(|r| matches!(r.server, Greet(_)));
    Summary {
        tcp_cpu_per_conn_vs_c: ratio(cpu(TcpPinned, Greet(1)), cpu(TcpPinned, CGreet(1))),
        udp_cpu_per_req_vs_c: ratio(cpu(UdpPinned, Greet(1)), cpu(UdpPinned, CGreet(1))),
        tcp_cpu_per_conn_vs_python: ratio(cpu(TcpPinned, Greet(1)), cpu(TcpPinned, Python)),
        tcp_rate_lg2_vs_c: ratio(rate(TcpLg2, Greet(2)), rate(TcpLg2, CGreet(2))),
        peak_rss_kb: ours().map(|r| r.server_peak_rss_kb).max(),
        greet_server_failures: ours().map(|r| r.load.failures()).sum(),
        scale_rate_200k_vs_10k: ratio(rate(Scale200k, Greet(1)), rate(Scale10k, Greet(1))),
        idle_bytes_per_connection: idle.map(|i| i.bytes_per_connection),
        greet_client_vs_loadgen: Some(loadgen.ratio),
        echo_cpu_per_req_vs_mio_max: echo.cpu_per_req_vs_mio_max,
        echo_cpu_per_req_vs_tokio_max: echo.cpu_per_req_vs_tokio_max,
        echo_wrong_bytes: echo.wrong_bytes,
    }
}

/// A README target: what it says, the figure of the run it holds, and its bound.
struct Target {
    text: &'static str,
    figure: fn(&Summary) -> Option<f64>,
    bound: Bound,
    unit: Unit,
}

/// The README's targets, in the order the verdict prints them.
const TARGETS: [Target; 9] = [
    Target {
        text: "TCP greeting, server CPU per connection vs C (<= 1.0x)",
        figure: |s| s.tcp_cpu_per_conn_vs_c,
        bound: Bound::AtMost(1.0),
        unit: Unit::Ratio,
    },
    Target {
        text: "UDP greeting, server CPU per request vs C (<= 1.0x)",
        figure: |s| s.udp_cpu_per_req_vs_c,
        bound: Bound::AtMost(1.0),
        unit: Unit::Ratio,
    },
    Target {
        text: "greet-server peak RSS (<= 2 MB = 2048 kB)",
        figure: |s| s.peak_rss_kb.map(|kb| kb as f64),
        bound: Bound::AtMost(2048.0),
        unit: Unit::KiloBytes,
    },
    Target {
        text: "TCP rate, two-thread load, vs C (>= 1.0x)",
        figure: |s| s.tcp_rate_lg2_vs_c,
        bound: Bound::AtLeast(1.0),
        unit: Unit::Ratio,
    },
    Target {
        text: "greet-server connections hung or truncated (= 0)",
        figure: |s| Some(s.greet_server_failures as f64),
        bound: Bound::AtMost(0.0),
        unit: Unit::Count,
    },
    Target {
        text: "rate at 200k vs 10k connections (within 10%)",
        figure: |s| s.scale_rate_200k_vs_10k,
        bound: Bound::Within(0.10),
        unit: Unit::Ratio,
    },
    Target {
        text: "greet-client bench vs bench/loadgen (>= 0.95x)",
        figure: |s| s.greet_client_vs_loadgen,
        bound: Bound::AtLeast(0.95),
        unit: Unit::Ratio,
    },
    Target {
        text: "echo, CPU per request vs raw mio, worst load (<= 1.0x)",
        figure: |s| s.echo_cpu_per_req_vs_mio_max,
        bound: Bound::AtMost(1.0),
        unit: Unit::Ratio,
    },
    Target {
        text: "echo, CPU per request vs tokio, worst load (<= 0.85x)",
        figure: |s| s.echo_cpu_per_req_vs_tokio_max,
        bound: Bound::AtMost(0.85),
        unit: Unit::Ratio,
    },
];

/// The pairs section's target, held when that section ran.
const PAIRS_TARGET: &str = "pairs, CPU per request vs tokio, worst workload (<= 0.95x)";

/// The README's targets against this run's figures; the pairs target only when that
/// section ran.
pub(super) fn verdicts(summary: &Summary, pairs: Option<&PairsSummary>) -> Vec<Verdict> {
    let mut out: Vec<Verdict> = TARGETS
        .iter()
        .map(|t| Verdict::new(t.text, t.bound, t.unit, (t.figure)(summary)))
        .collect();
    if let Some(pairs) = pairs {
        out.push(Verdict::new(
            PAIRS_TARGET,
            Bound::AtMost(0.95),
            Unit::Ratio,
            pairs.worst_ratio(),
        ));
    }
    out
}

/// How a README target compares its figure with the limit.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
enum Bound {
    AtMost(f64),
    AtLeast(f64),
    /// A ratio within this fraction of 1.0, either way.
    Within(f64),
}

impl Bound {
    fn holds(self, value: f64) -> bool {
        match self {
            Bound::AtMost(limit) => value <= limit,
            Bound::AtLeast(limit) => value >= limit,
            Bound::Within(fraction) => (value - 1.0).abs() <= fraction,
        }
    }
}

/// What a verdict's figure is, for printing it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
enum Unit {
    Ratio,
    KiloBytes,
    Count,
}

/// One README target, the figure this run measured for it (a ratio of medians, or a
/// count), and whether it is met. A target with nothing measured is a miss.
#[derive(Debug, Serialize)]
pub(super) struct Verdict {
    target: &'static str,
    bound: Bound,
    unit: Unit,
    measured: Option<f64>,
    pass: bool,
}

impl Verdict {
    fn new(target: &'static str, bound: Bound, unit: Unit, measured: Option<f64>) -> Verdict {
        Verdict {
            target,
            bound,
            unit,
            measured,
            pass: measured.is_some_and(|v| bound.holds(v)),
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let measured = match (self.measured, self.unit) {
            (None, _) => "not measured".to_string(),
            (Some(v), Unit::Ratio) => format!("{v:.2}x"),
            (Some(v), Unit::KiloBytes) => format!("{v:.0} kB"),
            (Some(v), Unit::Count) => format!("{v:.0}"),
        };
        let outcome = if self.pass { "pass" } else { "miss" };
        write!(f, "{}, {measured}, {outcome}", self.target)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary() -> Summary {
        Summary {
            tcp_cpu_per_conn_vs_c: Some(1.0),
            udp_cpu_per_req_vs_c: Some(1.04),
            tcp_cpu_per_conn_vs_python: None,
            tcp_rate_lg2_vs_c: Some(0.88),
            peak_rss_kb: Some(3500),
            greet_server_failures: 0,
            scale_rate_200k_vs_10k: Some(0.91),
            idle_bytes_per_connection: None,
            greet_client_vs_loadgen: Some(0.95),
            echo_cpu_per_req_vs_mio_max: None,
            echo_cpu_per_req_vs_tokio_max: Some(0.86),
            echo_wrong_bytes: 0,
        }
    }

    #[test]
    fn verdict_holds_bounds_inclusive_and_misses_what_was_not_measured() {
        let lines: Vec<String> = verdicts(&summary(), None)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            lines,
            [
                "TCP greeting, server CPU per connection vs C (<= 1.0x), 1.00x, pass",
                "UDP greeting, server CPU per request vs C (<= 1.0x), 1.04x, miss",
                "greet-server peak RSS (<= 2 MB = 2048 kB), 3500 kB, miss",
                "TCP rate, two-thread load, vs C (>= 1.0x), 0.88x, miss",
                "greet-server connections hung or truncated (= 0), 0, pass",
                "rate at 200k vs 10k connections (within 10%), 0.91x, pass",
                "greet-client bench vs bench/loadgen (>= 0.95x), 0.95x, pass",
                "echo, CPU per request vs raw mio, worst load (<= 1.0x), not measured, miss",
                "echo, CPU per request vs tokio, worst load (<= 0.85x), 0.86x, miss",
            ]
        );
        assert!(!Bound::Within(0.10).holds(1.11));
        assert!(!Bound::Within(0.10).holds(0.89));
    }

    #[test]
    fn the_verdict_document_keeps_its_field_names() {
        let verdict = &verdicts(&summary(), None)[2];
        assert_eq!(
            serde_json::to_string(verdict).unwrap(),
            r#"{"target":"greet-server peak RSS (<= 2 MB = 2048 kB)","bound":{"at_most":2048.0},"unit":"kilo_bytes","measured":3500.0,"pass":false}"#
        );
    }
}
