//! [`TtlMap`]: the in-memory map behind the services' read-through caches. An entry is fresh
//! for a fixed time after it was remembered and is kept after that (a caller may still serve
//! it when its store fails); the map never holds more than a fixed number of entries.

use std::{
    collections::HashMap,
    sync::{PoisonError, RwLock},
    time::{Duration, Instant},
};

/// Values by id, each fresh for `ttl` after it was remembered.
#[derive(Debug)]
pub struct TtlMap<V> {
    ttl: Duration,
    max_entries: usize,
    entries: RwLock<HashMap<String, (V, Instant)>>,
}

impl<V: Clone> TtlMap<V> {
    /// An empty map whose entries are fresh for `ttl`, holding at most `max_entries`.
    pub fn new(ttl: Duration, max_entries: usize) -> Self {
        Self {
            ttl,
            max_entries,
            entries: RwLock::default(),
        }
    }

    /// The value remembered for `id`, and whether it is still fresh.
    pub fn get(&self, id: &str) -> Option<(V, bool)> {
        self.entries
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(id)
            .map(|(v, at)| (v.clone(), at.elapsed() < self.ttl))
    }

    /// Remembers `values` by the id `id_of` gives each, fresh from now. When the map would
    /// outgrow its bound, expired entries are dropped first, then all.
    pub fn remember<'a>(&self, values: impl IntoIterator<Item = &'a V>, id_of: impl Fn(&V) -> &str)
    where
        V: 'a,
    {
        let values: Vec<&V> = values.into_iter().collect();
        let mut entries = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        if entries.len() + values.len() > self.max_entries {
            entries.retain(|_, (_, at)| at.elapsed() < self.ttl);
            if entries.len() + values.len() > self.max_entries {
                entries.clear();
            }
        }
        let now = Instant::now();
        for v in values {
            entries.insert(id_of(v).to_owned(), (v.clone(), now));
        }
    }

    /// Forgets `id`: the next read asks the store.
    pub fn forget(&self, id: &str) {
        self.entries
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_turn_stale_and_the_bound_drops_expired_ones_first() {
        let map = TtlMap::new(Duration::from_millis(20), 2);
        map.remember(&["a".to_owned()], String::as_str);
        assert_eq!(map.get("a"), Some(("a".to_owned(), true)));
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(map.get("a"), Some(("a".to_owned(), false)), "kept, stale");
        map.remember(&["b".to_owned()], String::as_str);
        map.remember(&["c".to_owned()], String::as_str);
        assert_eq!(map.get("a"), None, "the expired entry made room");
        assert!(map.get("b").is_some() && map.get("c").is_some());
        map.forget("b");
        assert_eq!(map.get("b"), None);
    }
}
