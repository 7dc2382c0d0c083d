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
    /// The first deadline in `queue`: the loop asks for it twice a turn (the poll's
    /// timeout, what is due), and the tree would be walked each time.
    first: Option<Tick>,
}

impl Timers {
    pub(crate) fn insert(&mut self, at: Tick, key: TimerKey) {
        self.queue.insert((at, key));
        if self.first.is_none_or(|first| at < first) {
            self.first = Some(at);
        }
    }

    pub(crate) fn remove(&mut self, at: Tick, key: TimerKey) {
        if self.queue.remove(&(at, key)) && self.first == Some(at) {
            self.first = self.queue.first().map(|&(at, _)| at);
        }
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

    /// How long `poll` may sleep: until the first deadline. mio rounds it up to epoll's
    /// whole milliseconds, so the loop does not wake a moment early and spin.
    pub(crate) fn poll_timeout(&self, now: Tick) -> Option<Duration> {
        Some(self.first?.saturating_since(now))
    }

    /// Removes and returns the first deadline that is due at `now`.
    pub(crate) fn pop_due(&mut self, now: Tick) -> Option<TimerKey> {
        if self.first? > now {
            return None;
        }
        let (_, key) = self.queue.pop_first()?;
        self.first = self.queue.first().map(|&(at, _)| at);
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
    fn the_timeout_runs_to_the_first_deadline_and_never_below_zero() {
        let now = crate::clock::Clock::new().now();
        let mut timers = Timers::default();
        timers.insert(now + Duration::from_micros(1500), TimerKey::Shutdown);
        assert_eq!(timers.poll_timeout(now), Some(Duration::from_micros(1500)));
        assert_eq!(
            timers.poll_timeout(now + Duration::from_secs(1)),
            Some(Duration::ZERO)
        );
        let mut far = Timers::default();
        far.insert(now + Duration::new(61, 999_000_001), TimerKey::Shutdown);
        assert_eq!(far.poll_timeout(now), Some(Duration::new(61, 999_000_001)));
        far.insert(now + Duration::from_secs(3), TimerKey::Shutdown);
        assert_eq!(far.poll_timeout(now), Some(Duration::from_secs(3)));
    }

    #[test]
    fn the_first_deadline_follows_removals_and_pops() {
        let now = crate::clock::Clock::new().now();
        let at = |ms| now + Duration::from_millis(ms);
        let mut timers = Timers::default();
        assert_eq!(timers.poll_timeout(now), None);
        timers.insert(at(20), TimerKey::User(2));
        timers.insert(at(10), TimerKey::User(1));
        timers.insert(at(10), TimerKey::User(3));
        // Removing one of two at the first time leaves the other first.
        timers.remove(at(10), TimerKey::User(1));
        assert_eq!(timers.poll_timeout(now), Some(Duration::from_millis(10)));
        // Removing an entry that is not there changes nothing.
        timers.remove(at(10), TimerKey::User(1));
        assert_eq!(timers.pop_due(at(10)), Some(TimerKey::User(3)));
        assert_eq!(timers.poll_timeout(now), Some(Duration::from_millis(20)));
        timers.remove(at(20), TimerKey::User(2));
        assert_eq!(timers.poll_timeout(now), None);
        assert_eq!(timers.pop_due(at(1000)), None);
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
