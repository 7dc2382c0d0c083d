//! `--log-format text|json`: one line per connection as it ends, with the time, transport,
//! peer (and the PROXY client beside it), outcome, bytes sent and duration; diagnostics on
//! stderr carry their time too.

use std::io::{Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::process::Command;

use e2e::{bin, read_all, set_linger_zero, temp_dir, Process, Server, Stderr, PATIENCE};

const GREETING: &[u8] = b"Thank you for connecting";

/// Stops a server; the lines it printed after the readiness line, and its stderr.
fn stop(server: Server) -> (Vec<String>, String) {
    server.signal(libc::SIGTERM);
    let lines: Vec<String> = std::iter::from_fn(|| server.next_line()).collect();
    let (status, stderr) = server.terminate_after_signal();
    assert!(status.success(), "{status}: {stderr}");
    (lines, stderr)
}

/// Whether `text` is an RFC 3339 UTC time with milliseconds: `2024-02-29T12:34:56.789Z`.
fn is_rfc3339_millis(text: &str) -> bool {
    let shape = "dddd-dd-ddTdd:dd:dd.dddZ";
    text.len() == shape.len()
        && text.bytes().zip(shape.bytes()).all(|(c, s)| match s {
            b'd' => c.is_ascii_digit(),
            _ => c == s,
        })
}

/// The JSON line about the client whose local port is `port`.
fn json_for_port(lines: &[serde_json::Value], port: u16) -> &serde_json::Value {
    let peer = format!("127.0.0.1:{port}");
    lines
        .iter()
        .find(|l| l["peer"] == peer.as_str())
        .unwrap_or_else(|| panic!("no line for {peer}: {lines:#?}"))
}

#[test]
fn json_lines_tell_greeted_reset_and_timed_out_apart() {
    let dir = temp_dir("access-json");
    let message = dir.join("8mib.txt");
    std::fs::write(&message, vec![b'g'; 8 << 20]).unwrap();
    let server = Server::local(&[
        "--threads",
        "1",
        "--log-format",
        "json",
        "--write-timeout",
        "300ms",
        "--message-file",
        message.to_str().unwrap(),
    ]);
    // Greeted: reads it all.
    let greeted = TcpStream::connect(server.addr()).unwrap();
    let greeted_port = greeted.local_addr().unwrap().port();
    assert_eq!(read_all(greeted).unwrap().len(), 8 << 20);
    // Reset: reads a little, then resets with most of the greeting unsent.
    let mut reset = TcpStream::connect(server.addr()).unwrap();
    let reset_port = reset.local_addr().unwrap().port();
    let mut start = [0u8; 16];
    reset.set_read_timeout(Some(PATIENCE)).unwrap();
    reset.read_exact(&mut start).unwrap();
    set_linger_zero(&reset);
    drop(reset);
    // Timed out: does not read until the server has given up on it (its line is out).
    let stalled = TcpStream::connect(server.addr()).unwrap();
    let stalled_port = stalled.local_addr().unwrap().port();
    let lines: Vec<serde_json::Value> = (0..3)
        .map(|_| {
            let line = server.next_line().expect("a line per connection");
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"))
        })
        .collect();
    let mut got = Vec::new();
    stalled.set_read_timeout(Some(PATIENCE)).unwrap();
    let _ = (&stalled).read_to_end(&mut got);
    assert!(got.len() < 8 << 20, "the stalled client got it all");
    let (rest, _) = stop(server);
    assert!(rest.is_empty(), "{rest:?}");
    for line in &lines {
        assert!(is_rfc3339_millis(line["time"].as_str().unwrap()), "{line}");
        assert_eq!(line["transport"], "tcp", "{line}");
        assert!(line["duration_ms"].as_f64().unwrap() >= 0.0, "{line}");
        assert!(line.get("client").is_none(), "{line}");
    }
    let greeted = json_for_port(&lines, greeted_port);
    assert_eq!(greeted["outcome"], "greeted", "{greeted}");
    assert_eq!(greeted["sent"], 8 << 20, "{greeted}");
    let reset = json_for_port(&lines, reset_port);
    assert_eq!(reset["outcome"], "reset", "{reset}");
    assert!(reset["sent"].as_u64().unwrap() < 8 << 20, "{reset}");
    let stalled = json_for_port(&lines, stalled_port);
    assert_eq!(stalled["outcome"], "timed-out", "{stalled}");
    // It was given up after the write timeout, not before.
    assert!(
        stalled["duration_ms"].as_f64().unwrap() >= 300.0,
        "{stalled}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn text_lines_name_the_proxy_client_beside_the_peer_and_each_datagram() {
    let server = Server::local(&[
        "--threads",
        "1",
        "--tcp",
        "--udp",
        "--proxy-protocol",
        "--log-format",
        "text",
    ]);
    let mut proxied = TcpStream::connect(server.addr()).unwrap();
    let proxy_port = proxied.local_addr().unwrap().port();
    proxied
        .write_all(b"PROXY TCP4 192.0.2.7 198.51.100.1 56324 443\r\n")
        .unwrap();
    assert_eq!(read_all(proxied).unwrap(), GREETING);
    let mut broken = TcpStream::connect(server.addr()).unwrap();
    let broken_port = broken.local_addr().unwrap().port();
    broken.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
    assert_eq!(read_all(broken).unwrap(), b"");
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.set_read_timeout(Some(PATIENCE)).unwrap();
    udp.send_to(b"hi", server.addr()).unwrap();
    let mut buf = [0u8; 64];
    let n = udp.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], GREETING);

    let (mut lines, _) = stop(server);
    lines.retain(|l| !l.starts_with("Listening on "));
    assert_eq!(lines.len(), 3, "{lines:#?}");
    for line in &lines {
        let (time, _) = line.split_once(' ').unwrap();
        assert!(is_rfc3339_millis(time), "{line}");
    }
    let find = |needle: &str| {
        lines
            .iter()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no line with {needle}: {lines:#?}"))
    };
    let proxied = find(&format!("peer=127.0.0.1:{proxy_port} "));
    assert!(
        proxied.contains(
            " tcp peer=127.0.0.1:{proxy_port} client=192.0.2.7:56324 outcome=greeted sent=24 \
             duration_ms="
                .replace("{proxy_port}", &proxy_port.to_string())
                .as_str()
        ),
        "{proxied}"
    );
    let broken = find(&format!("peer=127.0.0.1:{broken_port} "));
    assert!(broken.contains(" outcome=proxy-error sent=0 "), "{broken}");
    let datagram = find(" udp ");
    let udp_port = udp.local_addr().unwrap().port();
    assert!(
        datagram.contains(&format!(
            " udp peer=127.0.0.1:{udp_port} outcome=greeted sent=24 duration_ms=0.000"
        )),
        "{datagram}"
    );
}

#[test]
fn diagnostics_on_stderr_carry_their_time() {
    let mut cmd = Command::new(bin("greet-server"));
    cmd.args([
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--proxy-protocol",
        "--quiet",
    ])
    .env("RUST_LOG", "info");
    let mut server = Process::spawn("greet-server", cmd, Stderr::Piped).unwrap();
    server.wait_ready(PATIENCE).unwrap();
    let port = server.port().unwrap();
    let mut broken = TcpStream::connect(("127.0.0.1", port)).unwrap();
    broken.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
    assert_eq!(read_all(broken).unwrap(), b"");
    let (_, stderr) = server.stop().unwrap();
    let line = stderr
        .lines()
        .find(|l| l.contains("bad signature"))
        .unwrap_or_else(|| panic!("no line about the bad header: {stderr}"));
    // `[2024-02-29T12:34:56.789Z INFO  greet_server::service] ...`
    let time = line
        .strip_prefix('[')
        .and_then(|rest| rest.split(' ').next())
        .unwrap_or_default();
    assert!(is_rfc3339_millis(time), "{line}");
    assert!(line.contains(" INFO "), "{line}");
}

#[test]
fn the_help_and_man_page_document_rust_log_and_the_formats() {
    let out = Command::new(bin("greet-server"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for needle in ["RUST_LOG", "--log-format", "tutorial", "json", "RFC 3339"] {
        assert!(help.contains(needle), "--help lacks {needle}: {help}");
    }
}
