//! The names of what `cargo xtask bench` measures, each spelt once: a scenario (a load) and
//! a server, shown as their `Display` in tables and JSON alike.

use std::fmt;

/// A measured load, named once: its name is its `Display`, in tables and JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Scenario {
    /// 64 connections in flight, server on core 0, load on core 1: CPU per connection.
    TcpPinned,
    /// 64 requests in flight over UDP, pinned the same way.
    UdpPinned,
    /// One connection at a time.
    TcpC1,
    /// 1000 connections in flight.
    TcpC1000,
    /// Rate with a two-thread load generator, unpinned.
    TcpLg2,
    /// 10k connections, for the scale ratio.
    Scale10k,
    /// 200k connections.
    Scale200k,
    /// Echo: connections at once, message size.
    Echo { connections: u32, size: u32 },
    /// The load run beside the independent load generator.
    LoadgenCheck,
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scenario::TcpPinned => f.write_str("tcp c=64 pinned"),
            Scenario::UdpPinned => f.write_str("udp c=64 pinned"),
            Scenario::TcpC1 => f.write_str("tcp c=1"),
            Scenario::TcpC1000 => f.write_str("tcp c=1000"),
            Scenario::TcpLg2 => f.write_str("tcp unpinned lg2"),
            Scenario::Scale10k => f.write_str("scale 10k"),
            Scenario::Scale200k => f.write_str("scale 200k"),
            Scenario::Echo { connections, size } if size % 1024 == 0 => {
                write!(f, "echo c={connections} {} KiB", size / 1024)
            }
            Scenario::Echo { connections, size } => write!(f, "echo c={connections} {size} B"),
            Scenario::LoadgenCheck => f.write_str("loadgen check"),
        }
    }
}

/// A server under test, named once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ServerName {
    /// greet-server with this many threads (`--quiet`: no access log).
    Greet(u16),
    /// greet-server with one loop, logging (and counting) as `Logging` says.
    GreetLogging(Logging),
    /// The tutorial's Python server, `bench/seed_server.py`.
    Python,
    /// `bench/c-greet`, the C epoll server, with this many threads.
    CGreet(u16),
    /// netcore's `examples/echo.rs`.
    NetcoreEcho,
    /// `bench/mio-echo`.
    MioEcho,
    /// `bench/tokio-echo`.
    TokioEcho,
    /// netcore's example of this name (`http`, `redis`, `proxy`).
    NetcoreExample(&'static str),
    /// Its twin on tokio, `bench/tokio-NAME`.
    TokioTwin(&'static str),
}

impl fmt::Display for ServerName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServerName::Greet(threads) => write!(f, "greet-server/{threads}"),
            ServerName::GreetLogging(logging) => write!(f, "greet-server/1 {logging}"),
            ServerName::Python => f.write_str("python-tutorial"),
            ServerName::CGreet(threads) => write!(f, "c-greet/{threads}"),
            ServerName::NetcoreEcho => f.write_str("netcore-echo"),
            ServerName::MioEcho => f.write_str("mio-echo"),
            ServerName::TokioEcho => f.write_str("tokio-echo"),
            ServerName::NetcoreExample(name) => write!(f, "netcore-{name}"),
            ServerName::TokioTwin(name) => write!(f, "tokio-{name}"),
        }
    }
}

/// What greet-server writes and counts per connection: the operator section's
/// configurations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Logging {
    /// The default access log, `--log-format tutorial`.
    Tutorial,
    /// `--log-format json`.
    Json,
    /// The default log and `--metrics 127.0.0.1:0` (counters and a histogram, no scrape).
    TutorialMetrics,
}

impl Logging {
    /// greet-server's flags for it.
    pub fn flags(self) -> &'static [&'static str] {
        match self {
            Logging::Tutorial => &[],
            Logging::Json => &["--log-format", "json"],
            Logging::TutorialMetrics => &["--metrics", "127.0.0.1:0"],
        }
    }
}

impl fmt::Display for Logging {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Logging::Tutorial => "tutorial log",
            Logging::Json => "json log",
            Logging::TutorialMetrics => "tutorial log + metrics",
        })
    }
}

/// Names are written as their `Display` (paths in full: `pairs` uses it too).
macro_rules! serialize_as_display {
    ($($t:ty),*) => {$(
        impl serde::Serialize for $t {
            fn serialize<S: serde::Serializer>(
                &self,
                s: S,
            ) -> std::result::Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
    )*};
}
pub(super) use serialize_as_display;
serialize_as_display!(Scenario, ServerName);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scenario_and_server_names_are_the_documented_ones() {
        let echo = Scenario::Echo {
            connections: 50,
            size: 4096,
        };
        assert_eq!(echo.to_string(), "echo c=50 4 KiB");
        assert_eq!(Scenario::TcpPinned.to_string(), "tcp c=64 pinned");
        assert_eq!(ServerName::Greet(2).to_string(), "greet-server/2");
        assert_eq!(ServerName::CGreet(1).to_string(), "c-greet/1");
        assert_eq!(
            ServerName::GreetLogging(Logging::Json).to_string(),
            "greet-server/1 json log"
        );
        assert_eq!(
            serde_json::to_string(&Scenario::Scale10k).unwrap(),
            r#""scale 10k""#
        );
    }
}
