//! A fleet: three greet-servers behind the real HAProxy with `contrib/haproxy/greet.cfg`
//! (TCP mode, `send-proxy-v2`, health checks, `option redispatch`), under `greet-client
//! bench` load through HAProxy: a rolling SIGHUP restart of all three, then one killed with
//! SIGKILL and started again. Every connection is counted once across the instances'
//! metrics, and health checks are never counted as errors nor logged as connections.
//! HAProxy's own counters (a stats socket added to the configuration) say which
//! connections the kill failed: only those established to the killed server.
//!
//! Without `haproxy` the test says so and passes, except under CI (`CI` set).

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use e2e::{bench_report, bin, free_port, port_of, read_all, BenchReport, HaProxy, PATIENCE};

use crate::metrics::{metrics_addr, sample, scrape};
use crate::operations::{signal, Watched};

const GREETING: &[u8] = b"Thank you for connecting";
/// Connections per bench run: several seconds of load through HAProxy on a debug build.
const LOAD: u64 = 30_000;

/// One greet-server of the fleet (and the servers that replaced it at restarts).
struct Instance {
    /// `None` once stopped.
    watched: Option<Watched>,
    /// The server serving now (0: none left); a server started by a restart is not the
    /// harness's child, so a test that fails must not leave it running: killed on drop.
    pid: u32,
    port: u16,
    metrics: SocketAddr,
}

impl Instance {
    /// Starts an instance on a port of its own outside the ephemeral range: it is started
    /// again on the same port after a kill, and a port in that range may meanwhile be taken
    /// as the source port of an outgoing connection (HAProxy's, the bench's), whose socket
    /// then keeps it for up to a minute.
    fn start_new() -> Instance {
        for _ in 0..20 {
            match Instance::start(port_outside_ephemeral_range()) {
                Ok(instance) => return instance,
                Err(stderr) if stderr.iter().any(|l| l.contains("Address already in use")) => {}
                Err(stderr) => panic!("greet-server did not start: {stderr:#?}"),
            }
        }
        panic!("no free port for an instance after 20 tries");
    }

    /// Starts an instance on `port`; what it said on stderr if it did not start.
    fn start(port: u16) -> Result<Instance, Vec<String>> {
        let port_text = port.to_string();
        let watched = Watched::start(
            &[
                "--host",
                "127.0.0.1",
                "--port",
                &port_text,
                "--threads",
                "2",
                "--proxy-protocol",
                "--proxy-trusted",
                "127.0.0.1",
                "--log-format",
                "text",
                "--metrics",
                "127.0.0.1:0",
            ],
            &[],
        );
        let Some(ready) = watched.first.next_line(PATIENCE) else {
            return Err(std::iter::from_fn(|| {
                watched.first.next_stderr_line(Duration::from_secs(1))
            })
            .collect());
        };
        let pid = watched.first.pid();
        let port = port_of(&ready).unwrap_or_else(|| panic!("{ready:?}"));
        let metrics = metrics_addr(|| Some(watched.next_stdout()));
        Ok(Instance {
            watched: Some(watched),
            pid,
            port,
            metrics,
        })
    }

    fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// SIGTERM to the server serving now; its access-log lines (and those of the servers it
    /// replaced), and every stderr line.
    fn stop(mut self) -> (Vec<String>, Vec<String>) {
        let pid = std::mem::take(&mut self.pid);
        if pid != 0 {
            signal(pid, libc::SIGTERM);
        }
        let watched = self.watched.take().expect("not stopped yet");
        let lines = stdout_lines(&watched);
        (lines, watched.rest_of_stderr())
    }

    /// SIGKILL to the server serving now, and waits until it is gone as its parent's
    /// `waitpid` would tell, before starting it again: every thread has exited, so its
    /// descriptors (the listeners) are closed. The main thread alone is a zombie first,
    /// while the others are still exiting (1-4 ms here, in most runs) and still hold the
    /// listeners: a server started then is refused its port as "in use", and meanwhile the
    /// kernel still accepts connects there, to be reset when the last thread is gone.
    fn kill(&mut self) {
        let pid = std::mem::take(&mut self.pid);
        signal(pid, libc::SIGKILL);
        let stat = format!("/proc/{pid}/stat");
        let threads = format!("/proc/{pid}/task");
        e2e::wait_until("the killed server is gone", || {
            let zombie = std::fs::read_to_string(&stat).map_or(true, |s| {
                s.rsplit_once(')')
                    .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
            });
            // A thread still exiting is listed beside the zombie main thread.
            zombie && std::fs::read_dir(&threads).map_or(true, |d| d.count() <= 1)
        });
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        if self.pid != 0 {
            // kill(2) on a server this test started (directly or through a restart), which
            // has not been signalled to stop yet.
            if let Ok(pid) = libc::pid_t::try_from(self.pid) {
                // SAFETY: see above.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
    }
}

/// Every stdout line until the end (all the servers of a lineage have exited).
fn stdout_lines(watched: &Watched) -> Vec<String> {
    std::iter::from_fn(|| watched.first.next_line(PATIENCE)).collect()
}

/// The fleet's counts of one outcome, added up across instances.
fn total(instances: &[&Instance], outcome: &str) -> u64 {
    instances
        .iter()
        .map(|i| {
            sample(
                &scrape(i.metrics),
                &format!("greet_connections_total{{outcome=\"{outcome}\"}}"),
            )
        })
        .sum()
}

/// The outcomes that are errors, but for `proxy-error`: none may happen in the fleet,
/// health checks included.
const ERRORS: [&str; 6] = [
    "reset",
    "timed-out",
    "shutdown",
    "error",
    "proxy-untrusted",
    "refused-limit",
];
/// Connections in flight at once (`bench -c`): HAProxy opens no more to the instances.
const CONCURRENCY: u64 = 8;

/// Starts HAProxy with the repository's `contrib/haproxy/greet.cfg`, its frontend and
/// three servers moved to `backends` and a free port, and a stats socket added; returns
/// it, the frontend and the stats socket once it is ready and a client got its greeting
/// through it.
fn start_haproxy(haproxy: &Path, backends: &[SocketAddr; 3]) -> (HaProxy, SocketAddr, PathBuf) {
    let shipped = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../contrib/haproxy/greet.cfg"),
    )
    .expect("contrib/haproxy/greet.cfg");
    let dir = e2e::temp_dir("fleet");
    for _ in 0..5 {
        let frontend = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let mut config = shipped.replace("bind 127.0.0.1:12345", &format!("bind {frontend}"));
        for (i, backend) in backends.iter().enumerate() {
            let shipped_addr = format!("127.0.0.1:{}", 12346 + i);
            assert!(
                config.contains(&shipped_addr),
                "{shipped_addr} in greet.cfg"
            );
            config = config.replace(&shipped_addr, &backend.to_string());
        }
        let stats = dir.join("stats.sock");
        config = config.replacen(
            "global\n",
            &format!("global\n    stats socket {} mode 600\n", stats.display()),
            1,
        );
        let cfg = dir.join("greet.cfg");
        std::fs::write(&cfg, config).unwrap();
        match e2e::haproxy(haproxy, &cfg) {
            Ok(proxy) => {
                let stream = TcpStream::connect(frontend).unwrap();
                assert_eq!(read_all(stream).unwrap(), GREETING, "through haproxy");
                return (proxy, frontend, stats);
            }
            // The port was taken since it was chosen: another.
            Err(log) if log.contains("cannot bind") => {}
            Err(log) => panic!("{log}"),
        }
    }
    panic!("no free port for haproxy after 5 tries");
}

/// `greet-client bench` through the frontend, in the background.
fn bench(frontend: SocketAddr) -> Child {
    Command::new(bin("greet-client"))
        .args([
            "bench",
            "--port",
            &frontend.port().to_string(),
            "-n",
            &LOAD.to_string(),
            "-c",
            &CONCURRENCY.to_string(),
            "--timeout",
            "10s",
            "--json",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn greet-client bench")
}

/// The bench's report (it exits 1 when any connection failed: the report says which).
fn finish(bench: Child) -> BenchReport {
    let out = bench.wait_with_output().expect("wait for bench");
    bench_report(&out)
}

/// Polls until the fleet's `greeted` count is `want`, within PATIENCE (servers that were
/// replaced hand their last counts on when they exit).
fn wait_for_greeted(instances: &[&Instance], want: u64) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let greeted = total(instances, "greeted");
        assert!(greeted <= want, "counted twice: {greeted} > {want}");
        if greeted == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the fleet counts {greeted} greeted, not {want}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_fleet_behind_haproxy_survives_a_rolling_restart_and_a_kill() {
    let Some(haproxy) = e2e::tool("haproxy", "haproxy") else {
        return;
    };
    let mut fleet = [
        Instance::start_new(),
        Instance::start_new(),
        Instance::start_new(),
    ];
    let backends = [fleet[0].addr(), fleet[1].addr(), fleet[2].addr()];
    let (proxy, frontend, stats) = start_haproxy(&haproxy, &backends);

    // Rolling restart under load: each instance in turn, the next once the last is ready.
    let load = bench(frontend);
    let started = Instant::now();
    for instance in &mut fleet {
        let pid = instance.pid;
        instance.pid = instance.watched.as_mut().expect("running").restart(pid);
    }
    let restarted_in = started.elapsed();
    let mut load = load;
    let still_running = load.try_wait().unwrap().is_none();
    let report = finish(load);
    eprintln!(
        "fleet: rolling restart of 3 in {restarted_in:?} under load: {} ok of {}, {} failed, \
         {:.0}/s",
        report.ok,
        report.planned,
        report.failures(),
        report.rate
    );
    assert!(still_running, "the load ended before the restarts did");
    assert_eq!(report.ok + report.failures(), LOAD, "{report:?}");
    // The probe through HAProxy at its start counts too.
    let all: Vec<&Instance> = fleet.iter().collect();
    wait_for_greeted(&all, report.ok + 1);
    for outcome in ERRORS {
        assert_eq!(total(&all, outcome), 0, "{outcome}");
    }
    assert!(total(&all, "health-check") > 0, "no health check counted");
    // A connection whose PROXY header had not been read when its server handed over is
    // left to finish (greet-server's `on_stop`), not closed empty: none fails.
    assert_eq!(report.failures(), 0, "{report:?}\n{}", counts(&all));
    assert_eq!(total(&all, "proxy-error"), 0, "{}", counts(&all));

    // One instance killed under load, and started again on its port.
    let before: Vec<u64> = fleet
        .iter()
        .map(|i| {
            sample(
                &scrape(i.metrics),
                "greet_connections_total{outcome=\"greeted\"}",
            )
        })
        .collect();
    let counted_before = server_stats(&stats);
    let load = bench(frontend);
    // Let the load reach every instance before the kill.
    wait_until_greeted(&fleet[1], before[1] + 100);
    fleet[1].kill();
    let again = start_again(backends[1].port());
    let killed = std::mem::replace(&mut fleet[1], again);
    let report = finish(load);
    let counted = server_stats(&stats);
    let phase: Vec<ServerStats> = counted
        .iter()
        .zip(&counted_before)
        .map(|(after, before)| after.since(before))
        .collect();
    let killed_stats = phase[1];
    eprintln!(
        "fleet: one of 3 killed (SIGKILL) and started again under load: {} ok of {}, {} failed \
         ({:?}); HAProxy: {} lost on the killed server ({} reset, {} closed empty), {} \
         refused connects redispatched",
        report.ok,
        report.planned,
        report.failures(),
        report.errors,
        killed_stats.lost(),
        killed_stats.aborted,
        killed_stats.lost().saturating_sub(killed_stats.aborted),
        killed_stats.redispatched,
    );
    // HAProxy's own counts say which connections failed: none on the survivors, no connect
    // failure handed to a client, and on the killed server exactly the bench's failures.
    for (i, server) in phase.iter().enumerate() {
        assert_eq!(server.connect_errors, 0, "greet{}: {phase:?}", i + 1);
        if i != 1 {
            assert_eq!(server.lost(), 0, "greet{}: {phase:?}", i + 1);
            assert_eq!(server.aborted, 0, "greet{}: {phase:?}", i + 1);
        }
    }
    assert_eq!(
        killed_stats.lost(),
        report.failures(),
        "{report:?}\n{phase:?}"
    );
    // Every failure, if any, is a connection HAProxy had established to the killed server
    // (accepted, or in its listen queue) when its sockets closed: in TCP mode HAProxy
    // retries a connect that failed, never a connection once established (`retries`,
    // `retry-on` in its configuration manual), so the client gets an empty reply. Each
    // holds one of the bench's connections until the kill's resets end them all at once:
    // at most CONCURRENCY. Connects refused after the kill are retried on the others
    // (`retries`, `redispatch`), and none of those fail.
    assert!(report.failures() <= CONCURRENCY, "{report:?}");
    // The survivors and the new instance counted exactly what they greeted; the killed
    // one's share since its last count is gone with it, never counted twice.
    let after: u64 = [&fleet[0], &fleet[2]]
        .iter()
        .zip([before[0], before[2]])
        .map(|(i, b)| {
            sample(
                &scrape(i.metrics),
                "greet_connections_total{outcome=\"greeted\"}",
            ) - b
        })
        .sum::<u64>()
        + total(&[&fleet[1]], "greeted");
    assert!(after <= report.ok, "{after} counted, {} greeted", report.ok);
    // Once HAProxy's check finds it back, the restarted instance gets its share again.
    let deadline = Instant::now() + PATIENCE;
    while total(&[&fleet[1]], "greeted") == 0 {
        assert!(
            Instant::now() < deadline,
            "the restarted instance never got traffic back"
        );
        for _ in 0..3 {
            assert_eq!(
                read_all(TcpStream::connect(frontend).unwrap()).unwrap(),
                GREETING
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let all: Vec<&Instance> = fleet.iter().collect();
    for outcome in ERRORS {
        assert_eq!(total(&all, outcome), 0, "{outcome}");
    }
    assert_eq!(total(&all, "proxy-error"), 0, "proxy errors after a kill");
    drop(proxy);

    // Health checks were never logged: every access-log line names the client HAProxy
    // accepted.
    let (killed_lines, _) = killed.stop();
    for instance in fleet {
        let (lines, stderr) = instance.stop();
        for line in lines.iter().chain(&killed_lines) {
            if line.starts_with("Listening on ") {
                continue;
            }
            assert!(
                line.contains(" client=127.0.0.1:") || line.contains(" outcome=proxy-error "),
                "{line}"
            );
        }
        assert!(
            stderr
                .iter()
                .any(|l| l.contains(", proxy errors 0, proxy untrusted 0, health checks ")),
            "{stderr:#?}"
        );
    }
}

/// Starts an instance again on the port of one that was killed, as a supervisor would.
/// Its port is free at once: `Instance::kill` waits until every thread of the killed server
/// has exited, and with them its listeners (waiting for its main thread alone left a few
/// milliseconds in which the bind was refused as "in use").
fn start_again(port: u16) -> Instance {
    Instance::start(port)
        .unwrap_or_else(|stderr| panic!("not started again on port {port}: {stderr:#?}"))
}

/// A port below the system's ephemeral range (`ip_local_port_range`) that is free now.
fn port_outside_ephemeral_range() -> u16 {
    let low: u16 = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse().ok())
        .unwrap_or(32768);
    let (from, to) = (low.saturating_sub(12_000).max(1024), low);
    // A different start per process and call, so that parallel tests rarely meet.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let seed = u64::from(std::process::id()) ^ u64::from(now);
    let span = u64::from(to - from);
    for i in 0..span {
        let port =
            from + u16::try_from((seed.wrapping_mul(2_654_435_761) + i * 7919) % span).unwrap_or(0);
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port in {from}..{to}");
}

/// Each instance's connection counts, for a failed assertion's message.
fn counts(instances: &[&Instance]) -> String {
    instances
        .iter()
        .map(|i| {
            let text = scrape(i.metrics);
            let lines: Vec<&str> = text
                .lines()
                .filter(|l| {
                    ["greet_connections", "greet_accepted", "greet_open"]
                        .iter()
                        .any(|p| l.starts_with(p))
                })
                .collect();
            format!("{}: {lines:#?}", i.port)
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Polls until `instance` has greeted `want` connections.
fn wait_until_greeted(instance: &Instance, want: u64) {
    let deadline = Instant::now() + PATIENCE;
    while sample(
        &scrape(instance.metrics),
        "greet_connections_total{outcome=\"greeted\"}",
    ) < want
    {
        assert!(
            Instant::now() < deadline,
            "no load reached {}",
            instance.port
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// One server's counters from HAProxy's `show stat`: those the kill phase is judged by.
#[derive(Debug, Clone, Copy)]
struct ServerStats {
    /// Sessions sent to it (`stot`), a redispatched one counted on each server it tried.
    sessions: u64,
    /// Bytes it sent to clients (`bout`).
    bytes_out: u64,
    /// Connects to it that failed for good, a client's failure (`econ`; a connect retried
    /// on another server is not one).
    connect_errors: u64,
    /// Sessions whose connect to it failed and were sent to another server (`wredis`).
    redispatched: u64,
    /// Sessions it aborted, a reset (`srv_abrt`; `SD` in HAProxy's log).
    aborted: u64,
}

impl ServerStats {
    /// The counts since `before`.
    fn since(&self, before: &ServerStats) -> ServerStats {
        ServerStats {
            sessions: self.sessions - before.sessions,
            bytes_out: self.bytes_out - before.bytes_out,
            connect_errors: self.connect_errors - before.connect_errors,
            redispatched: self.redispatched - before.redispatched,
            aborted: self.aborted - before.aborted,
        }
    }

    /// Sessions it took that got no (whole) greeting and were not moved to another server:
    /// failed clients.
    fn lost(&self) -> u64 {
        self.sessions
            .saturating_sub(self.redispatched)
            .saturating_sub(self.bytes_out / GREETING.len() as u64)
    }
}

/// `show stat` on HAProxy's stats socket: greet1, greet2 and greet3's counters, in order.
fn server_stats(socket: &Path) -> [ServerStats; 3] {
    use std::io::{Read, Write};
    let mut stream = std::os::unix::net::UnixStream::connect(socket).expect("stats socket");
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    stream.write_all(b"show stat\n").unwrap();
    let mut csv = String::new();
    stream.read_to_string(&mut csv).unwrap();
    let mut lines = csv.lines();
    let header: Vec<&str> = lines
        .next()
        .and_then(|l| l.strip_prefix("# "))
        .unwrap_or_else(|| panic!("no header in {csv:?}"))
        .split(',')
        .collect();
    let column = |name: &str| {
        header
            .iter()
            .position(|h| *h == name)
            .unwrap_or_else(|| panic!("no {name} in {header:?}"))
    };
    let row = |server: &str| -> ServerStats {
        let fields: Vec<&str> = lines
            .clone()
            .map(|l| l.split(',').collect::<Vec<_>>())
            .find(|f| f.len() > 1 && f[0] == "greeters" && f[1] == server)
            .unwrap_or_else(|| panic!("no {server} in {csv}"));
        let value = |name: &str| fields[column(name)].parse::<u64>().unwrap_or(0);
        ServerStats {
            sessions: value("stot"),
            bytes_out: value("bout"),
            connect_errors: value("econ"),
            redispatched: value("wredis"),
            aborted: value("srv_abrt"),
        }
    };
    [row("greet1"), row("greet2"), row("greet3")]
}
