//! `cargo xtask dist`: release binaries, shell completions and man pages under
//! `target/dist/`.
//!
//! The completions and man pages come from each binary's own clap definitions: the release
//! binary is run as `BINARY __generate DIR` (a hidden first argument, see
//! `crates/greet-server/src/cli.rs`), which writes them with `clap_complete` and
//! `clap_mangen`. So xtask needs neither clap nor a copy of any flag, and what ships
//! matches the binary it ships with.
//!
//! ```text
//! target/dist/bin/greet-server
//! target/dist/completions/greet-server.bash   (bash)
//! target/dist/completions/_greet-server       (zsh)
//! target/dist/completions/greet-server.fish   (fish)
//! target/dist/man/man1/greet-server.1
//! ```

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{cargo, root, run_step};

/// The binaries shipped.
const BINARIES: [&str; 2] = ["greet-server", "greet-client"];

pub fn run() -> Result<(), String> {
    let mut build = cargo();
    build.args(["build", "--release"]);
    for name in BINARIES {
        build.args(["-p", name]);
    }
    run_step("cargo build --release", &mut build)?;

    let release = target_dir().join("release");
    let dist = target_dir().join("dist");
    if dist.exists() {
        std::fs::remove_dir_all(&dist).map_err(|e| format!("remove {}: {e}", dist.display()))?;
    }
    let bin = dist.join("bin");
    std::fs::create_dir_all(&bin).map_err(|e| format!("create {}: {e}", bin.display()))?;

    eprintln!("\n==> completions and man pages");
    for name in BINARIES {
        let shipped = bin.join(name);
        std::fs::copy(release.join(name), &shipped)
            .map_err(|e| format!("copy {} to {}: {e}", name, shipped.display()))?;
        generate(&shipped, &dist)?;
    }
    let mut files = Vec::new();
    list(&dist, &mut files).map_err(|e| format!("list {}: {e}", dist.display()))?;
    files.sort();
    for file in files {
        println!("{}", file.display());
    }
    Ok(())
}

/// Runs `binary __generate dir` and checks that it wrote its four files.
pub fn generate(binary: &Path, dir: &Path) -> Result<(), String> {
    let name = binary
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| format!("{}: not a binary name", binary.display()))?;
    let out = Command::new(binary)
        .arg("__generate")
        .arg(dir)
        .output()
        .map_err(|e| format!("run {}: {e}", binary.display()))?;
    if !out.status.success() {
        return Err(format!(
            "{name} __generate {}: {} {}",
            dir.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    for file in outputs(name) {
        let path = dir.join(&file);
        if !path.is_file() {
            return Err(format!(
                "{name} __generate did not write {}",
                path.display()
            ));
        }
    }
    Ok(())
}

/// The files `NAME __generate` writes, relative to its folder.
pub fn outputs(name: &str) -> [PathBuf; 4] {
    [
        Path::new("completions").join(format!("{name}.bash")),
        Path::new("completions").join(format!("_{name}")),
        Path::new("completions").join(format!("{name}.fish")),
        Path::new("man").join("man1").join(format!("{name}.1")),
    ]
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root().join("target"), PathBuf::from)
}

fn list(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            list(&path, out)?;
        } else {
            out.push(path);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The debug greet-server, built with the cargo running this test, next to it.
    fn greet_server() -> PathBuf {
        let status = cargo()
            .args(["build", "--quiet", "-p", "greet-server"])
            .status()
            .expect("run cargo build");
        assert!(status.success(), "cargo build -p greet-server failed");
        // target/debug/deps/xtask-<hash> -> target/debug
        let exe = std::env::current_exe().expect("current_exe");
        exe.parent()
            .and_then(Path::parent)
            .expect("test binary lives in target/<profile>/deps")
            .join("greet-server")
    }

    #[test]
    fn greet_server_generates_completions_and_a_man_page_naming_its_flags() {
        let dir = std::env::temp_dir().join(format!("xtask-dist-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(generate(&greet_server(), &dir), Ok(()));
        for file in outputs("greet-server") {
            let text = std::fs::read_to_string(dir.join(&file)).unwrap();
            // roff escapes the dashes of option names.
            let text = text.replace("\\-", "-");
            for flag in ["--proxy-protocol", "--message", "--udp-rate"] {
                let name = flag.trim_start_matches('-');
                assert!(
                    text.contains(flag) || text.contains(name),
                    "{} does not mention {flag}",
                    file.display()
                );
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_binary_that_fails_otherwise_is_an_error() {
        let dir = std::env::temp_dir().join(format!("xtask-dist-false-{}", std::process::id()));
        let err = generate(Path::new("/bin/false"), &dir).unwrap_err();
        assert!(err.starts_with("false __generate"), "{err}");
    }
}
