//! One measurement: a server started fresh (pinned where the load says), waited for through
//! its readiness line, loaded by `greet-client bench`, its CPU and peak RSS read through
//! proc-harness, then killed.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use bench_report::BenchReport;
use proc_harness::{Process, Stderr};
use serde::Serialize;

use super::names::{Scenario, ServerName};
use super::target_dir;
use crate::{cargo, root, run_step};

/// The binaries a run uses, built (release) before it starts.
pub(super) struct Tools {
    /// `target/release`.
    pub release: PathBuf,
    pub server: PathBuf,
    pub client: PathBuf,
    /// netcore's echo example, if it was built.
    pub echo: Option<PathBuf>,
    /// The echo peers, `bench/mio-echo` and `bench/tokio-echo`.
    pub mio_echo: PathBuf,
    pub tokio_echo: PathBuf,
    pub python: PathBuf,
    /// The C reference server and the independent load generator.
    pub c_greet: PathBuf,
    pub loadgen: PathBuf,
    pub taskset: bool,
}

/// Every package a full run measures.
const PACKAGES: [&str; 9] = [
    "greet-server",
    "greet-client",
    "netcore",
    "mio-echo",
    "loadgen",
    "tokio-echo",
    "tokio-http",
    "tokio-redis",
    "tokio-proxy",
];

impl Tools {
    /// Builds every binary a section may run (release), and the C reference server.
    pub fn build() -> Result<Tools> {
        Tools::build_only(&PACKAGES, true)
    }

    /// Builds the binaries and examples of `packages` (release), and the C reference server
    /// if `c_greet`; the other paths are where [`Tools::build`] puts them.
    pub fn build_only(packages: &[&str], c_greet: bool) -> Result<Tools> {
        let mut build = cargo();
        build.args(["build", "--release"]);
        for package in packages {
            build.args(["-p", package]);
        }
        run_step(
            "cargo build --release",
            build.args(["--examples", "--bins"]),
        )?;
        let c_greet = match c_greet {
            true => build_c("c-greet", &["-lpthread"])?,
            false => target_dir().join("bench").join("c-greet"),
        };
        let release = target_dir().join("release");
        Ok(Tools {
            server: release.join("greet-server"),
            client: release.join("greet-client"),
            echo: Some(release.join("examples").join("echo")).filter(|p| p.exists()),
            mio_echo: release.join("mio-echo"),
            tokio_echo: release.join("tokio-echo"),
            python: root().join("bench").join("seed_server.py"),
            c_greet,
            loadgen: release.join("loadgen"),
            taskset: Command::new("taskset")
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success()),
            release,
        })
    }
}

/// One server under test.
#[derive(Clone)]
pub(super) struct ServerSpec {
    pub name: ServerName,
    pub argv: Vec<String>,
}

impl ServerSpec {
    /// The command line of `name` on an ephemeral port of 127.0.0.1, answering UDP if `udp`.
    pub fn of(tools: &Tools, name: ServerName, udp: bool) -> Result<ServerSpec> {
        let udp = udp.then(|| "--udp".to_string());
        let address = |bin: &Path| vec![bin.display().to_string(), "127.0.0.1:0".into()];
        let argv = match name {
            ServerName::Greet(threads) => greet_server_argv(&tools.server, threads, &["--quiet"])
                .into_iter()
                .chain(udp)
                .collect(),
            ServerName::GreetLogging(logging) => {
                greet_server_argv(&tools.server, 1, logging.flags())
                    .into_iter()
                    .chain(udp)
                    .collect()
            }
            ServerName::Python => ["python3", &tools.python.display().to_string()]
                .into_iter()
                .chain(["--port", "0", "--quiet"])
                .map(String::from)
                .chain(udp)
                .collect(),
            ServerName::CGreet(threads) => [
                tools.c_greet.display().to_string(),
                "--threads".into(),
                threads.to_string(),
                "--quiet".into(),
            ]
            .into_iter()
            .chain(udp)
            .chain(["127.0.0.1".to_string(), "0".to_string()])
            .collect(),
            ServerName::NetcoreEcho => address(
                tools
                    .echo
                    .as_ref()
                    .context("netcore's echo example was not built")?,
            ),
            ServerName::MioEcho => address(&tools.mio_echo),
            ServerName::TokioEcho => address(&tools.tokio_echo),
            ServerName::NetcoreExample(example) => {
                address(&tools.release.join("examples").join(example))
            }
            ServerName::TokioTwin(example) => {
                address(&tools.release.join(format!("tokio-{example}")))
            }
        };
        Ok(ServerSpec { name, argv })
    }
}

/// `greet-server --host 127.0.0.1 --port 0 --threads N`, then `flags`.
fn greet_server_argv(server: &Path, threads: u16, flags: &[&str]) -> Vec<String> {
    [
        server.display().to_string(),
        "--host".into(),
        "127.0.0.1".into(),
        "--port".into(),
        "0".into(),
        "--threads".into(),
        threads.to_string(),
    ]
    .into_iter()
    .chain(flags.iter().map(|f| f.to_string()))
    .collect()
}

/// One load: what `greet-client bench` is asked to do.
#[derive(Debug, Clone, Copy)]
pub(super) struct Load {
    pub scenario: Scenario,
    pub udp: bool,
    /// Echo: the message size; the connections (`c` of them) repeat requests until the
    /// load's duration ends.
    pub echo: Option<u32>,
    pub n: u64,
    pub c: u32,
    pub threads: u16,
    /// Server on core 0, load on core 1.
    pub pinned: bool,
    pub timeout: &'static str,
    pub duration: &'static str,
}

impl Load {
    /// `n` TCP connections, `c` in flight, one load thread, unpinned, 5 s per connection,
    /// 60 s in all.
    pub const fn tcp(scenario: Scenario, n: u64, c: u32) -> Load {
        Load {
            scenario,
            udp: false,
            echo: None,
            n,
            c,
            threads: 1,
            pinned: false,
            timeout: "5s",
            duration: "60s",
        }
    }
}

/// One measurement, as written to the JSON document.
#[derive(Serialize)]
pub(super) struct Row {
    pub scenario: Scenario,
    pub server: ServerName,
    pub load: BenchReport,
    /// The server's on-CPU time over the load (`schedstat`), per successful operation.
    pub server_cpu_us_per_op: f64,
    /// Its user-space part (`utime` of `/proc/PID/stat`, in clock ticks), per operation.
    pub server_user_us_per_op: f64,
    /// The kernel's share of the server's CPU over the load, `stime / (utime + stime)`.
    pub kernel_share: f64,
    pub server_peak_rss_kb: u64,
}

/// Measures `load` against `spec`, started fresh, and says so on stderr.
pub(super) fn measure(tools: &Tools, spec: &ServerSpec, load: &Load) -> Result<Row> {
    let (server, port) = start(spec, load.pinned.then_some(0), tools.taskset)?;
    let row = load_server(tools, &server, port, spec.name, load);
    server.kill();
    row
}

/// Runs `load` against `server`, already started (listening on `port`), and measures what
/// it costs the server; leaves it running.
pub(super) fn load_server(
    tools: &Tools,
    server: &Process,
    port: u16,
    name: ServerName,
    load: &Load,
) -> Result<Row> {
    let meter = CpuMeter::start(server);
    let result = run_load(tools, port, load);
    let cpu = meter.stop(server);
    let rss_kb = server.status_kb("VmHWM:");
    let report = result?;
    let per_op = |d: Duration| match report.ok {
        0 => 0.0,
        ok => d.as_secs_f64() * 1e6 / ok as f64,
    };
    let row = Row {
        scenario: load.scenario,
        server: name,
        server_cpu_us_per_op: per_op(cpu.on_cpu),
        server_user_us_per_op: per_op(cpu.user()),
        kernel_share: cpu.kernel_share(),
        server_peak_rss_kb: rss_kb,
        load: report,
    };
    eprintln!(
        "bench: {:<18} {:<18} {:>8.0}/s  cpu {:>5.1} us/op ({:.0}% kernel)  rss {:>6} kB  failures {}",
        row.scenario.to_string(),
        row.server.to_string(),
        row.load.rate,
        row.server_cpu_us_per_op,
        row.kernel_share * 100.0,
        row.server_peak_rss_kb,
        row.load.failures()
    );
    Ok(row)
}

/// A server's CPU counters when a load starts: [`CpuMeter::stop`] gives what it spent since.
pub(super) struct CpuMeter {
    on_cpu: Duration,
    ticks: (u64, u64),
}

/// What a server spent over a load.
pub(super) struct CpuUse {
    /// On-CPU time, all threads (`/proc/PID/task/*/schedstat`, nanoseconds).
    pub on_cpu: Duration,
    /// Clock ticks in user space and in the kernel (`utime`, `stime` of `/proc/PID/stat`).
    pub user_ticks: u64,
    pub system_ticks: u64,
}

impl CpuMeter {
    pub fn start(server: &Process) -> CpuMeter {
        CpuMeter {
            on_cpu: server.cpu_time(),
            ticks: server.user_system_ticks(),
        }
    }

    pub fn stop(self, server: &Process) -> CpuUse {
        let on_cpu = server.cpu_time().saturating_sub(self.on_cpu);
        let (user, system) = server.user_system_ticks();
        CpuUse {
            on_cpu,
            user_ticks: user.saturating_sub(self.ticks.0),
            system_ticks: system.saturating_sub(self.ticks.1),
        }
    }
}

impl CpuUse {
    /// `stime / (utime + stime)`; 0 when no tick passed.
    pub fn kernel_share(&self) -> f64 {
        self.system_ticks as f64 / (self.user_ticks + self.system_ticks).max(1) as f64
    }

    /// The user-space time, from its clock ticks.
    pub fn user(&self) -> Duration {
        Duration::from_secs_f64(self.user_ticks as f64 / clock_ticks_per_second())
    }
}

/// `sysconf(_SC_CLK_TCK)`, the unit of `/proc/PID/stat`'s times (100 where it cannot be
/// read, Linux's value).
fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf reads a constant of the system; it takes no pointer.
    match unsafe { libc::sysconf(libc::_SC_CLK_TCK) } {
        n if n > 0 => n as f64,
        _ => 100.0,
    }
}

/// Starts `spec` (pinned to `pin_cpu` when given and `taskset` is there) through
/// proc-harness; the process and the port of its readiness line.
pub(super) fn start(
    spec: &ServerSpec,
    pin_cpu: Option<u32>,
    taskset: bool,
) -> Result<(Process, u16)> {
    let mut cmd = pinned(&spec.argv[0], pin_cpu.filter(|_| taskset));
    cmd.args(&spec.argv[1..]);
    let name = spec.name.to_string();
    let process = Process::start_with(&name, cmd, Stderr::Null)?;
    let port = process
        .port()
        .with_context(|| format!("{name}: no port in {:?}", process.ready()))?;
    Ok((process, port))
}

/// `program`, under `taskset -c CPU` when `cpu` is given.
pub(super) fn pinned(program: impl AsRef<std::ffi::OsStr>, cpu: Option<u32>) -> Command {
    match cpu {
        Some(cpu) => {
            let mut cmd = Command::new("taskset");
            cmd.args(["-c", &cpu.to_string()]).arg(program);
            cmd
        }
        None => Command::new(program),
    }
}

/// `greet-client bench --json` against `port` (on core 1 when the load is pinned), and the
/// report it printed.
pub(super) fn run_load(tools: &Tools, port: u16, load: &Load) -> Result<BenchReport> {
    let mut cmd = pinned(&tools.client, (load.pinned && tools.taskset).then_some(1));
    cmd.args(["bench", "--json", "--port", &port.to_string()])
        .args(["-n", &load.n.to_string(), "-c", &load.c.to_string()])
        .args(["--threads", &load.threads.to_string()])
        .args(["--timeout", load.timeout, "--duration", load.duration]);
    if load.udp {
        cmd.arg("--udp");
    }
    if let Some(size) = load.echo {
        cmd.args(["--echo", "--size", &size.to_string(), "--requests", "0"]);
    }
    let out = cmd
        .stderr(std::process::Stdio::inherit())
        .output()
        .context("run greet-client bench")?;
    report_of(&out.stdout)
}

/// The `BenchReport` that `greet-client bench --json` printed on `stdout`.
pub(super) fn report_of(stdout: &[u8]) -> Result<BenchReport> {
    serde_json::from_slice(stdout).with_context(|| {
        format!(
            "greet-client bench printed no report: {}",
            String::from_utf8_lossy(stdout)
        )
    })
}

/// Compiles `bench/NAME/NAME.c` with the system's C compiler (Debian package gcc) into
/// `target/bench/NAME`, never into the source tree; `libs` go last on the command line.
pub(super) fn build_c(name: &str, libs: &[&str]) -> Result<PathBuf> {
    let dir = target_dir().join("bench");
    std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    let out = dir.join(name);
    let source = root().join("bench").join(name).join(format!("{name}.c"));
    let status = Command::new("cc")
        .args(["-O2", "-Wall", "-Wextra", "-Werror", "-o"])
        .arg(&out)
        .arg(&source)
        .args(libs)
        .status()
        .with_context(|| format!("run cc (Debian package gcc) for bench/{name}"))?;
    if !status.success() {
        bail!("cc {}: {status}", source.display());
    }
    Ok(out)
}

/// 10k connections need more descriptors than the usual soft limit of 1024.
pub(super) fn raise_fd_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid pointer to an rlimit we own.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::names::Logging;

    #[test]
    fn greet_server_logs_unless_quiet_is_asked() {
        let argv = |flags| greet_server_argv(Path::new("gs"), 1, flags).join(" ");
        assert_eq!(
            argv(&["--quiet"]),
            "gs --host 127.0.0.1 --port 0 --threads 1 --quiet"
        );
        assert_eq!(
            argv(Logging::Json.flags()),
            "gs --host 127.0.0.1 --port 0 --threads 1 --log-format json"
        );
    }
}
