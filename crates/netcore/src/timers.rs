//! Ordered deadlines: the first one sets how long the loop may sleep in `poll`.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::clock::Tick;

use crate::id::ConnId;

/// What a deadline belongs to. Connection keys carry their generation, so a deadline left
/// behind by a closed connection can never fire on the connection that reuses its slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum TimerKey {
    Conn(ConnId),
    Listener(usize),
    User(u64),
    Shutdown,
}

#[derive(Debug, Default)]
pub(crate) struct Timers {
    queue: BTreeSet<(Tick, TimerKey)>,
}

impl Timers {
    pub(crate) fn insert(&mut self, at: Tick, key: TimerKey) {
        self.queue.insert((at, key));
    }

    pub(crate) fn remove(&mut self, at: Tick, key: TimerKey) {
        self.queue.remove(&(at, key));
    }

    /// Moves `key` from `old` to `new` (either may be absent).
    pub(crate) fn reschedule(&mut self, key: TimerKey, old: Option<Tick>, new: Option<Tick>) {
        if old == new {
            return;
        }
        if let Some(old) = old {
            self.remove(old, key);
        }
        if let Some(new) = new {
            self.insert(new, key);
        }
    }

    /// How long `poll` may sleep: until the first deadline, rounded up to a whole millisecond
    /// (epoll's unit) so the loop does not wake a moment early and spin.
    pub(crate) fn poll_timeout(&self, now: Tick) -> Option<Duration> {
        let (first, _) = self.queue.first()?;
        Some(Duration::from_millis(first.millis_after(now)))
    }

    /// Removes and returns the first deadline that is due at `now`.
    pub(crate) fn pop_due(&mut self, now: Tick) -> Option<TimerKey> {
        let &(at, key) = self.queue.first()?;
        if at > now {
            return None;
        }
        self.queue.pop_first();
        Some(key)
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.queue.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_fire_in_order_and_only_when_due() {
        let now = crate::clock::Clock::new().now();
        let mut timers = Timers::default();
        timers.insert(now + Duration::from_millis(30), TimerKey::User(3));
        timers.insert(now + Duration::from_millis(10), TimerKey::User(1));
        timers.insert(now + Duration::from_millis(20), TimerKey::User(2));
        assert_eq!(timers.poll_timeout(now), Some(Duration::from_millis(10)));
        assert_eq!(timers.pop_due(now), None);
        let later = now + Duration::from_millis(25);
        assert_eq!(timers.pop_due(later), Some(TimerKey::User(1)));
        assert_eq!(timers.pop_due(later), Some(TimerKey::User(2)));
        assert_eq!(timers.pop_due(later), None);
        assert_eq!(timers.len(), 1);
    }

    #[test]
    fn timeout_rounds_up_to_a_millisecond() {
        let now = crate::clock::Clock::new().now();
        let mut timers = Timers::default();
        timers.insert(now + Duration::from_micros(1500), TimerKey::Shutdown);
        assert_eq!(timers.poll_timeout(now), Some(Duration::from_millis(2)));
        assert_eq!(
            timers.poll_timeout(now + Duration::from_secs(1)),
            Some(Duration::ZERO)
        );
        let mut far = Timers::default();
        far.insert(now + Duration::new(61, 999_000_001), TimerKey::Shutdown);
        assert_eq!(far.poll_timeout(now), Some(Duration::from_millis(62_000)));
        far.insert(now + Duration::from_secs(3), TimerKey::Shutdown);
        assert_eq!(far.poll_timeout(now), Some(Duration::from_secs(3)));
    }

    #[test]
    fn reschedule_moves_a_deadline() {
        let now = crate::clock::Clock::new().now();
        let key = TimerKey::Conn(ConnId { index: 4, gen: 9 });
        let mut timers = Timers::default();
        timers.reschedule(key, None, Some(now));
        timers.reschedule(key, Some(now), Some(now + Duration::from_secs(5)));
        assert_eq!(timers.len(), 1);
        assert_eq!(timers.pop_due(now), None);
        timers.reschedule(key, Some(now + Duration::from_secs(5)), None);
        assert_eq!(timers.len(), 0);
    }
}
