//! Requests in flight per client address: at most `gateway.max_concurrent_per_ip` at once for
//! one key (the client's [`client::ip_key`]: an IPv4 address whole, an IPv6 client by its /64,
//! behind a trusted proxy the client it names), so one address cannot hold every one of the
//! edge's `max_concurrency` slots while others are shed.
//!
//! A key is in the map only while it holds a slot: the last slot's release removes it, so the
//! map never holds more keys than there are requests in flight (at most `max_concurrency`,
//! since a slot here is taken only once the edge-wide one is held).
//!
//! [`client::ip_key`]: super::client::ip_key

use std::{
    collections::HashMap,
    hash::{BuildHasher, RandomState},
    sync::{Arc, Mutex, MutexGuard, PoisonError},
};

/// Shards of the count map: an admission locks one.
const SHARDS: usize = 16;

/// Counts of requests in flight per key, capped.
#[derive(Debug)]
pub struct PerIp {
    limit: usize,
    shards: Box<[Mutex<HashMap<String, usize>>]>,
    hasher: RandomState,
}

/// One request's slot of its key; released on drop.
#[derive(Debug)]
pub struct Slot {
    /// `None` when there is no cap: nothing was counted.
    per_ip: Option<Arc<PerIp>>,
    key: String,
}

impl PerIp {
    /// At most `limit` requests in flight per key; 0 means no cap.
    pub fn new(limit: usize) -> Arc<Self> {
        Arc::new(Self {
            limit,
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            hasher: RandomState::new(),
        })
    }

    /// The cap per key (0: none).
    pub fn limit(&self) -> usize {
        self.limit
    }

    fn shard(&self, key: &str) -> MutexGuard<'_, HashMap<String, usize>> {
        let i = (self.hasher.hash_one(key) % SHARDS as u64) as usize;
        self.shards[i]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// A slot of `key`, or `None` when it holds `limit` already. With no cap, a slot that
    /// counts nothing.
    pub fn try_acquire(self: &Arc<Self>, key: String) -> Option<Slot> {
        if self.limit == 0 {
            return Some(Slot { per_ip: None, key });
        }
        {
            let mut shard = self.shard(&key);
            match shard.get_mut(&key) {
                Some(n) if *n >= self.limit => return None,
                Some(n) => *n += 1,
                None => {
                    shard.insert(key.clone(), 1);
                }
            }
        }
        Some(Slot {
            per_ip: Some(Arc::clone(self)),
            key,
        })
    }

    /// Requests `key` has in flight.
    pub fn in_flight(&self, key: &str) -> usize {
        self.shard(key).get(key).copied().unwrap_or(0)
    }

    /// Keys with a request in flight.
    pub fn keys(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(PoisonError::into_inner).len())
            .sum()
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let Some(per_ip) = &self.per_ip else {
            return;
        };
        let mut shard = per_ip.shard(&self.key);
        if let Some(n) = shard.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                shard.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_gets_its_limit_and_others_are_not_affected_and_release_forgets_the_key() {
        let per_ip = PerIp::new(2);
        let a1 = per_ip.try_acquire("ip:a".into()).expect("first");
        let a2 = per_ip.try_acquire("ip:a".into()).expect("second");
        assert!(per_ip.try_acquire("ip:a".into()).is_none(), "third refused");
        let b = per_ip.try_acquire("ip:b".into()).expect("another key");
        assert_eq!((per_ip.in_flight("ip:a"), per_ip.keys()), (2, 2));
        drop(a1);
        let a3 = per_ip.try_acquire("ip:a".into()).expect("a slot came back");
        drop((a2, a3, b));
        assert_eq!(per_ip.keys(), 0, "no key outlives its last request");
    }

    #[test]
    fn zero_turns_the_cap_off_and_keeps_no_keys() {
        let per_ip = PerIp::new(0);
        let slots: Vec<_> = (0..1000)
            .map(|_| per_ip.try_acquire("ip:a".into()).expect("no cap"))
            .collect();
        assert_eq!((slots.len(), per_ip.keys()), (1000, 0));
    }
}
