//! The man pages `cargo xtask dist` ships (each binary's `__generate`), formatted as man(1)
//! shows them on an 80-column terminal (groff): the sections a reader looks for, and every
//! example `--help` shows, on one line and whole.
//!
//! Without groff this test says so and passes, except under CI (`CI` set), where a missing
//! tool is a failure: `.ci/run` installs it.

use e2e::{bin, temp_dir};
use std::process::Command;

/// The example commands of `PROGRAM ARGS --help`: the lines of its `Examples:` section
/// indented by two spaces (what each does is indented further).
fn help_examples(program: &str, args: &[&str]) -> Vec<String> {
    let out = Command::new(bin(program))
        .args(args)
        .arg("--help")
        .output()
        .expect("run --help");
    assert!(out.status.success(), "{program} {args:?} --help: {out:?}");
    let help = String::from_utf8_lossy(&out.stdout).into_owned();
    let examples: Vec<String> = help
        .lines()
        .skip_while(|line| *line != "Examples:")
        .filter(|line| line.starts_with("  ") && !line.starts_with("   "))
        .map(|line| line.trim().to_string())
        .collect();
    assert!(!examples.is_empty(), "no examples in {help}");
    examples
}

#[test]
fn man_pages_have_their_sections_and_each_example_whole_at_80_columns() {
    let Some(groff) = e2e::tool("groff", "groff-base") else {
        return;
    };
    let dir = temp_dir("man");
    for program in ["greet-server", "greet-client"] {
        let status = Command::new(bin(program))
            .arg("__generate")
            .arg(&dir)
            .status()
            .expect("run __generate");
        assert!(status.success(), "{program} __generate");
    }
    let common = ["EXIT STATUS", "ENVIRONMENT", "EXAMPLES", "SEE ALSO"];
    let pages: [(&str, &str, &[&str], &[&str]); 3] = [
        ("greet-server", "greet-server", &[], &["SIGNALS"]),
        ("greet-client", "greet-client", &[], &[]),
        ("greet-client-lookup", "greet-client", &["lookup"], &[]),
    ];
    for (page, program, args, more) in pages {
        let file = dir.join(format!("man/man1/{page}.1"));
        let out = Command::new(&groff)
            .args(["-man", "-Tascii", "-rLL=80n", "-P-cbou"])
            .arg(&file)
            .output()
            .expect("run groff");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "groff {}: {out:?}", file.display());
        let lines: Vec<&str> = text.lines().collect();
        for heading in common.iter().chain(more) {
            assert!(lines.contains(heading), "{page}: no {heading} in\n{text}");
        }
        assert!(!lines.contains(&"EXTRA"), "{page}: clap's EXTRA section");
        for command in help_examples(program, args) {
            assert!(
                lines.iter().any(|line| line.trim() == command),
                "{page}: the example {command:?} is not one line of\n{text}"
            );
        }
        for line in &lines {
            assert!(
                line.chars().count() <= 80,
                "{page}: wider than 80: {line:?}"
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The files each binary's `__generate DIR` writes (what `cargo xtask dist` ships): one man
/// page per real command, never clap's `help` subcommand and its own subcommands
/// (`greet-client-help.1`, `greet-client-help-lookup.1`...), which greet-client accepts on its
/// command line but which are not commands with a page of their own.
#[test]
fn generate_writes_one_man_page_per_command_and_no_help_pages() {
    let dir = temp_dir("generate");
    for program in ["greet-server", "greet-client"] {
        let out = Command::new(bin(program))
            .arg("__generate")
            .arg(&dir)
            .output()
            .expect("run __generate");
        assert!(out.status.success(), "{program} __generate: {out:?}");
    }
    let list = |sub: &str| {
        let mut names: Vec<String> = std::fs::read_dir(dir.join(sub))
            .unwrap_or_else(|e| panic!("read {sub}: {e}"))
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    assert_eq!(
        list("man/man1"),
        [
            "greet-client-bench.1",
            "greet-client-lookup.1",
            "greet-client.1",
            "greet-server.1",
        ]
    );
    assert_eq!(
        list("completions"),
        [
            "_greet-client",
            "_greet-server",
            "greet-client.bash",
            "greet-client.fish",
            "greet-server.bash",
            "greet-server.fish",
        ]
    );
    for page in list("man/man1") {
        let text = std::fs::read_to_string(dir.join("man/man1").join(&page)).unwrap();
        assert!(
            text.contains(".SH \"EXIT STATUS\""),
            "{page}: no EXIT STATUS"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
