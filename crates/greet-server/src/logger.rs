//! Diagnostics on stderr: env_logger (filtered by `RUST_LOG`, warnings by default), each
//! line stamped with its RFC 3339 UTC time in milliseconds, and the same warning repeated
//! (netcore's `accept: Too many open files ...; pausing this listener`, ten times a second
//! per listener while descriptors run out) printed at most once a second, saying how many
//! repeats were not shown.
//!
//! `humantime`, already a dependency for durations in flags, formats the time: no clock or
//! calendar code of our own, and no `env_logger` timestamp feature (which would pull in its
//! own copy of the same formatting).

use std::collections::HashMap;
use std::io::Write;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use log::{Level, Log, Metadata, Record};

/// A warning identical to one printed less than this long ago is counted, not printed.
const REPEAT_WINDOW: Duration = Duration::from_secs(1);
/// Distinct warnings remembered at most; past this the oldest are forgotten (and may then
/// print once more than they would have).
const MAX_REMEMBERED: usize = 256;

/// Installs the logger for the process.
pub fn init() {
    let inner = env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn"))
        .format(|buf, record| {
            writeln!(
                buf,
                "[{} {:<5} {}] {}",
                humantime::format_rfc3339_millis(SystemTime::now()),
                record.level(),
                record.target(),
                record.args()
            )
        })
        .build();
    let max = inner.filter();
    let logger = RepeatLimited {
        inner,
        seen: Mutex::new(Repeats::default()),
    };
    if log::set_boxed_logger(Box::new(logger)).is_ok() {
        log::set_max_level(max);
    }
}

/// env_logger's logger, with repeated warnings and errors thinned out.
struct RepeatLimited {
    inner: env_logger::Logger,
    seen: Mutex<Repeats>,
}

impl Log for RepeatLimited {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        self.inner.enabled(metadata)
    }

    fn log(&self, record: &Record<'_>) {
        if !self.inner.matches(record) {
            return;
        }
        // Information and debugging lines are asked for, and may repeat on purpose.
        if record.level() > Level::Warn {
            self.inner.log(record);
            return;
        }
        let key = format!("{}\0{}", record.target(), record.args());
        let verdict = match self.seen.lock() {
            Ok(mut seen) => seen.check(key, Instant::now()),
            Err(_) => Verdict::Print { suppressed: 0 },
        };
        match verdict {
            Verdict::Skip => {}
            Verdict::Print { suppressed: 0 } => self.inner.log(record),
            Verdict::Print { suppressed } => self.inner.log(
                &Record::builder()
                    .args(format_args!(
                        "{} (and {suppressed} more like it since the last one shown)",
                        record.args()
                    ))
                    .metadata(record.metadata().clone())
                    .module_path(record.module_path())
                    .file(record.file())
                    .line(record.line())
                    .build(),
            ),
        }
    }

    fn flush(&self) {
        self.inner.flush();
    }
}

/// What to do with a warning.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    /// Print it, saying how many repeats since the last one printed were not.
    Print { suppressed: u64 },
    /// A repeat within the window: counted.
    Skip,
}

/// When each distinct warning was last printed, and its repeats since.
#[derive(Debug, Default)]
struct Repeats {
    last: HashMap<String, (Instant, u64)>,
}

impl Repeats {
    fn check(&mut self, key: String, now: Instant) -> Verdict {
        if let Some((printed, skipped)) = self.last.get_mut(&key) {
            if now.saturating_duration_since(*printed) < REPEAT_WINDOW {
                *skipped += 1;
                return Verdict::Skip;
            }
            let suppressed = std::mem::take(skipped);
            *printed = now;
            return Verdict::Print { suppressed };
        }
        if self.last.len() >= MAX_REMEMBERED {
            self.last
                .retain(|_, (printed, _)| now.saturating_duration_since(*printed) < REPEAT_WINDOW);
            if self.last.len() >= MAX_REMEMBERED {
                self.last.clear();
            }
        }
        self.last.insert(key, (now, 0));
        Verdict::Print { suppressed: 0 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeat_prints_once_a_second_with_the_number_left_out() {
        let mut repeats = Repeats::default();
        let t0 = Instant::now();
        let key = || "netcore\0accept: Too many open files".to_string();
        assert_eq!(repeats.check(key(), t0), Verdict::Print { suppressed: 0 });
        // Ten a second for four seconds: one line a second, each naming the nine before it.
        let mut printed = Vec::new();
        for tenth in 1..=40 {
            let now = t0 + Duration::from_millis(100 * tenth);
            if let Verdict::Print { suppressed } = repeats.check(key(), now) {
                printed.push((tenth, suppressed));
            }
        }
        assert_eq!(printed, [(10, 9), (20, 9), (30, 9), (40, 9)]);
        // Another warning is not held back by the first.
        assert_eq!(
            repeats.check("netcore\0other".into(), t0 + Duration::from_millis(4050)),
            Verdict::Print { suppressed: 0 }
        );
    }

    #[test]
    fn the_table_of_warnings_is_bounded() {
        let mut repeats = Repeats::default();
        let t0 = Instant::now();
        for i in 0..(MAX_REMEMBERED * 3) {
            assert_eq!(
                repeats.check(format!("w{i}"), t0),
                Verdict::Print { suppressed: 0 }
            );
        }
        assert!(repeats.last.len() <= MAX_REMEMBERED);
    }
}
