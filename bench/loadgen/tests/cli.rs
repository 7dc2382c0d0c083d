//! loadgen against small servers in this process, on loopback: what it counts must be
//! what the servers did, since `cargo xtask bench` holds `greet-client bench` against it.

use std::io::Write;
use std::net::TcpListener;
use std::process::{Command, Output};
use std::thread;

/// A server that writes `reply` to each of `n` connections and closes it.
fn server(reply: &'static [u8], n: usize) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    let port = listener.local_addr().expect("its address").port();
    thread::spawn(move || {
        for stream in listener.incoming().take(n) {
            let Ok(mut stream) = stream else { continue };
            let _ = stream.write_all(reply);
        }
    });
    port
}

fn loadgen(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(args)
        .args(["--max-secs", "60"])
        .output()
        .expect("run loadgen")
}

/// The value of `"key":N` in loadgen's JSON line.
fn field(out: &Output, key: &str) -> u64 {
    let line = String::from_utf8_lossy(&out.stdout);
    let at = line
        .find(&format!("\"{key}\":"))
        .unwrap_or_else(|| panic!("no {key} in {line}"));
    line[at + key.len() + 3..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .unwrap_or_else(|_| panic!("{key} is not a number in {line}"))
}

#[test]
fn every_greeting_is_counted_ok_and_the_exit_status_is_0() {
    let port = server(b"Thank you for connecting", 300).to_string();
    let out = loadgen(&["--port", &port, "-n", "300", "-c", "8", "--threads", "2"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(field(&out, "conns"), 300);
    assert_eq!(field(&out, "ok"), 300);
    assert_eq!(field(&out, "errors"), 0);
    assert_eq!(field(&out, "wrong_payload"), 0);
}

#[test]
fn a_wrong_greeting_is_counted_as_wrong_and_the_exit_status_is_2() {
    let port = server(b"Thank you for conn", 20).to_string();
    let out = loadgen(&["--port", &port, "-n", "20", "-c", "4"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert_eq!(field(&out, "ok"), 0);
    assert_eq!(field(&out, "wrong_payload"), 20);
}

#[test]
fn a_port_nobody_listens_on_is_counted_as_refused() {
    // Bound and dropped: nothing listens there now.
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
        .to_string();
    let out = loadgen(&["--port", &port, "-n", "10", "-c", "2"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert_eq!(field(&out, "ok"), 0);
    assert_eq!(field(&out, "refused"), 10);
}

#[test]
fn a_usage_error_exits_1_and_names_the_problem() {
    let out = loadgen(&["-n", "5"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--port is required"));
}
