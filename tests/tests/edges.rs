//! What a newcomer hits first (issue 15): the client's address fallback and reads, the
//! server's `--host ""`, `--unix-mode`, and the edge values of its flags.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::{Duration, Instant};

use e2e::{bin, client, server_output, temp_dir, Server, PATIENCE};

const GREETING: &[u8] = b"Thank you for connecting";

#[test]
fn unix_mode_sets_the_socket_files_permissions_whatever_the_umask() {
    let dir = temp_dir("unix-mode");
    for (mode, want) in [("660", 0o660), ("0666", 0o666), ("600", 0o600)] {
        let path = dir.join(format!("greet-{mode}.sock"));
        let shown = path.to_str().unwrap();
        let server = Server::start(&["--unix", shown, "--unix-mode", mode]);
        let got = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(got, want, "--unix-mode {mode}: the file is {got:o}");
        let out = client(&["--unix", shown]);
        assert_eq!(out.stdout, b"Thank you for connecting\n", "{out:?}");
        let (status, _) = server.terminate();
        assert!(status.success());
    }
    // Without the flag the umask decides, as before; a bad mode or one without --unix is a
    // bad argument.
    for args in [
        &["--unix", "/tmp/x.sock", "--unix-mode", "999"][..],
        &["--unix", "/tmp/x.sock", "--unix-mode", "1777"],
        &["--unix", "/tmp/x.sock", "--unix-mode", "rw"],
        &["--unix-mode", "660"],
    ] {
        let out = server_output(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("--unix"),
            "{out:?}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
