//! The examples under real third-party clients, as their users would run them: `http`
//! under `wrk` (keep-alive, and 16-deep pipelining), `redis` under `redis-benchmark`
//! (`-P 1` and `-P 16`) and `redis-cli` (a 1 MiB value intact), `proxy` in front of each,
//! and in front of `echo` with 50 MB each way and a half-close; `connect_proxy` under
//! `curl --proxytunnel`, to a target named `localhost`, with 50 MB each way.
//!
//! The clients come from Debian (`wrk`, `redis-tools`, `curl`). Where one is missing the test says
//! `SKIPPED` and passes, except when `CI` is set (CI installs them): then it fails.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use crate::examples::Example;
use crate::util::{TempDir, BOUND};

/// `name` on the PATH, or `None` (with a `SKIPPED` line) where it is missing outside CI.
fn tool(name: &str, package: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|path| path.is_file())
    });
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "{name} is missing (Debian package {package}); CI installs it"
        );
        eprintln!("SKIPPED: {name} is not installed (Debian package {package})");
    }
    found
}

/// Runs a client to completion within `BOUND` (`timeout` ends it otherwise).
fn run(program: &PathBuf, args: &[&str]) -> Output {
    run_within(BOUND, program, args)
}

/// Runs a client to completion within `bound` (`timeout` ends it otherwise).
fn run_within(bound: Duration, program: &PathBuf, args: &[&str]) -> Output {
    let output = Command::new("timeout")
        .arg(bound.as_secs().to_string())
        .arg(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", program.display()));
    assert!(
        output.status.success(),
        "{} {args:?}: {}\n{}\n{}",
        program.display(),
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// The number after `label` in `text`, if any.
fn number_after(text: &str, label: &str) -> Option<u64> {
    let rest = &text[text.find(label)? + label.len()..];
    rest.trim_start()
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

/// 16 requests per write, as the TechEmpower plaintext test sends them.
const PIPELINE_LUA: &str = r#"
init = function(args)
  local r = {}
  for i = 1, 16 do r[i] = wrk.format(nil, "/") end
  req = table.concat(r)
end
request = function() return req end
"#;

/// `wrk` for one second, without and with pipelining: requests answered, no socket error,
/// no non-2xx response.
fn check_http(wrk: &PathBuf, addr: SocketAddr) {
    let dir = TempDir::new("wrk");
    let script = dir.0.join("pipeline.lua");
    std::fs::write(&script, PIPELINE_LUA).unwrap();
    let url = format!("http://{addr}/");
    for extra in [vec![], vec!["-s", script.to_str().unwrap()]] {
        let mut args = vec!["-t1", "-c10", "-d1s"];
        args.extend(extra.iter());
        args.push(&url);
        let out = run(wrk, &args);
        let text = String::from_utf8_lossy(&out.stdout);
        // "  219599 requests in 2.10s, 16.34MB read"
        let answered = text
            .lines()
            .find(|l| l.contains("requests in"))
            .and_then(|l| number_after(l, ""))
            .unwrap_or(0);
        assert!(answered > 0, "wrk {args:?}:\n{text}");
        assert!(!text.contains("Socket errors"), "wrk {args:?}:\n{text}");
        assert!(!text.contains("Non-2xx"), "wrk {args:?}:\n{text}");
    }
}

/// `redis-benchmark` with `-P 1` and `-P 16` (every test completes) and `redis-cli`
/// carrying a 1 MiB value through `SET` and `GET` intact.
fn check_redis(bench: &PathBuf, cli: &PathBuf, addr: SocketAddr) {
    let port = addr.port().to_string();
    for pipeline in ["1", "16"] {
        let out = run(
            bench,
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &port,
                "-t",
                "ping,set,get",
                "-n",
                "5000",
                "-q",
                "-P",
                pipeline,
            ],
        );
        let text = String::from_utf8_lossy(&out.stdout);
        for test in ["PING_INLINE", "PING_MBULK", "SET", "GET"] {
            assert!(
                // Progress lines end in `\r`, the figure in `\n`.
                text.split(['\r', '\n']).map(str::trim_start).any(|l| l
                    .starts_with(&format!("{test}:"))
                    && l.contains("requests per second")),
                "redis-benchmark -P {pipeline}: no {test} figure:\n{text}"
            );
        }
        assert!(
            !text.contains("ERR"),
            "redis-benchmark -P {pipeline}:\n{text}"
        );
    }
    // 1 MiB of printable bytes (redis-cli -x reads the value from stdin; --raw prints it
    // back with a newline).
    let value: Vec<u8> = (0..1u32 << 20)
        .map(|i| b'!' + (i.wrapping_mul(2_654_435_761) >> 25) as u8 % 90)
        .collect();
    let mut set = Command::new(cli)
        .args(["-h", "127.0.0.1", "-p", &port, "-x", "set", "big"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start redis-cli");
    set.stdin.take().unwrap().write_all(&value).unwrap();
    let out = set.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "OK");
    let out = run(
        cli,
        &["-h", "127.0.0.1", "-p", &port, "--raw", "get", "big"],
    );
    let got = out.stdout.strip_suffix(b"\n").unwrap_or(&out.stdout);
    assert!(
        got == value,
        "GET gave {} bytes, not the 1 MiB SET",
        got.len()
    );
}

#[test]
fn http_answers_wrk_with_keep_alive_and_16_deep_pipelining() {
    let Some(wrk) = tool("wrk", "wrk") else {
        return;
    };
    let http = Example::start("http", &["127.0.0.1:0"]);
    check_http(&wrk, http.addr);
    let proxy = Example::start("proxy", &["127.0.0.1:0", &http.addr.to_string()]);
    check_http(&wrk, proxy.addr);
}

#[test]
fn redis_answers_redis_benchmark_and_redis_cli_directly_and_through_the_proxy() {
    let (Some(bench), Some(cli)) = (
        tool("redis-benchmark", "redis-tools"),
        tool("redis-cli", "redis-tools"),
    ) else {
        return;
    };
    let redis = Example::start("redis", &["127.0.0.1:0"]);
    check_redis(&bench, &cli, redis.addr);
    let proxy = Example::start("proxy", &["127.0.0.1:0", &redis.addr.to_string()]);
    check_redis(&bench, &cli, proxy.addr);
}

#[test]
fn pipelined_gets_of_a_large_value_to_a_client_that_never_reads_stay_bounded() {
    let redis = Example::start("redis", &["127.0.0.1:0"]);
    let mut client = TcpStream::connect(redis.addr).unwrap();
    client.set_read_timeout(Some(BOUND)).unwrap();
    let value = vec![b'v'; 1 << 20];
    let mut set = format!("*3\r\n$3\r\nSET\r\n$3\r\nbig\r\n${}\r\n", value.len()).into_bytes();
    set.extend_from_slice(&value);
    set.extend_from_slice(b"\r\n");
    client.write_all(&set).unwrap();
    let mut ok = [0; 5];
    client.read_exact(&mut ok).unwrap();
    assert_eq!(&ok, b"+OK\r\n");
    // 2,000 GETs of 1 MiB (2 GB of replies) in one go, and nothing read.
    let before = redis.rss();
    client
        .write_all(&b"*2\r\n$3\r\nGET\r\n$3\r\nbig\r\n".repeat(2000))
        .unwrap();
    crate::util::holds_for(
        "the server's memory to stay bounded",
        std::time::Duration::from_millis(500),
        || redis.rss() < before + 16 * 1024 * 1024,
    );
    // The replies all come, once the client reads.
    let mut total = 0u64;
    let mut buf = vec![0; 1 << 20];
    let want = 2000 * (value.len() as u64 + b"$1048576\r\n\r\n".len() as u64);
    while total < want {
        let n = client.read(&mut buf).expect("the replies");
        assert!(n > 0, "EOF after {total} of {want} bytes");
        total += n as u64;
    }
}

#[test]
fn proxy_carries_50_mb_each_way_through_an_echo_server_and_passes_the_half_close() {
    const SIZE: usize = 50 * 1000 * 1000;
    let echo = Example::start("echo", &["127.0.0.1:0"]);
    let proxy = Example::start("proxy", &["127.0.0.1:0", &echo.addr.to_string()]);
    let mut conn = TcpStream::connect(proxy.addr).unwrap();
    conn.set_read_timeout(Some(BOUND)).unwrap();
    // Pseudo-random bytes (xorshift): a loss, a repeat or a reordering shows.
    let mut x = 0x2545_f491_4f6c_dd1d_u64;
    let data: Vec<u8> = (0..SIZE)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let writer = {
        let mut conn = conn.try_clone().unwrap();
        let data = data.clone();
        std::thread::spawn(move || {
            conn.write_all(&data).expect("send 50 MB");
            conn.shutdown(Shutdown::Write).expect("half-close");
        })
    };
    let mut echoed = Vec::with_capacity(SIZE);
    conn.read_to_end(&mut echoed)
        .expect("the echo, then the EOF passed back");
    writer.join().unwrap();
    assert_eq!(echoed.len(), SIZE);
    assert!(echoed == data, "the echo differs from what was sent");
}

/// `n` pseudo-random bytes (xorshift): a loss, a repeat or a reordering shows.
#[cfg(feature = "resolver")]
fn random_bytes(n: usize) -> Vec<u8> {
    let mut x = 0x2545_f491_4f6c_dd1d_u64;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// An HTTP server for one request, on 127.0.0.1: reads the whole body the request's
/// `Content-Length` announces, then answers `200` with that same body.
#[cfg(feature = "resolver")]
fn echo_http_once() -> (SocketAddr, std::thread::JoinHandle<usize>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        let (mut conn, _) = listener
            .accept()
            .expect("curl's connection, through the proxy");
        conn.set_read_timeout(Some(BOUND)).unwrap();
        let mut input = Vec::new();
        let mut chunk = vec![0; 1 << 16];
        let head_end = loop {
            if let Some(i) = input.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let n = conn.read(&mut chunk).expect("the request head");
            assert!(n > 0, "EOF inside the request head");
            input.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&input[..head_end]).to_ascii_lowercase();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .expect("a Content-Length");
        let mut body = input.split_off(head_end);
        while body.len() < length {
            let n = conn.read(&mut chunk).expect("the request body");
            assert!(n > 0, "EOF after {} of {length} body bytes", body.len());
            body.extend_from_slice(&chunk[..n]);
        }
        let reply =
            format!("HTTP/1.1 200 OK\r\nContent-Length: {length}\r\nConnection: close\r\n\r\n");
        conn.write_all(reply.as_bytes()).unwrap();
        conn.write_all(&body).unwrap();
        conn.shutdown(Shutdown::Write).unwrap();
        body.len()
    });
    (addr, server)
}

// The example needs the `resolver` feature (its `required-features`).
#[cfg(feature = "resolver")]
#[test]
fn connect_proxy_tunnels_curl_to_a_target_by_name_with_50_mb_each_way() {
    const SIZE: usize = 50 * 1000 * 1000;
    let Some(curl) = tool("curl", "curl") else {
        return;
    };
    let proxy = Example::start("connect_proxy", &["127.0.0.1:0"]);
    let (target, server) = echo_http_once();
    let dir = TempDir::new("curl");
    let (sent, received) = (dir.0.join("sent"), dir.0.join("received"));
    let data = random_bytes(SIZE);
    std::fs::write(&sent, &data).unwrap();
    let proxy_url = format!("http://{}", proxy.addr);
    // The target by name: curl sends `CONNECT localhost:PORT`, the proxy resolves it.
    let url = format!("http://localhost:{}/echo", target.port());
    let upload = format!("@{}", sent.display());
    let out = run_within(
        BOUND * 6,
        &curl,
        &[
            "--silent",
            "--show-error",
            "--fail",
            "--proxytunnel",
            "--proxy",
            &proxy_url,
            // No `Expect: 100-continue` wait: the body goes at once.
            "--header",
            "Expect:",
            "--data-binary",
            &upload,
            "--output",
            received.to_str().unwrap(),
            "--write-out",
            "%{http_connect} %{http_code} %{size_upload} %{size_download}",
            &url,
        ],
    );
    assert_eq!(server.join().expect("the target's thread"), SIZE);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("200 200 {SIZE} {SIZE}"),
        "CONNECT answered 200, the target 200, all of it up and down"
    );
    let got = std::fs::read(&received).unwrap();
    assert_eq!(got.len(), SIZE);
    assert!(got == data, "the body came back altered");
}
