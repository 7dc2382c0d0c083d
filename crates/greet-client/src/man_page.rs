//! What `greet-client`'s man pages say beyond its flags: exit statuses, the environment,
//! examples (also in `--help`), related pages; for the client and its subcommands.

use clap_dist::{Example, ManPage, Section};

/// The client's examples, in `--help` and in `greet-client(1)`.
pub const EXAMPLES: &[Example] = &[
    Example {
        command: "greet-client",
        effect: "the tutorial: this machine's name, port 12345",
    },
    Example {
        command: "greet-client --host 127.0.0.1 --port 5000 --udp",
        effect: "one datagram to a UDP server, and its reply",
    },
    Example {
        command: "greet-client --unix /tmp/greet.sock",
        effect: "a Unix-domain server",
    },
    Example {
        command: "greet-client --udp --host '<broadcast>' --port 5000",
        effect: "to every host of the local network (sets SO_BROADCAST)",
    },
    Example {
        command: "greet-client lookup localhost www",
        effect: "[(2, 1, 6, '', ('127.0.0.1', 80))] and the hostname (greet-client-lookup(1))",
    },
];

/// `greet-client lookup`'s examples.
pub const LOOKUP_EXAMPLES: &[Example] = &[
    Example {
        command: "greet-client lookup localhost www",
        effect: "[(2, 1, 6, '', ('127.0.0.1', 80))] and the hostname",
    },
    Example {
        command: "greet-client lookup tutorialspoint.com www",
        effect: "the tutorial's own lookup (needs the network)",
    },
    Example {
        command: "greet-client lookup ::1 ssh --type stream --json",
        effect: "one JSON document instead of Python's list",
    },
    Example {
        command: "greet-client lookup localhost -1",
        effect: "[Errno -8] Servname not supported for ai_socktype",
    },
    Example {
        command: "greet-client lookup --reverse 127.0.0.1 22",
        effect: "the name and service of an address (getnameinfo)",
    },
];

const RUST_LOG: Section = Section {
    title: "ENVIRONMENT",
    entries: &[(
        "RUST_LOG",
        "Diagnostics on stderr: error, warn (the default), info, debug or trace, per \
         module if wanted (env_logger's syntax, e.g. RUST_LOG=debug).",
    )],
};

/// The pages' sections beyond clap's.
pub const MAN_PAGE: ManPage = ManPage {
    sections: &[
        Section {
            title: "EXIT STATUS",
            entries: &[
                ("0", "The server's reply was printed."),
                (
                    "1",
                    "An error, in one line on stderr naming its cause: a host or port that \
                     does not resolve, a refused or reset connection, no reply within \
                     --timeout, a stdout that cannot be written.",
                ),
                ("2", "A bad argument."),
            ],
        },
        RUST_LOG,
    ],
    examples: EXAMPLES,
    see_also: &[
        "greet-server(1)",
        "greet-client-lookup(1)",
        "greet-client-bench(1)",
        "getaddrinfo(3)",
    ],
    subcommands: &[
        (
            "lookup",
            ManPage {
                sections: &[
                    Section {
                        title: "EXIT STATUS",
                        entries: &[
                            ("0", "The lookup succeeded."),
                            (
                                "1",
                                "The lookup failed: its error, as Python prints it, on stderr \
                                 (and with --json, a document on stdout).",
                            ),
                            ("2", "A bad argument."),
                        ],
                    },
                    RUST_LOG,
                ],
                examples: LOOKUP_EXAMPLES,
                see_also: &["greet-client(1)", "getaddrinfo(3)", "getnameinfo(3)"],
                subcommands: &[],
            },
        ),
        (
            "bench",
            ManPage {
                sections: &[
                    Section {
                        title: "EXIT STATUS",
                        entries: &[
                            ("0", "Every operation succeeded."),
                            (
                                "1",
                                "An operation failed (the report counts each kind), or the \
                                 load could not run (one line on stderr).",
                            ),
                            ("2", "A bad argument."),
                        ],
                    },
                    RUST_LOG,
                ],
                examples: &[],
                see_also: &["greet-client(1)", "greet-server(1)"],
                subcommands: &[],
            },
        ),
    ],
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_page_has_exit_status_environment_and_see_also() {
        let command = <crate::Cli as clap::CommandFactory>::command();
        let pages = clap_dist::man_pages(command, &MAN_PAGE).unwrap();
        let names: Vec<&str> = pages.iter().map(|(name, _)| name.as_str()).collect();
        assert_eq!(
            names,
            [
                "greet-client-lookup.1",
                "greet-client-bench.1",
                "greet-client.1"
            ]
        );
        for ((name, page), examples) in pages.iter().zip([true, false, true]) {
            for heading in ["\"EXIT STATUS\"", "ENVIRONMENT", "\"SEE ALSO\""] {
                assert!(
                    page.contains(&format!("\n.SH {heading}\n")),
                    "{name}: no {heading}"
                );
            }
            assert!(page.contains("\\fBRUST_LOG\\fR"), "{name}");
            assert_eq!(page.contains("\n.SH EXAMPLES\n"), examples, "{name}");
            assert!(!page.contains(".SH EXTRA"), "{name}");
        }
    }
}
