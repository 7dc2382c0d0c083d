//! A fleet: three greet-servers behind the real HAProxy with `contrib/haproxy/greet.cfg`
//! (TCP mode, `send-proxy-v2`, health checks, `option redispatch`), under `greet-client
//! bench` load through HAProxy: a rolling SIGHUP restart of all three, then one killed with
//! SIGKILL and started again. Every connection is counted once across the instances'
//! metrics, and health checks are never counted as errors nor logged as connections.
//!
//! Without `haproxy` the test says so and passes, except under CI (`CI` set).

use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use e2e::{bench_report, bin, free_port, port_of, read_all, BenchReport, PATIENCE};

use crate::metrics::{metrics_addr, sample, scrape};
use crate::operations::{signal, Watched};

const GREETING: &[u8] = b"Thank you for connecting";
/// Connections per bench run: several seconds of load through HAProxy on a debug build.
const LOAD: u64 = 30_000;

/// One greet-server of the fleet (and the servers that replaced it at restarts).
struct Instance {
    watched: Watched,
    /// The server serving now.
    pid: u32,
    port: u16,
    metrics: SocketAddr,
}

impl Instance {
    /// Starts an instance on `port` (0: any).
    fn start(port: u16) -> Instance {
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
        let ready = watched.next_stdout();
        let port = port_of(&ready).unwrap_or_else(|| panic!("{ready:?}"));
        let metrics = metrics_addr(|| Some(watched.next_stdout()));
        let pid = watched.first.pid();
        Instance {
            watched,
            pid,
            port,
            metrics,
        }
    }

    fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// SIGTERM to the server serving now; its access-log lines (and those of the servers it
    /// replaced), and every stderr line.
    fn stop(self) -> (Vec<String>, Vec<String>) {
        signal(self.pid, libc::SIGTERM);
        let lines = stdout_lines(&self.watched);
        (lines, self.watched.rest_of_stderr())
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

/// HAProxy in the foreground, killed on drop.
struct HaProxy(Child);

impl Drop for HaProxy {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts HAProxy with the repository's `contrib/haproxy/greet.cfg`, its frontend and
/// three servers moved to `backends` and a free port; returns it and the frontend once a
/// client gets its greeting through it.
fn start_haproxy(haproxy: &Path, backends: &[SocketAddr; 3]) -> (HaProxy, SocketAddr) {
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
        let cfg = dir.join("greet.cfg");
        std::fs::write(&cfg, config).unwrap();
        let log = std::fs::File::create(dir.join("haproxy.log")).unwrap();
        let child = Command::new(haproxy)
            .arg("-db")
            .arg("-f")
            .arg(&cfg)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn haproxy");
        let mut proxy = HaProxy(child);
        let deadline = Instant::now() + PATIENCE;
        loop {
            if proxy.0.try_wait().unwrap().is_some() {
                let log = std::fs::read_to_string(dir.join("haproxy.log")).unwrap_or_default();
                if log.contains("Address already in use") || log.contains("cannot bind") {
                    break; // the port was taken since: another
                }
                panic!("haproxy exited: {log}");
            }
            if let Ok(stream) = TcpStream::connect_timeout(&frontend, Duration::from_secs(1)) {
                assert_eq!(read_all(stream).unwrap(), GREETING, "through haproxy");
                return (proxy, frontend);
            }
            assert!(Instant::now() < deadline, "haproxy never listened");
            std::thread::sleep(Duration::from_millis(20));
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
    let mut fleet = [Instance::start(0), Instance::start(0), Instance::start(0)];
    let backends = [fleet[0].addr(), fleet[1].addr(), fleet[2].addr()];
    let (proxy, frontend) = start_haproxy(&haproxy, &backends);

    // Rolling restart under load: each instance in turn, the next once the last is ready.
    let load = bench(frontend);
    let started = Instant::now();
    for instance in &mut fleet {
        instance.pid = instance.watched.restart(instance.pid);
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
    // What fails is a connection whose PROXY header had not been read when its server
    // handed over: netcore closes every connection at shutdown, and one still waiting for
    // input is closed empty. Each is counted, once, as a proxy error; at most the
    // connections in flight at each of the three handovers.
    let cut = total(&all, "proxy-error");
    assert_eq!(cut, report.failures(), "{report:?}");
    assert_eq!(report.errors.wrong_payload, report.failures(), "{report:?}");
    assert!(cut <= 3 * CONCURRENCY, "{report:?}");

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
    let load = bench(frontend);
    // Let the load reach every instance before the kill.
    wait_until_greeted(&fleet[1], before[1] + 100);
    signal(fleet[1].pid, libc::SIGKILL);
    let killed = std::mem::replace(&mut fleet[1], Instance::start(backends[1].port()));
    let report = finish(load);
    eprintln!(
        "fleet: one of 3 killed (SIGKILL) and started again under load: {} ok of {}, {} failed \
         ({:?})",
        report.ok,
        report.planned,
        report.failures(),
        report.errors
    );
    // Every failure, if any, is a connection the killed server had accepted (or the
    // kernel had queued for it, and HAProxy had connected): at most those in flight.
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
    assert!(
        total(&[&fleet[1]], "greeted") > 0,
        "the restarted instance never got traffic back"
    );
    let all: Vec<&Instance> = fleet.iter().collect();
    for outcome in ERRORS {
        assert_eq!(total(&all, outcome), 0, "{outcome}");
    }
    assert!(
        total(&all, "proxy-error") <= cut,
        "proxy errors without a restart"
    );
    drop(proxy);

    // Health checks were never logged: every access-log line names the client HAProxy
    // accepted.
    let (killed_lines, _) = (
        stdout_lines(&killed.watched),
        killed.watched.rest_of_stderr(),
    );
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
