//! The table of operations in flight that every load keeps: a slot per concurrent
//! connection (TCP, echo) or socket (UDP), the free slots, how many of the loop's share of
//! operations have started, and when each slot's operation began, for its latency and its
//! deadline.
//!
//! Free slots are reused last-freed first, so an operation that ends and starts the next one
//! at once gets its own slot back: a UDP slot is its socket, and an echo connection's
//! message offsets depend on its slot.

use std::time::{Duration, Instant};

/// The operations of one loop in flight, at most one per slot; `S` is what a load keeps
/// per operation beyond its start.
#[derive(Debug)]
pub(super) struct SlotPool<S> {
    slots: Vec<Option<Slot<S>>>,
    /// Free slot numbers; the last one is taken first.
    free: Vec<usize>,
    /// Operations to start in all.
    total: u64,
    started: u64,
    /// The run's time is up: no operation starts any more.
    over: bool,
}

/// A slot's operation in flight.
#[derive(Debug)]
pub(super) struct Slot<S> {
    /// When it began (a load that repeats requests in one operation moves it per request).
    pub since: Instant,
    pub state: S,
}

impl<S> SlotPool<S> {
    /// `size` slots, for `total` operations.
    pub fn new(size: usize, total: u64) -> SlotPool<S> {
        SlotPool {
            slots: (0..size).map(|_| None).collect(),
            free: (0..size).rev().collect(),
            total,
            started: 0,
            over: false,
        }
    }

    /// Starts the next operation in a free slot, its state made from the slot's number;
    /// `None` when no slot is free, every operation has started, or the run is over.
    pub fn start(&mut self, now: Instant, state: impl FnOnce(usize) -> S) -> Option<usize> {
        if self.over || self.started >= self.total {
            return None;
        }
        let slot = self.free.pop()?;
        self.slots[slot] = Some(Slot {
            since: now,
            state: state(slot),
        });
        self.started += 1;
        Some(slot)
    }

    /// The operation in `slot`, if one is in flight there.
    pub fn get_mut(&mut self, slot: usize) -> Option<&mut Slot<S>> {
        self.slots.get_mut(slot)?.as_mut()
    }

    /// Ends the operation in `slot` and frees the slot; what it was, or `None` when the
    /// slot was free.
    pub fn finish(&mut self, slot: usize) -> Option<Slot<S>> {
        let ended = self.slots.get_mut(slot)?.take()?;
        self.free.push(slot);
        Some(ended)
    }

    /// The slots whose operation began `timeout` or longer before `now`, in slot order.
    pub fn overdue(&self, now: Instant, timeout: Duration) -> Vec<usize> {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, slot)| {
                slot.as_ref()
                    .is_some_and(|s| now.duration_since(s.since) >= timeout)
            })
            .map(|(n, _)| n)
            .collect()
    }

    /// Every operation in flight.
    pub fn in_flight_mut(&mut self) -> impl Iterator<Item = &mut Slot<S>> {
        self.slots.iter_mut().flatten()
    }

    /// How many operations are in flight.
    pub fn in_flight(&self) -> u64 {
        (self.slots.len() - self.free.len()) as u64
    }

    /// The run's time is up: nothing starts from now on.
    pub fn end(&mut self) {
        self.over = true;
    }

    /// Whether the run's time is up.
    pub fn is_over(&self) -> bool {
        self.over
    }

    /// Nothing is in flight and nothing more will start: the loop can stop.
    pub fn drained(&self) -> bool {
        self.in_flight() == 0 && (self.over || self.started >= self.total)
    }

    /// Operations started so far.
    pub fn started(&self) -> u64 {
        self.started
    }

    /// Operations that never started.
    pub fn not_started(&self) -> u64 {
        self.total - self.started
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_reused_last_freed_first_and_the_total_bounds_the_starts() {
        let now = Instant::now();
        let mut pool = SlotPool::new(3, 4);
        let taken: Vec<_> = (0..4).map(|_| pool.start(now, |n| n * 10)).collect();
        assert_eq!(taken, [Some(0), Some(1), Some(2), None], "three slots");
        assert_eq!(pool.in_flight(), 3);
        assert_eq!(pool.finish(2).map(|s| s.state), Some(20));
        assert_eq!(pool.finish(0).map(|s| s.state), Some(0));
        assert!(pool.finish(0).is_none(), "a free slot ends nothing");
        assert_eq!(pool.start(now, |n| n), Some(0), "the last freed first");
        assert_eq!(pool.start(now, |n| n), None, "four of four started");
        assert_eq!((pool.not_started(), pool.drained()), (0, false));
        for slot in [0, 1] {
            pool.finish(slot);
        }
        assert!(pool.drained());
    }

    #[test]
    fn overdue_slots_are_those_past_the_timeout_and_an_ended_run_starts_nothing() {
        let start = Instant::now();
        let mut pool = SlotPool::new(3, 10);
        for _ in 0..3 {
            pool.start(start, |_| ());
        }
        if let Some(slot) = pool.get_mut(1) {
            slot.since = start + Duration::from_secs(1);
        }
        let at = start + Duration::from_millis(1500);
        assert_eq!(pool.overdue(at, Duration::from_secs(1)), [0, 2]);
        pool.finish(0);
        pool.end();
        assert_eq!(pool.start(at, |_| ()), None);
        assert_eq!(pool.in_flight_mut().count(), 2);
        assert_eq!(pool.not_started(), 7);
    }
}
