//! Connection limits shared by every loop of the process: `--max-connections` (open
//! connections in all) and `--max-per-source` (open TCP connections per client address).
//!
//! netcore's own `Config::max_connections` is per loop (each loop holds back its listener
//! when it alone has that many): with one loop per core the real limit was N times the
//! cores. These counts are the process's; a connection past them is refused at once by the
//! service (a reset), and counted. Each loop also keeps netcore's per-loop limit at N, so a
//! loop that alone holds N lets the rest wait in the backlog, as before.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// `--max-connections`: open connections in the whole process.
#[derive(Debug)]
pub struct ConnectionLimit {
    max: usize,
    open: AtomicUsize,
}

impl ConnectionLimit {
    pub fn new(max: usize) -> ConnectionLimit {
        ConnectionLimit {
            max,
            open: AtomicUsize::new(0),
        }
    }

    /// Takes a place for a new connection; `false` (nothing taken) when all are taken.
    pub fn try_take(&self) -> bool {
        let mut open = self.open.load(Ordering::Relaxed);
        loop {
            if open >= self.max {
                return false;
            }
            match self.open.compare_exchange_weak(
                open,
                open + 1,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(now) => open = now,
            }
        }
    }

    /// Gives back a place taken by [`try_take`](Self::try_take).
    pub fn release(&self) {
        self.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Shards of the per-source table: loops that accept at once rarely wait on one lock.
const SHARDS: usize = 16;

/// `--max-per-source`: open TCP connections per client address, across loops. An
/// IPv4-mapped IPv6 address counts as its IPv4 address.
#[derive(Debug)]
pub struct SourceLimit {
    max: u32,
    shards: [Mutex<HashMap<IpAddr, u32>>; SHARDS],
    hasher: std::collections::hash_map::RandomState,
}

impl SourceLimit {
    pub fn new(max: u32) -> SourceLimit {
        SourceLimit {
            max,
            shards: std::array::from_fn(|_| Mutex::new(HashMap::new())),
            hasher: std::collections::hash_map::RandomState::new(),
        }
    }

    /// Takes a place for a connection from `source`; `false` (nothing taken) when it has
    /// its `max` open already.
    pub fn try_take(&self, source: IpAddr) -> bool {
        let source = source.to_canonical();
        let Ok(mut shard) = self.shard(source).lock() else {
            // A loop panicked holding it; limits are not worth a second failure.
            return true;
        };
        let open = shard.entry(source).or_insert(0);
        if *open >= self.max {
            return false;
        }
        *open += 1;
        true
    }

    /// Gives back a place taken for `source`; a source with none left is forgotten, so the
    /// table holds only sources with open connections.
    pub fn release(&self, source: IpAddr) {
        let source = source.to_canonical();
        let Ok(mut shard) = self.shard(source).lock() else {
            return;
        };
        if let Some(open) = shard.get_mut(&source) {
            *open = open.saturating_sub(1);
            if *open == 0 {
                shard.remove(&source);
            }
        }
    }

    fn shard(&self, source: IpAddr) -> &Mutex<HashMap<IpAddr, u32>> {
        // The remainder is below SHARDS, so it fits any usize.
        &self.shards[(self.hasher.hash_one(source) % SHARDS as u64) as usize]
    }

    #[cfg(test)]
    fn sources(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().map_or(0, |s| s.len()))
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn the_process_limit_holds_across_threads() {
        let limit = Arc::new(ConnectionLimit::new(100));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let limit = Arc::clone(&limit);
                std::thread::spawn(move || (0..1000).filter(|_| limit.try_take()).count())
            })
            .collect();
        let taken: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
        assert_eq!(taken, 100);
        limit.release();
        assert!(limit.try_take());
        assert!(!limit.try_take());
    }

    #[test]
    fn each_source_gets_its_own_count_and_is_forgotten_when_done() {
        let limit = SourceLimit::new(2);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let a_mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        let b: IpAddr = "2001:db8::1".parse().unwrap();
        assert!(limit.try_take(a));
        assert!(limit.try_take(a_mapped));
        assert!(!limit.try_take(a), "a third from the same source");
        assert!(limit.try_take(b), "another source is not held back");
        limit.release(a);
        assert!(limit.try_take(a));
        limit.release(a);
        limit.release(a);
        limit.release(b);
        assert_eq!(limit.sources(), 0);
    }
}
