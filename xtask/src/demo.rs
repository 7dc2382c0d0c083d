//! `cargo xtask demo`: the tutorial's demo, end to end, with every output checked.
//!
//! "Run server.py in the background, then run client.py": the server starts on an
//! ephemeral port (its readiness line says which), the client runs over TCP; then one server
//! answers TCP, UDP and a Unix socket at once; the lookup script runs, and each server is
//! stopped with SIGTERM.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::{cargo, root, run_step};
use anyhow::{anyhow, bail, Context, Result};
use proc_harness::{port_of, Process};

const GREETING: &str = "Thank you for connecting";

/// How a failed write to stdout starts its error: `cargo xtask demo | head -5` closes the
/// pipe early, and the demo then stops (each server guard is dropped, killing its server)
/// instead of panicking in `println!` or running on unseen.
const STDOUT_CLOSED: &str = "stdout closed";

/// `println!` that returns a closed stdout as an error (`?`) instead of panicking.
macro_rules! say {
    ($($arg:tt)*) => {
        write_out(&format!("{}\n", format_args!($($arg)*)))?
    };
}

/// Writes `text` to stdout and flushes it; a failure is a [`STDOUT_CLOSED`] error.
fn write_out(text: &str) -> Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .context(STDOUT_CLOSED)
}

pub fn run() -> Result<()> {
    run_step(
        "cargo build (greet-server, greet-client)",
        cargo().args(["build", "-p", "greet-server", "-p", "greet-client"]),
    )?;
    let bin = root().join("target").join("debug");
    let bin =
        std::env::var_os("CARGO_TARGET_DIR").map_or(bin, |dir| PathBuf::from(dir).join("debug"));
    let server = bin.join("greet-server");
    let client = bin.join("greet-client");

    let mut failures = Vec::new();
    check("TCP", tcp(&server, &client), &mut failures)?;
    check(
        "TCP, UDP and Unix in one server",
        all_transports(&server, &client),
        &mut failures,
    )?;
    check("lookup", lookup(&client), &mut failures)?;
    if failures.is_empty() {
        say!("\ndemo: every step printed what it should");
        Ok(())
    } else {
        bail!("demo failed: {}", failures.join("; "))
    }
}

/// Records a failed step and goes on, except when stdout is closed: then nothing more can
/// be shown, and the demo stops.
fn check(step: &str, result: Result<()>, failures: &mut Vec<String>) -> Result<()> {
    match result {
        Err(e) if e.to_string() == STDOUT_CLOSED => Err(e),
        Err(e) => {
            say!("!! {step}: {e:#}");
            failures.push(format!("{step}: {e:#}"));
            Ok(())
        }
        Ok(()) => Ok(()),
    }
}

/// The tutorial's own demo: the server on this host's name (port 0 instead of 12345, so the
/// demo never collides with a server already running), the client against it.
fn tcp(server: &Path, client: &Path) -> Result<()> {
    say!("\n## TCP: the tutorial's server.py and client.py");
    let mut cmd = Command::new(server);
    cmd.args(["--port", "0", "--threads", "1"]);
    let srv = Process::start("greet-server", cmd)?;
    let ready = srv.ready();
    say!("$ greet-server --port 0 &\n{ready}");
    let port = srv
        .port()
        .with_context(|| format!("no port in {ready:?}"))?;
    run_client(client, &["--port", &port.to_string()])?;
    let line = srv
        .next_line(Duration::from_secs(10))
        .context("the server printed no 'Got connection from' line")?;
    say!("[server] {line}");
    let result = if line.starts_with("Got connection from ('") {
        Ok(())
    } else {
        Err(anyhow!("unexpected server line {line:?}"))
    };
    stop(srv)?;
    result
}

/// One server answering TCP, UDP and a Unix socket at once (TCP and UDP on one port
/// number, as inetd's built-in services do), each with the tutorial's client.
fn all_transports(server: &Path, client: &Path) -> Result<()> {
    say!("\n## One server, three transports: TCP and UDP on one port, and a Unix socket");
    let dir = std::env::temp_dir().join(format!("greet-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    let path = dir.join("greet.sock");
    let shown = path.display().to_string();
    let mut cmd = Command::new(server);
    cmd.args(["--tcp", "--udp", "--unix", &shown]).args([
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--threads",
        "1",
    ]);
    let result = Process::start("greet-server --tcp --udp --unix", cmd)
        .map_err(anyhow::Error::from)
        .and_then(|srv| {
            say!("$ greet-server --tcp --udp --unix {shown} --host 127.0.0.1 --port 0 &");
            let served = serve_all(&srv, client, &shown);
            let stopped = stop(srv);
            served.and(stopped)
        });
    let leftover = path.exists();
    let _ = std::fs::remove_dir_all(&dir);
    result?;
    if leftover {
        bail!("the server left its socket file {shown} behind");
    }
    Ok(())
}

fn serve_all(srv: &Process, client: &Path, unix: &str) -> Result<()> {
    let wait = Duration::from_secs(10);
    let tcp = srv.ready();
    let udp = srv.next_line(wait).context("no UDP readiness line")?;
    let unix_ready = srv.next_line(wait).context("no Unix readiness line")?;
    say!("{tcp}\n{udp}\n{unix_ready}");
    let port = srv.port().with_context(|| format!("no port in {tcp:?}"))?;
    if port_of(&udp) != Some(port) || !udp.ends_with(" udp") {
        bail!("UDP is not on TCP's port {port}: {udp:?}");
    }
    if unix_ready != format!("Listening on '{unix}' unix") {
        bail!("unexpected Unix readiness line {unix_ready:?}");
    }
    let port = port.to_string();
    let steps: [(&[&str], &str); 3] = [
        (
            &["--host", "127.0.0.1", "--port", &port],
            "Got connection from ('127.0.0.1', ",
        ),
        (
            &["--udp", "--host", "127.0.0.1", "--port", &port],
            "Got datagram from ('127.0.0.1', ",
        ),
        (&["--unix", unix], "Got connection from "),
    ];
    for (args, logged) in steps {
        run_client(client, args)?;
        let line = srv.next_line(wait).context("the server printed no line")?;
        say!("[server] {line}");
        if !line.starts_with(logged) {
            bail!("unexpected server line {line:?}");
        }
    }
    Ok(())
}

/// The tutorial's lookup script. Its own host needs the network, which a sandbox may not
/// have: its failure is reported, not fatal. Then a lookup that resolves offline.
fn lookup(client: &Path) -> Result<()> {
    say!("\n## The lookup script: getaddrinfo and gethostname");
    let output = shown_client(client, &["lookup", "tutorialspoint.com", "www"])?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    if output.status.success() {
        say!("(resolved: this machine has a network)");
    } else if stderr.starts_with("greet-client: lookup tutorialspoint.com www: [Errno ") {
        say!("{}(no network here: reported, not fatal)", stderr);
    } else {
        bail!("unexpected lookup failure: {stderr}");
    }

    let output = shown_client(client, &["lookup", "localhost", "www"])?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!(
            "lookup localhost www failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let mut lines = stdout.lines();
    let first = lines.next().unwrap_or_default();
    if !first.starts_with("[(") || !first.contains(", 80)") {
        bail!("lookup printed {first:?}, not a pprint list with port 80");
    }
    if lines.next().is_none_or(str::is_empty) {
        bail!("lookup printed no hostname line");
    }
    Ok(())
}

/// `greet-client ARGS` as a user types it: the command line, then what it prints on stdout.
fn shown_client(client: &Path, args: &[&str]) -> Result<std::process::Output> {
    say!("$ greet-client {}", args.join(" "));
    let output = Command::new(client)
        .args(args)
        .output()
        .context("start greet-client")?;
    write_out(&String::from_utf8_lossy(&output.stdout))?;
    Ok(output)
}

/// The tutorial's client, which must print the greeting.
fn run_client(client: &Path, args: &[&str]) -> Result<()> {
    let output = shown_client(client, args)?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    eprint!("{}", String::from_utf8_lossy(&output.stderr));
    if !output.status.success() {
        bail!("greet-client exited with {}", output.status);
    }
    if stdout != format!("{GREETING}\n") {
        bail!("greet-client printed {stdout:?}, not {GREETING:?}");
    }
    Ok(())
}

/// SIGTERM: the server must exit 0 and print its summary.
fn stop(srv: Process) -> Result<()> {
    let name = srv.name().to_string();
    let (status, stderr) = srv.stop()?;
    say!("$ kill -TERM %1\n{}", stderr.trim_end());
    if !status.success() {
        bail!("{name} exited with {status} after SIGTERM");
    }
    if !stderr.contains("greet-server: accepted") {
        bail!("{name} printed no summary on SIGTERM");
    }
    Ok(())
}
