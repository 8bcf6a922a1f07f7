//! [`TtlMap`]: the in-memory map behind the services' read-through caches. An entry is fresh
//! for a set time after it was remembered (the `cache_ttl_ms` runtime setting may change it) and is kept after that (a caller may still serve
//! it when its store fails); the map never holds more than a fixed number of entries.
//!
//! [`TtlMap::lookup`] refreshes a hot entry without a stampede: when it goes stale, one caller
//! is told to read the store while the others keep getting the stale value until that read
//! lands (stale-while-revalidate, one refresh in flight per entry).

use std::{
    collections::HashMap,
    sync::{
        PoisonError, RwLock,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

/// Values by id, each fresh for `ttl` after it was remembered.
#[derive(Debug)]
pub struct TtlMap<V> {
    /// How long an entry is fresh, in ms; runtime configuration may change it.
    ttl_ms: AtomicU64,
    configured_ttl: Duration,
    max_entries: usize,
    entries: RwLock<HashMap<String, Entry<V>>>,
}

#[derive(Debug)]
struct Entry<V> {
    value: V,
    at: Instant,
    /// When a caller was sent to the store for a fresh copy; a claim older than the TTL is
    /// taken as abandoned (the caller failed or was cancelled) and handed to the next caller.
    refreshing: Option<Instant>,
}

impl<V> Entry<V> {
    fn fresh(&self, ttl: Duration) -> bool {
        self.at.elapsed() < ttl
    }
}

/// What [`TtlMap::lookup`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup<V> {
    /// Fresh: serve it.
    Fresh(V),
    /// Stale, and another caller is reading the store for it: serve it meanwhile.
    Refreshing(V),
    /// Read the store, then [`TtlMap::remember`] the answer; the stale value, if any, is the
    /// fallback for when the store fails.
    Load(Option<V>),
}

impl<V: Clone> TtlMap<V> {
    /// An empty map whose entries are fresh for `ttl`, holding at most `max_entries`.
    pub fn new(ttl: Duration, max_entries: usize) -> Self {
        Self {
            ttl_ms: AtomicU64::new(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX)),
            configured_ttl: ttl,
            max_entries,
            entries: RwLock::default(),
        }
    }

    /// Sets how long entries stay fresh (`None`: as configured), for runtime configuration;
    /// it applies to entries already held too.
    pub fn set_ttl(&self, ttl: Option<Duration>) {
        let ttl = ttl.unwrap_or(self.configured_ttl);
        self.ttl_ms.store(
            u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    /// How long entries stay fresh now.
    pub fn ttl(&self) -> Duration {
        Duration::from_millis(self.ttl_ms.load(Ordering::Relaxed))
    }

    /// The value remembered for `id`, and whether it is still fresh.
    pub fn get(&self, id: &str) -> Option<(V, bool)> {
        self.entries
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(id)
            .map(|e| (e.value.clone(), e.fresh(self.ttl())))
    }

    /// The value for `id` and what to do with it; see [`Lookup`]. A stale entry sends exactly
    /// one caller to the store per TTL, so a hot key costs one store read per TTL, not a burst.
    pub fn lookup(&self, id: &str) -> Lookup<V> {
        // The read lock serves the common case; only a stale entry takes the write lock, and
        // checks again under it, since another caller may have refreshed or claimed it.
        match self
            .entries
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(id)
        {
            None => return Lookup::Load(None),
            Some(e) if e.fresh(self.ttl()) => return Lookup::Fresh(e.value.clone()),
            Some(_) => {}
        }
        let mut entries = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        let Some(entry) = entries.get_mut(id) else {
            return Lookup::Load(None);
        };
        if entry.fresh(self.ttl()) {
            return Lookup::Fresh(entry.value.clone());
        }
        if entry
            .refreshing
            .is_some_and(|since| since.elapsed() < self.ttl())
        {
            return Lookup::Refreshing(entry.value.clone());
        }
        entry.refreshing = Some(Instant::now());
        Lookup::Load(Some(entry.value.clone()))
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
            entries.retain(|_, e| e.fresh(self.ttl()));
            if entries.len() + values.len() > self.max_entries {
                entries.clear();
            }
        }
        let now = Instant::now();
        for v in values {
            let entry = Entry {
                value: v.clone(),
                at: now,
                refreshing: None,
            };
            entries.insert(id_of(v).to_owned(), entry);
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

    #[test]
    fn a_stale_entry_sends_one_caller_to_the_store_and_the_rest_get_it_meanwhile() {
        let map = TtlMap::new(Duration::from_millis(20), 10);
        assert_eq!(map.lookup("a"), Lookup::Load(None));
        map.remember(&["a".to_owned()], String::as_str);
        assert_eq!(map.lookup("a"), Lookup::Fresh("a".to_owned()));
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(map.lookup("a"), Lookup::Load(Some("a".to_owned())));
        assert_eq!(map.lookup("a"), Lookup::Refreshing("a".to_owned()));
        assert_eq!(map.lookup("a"), Lookup::Refreshing("a".to_owned()));
        map.remember(&["a".to_owned()], String::as_str);
        assert_eq!(map.lookup("a"), Lookup::Fresh("a".to_owned()));
    }

    #[test]
    fn an_abandoned_refresh_is_handed_to_the_next_caller_after_a_ttl() {
        let map = TtlMap::new(Duration::from_millis(20), 10);
        map.remember(&["a".to_owned()], String::as_str);
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(map.lookup("a"), Lookup::Load(Some("a".to_owned())));
        assert_eq!(map.lookup("a"), Lookup::Refreshing("a".to_owned()));
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(map.lookup("a"), Lookup::Load(Some("a".to_owned())));
    }
}
