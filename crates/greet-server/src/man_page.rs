//! What `greet-server`'s man page says beyond its flags: the signals it answers, its exit
//! statuses, the environment it reads, examples (also in `--help`), related pages.

use clap_dist::{Example, ManPage, Section};

/// The examples, in `--help` and in the man page.
pub const EXAMPLES: &[Example] = &[
    Example {
        command: "greet-server",
        effect: "the tutorial: this machine's name, port 12345, TCP",
    },
    Example {
        command: "greet-server --host 127.0.0.1 --port 0",
        effect: "an ephemeral port (printed on the first line)",
    },
    Example {
        command: "greet-server --udp --port 5000",
        effect: "answer each datagram with the message",
    },
    Example {
        command: "greet-server --unix /tmp/greet.sock",
        effect: "serve a Unix-domain socket",
    },
    Example {
        command: "greet-server --tcp --udp --unix /tmp/greet.sock --port 0",
        effect: "all three in one process",
    },
    Example {
        command: "kill -HUP PID",
        effect: "restart without losing a client (a new binary, new --message-file contents)",
    },
    Example {
        command: "kill -USR1 PID",
        effect: "print the counts on stderr",
    },
    Example {
        command: "greet-server --stats-interval 1m",
        effect: "print the counts on stderr every minute",
    },
    Example {
        command: "greet-server --log-format json",
        effect: "one JSON line per connection as it ends (time, peer, outcome, bytes, duration)",
    },
    Example {
        command: "greet-server --metrics 127.0.0.1:9100",
        effect: "Prometheus metrics at http://127.0.0.1:9100/metrics",
    },
    Example {
        command: "RUST_LOG=info greet-server",
        effect: "more diagnostics on stderr (restarts, refused PROXY headers)",
    },
    Example {
        command: "greet-server --backlog 5",
        effect: "the tutorial's listen(5) (not the default: it loses clients under bursts)",
    },
    Example {
        command: "greet-server --proxy-protocol --port 7000",
        effect: "behind HAProxy (send-proxy or send-proxy-v2)",
    },
    Example {
        command: "greet-server --proxy-protocol --proxy-trusted 10.0.0.5,10.0.0.6",
        effect: "only those two balancers may send a PROXY header",
    },
    Example {
        command: "systemd-socket-activate -l 12345 greet-server",
        effect: "serve a TCP socket handed over as systemd does (for TCP and UDP on one port, \
                 a .socket unit with ListenStream= and ListenDatagram=)",
    },
];

/// The man page's sections beyond clap's.
pub const MAN_PAGE: ManPage = ManPage {
    sections: &[
        Section {
            title: "SIGNALS",
            entries: &[
                (
                    "SIGTERM, SIGINT",
                    "Stop accepting, finish every greeting already accepted, print the \
                     summary on stderr and exit 0. A new server still starting after a \
                     SIGHUP is stopped too. A second SIGTERM or SIGINT exits at once.",
                ),
                (
                    "SIGHUP",
                    "Restart without losing a client: start a new server (this binary's \
                     path, or --upgrade-binary) with the same arguments and the listening \
                     sockets; once it is ready (within --restart-timeout) this one stops \
                     accepting, finishes its greetings and exits 0. If the new one fails, \
                     this one keeps serving and says why on stderr. Ignored while a \
                     restart is under way.",
                ),
                (
                    "SIGUSR1",
                    "Print the summary line (accepted, greeted, errors, datagrams, ...) on \
                     stderr and go on serving.",
                ),
            ],
        },
        Section {
            title: "EXIT STATUS",
            entries: &[
                (
                    "0",
                    "Stopped by SIGTERM or SIGINT, or handed over to a new server by \
                     SIGHUP, after finishing its greetings.",
                ),
                (
                    "1",
                    "An error, in one line on stderr naming its cause: a host or port that \
                     does not resolve, an address in use or not permitted, a socket handed \
                     over that it does not serve, an unreadable --message-file, a stdout \
                     that cannot be written at start, an event loop that failed.",
                ),
                ("2", "A bad argument."),
                (
                    "130, 143",
                    "A second SIGINT (130) or SIGTERM (143): exited at once, without \
                     finishing the greetings in flight.",
                ),
            ],
        },
        Section {
            title: "ENVIRONMENT",
            entries: &[
                (
                    "RUST_LOG",
                    "Diagnostics on stderr: error, warn (the default), info, debug or \
                     trace, per module if wanted (env_logger's syntax, e.g. \
                     RUST_LOG=debug). Each line starts with its RFC 3339 UTC time in \
                     milliseconds; the same warning repeated is printed at most once a \
                     second, saying how many repeats were not shown.",
                ),
                (
                    "LISTEN_PID, LISTEN_FDS, LISTEN_FDNAMES",
                    "Socket activation (sd_listen_fds(3)): when LISTEN_PID is this \
                     process, it serves the LISTEN_FDS descriptors from 3 on instead of \
                     binding (TCP listeners, UDP sockets, Unix stream listeners bound to a \
                     path; anything else is refused); --tcp, --udp, --unix, --host and \
                     --port are then not used. LISTEN_FDNAMES names them; a restart names \
                     their roles there (tcp, udp, unix, unix-keep, metrics). Removed once read.",
                ),
                (
                    "NOTIFY_SOCKET",
                    "Under systemd (Type=notify): READY=1 is sent there once the server \
                     serves; after a SIGHUP restart, the old server sends MAINPID= (the \
                     new one) and READY=1.",
                ),
                (
                    "GREET_READY_FD",
                    "Set by a restarting server for the new one: the pipe on which the new \
                     server says READY=1. Removed once read.",
                ),
                (
                    "GREET_UNIX_FILE",
                    "Set by a restarting server for the new one: the device and inode \
                     (DEV:INO) of the Unix socket file it hands on, which the new server \
                     removes at exit only while it is still that socket. Removed once read.",
                ),
            ],
        },
    ],
    examples: EXAMPLES,
    see_also: &[
        "greet-client(1)",
        "systemd.socket(5)",
        "systemd-socket-activate(1)",
        "sd_listen_fds(3)",
        "sd_notify(3)",
    ],
    subcommands: &[],
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_man_page_has_signals_exit_status_environment_examples_and_see_also() {
        let command = <crate::cli::Args as clap::CommandFactory>::command();
        let pages = clap_dist::man_pages(command, &MAN_PAGE).unwrap();
        let [(name, page)] = pages.as_slice() else {
            panic!("one page, not {}", pages.len());
        };
        assert_eq!(name, "greet-server.1");
        for heading in [
            "SIGNALS",
            "\"EXIT STATUS\"",
            "ENVIRONMENT",
            "EXAMPLES",
            "\"SEE ALSO\"",
        ] {
            assert!(page.contains(&format!("\n.SH {heading}\n")), "no {heading}");
        }
        assert!(!page.contains(".SH EXTRA"));
        for term in [
            "SIGHUP",
            "SIGUSR1",
            "RUST_LOG",
            "LISTEN_FDNAMES",
            "NOTIFY_SOCKET",
            "GREET_READY_FD",
            "GREET_UNIX_FILE",
        ] {
            let tagged = page
                .lines()
                .any(|line| line.starts_with("\\fB") && line.contains(term));
            assert!(tagged, "no entry for {term}");
        }
    }
}
