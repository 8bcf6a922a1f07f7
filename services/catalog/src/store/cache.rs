//! A read-through cache in front of a [`CatalogRepository`]: product reads by id (GetProduct,
//! BatchGetProducts — the edge's hottest route and the saga's pricing call) are served from
//! memory for [`TTL`]; this process's writes replace the cached product at once, so staleness
//! is bounded by the TTL only for writes made by another catalog instance. A hot product
//! that goes stale is re-read by one request while the others get the stale copy for those
//! few milliseconds (no stampede on the store every TTL). When the store fails, a stale
//! cached product is served rather than an error (cache with fallback). Lists always go to
//! the store.

use std::time::Duration;

use polyshop_platform::cache::{Lookup, TtlMap};

use crate::{
    app::{CatalogRepository, ListFilter},
    domain::{CatalogError, NewProduct, Product, ProductChanges},
};

/// How long a cached product is served without asking the store.
pub const TTL: Duration = Duration::from_secs(1);
/// Products kept at most; past this, expired ones are dropped, then all.
const MAX_ENTRIES: usize = 10_000;

/// See the module docs.
#[derive(Debug)]
pub struct CachedCatalog<R> {
    inner: R,
    entries: TtlMap<Product>,
}

impl<R: CatalogRepository> CachedCatalog<R> {
    /// Caches `inner`'s reads for `ttl`.
    pub fn new(inner: R, ttl: Duration) -> Self {
        Self {
            inner,
            entries: TtlMap::new(ttl, MAX_ENTRIES),
        }
    }

    /// Sets how long entries stay fresh (`None`: as built), for the runtime `cache_ttl_ms`.
    pub fn set_ttl(&self, ttl: Option<Duration>) {
        self.entries.set_ttl(ttl);
    }

    /// The cached product and whether it is still fresh.
    fn cached(&self, id: &str) -> Option<(Product, bool)> {
        self.entries.get(id)
    }

    fn remember(&self, products: &[Product]) {
        self.entries.remember(products, |p| &p.id);
    }

    fn forget(&self, id: &str) {
        self.entries.forget(id);
    }
}

impl<R: CatalogRepository> CatalogRepository for CachedCatalog<R> {
    async fn insert(&self, id: String, new: NewProduct) -> Result<Product, CatalogError> {
        let product = self.inner.insert(id, new).await?;
        self.remember(std::slice::from_ref(&product));
        Ok(product)
    }

    async fn find(&self, id: &str) -> Result<Option<Product>, CatalogError> {
        let stale = match self.entries.lookup(id) {
            Lookup::Fresh(product) | Lookup::Refreshing(product) => return Ok(Some(product)),
            Lookup::Load(stale) => stale,
        };
        match self.inner.find(id).await {
            Ok(Some(product)) => {
                self.remember(std::slice::from_ref(&product));
                Ok(Some(product))
            }
            Ok(None) => {
                self.forget(id);
                Ok(None)
            }
            Err(e) => match stale {
                Some(stale) => {
                    tracing::warn!(product_id = id, error = %e, "store failed; serving a stale cached product");
                    Ok(Some(stale))
                }
                None => Err(e),
            },
        }
    }

    async fn find_by_request_id(&self, request_id: &str) -> Result<Option<Product>, CatalogError> {
        self.inner.find_by_request_id(request_id).await
    }

    async fn find_many(&self, ids: &[String]) -> Result<Vec<Product>, CatalogError> {
        let mut found = Vec::with_capacity(ids.len());
        let mut stale = Vec::new();
        let mut missing = Vec::new();
        for id in ids {
            match self.cached(id) {
                Some((p, true)) => found.push(p),
                Some((p, false)) => {
                    stale.push(p);
                    missing.push(id.clone());
                }
                None => missing.push(id.clone()),
            }
        }
        if missing.is_empty() {
            return Ok(found);
        }
        match self.inner.find_many(&missing).await {
            Ok(fetched) => {
                self.remember(&fetched);
                for id in missing
                    .iter()
                    .filter(|id| !fetched.iter().any(|p| &&p.id == id))
                {
                    self.forget(id);
                }
                found.extend(fetched);
                Ok(found)
            }
            // Only when every product not fresh in memory is at least stale in memory.
            Err(e) if stale.len() == missing.len() => {
                tracing::warn!(error = %e, "store failed; serving stale cached products");
                found.extend(stale);
                Ok(found)
            }
            Err(e) => Err(e),
        }
    }

    async fn list(
        &self,
        filter: &ListFilter,
        before: Option<String>,
        limit: u64,
    ) -> Result<Vec<Product>, CatalogError> {
        self.inner.list(filter, before, limit).await
    }

    async fn update(&self, id: &str, changes: ProductChanges) -> Result<Product, CatalogError> {
        match self.inner.update(id, changes).await {
            Ok(product) => {
                self.remember(std::slice::from_ref(&product));
                Ok(product)
            }
            Err(e) => {
                // The outcome is unknown: the next read asks the store.
                self.forget(id);
                Err(e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    use super::*;
    use crate::{app::memory::MemoryRepository, domain::Money};

    /// The memory store, counting reads by id and failing them on demand.
    #[derive(Debug, Default)]
    struct Flaky {
        inner: MemoryRepository,
        reads: AtomicUsize,
        down: AtomicBool,
    }

    impl Flaky {
        fn read(&self) -> Result<(), CatalogError> {
            self.reads.fetch_add(1, Ordering::SeqCst);
            if self.down.load(Ordering::SeqCst) {
                return Err(CatalogError::Internal("store down".into()));
            }
            Ok(())
        }
    }

    impl CatalogRepository for Flaky {
        async fn insert(&self, id: String, new: NewProduct) -> Result<Product, CatalogError> {
            self.inner.insert(id, new).await
        }
        async fn find(&self, id: &str) -> Result<Option<Product>, CatalogError> {
            self.read()?;
            self.inner.find(id).await
        }
        async fn find_by_request_id(&self, r: &str) -> Result<Option<Product>, CatalogError> {
            self.inner.find_by_request_id(r).await
        }
        async fn find_many(&self, ids: &[String]) -> Result<Vec<Product>, CatalogError> {
            self.read()?;
            self.inner.find_many(ids).await
        }
        async fn list(
            &self,
            f: &ListFilter,
            b: Option<String>,
            l: u64,
        ) -> Result<Vec<Product>, CatalogError> {
            self.inner.list(f, b, l).await
        }
        async fn update(&self, id: &str, c: ProductChanges) -> Result<Product, CatalogError> {
            self.inner.update(id, c).await
        }
    }

    fn mug() -> NewProduct {
        NewProduct {
            request_id: None,
            name: "Mug".into(),
            description: "A mug".into(),
            category: "kitchen".into(),
            price: Money {
                amount_minor: 1250,
                currency_code: "EUR".into(),
            },
            other_prices: Vec::new(),
            active: true,
        }
    }

    #[tokio::test]
    async fn reads_are_served_from_memory_and_writes_replace_them() {
        let cache = CachedCatalog::new(Flaky::default(), Duration::from_secs(60));
        cache.insert("p1".into(), mug()).await.expect("insert");
        let first = cache.find("p1").await.expect("find").expect("some");
        cache.find("p1").await.expect("find");
        cache.find_many(&["p1".into()]).await.expect("many");
        assert_eq!(
            cache.inner.reads.load(Ordering::SeqCst),
            0,
            "all from memory"
        );
        let changes = ProductChanges {
            price: Some(Money {
                amount_minor: 990,
                currency_code: "EUR".into(),
            }),
            ..Default::default()
        };
        cache.update("p1", changes).await.expect("update");
        let after = cache.find("p1").await.expect("find").expect("some");
        assert_ne!(first.price, after.price);
        assert_eq!(
            after.price.amount_minor, 990,
            "the write replaced the cached product"
        );
        assert_eq!(cache.find("nope").await.expect("find"), None);
    }

    #[tokio::test]
    async fn expired_entries_are_refetched_and_served_stale_only_when_the_store_fails() {
        let cache = CachedCatalog::new(Flaky::default(), Duration::from_millis(20));
        cache.insert("p1".into(), mug()).await.expect("insert");
        tokio::time::sleep(Duration::from_millis(30)).await;
        cache.find("p1").await.expect("find");
        assert_eq!(
            cache.inner.reads.load(Ordering::SeqCst),
            1,
            "expired: asked the store"
        );
        tokio::time::sleep(Duration::from_millis(30)).await;
        cache.inner.down.store(true, Ordering::SeqCst);
        let stale = cache.find("p1").await.expect("stale fallback");
        assert_eq!(stale.map(|p| p.name), Some("Mug".into()));
        let many = cache.find_many(&["p1".into()]).await.expect("stale batch");
        assert_eq!(many.len(), 1);
        let err = cache.find_many(&["p1".into(), "p2".into()]).await;
        assert!(err.is_err(), "p2 was never cached: the failure shows");
        assert!(cache.find("p2").await.is_err());
    }

    #[tokio::test]
    async fn a_stale_product_is_reread_once_while_other_reads_get_the_stale_copy() {
        let cache = CachedCatalog::new(Flaky::default(), Duration::from_millis(20));
        cache.insert("p1".into(), mug()).await.expect("insert");
        tokio::time::sleep(Duration::from_millis(30)).await;
        // The first read after expiry claims the refresh; as the store is down it falls back.
        cache.inner.down.store(true, Ordering::SeqCst);
        let first = cache.find("p1").await.expect("stale fallback");
        for _ in 0..5 {
            assert_eq!(cache.find("p1").await.expect("stale meanwhile"), first);
        }
        assert_eq!(
            cache.inner.reads.load(Ordering::SeqCst),
            1,
            "one store read per TTL, not one per request"
        );
        cache.inner.down.store(false, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(30)).await;
        cache.find("p1").await.expect("refreshed");
        cache.find("p1").await.expect("fresh");
        assert_eq!(cache.inner.reads.load(Ordering::SeqCst), 2);
    }
}
