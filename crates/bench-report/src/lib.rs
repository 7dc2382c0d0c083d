//! The schema of `greet-client bench --json`: one document per run, written by
//! `greet-client` and read by `cargo xtask bench` and the end-to-end tests, all through
//! these types (a misspelt field is a compile error, not a silent `null`).
//!
//! ```json
//! {"mode":"tcp","target":"127.0.0.1:12345","echo":null,"planned":2000,"concurrency":32,
//!  "threads":2,"ok":2000,
//!  "errors":{"total":0,"refused":0,"reset":0,"timeout":0,"addr_not_available":0,
//!            "wrong_payload":0,"other":0},
//!  "not_started":0,"stray":0,"secs":0.21,"rate":9523.8,
//!  "latency_us":{"p50":410,"p90":800,"p99":1500,"max":2100}}
//! ```
//!
//! `latency_us` is `null` when no operation succeeded: there is no latency to show.

use serde::{Deserialize, Serialize};

/// What was measured: greetings over TCP, over UDP, or echoes over TCP (`--echo`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// One connection per greeting.
    Tcp,
    /// One datagram exchange per greeting.
    Udp,
    /// Messages echoed back over long-lived connections.
    Echo,
}

impl Mode {
    /// `tcp`, `udp`, `echo`, as in the document.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Tcp => "tcp",
            Mode::Udp => "udp",
            Mode::Echo => "echo",
        }
    }
}

/// One run of `greet-client bench`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchReport {
    /// What was measured.
    pub mode: Mode,
    /// The address loaded, e.g. `127.0.0.1:12345` or `[::1]:12345`.
    pub target: String,
    /// Echo runs only: the echo parameters and checks.
    pub echo: Option<EchoInfo>,
    /// Operations planned (connections, requests).
    pub planned: u64,
    /// Operations in flight at once.
    pub concurrency: u32,
    /// Load-generator threads.
    pub threads: u16,
    /// Operations that completed with the right bytes.
    pub ok: u64,
    /// Failed operations by kind.
    pub errors: ErrorCounts,
    /// Planned operations never started (the duration ran out).
    pub not_started: u64,
    /// Replies that matched no request (UDP).
    pub stray: u64,
    /// Wall-clock seconds of the run.
    pub secs: f64,
    /// `ok` per second.
    pub rate: f64,
    /// Latency percentiles of the operations that succeeded, in microseconds; `None` when
    /// none did.
    pub latency_us: Option<Latency>,
}

impl BenchReport {
    /// Operations that did not succeed: errors plus those never started.
    pub fn failures(&self) -> u64 {
        self.errors.total + self.not_started
    }

    /// Echo runs: bytes that differed from what was sent; 0 otherwise.
    pub fn wrong_bytes(&self) -> u64 {
        self.echo.as_ref().map_or(0, |e| e.wrong_bytes)
    }
}

/// Failed operations by kind; `total` is their sum.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorCounts {
    /// The sum of the kinds below.
    pub total: u64,
    /// Connection refused.
    pub refused: u64,
    /// Connection reset.
    pub reset: u64,
    /// No reply within `--timeout`.
    pub timeout: u64,
    /// No local port left (`EADDRNOTAVAIL`).
    pub addr_not_available: u64,
    /// A reply whose bytes differed from the expected ones.
    pub wrong_payload: u64,
    /// Any other error.
    pub other: u64,
}

impl ErrorCounts {
    /// Counts with `total` set to the sum of the kinds.
    pub fn with_total(mut self) -> ErrorCounts {
        self.total = self.refused
            + self.reset
            + self.timeout
            + self.addr_not_available
            + self.wrong_payload
            + self.other;
        self
    }

    /// Adds `other`'s counts (kinds and total) to these.
    pub fn add(&mut self, other: &ErrorCounts) {
        self.total += other.total;
        self.refused += other.refused;
        self.reset += other.reset;
        self.timeout += other.timeout;
        self.addr_not_available += other.addr_not_available;
        self.wrong_payload += other.wrong_payload;
        self.other += other.other;
    }
}

/// Latency percentiles (nearest rank), in microseconds.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Latency {
    /// Median.
    pub p50: u32,
    /// 90th percentile.
    pub p90: u32,
    /// 99th percentile.
    pub p99: u32,
    /// Slowest.
    pub max: u32,
}

/// Echo parameters and checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct EchoInfo {
    /// Message size in bytes.
    pub size: u32,
    /// Requests per connection; 0 means until the deadline.
    pub requests_per_connection: u64,
    /// Connections planned.
    pub connections: u64,
    /// Bytes that differed from what was sent, or came unasked.
    pub wrong_bytes: u64,
    /// Requests cut short at the deadline (not failures).
    pub unfinished_at_deadline: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_round_trips_with_the_field_names_readers_expect() {
        let report = BenchReport {
            mode: Mode::Echo,
            target: "[::1]:7".to_string(),
            echo: Some(EchoInfo {
                size: 64,
                requests_per_connection: 0,
                connections: 50,
                wrong_bytes: 3,
                unfinished_at_deadline: 1,
            }),
            planned: 50,
            concurrency: 50,
            threads: 1,
            ok: 12,
            errors: ErrorCounts {
                wrong_payload: 3,
                timeout: 1,
                ..ErrorCounts::default()
            }
            .with_total(),
            not_started: 2,
            stray: 0,
            secs: 1.5,
            rate: 8.0,
            latency_us: Some(Latency {
                p50: 1,
                p90: 2,
                p99: 3,
                max: 4,
            }),
        };
        let text = serde_json::to_string(&report).unwrap();
        for field in [
            r#""mode":"echo","target":"[::1]:7""#,
            r#""total":4"#,
            r#""wrong_bytes":3"#,
            r#""latency_us":{"p50":1,"p90":2,"p99":3,"max":4}"#,
        ] {
            assert!(text.contains(field), "{field} in {text}");
        }
        let back: BenchReport = serde_json::from_str(&text).unwrap();
        assert_eq!(back, report);
        assert_eq!(back.failures(), 6);
        assert_eq!(back.wrong_bytes(), 3);
        let tcp = r#"{"mode":"tcp","target":"127.0.0.1:9","echo":null,"planned":1,
            "concurrency":1,"threads":1,"ok":0,
            "errors":{"total":1,"refused":1,"reset":0,"timeout":0,"addr_not_available":0,
            "wrong_payload":0,"other":0},"not_started":0,"stray":0,"secs":0.1,"rate":0.0,
            "latency_us":null}"#;
        let tcp: BenchReport = serde_json::from_str(tcp).unwrap();
        assert_eq!((tcp.mode, tcp.wrong_bytes()), (Mode::Tcp, 0));
        assert_eq!(tcp.latency_us, None, "nothing succeeded");
    }
}
