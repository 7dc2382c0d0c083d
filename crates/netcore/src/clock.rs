//! The loop's clock: times as one `u64` of nanoseconds, read once per turn.
//!
//! `Instant` is a seconds-and-nanoseconds pair whose arithmetic (a checked borrow between
//! the two, a `Duration` built from the difference) took a hundred instructions per turn
//! of the loop: reading it, and the poll timeout from it. Inside the loop a time is a
//! [`Tick`], nanoseconds on the same monotonic clock `Instant` reads (`CLOCK_MONOTONIC`),
//! where a comparison is one instruction and a difference one subtraction. [`Clock`]
//! converts at the public API's edges (`Control::now`, timers and deadlines the handler
//! sets), which take and give `Instant`s.

use std::ops::Add;
use std::time::{Duration, Instant};

const NANOS_PER_SEC: u64 = 1_000_000_000;

/// A time on the loop's clock: nanoseconds since an unspecified start of the monotonic
/// clock. Saturates instead of overflowing (584 years after that start).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Tick(u64);

impl Tick {
    /// How long after `earlier` this is; zero when it is not after it.
    pub(crate) fn saturating_since(self, earlier: Tick) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }
}

impl Add<Duration> for Tick {
    type Output = Tick;

    fn add(self, d: Duration) -> Tick {
        Tick(self.0.saturating_add(nanos(d)))
    }
}

fn nanos(d: Duration) -> u64 {
    d.as_secs()
        .saturating_mul(NANOS_PER_SEC)
        .saturating_add(u64::from(d.subsec_nanos()))
}

/// Reads the clock, and converts between [`Tick`]s and `Instant`s.
///
/// The two are read once, one after the other, when the clock is made: a tick converted
/// to an `Instant` may be behind the `Instant` the same moment would have read by the
/// time between those two reads (tens of nanoseconds), never ahead. A time converted one
/// way and back is unchanged.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    instant: Instant,
    tick: Tick,
}

impl Clock {
    pub(crate) fn new() -> Clock {
        let instant = Instant::now();
        // Read second: the tick is at or after the instant, so conversions to `Instant`
        // err towards the past.
        let tick = read().unwrap_or(Tick(0));
        Clock { instant, tick }
    }

    /// Now.
    #[inline]
    pub(crate) fn now(&self) -> Tick {
        match read() {
            Some(tick) => tick,
            // `clock_gettime(CLOCK_MONOTONIC)` does not fail on the systems mio supports;
            // if it did, `Instant` (which reads the same clock) gives the time.
            None => self.tick_of(Instant::now()),
        }
    }

    /// The tick of `at`.
    pub(crate) fn tick_of(&self, at: Instant) -> Tick {
        match at.checked_duration_since(self.instant) {
            Some(after) => self.tick + after,
            None => Tick(self.tick.0.saturating_sub(nanos(self.instant - at))),
        }
    }

    /// The `Instant` of `tick`.
    pub(crate) fn instant_of(&self, tick: Tick) -> Instant {
        if tick >= self.tick {
            let after = Duration::from_nanos(tick.0 - self.tick.0);
            self.instant.checked_add(after).unwrap_or(self.instant)
        } else {
            let before = Duration::from_nanos(self.tick.0 - tick.0);
            self.instant.checked_sub(before).unwrap_or(self.instant)
        }
    }
}

/// `CLOCK_MONOTONIC`, the clock `Instant` reads on Unix, as one number.
#[inline]
fn read() -> Option<Tick> {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid, writable `timespec` for the length of the call, which
    // writes only it.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    if rc != 0 {
        return None;
    }
    let secs = u64::try_from(now.tv_sec).ok()?;
    let nsec = u64::try_from(now.tv_nsec).ok()?;
    Some(Tick(
        secs.saturating_mul(NANOS_PER_SEC).saturating_add(nsec),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_follow_instants_and_come_back_unchanged() {
        let clock = Clock::new();
        let before = Instant::now();
        let tick = clock.now();
        let after = Instant::now();
        let at = clock.instant_of(tick);
        // Behind by at most the time between the clock's two reads, never ahead.
        assert!(at <= after, "{at:?} > {after:?}");
        assert!(
            at + Duration::from_millis(10) >= before,
            "{at:?} << {before:?}"
        );
        for instant in [
            before,
            before + Duration::from_secs(3600),
            before - Duration::from_millis(5),
        ] {
            assert_eq!(clock.instant_of(clock.tick_of(instant)), instant);
        }
    }

    #[test]
    fn arithmetic_saturates() {
        let t = Tick(5_000_000_000);
        assert_eq!(t + Duration::from_micros(1500), Tick(5_001_500_000));
        assert_eq!(
            (t + Duration::from_micros(1500)).saturating_since(t),
            Duration::from_micros(1500)
        );
        assert_eq!(
            t.saturating_since(t + Duration::from_secs(1)),
            Duration::ZERO
        );
        assert_eq!(t + Duration::MAX, Tick(u64::MAX));
        let clock = Clock::new();
        assert!(clock.now() >= clock.tick_of(Instant::now() - Duration::from_secs(1)));
    }
}
