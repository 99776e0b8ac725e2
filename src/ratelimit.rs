//! Per-client rate limiting for UDP: a token bucket per source address. Over the limit a
//! query is dropped, except that every `slip`-th one gets a tiny truncated answer (TC set)
//! so a real client behind a busy address can retry over TCP, where the handshake proves
//! the address. Nothing over the limit is answered with more bytes than it sent, so the
//! limiter cannot be used to amplify (the idea of BIND's RRL "slip").

use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Instant;

use rustc_hash::FxHashMap;

const SHARDS: usize = 64;
/// Clients tracked per shard before the shard starts over (bounded memory under spoofing).
const MAX_PER_SHARD: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    /// Over the limit: answer with a truncated reply (TC).
    Slip,
    Drop,
}

#[derive(Clone, Copy)]
struct Bucket {
    tokens: f64,
    last: Instant,
    over: u32,
}

pub struct RateLimiter {
    /// Clients never limited (by default loopback: local tools, not spoofable from outside).
    exempt: Vec<ipnet::IpNet>,
    rate: f64,
    burst: f64,
    slip: u32,
    shards: Vec<Mutex<FxHashMap<IpAddr, Bucket>>>,
}

impl RateLimiter {
    /// `rate` queries per second per client with bursts of `burst`; None when `rate` is 0.
    pub fn new(rate: u32, burst: u32, slip: u32) -> Option<RateLimiter> {
        (rate > 0).then(|| RateLimiter {
            exempt: Vec::new(),
            rate: f64::from(rate),
            burst: f64::from(burst.max(rate)),
            slip,
            shards: (0..SHARDS)
                .map(|_| Mutex::new(FxHashMap::default()))
                .collect(),
        })
    }

    /// Networks whose clients are never limited.
    pub fn exempting(mut self, nets: Vec<ipnet::IpNet>) -> RateLimiter {
        self.exempt = nets;
        self
    }

    pub fn check(&self, client: IpAddr) -> Verdict {
        let client = client.to_canonical();
        if self.exempt.iter().any(|n| n.contains(&client)) {
            return Verdict::Allow;
        }
        let shard = match client {
            IpAddr::V4(v4) => u32::from(v4) as usize,
            IpAddr::V6(v6) => (u128::from(v6) >> 64) as usize ^ u128::from(v6) as usize,
        } % SHARDS;
        let now = Instant::now();
        let mut map = self.shards[shard].lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= MAX_PER_SHARD && !map.contains_key(&client) {
            map.clear();
        }
        let bucket = map.entry(client).or_insert(Bucket {
            tokens: self.burst,
            last: now,
            over: 0,
        });
        let elapsed = now.duration_since(bucket.last).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.rate).min(self.burst);
        bucket.last = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            return Verdict::Allow;
        }
        bucket.over = bucket.over.wrapping_add(1);
        if self.slip > 0 && bucket.over.is_multiple_of(self.slip) {
            Verdict::Slip
        } else {
            Verdict::Drop
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allows_the_burst_then_limits_and_slips() {
        let limiter = RateLimiter::new(10, 20, 2).unwrap();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let verdicts: Vec<_> = (0..30).map(|_| limiter.check(a)).collect();
        assert_eq!(
            verdicts.iter().filter(|v| **v == Verdict::Allow).count(),
            20
        );
        assert_eq!(verdicts.iter().filter(|v| **v == Verdict::Slip).count(), 5);
        assert_eq!(
            limiter.check("192.0.2.2".parse().unwrap()),
            Verdict::Allow,
            "other clients unaffected"
        );
        assert!(RateLimiter::new(0, 0, 2).is_none(), "0 turns it off");
        let exempt = RateLimiter::new(1, 1, 0)
            .unwrap()
            .exempting(vec!["127.0.0.0/8".parse().unwrap()]);
        assert!((0..10).all(|_| exempt.check("127.0.0.1".parse().unwrap()) == Verdict::Allow));
    }
}
