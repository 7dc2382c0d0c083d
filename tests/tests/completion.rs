//! The bash completions `cargo xtask dist` ships, run in a real bash: the script each binary
//! writes with `__generate` is sourced, and its completion function is called as bash's
//! programmable completion calls it (`COMP_WORDS`, `COMP_CWORD`, then `$1` the command,
//! `$2` the word, `$3` the word before), in a folder holding files that must not be offered
//! where a host name, port or number is expected.

use std::path::Path;
use std::process::Command;

use e2e::{bin, temp_dir};

/// What bash offers for the command line `words` (the last one is being completed).
fn complete(script: &Path, cwd: &Path, hostfile: &Path, words: &[&str]) -> Vec<String> {
    let program = r#"
source "$SCRIPT" || exit 3
func=$(complete -p "$1" | sed -E 's/.* -F ([^ ]+) .*/\1/')
COMP_WORDS=("$@")
COMP_CWORD=$(( $# - 1 ))
COMP_LINE="$*"
COMP_POINT=${#COMP_LINE}
prev=""
if (( COMP_CWORD > 0 )); then prev=${COMP_WORDS[COMP_CWORD-1]}; fi
# compopt only works during a real completion; its complaint here is not the test's concern.
"$func" "$1" "${COMP_WORDS[COMP_CWORD]}" "$prev" 2>/dev/null
printf '%s\n' "${COMPREPLY[@]}"
"#;
    let out = Command::new("bash")
        .args(["--norc", "--noprofile", "-c", program, "bash"])
        .args(words)
        .env("SCRIPT", script)
        .env("HOSTFILE", hostfile)
        .current_dir(cwd)
        .output()
        .expect("bash must be installed");
    assert!(out.status.success(), "bash: {out:?}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

#[test]
fn bash_completes_subcommand_options_host_names_and_no_files_for_numbers() {
    let dir = temp_dir("completion");
    let out_dir = dir.join("dist");
    for name in ["greet-client", "greet-server"] {
        let status = Command::new(bin(name))
            .arg("__generate")
            .arg(&out_dir)
            .status()
            .unwrap();
        assert!(status.success(), "{name} __generate");
    }
    let cwd = dir.join("cwd");
    std::fs::create_dir_all(&cwd).unwrap();
    for decoy in ["greet-decoy-file", "8080-decoy", "decoy.sock"] {
        std::fs::write(cwd.join(decoy), "").unwrap();
    }
    let hostfile = dir.join("hosts");
    std::fs::write(
        &hostfile,
        "127.0.0.1 greet-host-alpha\n::1 greet-host-beta\n",
    )
    .unwrap();
    let client = out_dir.join("completions/greet-client.bash");
    let server = out_dir.join("completions/greet-server.bash");
    let c = |words: &[&str]| complete(&client, &cwd, &hostfile, words);

    // Subcommand options (clap-rs/clap#6421: never completed for a hyphenated binary name).
    assert!(
        c(&["greet-client", "bench", "--thr"]).contains(&"--threads".to_owned()),
        "{:?}",
        c(&["greet-client", "bench", "--thr"])
    );
    assert_eq!(c(&["greet-client", "lookup", "--pas"]), ["--passive"]);
    assert!(c(&["greet-client", "--"]).contains(&"--read-idle".to_owned()));

    // --host: host names, in the main command and in bench.
    for words in [
        &["greet-client", "--host", "greet-"][..],
        &["greet-client", "bench", "--host", "greet-"],
    ] {
        let mut got = c(words);
        got.sort();
        assert_eq!(got, ["greet-host-alpha", "greet-host-beta"], "{words:?}");
    }
    let got = complete(
        &server,
        &cwd,
        &hostfile,
        &["greet-server", "--host", "greet-host-a"],
    );
    assert_eq!(got, ["greet-host-alpha"]);

    // Numbers: never file names.
    for words in [
        &["greet-client", "--port", "8"][..],
        &["greet-client", "bench", "--port", "8"],
        &["greet-client", "bench", "--threads", ""],
        &["greet-client", "--timeout", "g"],
    ] {
        let got = c(words);
        assert!(
            !got.iter().any(|w| w.contains("decoy")),
            "{words:?} offers files: {got:?}"
        );
    }
    let got = complete(&server, &cwd, &hostfile, &["greet-server", "--threads", ""]);
    assert!(!got.iter().any(|w| w.contains("decoy")), "{got:?}");

    // Paths still complete as paths.
    assert_eq!(c(&["greet-client", "--unix", "decoy"]), ["decoy.sock"]);
    let _ = std::fs::remove_dir_all(&dir);
}
