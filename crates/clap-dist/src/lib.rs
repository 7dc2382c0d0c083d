//! Shell completions (bash, zsh, fish) and man pages, written from a binary's own clap
//! definitions so that what ships cannot drift from `--help`; and [`read_file_arg`], how both
//! binaries read a file named on their command line (a regular file only, bounded).
//!
//! Each binary answers a hidden first argument, `__generate DIR`, before clap parses
//! anything (so it appears in no help and no completion); `cargo xtask dist` runs the release
//! binaries that way.
//!
//! # Examples
//!
//! ```
//! use std::ffi::OsString;
//!
//! let cmd = clap::Command::new("greet").arg(clap::Arg::new("port").long("port"));
//! let argv: Vec<OsString> = ["greet", "__generate", "out"].map(OsString::from).into();
//! let dir = clap_dist::request(&argv, "greet").expect("asked")?;
//! let dir = std::env::temp_dir().join(format!("clap-dist-doc-{}", std::process::id())).join(dir);
//! clap_dist::generate(cmd, "greet", &dir)?;
//! assert!(std::fs::read_to_string(dir.join("completions/greet.bash"))?.contains("--port"));
//! assert!(dir.join("man/man1/greet.1").exists());
//! # std::fs::remove_dir_all(dir.parent().unwrap())?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![deny(missing_docs)]

mod file_arg;

pub use file_arg::{read_file_arg, MESSAGE_MAX};

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap_complete::Shell;

/// The hidden first argument that asks for completions and man pages.
pub const GENERATE: &str = "__generate";

/// `Some(Ok(DIR))` when `argv` is `NAME __generate DIR`; `Some(Err(usage))` when `DIR` is
/// missing or extra arguments follow; `None` for any other command line.
pub fn request(argv: &[OsString], name: &str) -> Option<Result<PathBuf, String>> {
    match argv {
        [_, first, rest @ ..] if first == GENERATE => Some(match rest {
            [dir] => Ok(PathBuf::from(dir)),
            _ => Err(format!("usage: {name} {GENERATE} DIR")),
        }),
        _ => None,
    }
}

/// Writes `DIR/completions/{NAME.bash,_NAME,NAME.fish}` and `DIR/man/man1/NAME.1` (plus
/// one page per subcommand, `NAME-SUB.1`).
///
/// # Errors
///
/// A message naming the folder that could not be created or written.
pub fn generate(mut cmd: clap::Command, name: &str, dir: &Path) -> Result<(), String> {
    let completions = dir.join("completions");
    let man = dir.join("man").join("man1");
    for folder in [&completions, &man] {
        std::fs::create_dir_all(folder).map_err(|e| format!("create {}: {e}", folder.display()))?;
    }
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        clap_complete::generate_to(shell, &mut cmd, name, &completions).map_err(|e| {
            format!(
                "write {shell} completions in {}: {e}",
                completions.display()
            )
        })?;
    }
    clap_mangen::generate_to(cmd, &man)
        .map_err(|e| format!("write man page in {}: {e}", man.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_hidden_first_argument_is_a_request() {
        let args = |a: &[&str]| a.iter().map(OsString::from).collect::<Vec<_>>();
        assert_eq!(request(&args(&["x"]), "x"), None);
        assert_eq!(request(&args(&["x", "--port", "0"]), "x"), None);
        assert_eq!(
            request(&args(&["x", "__generate", "out"]), "x"),
            Some(Ok(PathBuf::from("out")))
        );
        assert!(matches!(
            request(&args(&["x", "__generate"]), "x"),
            Some(Err(_))
        ));
        assert!(matches!(
            request(&args(&["x", "__generate", "a", "b"]), "x"),
            Some(Err(_))
        ));
    }
}
