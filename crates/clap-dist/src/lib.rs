//! Shell completions (bash, zsh, fish) and man pages, written from a binary's own clap
//! definitions so that what ships cannot drift from `--help` (the man pages with the
//! sections clap does not hold: [`ManPage`]); [`read_file_arg`], how both binaries read a
//! file named on their command line (a regular file only, bounded); and
//! [`positive_duration`], a duration flag that refuses zero.
//!
//! Each binary answers a hidden first argument, `__generate DIR`, before clap parses
//! anything (so it appears in no help and no completion); `cargo xtask dist` runs the release
//! binaries that way. [`exit_status`] is the binaries' other shared piece of clap glue:
//! how an error (clap's or any other) becomes an exit status, and [`explain_default_host`]
//! their one wording for a default host (this machine's name) that does not resolve.
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
//! let page = clap_dist::ManPage {
//!     see_also: &["greet-client(1)"],
//!     ..clap_dist::ManPage::default()
//! };
//! clap_dist::generate(cmd, "greet", &dir, &page)?;
//! assert!(std::fs::read_to_string(dir.join("completions/greet.bash"))?.contains("--port"));
//! let man = std::fs::read_to_string(dir.join("man/man1/greet.1"))?;
//! assert!(man.contains(".SH \"SEE ALSO\""));
//! # std::fs::remove_dir_all(dir.parent().unwrap())?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![deny(missing_docs)]

mod default_host;
mod duration_arg;
mod file_arg;
mod man;

pub use default_host::explain_default_host;
pub use duration_arg::positive_duration;
pub use file_arg::{read_file_arg, MESSAGE_MAX};
pub use man::{examples_help, man_pages, Example, ManPage, Section};

use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap_complete::Shell;

/// The one place a binary's error becomes its exit status: a bad argument (a
/// [`clap::Error`], also one the binary found after parsing) prints clap's message and
/// gives clap's status (2; 0 for `--help`); anything else prints one line on stderr,
/// `PROGRAM: context: cause` (the error's chain, `{:#}`), and gives status 1.
pub fn exit_status(program: &str, error: &anyhow::Error) -> std::process::ExitCode {
    if let Some(usage) = error.downcast_ref::<clap::Error>() {
        let _ = usage.print();
        return std::process::ExitCode::from(u8::try_from(usage.exit_code()).unwrap_or(2));
    }
    // Not eprintln!, which panics when stderr is a full disk or a closed pipe: the status
    // must stay 1, and there is nowhere left to report the failed write.
    let _ = writeln!(std::io::stderr().lock(), "{program}: {error:#}");
    std::process::ExitCode::FAILURE
}

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
/// one page per subcommand, `NAME-SUB.1`, and none for clap's `help` subcommand), the man
/// pages with what `page` adds to clap's definitions (see [`ManPage`]). `cmd` is the
/// command as defined, not yet built.
///
/// # Errors
///
/// A message naming the folder or file that could not be created or written.
pub fn generate(
    mut cmd: clap::Command,
    name: &str,
    dir: &Path,
    page: &ManPage,
) -> anyhow::Result<()> {
    let completions = dir.join("completions");
    let man = dir.join("man").join("man1");
    for folder in [&completions, &man] {
        std::fs::create_dir_all(folder).with_context(|| format!("create {}", folder.display()))?;
    }
    // The man pages first, from `cmd` as defined: clap_complete builds it, and building
    // adds clap's `help` subcommand (with `help lookup`, `help help`...) to a command that
    // accepts one, which would then get pages of its own; `man_pages` can keep it out
    // only of a command not built yet.
    man::write_pages(cmd.clone(), page, &man)?;
    for shell in [Shell::Zsh, Shell::Fish] {
        clap_complete::generate_to(shell, &mut cmd, name, &completions)
            .with_context(|| format!("write {shell} completions in {}", completions.display()))?;
    }
    let bash = completions.join(format!("{name}.bash"));
    std::fs::write(&bash, bash_completion(&mut cmd, name)?)
        .with_context(|| format!("write {}", bash.display()))
}

/// The bash completion script for `cmd`, as `clap_complete` writes it, with two repairs:
///
/// - **Hyphenated binary names** (clap-rs/clap#6421): for `greet-client`, clap_complete
///   sets `cmd="greet__client__subcmd__bench"` when it sees the subcommand, but names the
///   `case` arm that completes it `greet__subcmd__client__subcmd__bench` (the binary's
///   `-` replaced like a subcommand separator), so no subcommand's options ever complete.
///   The arms are renamed to what `cmd` holds.
/// - **Host names**: clap_complete's bash generator completes a `ValueHint::Hostname`
///   value with file names (`compgen -f`), as if it had no hint; it is given `compgen -A
///   hostname` (the names in `/etc/hosts`, or `$HOSTFILE`), as zsh's and fish's scripts
///   already do.
///
/// # Errors
///
/// A message when a repair no longer applies (clap_complete changed its output); the test
/// in `tests/tests/completion.rs` runs the result in a real bash.
pub fn bash_completion(cmd: &mut clap::Command, name: &str) -> anyhow::Result<String> {
    let mut raw = Vec::new();
    clap_complete::generate(Shell::Bash, cmd, name, &mut raw);
    let script = String::from_utf8(raw).context("bash completions")?;
    let script = if name.contains('-') {
        let wrong = format!("{}__subcmd__", name.replace('-', "__subcmd__"));
        let right = format!("{}__subcmd__", name.replace('-', "__"));
        script.replace(&wrong, &right)
    } else {
        script
    };
    let mut hostname_flags = Vec::new();
    collect_hostname_flags(cmd, &mut hostname_flags);
    let files = r#"COMPREPLY=($(compgen -f "${cur}"))"#;
    let hosts = r#"COMPREPLY=($(compgen -A hostname -- "${cur}"))"#;
    let mut out = String::with_capacity(script.len());
    let mut repaired = 0;
    let mut after_hostname_flag = false;
    for line in script.lines() {
        if after_hostname_flag && line.trim() == files {
            out.push_str(&line.replace(files, hosts));
            repaired += 1;
        } else {
            out.push_str(line);
        }
        out.push('\n');
        after_hostname_flag = hostname_flags
            .iter()
            .any(|f| line.trim() == format!("{f})"));
    }
    if repaired == 0 && !hostname_flags.is_empty() {
        anyhow::bail!(
            "bash completions: found no file completion to replace for {hostname_flags:?}"
        );
    }
    Ok(out)
}

/// `--long` and `-s` of every option (in `cmd` and its subcommands) whose value is a host
/// name.
fn collect_hostname_flags(cmd: &clap::Command, out: &mut Vec<String>) {
    for arg in cmd.get_opts() {
        if arg.get_value_hint() == clap::ValueHint::Hostname {
            out.extend(arg.get_long().map(|l| format!("--{l}")));
            out.extend(arg.get_short().map(|s| format!("-{s}")));
        }
    }
    for sub in cmd.get_subcommands() {
        collect_hostname_flags(sub, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bash_arms_match_a_hyphenated_name_and_host_names_complete_as_hosts() {
        let mut cmd = clap::Command::new("my-tool").subcommand(
            clap::Command::new("sub").arg(
                clap::Arg::new("host")
                    .long("host")
                    .value_hint(clap::ValueHint::Hostname),
            ),
        );
        let script = bash_completion(&mut cmd, "my-tool").unwrap();
        assert!(
            script.contains(r#"cmd="my__tool__subcmd__sub""#),
            "{script}"
        );
        assert!(
            script.contains("\n        my__tool__subcmd__sub)"),
            "{script}"
        );
        assert!(!script.contains("my__subcmd__tool"), "{script}");
        assert!(script.contains("compgen -A hostname"), "{script}");
    }

    #[test]
    fn generate_writes_a_page_per_subcommand_and_none_for_help() {
        // A command that accepts `help` (clap's default), as greet-client does.
        let cmd = clap::Command::new("my-tool")
            .subcommand(clap::Command::new("sub"))
            .subcommand(clap::Command::new("other"));
        let dir = std::env::temp_dir().join(format!("clap-dist-generate-{}", std::process::id()));
        generate(cmd, "my-tool", &dir, &ManPage::default()).unwrap();
        let mut pages: Vec<String> = std::fs::read_dir(dir.join("man/man1"))
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        pages.sort();
        let bash = std::fs::read_to_string(dir.join("completions/my-tool.bash")).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(pages, ["my-tool-other.1", "my-tool-sub.1", "my-tool.1"]);
        // The command accepts `help`: its completions still offer it.
        assert!(bash.contains("my__tool__subcmd__help)"), "{bash}");
    }

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
