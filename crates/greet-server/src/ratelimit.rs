//! Per-source reply-rate limit for UDP: a QOTD-style service answers a small datagram with
//! a larger one, so spoofed sources make it an amplifier against third parties (US-CERT
//! alert TA14-017A). Each source address gets a token bucket; the table of buckets is
//! bounded, and sources that do not fit share one overflow bucket.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Instant;

/// Replies per second per source when `--udp-rate` is not given (non-loopback only).
pub const DEFAULT_RATE: u32 = 20;
/// Buckets kept at most; past this, sources share the overflow bucket.
const MAX_SOURCES: usize = 4096;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

#[derive(Debug)]
pub struct ReplyLimiter {
    rate: f64,
    burst: f64,
    include_loopback: bool,
    buckets: HashMap<IpAddr, Bucket>,
    overflow: Bucket,
}

impl ReplyLimiter {
    /// `rate` replies per second per source (burst: one second's worth). With
    /// `include_loopback` false, loopback sources are never limited.
    pub fn new(rate: u32, include_loopback: bool, now: Instant) -> ReplyLimiter {
        let rate = f64::from(rate.max(1));
        ReplyLimiter {
            rate,
            burst: rate,
            include_loopback,
            buckets: HashMap::new(),
            overflow: Bucket {
                tokens: rate * 4.0,
                last: now,
            },
        }
    }

    /// Whether a reply to `source` may be sent now (and takes a token if so).
    pub fn allow(&mut self, source: IpAddr, now: Instant) -> bool {
        if source.is_loopback() && !self.include_loopback {
            return true;
        }
        if !self.buckets.contains_key(&source) && self.buckets.len() >= MAX_SOURCES {
            self.forget_refilled(now);
        }
        let (rate, burst) = (self.rate, self.burst);
        if self.buckets.len() >= MAX_SOURCES && !self.buckets.contains_key(&source) {
            return take(&mut self.overflow, rate * 4.0, burst * 4.0, now);
        }
        let bucket = self.buckets.entry(source).or_insert(Bucket {
            tokens: burst,
            last: now,
        });
        take(bucket, rate, burst, now)
    }

    /// Drops buckets that have refilled completely: forgetting them changes nothing.
    fn forget_refilled(&mut self, now: Instant) {
        let (rate, burst) = (self.rate, self.burst);
        self.buckets
            .retain(|_, b| b.tokens + now.duration_since(b.last).as_secs_f64() * rate < burst);
    }
}

fn take(bucket: &mut Bucket, rate: f64, burst: f64, now: Instant) -> bool {
    let elapsed = now.saturating_duration_since(bucket.last).as_secs_f64();
    bucket.tokens = (bucket.tokens + elapsed * rate).min(burst);
    bucket.last = now;
    if bucket.tokens >= 1.0 {
        bucket.tokens -= 1.0;
        true
    } else {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_source_gets_its_rate_and_no_more() {
        let t0 = Instant::now();
        let mut limiter = ReplyLimiter::new(5, true, t0);
        let allowed = (0..100)
            .filter(|_| limiter.allow(ip("192.0.2.1"), t0))
            .count();
        assert_eq!(allowed, 5);
        // Another source is not affected by the first one's flood.
        assert!(limiter.allow(ip("192.0.2.2"), t0));
        // One second later, five more.
        let t1 = t0 + Duration::from_secs(1);
        let allowed = (0..100)
            .filter(|_| limiter.allow(ip("192.0.2.1"), t1))
            .count();
        assert_eq!(allowed, 5);
    }

    #[test]
    fn loopback_is_exempt_unless_asked() {
        let t0 = Instant::now();
        let mut limiter = ReplyLimiter::new(1, false, t0);
        assert!((0..50).all(|_| limiter.allow(ip("127.0.0.1"), t0)));
        assert!((0..50).all(|_| limiter.allow(ip("::1"), t0)));
        let mut strict = ReplyLimiter::new(1, true, t0);
        assert_eq!(
            (0..50)
                .filter(|_| strict.allow(ip("127.0.0.1"), t0))
                .count(),
            1
        );
    }

    #[test]
    fn the_table_of_sources_is_bounded() {
        let t0 = Instant::now();
        let mut limiter = ReplyLimiter::new(1, true, t0);
        for i in 0..(MAX_SOURCES as u32 + 1000) {
            let source = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            limiter.allow(source, t0);
        }
        assert!(limiter.buckets.len() <= MAX_SOURCES);
    }
}
