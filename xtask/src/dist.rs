//! `cargo xtask dist`: release binaries, shell completions and man pages under
//! `target/dist/`.
//!
//! The completions and man pages come from each binary's own clap definitions: the release
//! binary is run as `BINARY __generate DIR` (a hidden first argument, see
//! `crates/greet-server/src/cli.rs`), which writes them with `clap_complete` and
//! `clap_mangen`. So xtask needs neither clap nor a copy of any flag, and what ships
//! matches the binary it ships with.
//!
//! The binaries are built with the `release-dist` profile (the root `Cargo.toml`): release,
//! without debug info and with symbols stripped by rustc (`strip = true`), so no external
//! `strip` is needed; 9.6 MB became 1.6 MB. Each shipped binary is checked (its ELF section
//! table: no `.symtab`, no DWARF) and its size printed.
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

use anyhow::{bail, Context, Result};

use crate::{cargo, root, run_step};

/// The binaries shipped.
const BINARIES: [&str; 2] = ["greet-server", "greet-client"];

/// The Cargo profile they are built with (not `dist`: its output folder would be
/// `target/dist`, the folder this task fills).
const PROFILE: &str = "release-dist";

pub fn run() -> Result<()> {
    let mut build = cargo();
    build.args(["build", "--profile", PROFILE]);
    for name in BINARIES {
        build.args(["-p", name]);
    }
    run_step(&format!("cargo build --profile {PROFILE}"), &mut build)?;

    let release = target_dir().join(PROFILE);
    let dist = target_dir().join("dist");
    if dist.exists() {
        std::fs::remove_dir_all(&dist).with_context(|| format!("remove {}", dist.display()))?;
    }
    let bin = dist.join("bin");
    std::fs::create_dir_all(&bin).with_context(|| format!("create {}", bin.display()))?;

    eprintln!("\n==> completions and man pages");
    for name in BINARIES {
        let shipped = bin.join(name);
        std::fs::copy(release.join(name), &shipped)
            .with_context(|| format!("copy {} to {}", name, shipped.display()))?;
        if !is_stripped(&shipped)? {
            bail!(
                "{} has symbols or debug info: profile {PROFILE} must set strip = true",
                shipped.display()
            );
        }
        let size = std::fs::metadata(&shipped)
            .with_context(|| format!("{}", shipped.display()))?
            .len();
        eprintln!("{name}: {:.1} MB, stripped", size as f64 / 1e6);
        generate(&shipped, &dist)?;
    }
    let mut files = Vec::new();
    list(&dist, &mut files).with_context(|| format!("list {}", dist.display()))?;
    files.sort();
    for file in files {
        println!("{}", file.display());
    }
    Ok(())
}

/// Runs `binary __generate dir` and checks that it wrote its four files.
pub fn generate(binary: &Path, dir: &Path) -> Result<()> {
    let name = binary
        .file_name()
        .and_then(|n| n.to_str())
        .with_context(|| format!("{}: not a binary name", binary.display()))?;
    let out = Command::new(binary)
        .arg("__generate")
        .arg(dir)
        .output()
        .with_context(|| format!("run {}", binary.display()))?;
    if !out.status.success() {
        bail!(
            "{name} __generate {}: {} {}",
            dir.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    for file in outputs(name) {
        let path = dir.join(&file);
        if !path.is_file() {
            bail!("{name} __generate did not write {}", path.display());
        }
    }
    Ok(())
}

/// Whether an ELF binary has neither a symbol table (`.symtab`) nor DWARF debug info
/// (`.debug_info`, `.debug_line`): what `strip` removes. Reads the section header table of a 64-bit
/// little-endian ELF file (x86-64, aarch64); anything else is an error.
pub fn is_stripped(path: &Path) -> Result<bool> {
    let names = section_names(path).with_context(|| format!("{}", path.display()))?;
    // Not every `.debug_*`: `.debug_gdb_scripts` is loaded with the program, and stays.
    Ok(!names
        .iter()
        .any(|n| matches!(n.as_str(), ".symtab" | ".debug_info" | ".debug_line")))
}

fn section_names(path: &Path) -> Result<Vec<String>> {
    let data = std::fs::read(path).context("read")?;
    let bytes = |at: usize, n: usize| {
        data.get(at..at + n)
            .with_context(|| format!("truncated ELF file (offset {at})"))
    };
    let u16_at = |at: usize| bytes(at, 2).map(|b| u16::from_le_bytes([b[0], b[1]]) as usize);
    let u32_at =
        |at: usize| bytes(at, 4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize);
    let u64_at = |at: usize| {
        bytes(at, 8).and_then(|b| {
            let mut raw = [0; 8];
            raw.copy_from_slice(b);
            usize::try_from(u64::from_le_bytes(raw)).context("ELF offset out of range")
        })
    };
    // e_ident: magic, EI_CLASS = 2 (64-bit), EI_DATA = 1 (little-endian).
    if data.get(..6) != Some(b"\x7fELF\x02\x01") {
        bail!("not a 64-bit little-endian ELF file");
    }
    let (shoff, shentsize, shnum, shstrndx) =
        (u64_at(0x28)?, u16_at(0x3a)?, u16_at(0x3c)?, u16_at(0x3e)?);
    let header = |i: usize| shoff + i * shentsize;
    // sh_offset and sh_size of the section-name string table.
    let strtab = u64_at(header(shstrndx) + 0x18)?;
    let strtab_size = u64_at(header(shstrndx) + 0x20)?;
    let table = bytes(strtab, strtab_size)?;
    let mut names = Vec::with_capacity(shnum);
    for i in 0..shnum {
        let start = u32_at(header(i))?;
        let name = table.get(start..).unwrap_or_default();
        let end = name.iter().position(|&b| b == 0).unwrap_or(name.len());
        names.push(String::from_utf8_lossy(&name[..end]).into_owned());
    }
    Ok(names)
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
        generate(&greet_server(), &dir).unwrap();
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
    fn stripped_binaries_are_told_from_unstripped_ones() {
        // The debug build has its symbols and DWARF; a system binary is shipped stripped.
        let names = section_names(&greet_server()).unwrap();
        assert!(names.iter().any(|n| n == ".text"), "{names:?}");
        assert!(!is_stripped(&greet_server()).unwrap());
        assert!(is_stripped(Path::new("/bin/true")).unwrap());
        if Command::new("strip").arg("--version").output().is_ok() {
            let copy = std::env::temp_dir().join(format!("xtask-strip-{}", std::process::id()));
            std::fs::copy(greet_server(), &copy).unwrap();
            assert!(Command::new("strip").arg(&copy).status().unwrap().success());
            assert!(is_stripped(&copy).unwrap());
            let _ = std::fs::remove_file(&copy);
        }
        let err = format!("{:#}", is_stripped(&root().join("Cargo.toml")).unwrap_err());
        assert!(err.contains("not a 64-bit little-endian ELF"), "{err}");
    }

    #[test]
    fn the_dist_profile_strips() {
        let manifest = std::fs::read_to_string(root().join("Cargo.toml")).unwrap();
        let profile = manifest
            .split(&format!("[profile.{PROFILE}]"))
            .nth(1)
            .expect("the root Cargo.toml defines the dist profile");
        let profile = profile.split("\n[").next().unwrap_or_default();
        assert!(profile.contains("inherits = \"release\""), "{profile}");
        assert!(profile.contains("strip = true"), "{profile}");
    }

    #[test]
    fn a_binary_that_fails_otherwise_is_an_error() {
        let dir = std::env::temp_dir().join(format!("xtask-dist-false-{}", std::process::id()));
        let err = generate(Path::new("/bin/false"), &dir)
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("false __generate"), "{err}");
    }
}
