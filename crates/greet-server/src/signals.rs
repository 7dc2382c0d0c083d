//! The signals the server answers, on a thread of their own: SIGINT and SIGTERM stop it
//! gracefully (a second one exits at once), SIGHUP restarts it (`restart.rs`), SIGUSR1
//! prints the summary line (`stats.rs`).
//!
//! The handlers are installed ([`Signals::install`]) before the readiness lines are
//! printed, and the thread that acts on them starts ([`Signals::watch`]) once there is
//! something to act on: a signal that arrives in between waits in signal-hook's pipe, and
//! never meets the default action (which would end the process at once).

use std::sync::Arc;

use anyhow::{Context, Result};
use netcore::ShutdownHandle;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGUSR1};

use crate::restart::Restarter;
use crate::stats::Reporter;

/// The signals the server handles.
const HANDLED: [i32; 4] = [SIGINT, SIGTERM, SIGHUP, SIGUSR1];

/// Installed handlers whose signals wait for [`Signals::watch`].
pub struct Signals(signal_hook::iterator::Signals);

impl Signals {
    /// Installs the handlers.
    pub fn install() -> Result<Signals> {
        signal_hook::iterator::Signals::new(HANDLED)
            .map(Signals)
            .context("install signal handlers")
    }

    /// Starts the thread that acts on them. First SIGINT/SIGTERM: no more restarts, and a
    /// graceful stop of every loop (`handles`). Second: exit at once, with status 128 +
    /// the signal's number. SIGHUP: `restarter.request()`. SIGUSR1: `reporter.report()`.
    pub fn watch(
        self,
        handles: Vec<ShutdownHandle>,
        restarter: Arc<Restarter>,
        mut reporter: Reporter,
    ) -> Result<()> {
        let mut signals = self.0;
        std::thread::Builder::new()
            .name("signals".into())
            .spawn(move || {
                let mut seen = 0;
                for signal in signals.forever() {
                    match signal {
                        SIGHUP => restarter.request(),
                        SIGUSR1 => reporter.report(),
                        _ => {
                            seen += 1;
                            if seen > 1 {
                                say!("greet-server: second signal, exiting at once");
                                std::process::exit(128 + signal);
                            }
                            log::info!("signal {signal}: stopping");
                            restarter.stop();
                            for handle in &handles {
                                handle.shutdown();
                            }
                        }
                    }
                }
            })
            .map(drop)
            .context("start signal thread")
    }
}
