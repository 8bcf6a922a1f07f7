//! An in-memory [`CatalogRepository`] for use-case tests, with a knob that makes request-id
//! reads miss so the insert race can be replayed deterministically.

use std::sync::{
    Mutex,
    atomic::{AtomicUsize, Ordering},
};

use super::{CatalogRepository, ListFilter};
use crate::domain::{CatalogError, NewProduct, Product, ProductChanges, other_prices_after};

#[derive(Debug, Default)]
pub struct MemoryRepository {
    rows: Mutex<Vec<(Option<String>, Product)>>,
    missed_reads: AtomicUsize,
}

impl MemoryRepository {
    pub fn len(&self) -> usize {
        self.rows.lock().expect("lock").len()
    }

    /// The next `n` `find_by_request_id` calls find nothing.
    pub fn miss_next_request_id_reads(&self, n: usize) {
        self.missed_reads.store(n, Ordering::SeqCst);
    }

    pub fn product(&self, id: &str) -> Option<Product> {
        self.rows
            .lock()
            .expect("lock")
            .iter()
            .find(|(_, p)| p.id == id)
            .map(|(_, p)| p.clone())
    }
}

fn matches(p: &Product, filter: &ListFilter) -> bool {
    let category = filter.category.as_ref().is_none_or(|c| &p.category == c);
    let query = filter.query.as_ref().is_none_or(|q| {
        let q = q.to_lowercase();
        p.name.to_lowercase().contains(&q) || p.description.to_lowercase().contains(&q)
    });
    p.active && category && query
}

impl CatalogRepository for MemoryRepository {
    async fn insert(&self, id: String, new: NewProduct) -> Result<Product, CatalogError> {
        let mut rows = self.rows.lock().expect("lock");
        if new.request_id.is_some() && rows.iter().any(|(r, _)| *r == new.request_id) {
            return Err(CatalogError::DuplicateRequest);
        }
        let now = polyshop_platform::now_millis();
        let product = Product {
            id,
            name: new.name,
            description: new.description,
            category: new.category,
            price: new.price,
            other_prices: new.other_prices,
            active: new.active,
            created_at: now,
            updated_at: now,
        };
        rows.push((new.request_id, product.clone()));
        Ok(product)
    }

    async fn find(&self, id: &str) -> Result<Option<Product>, CatalogError> {
        Ok(self.product(id))
    }

    async fn find_by_request_id(&self, request_id: &str) -> Result<Option<Product>, CatalogError> {
        let missed = self
            .missed_reads
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
        if missed.is_ok() {
            return Ok(None);
        }
        let rows = self.rows.lock().expect("lock");
        Ok(rows
            .iter()
            .find(|(r, _)| r.as_deref() == Some(request_id))
            .map(|(_, p)| p.clone()))
    }

    async fn find_many(&self, ids: &[String]) -> Result<Vec<Product>, CatalogError> {
        let rows = self.rows.lock().expect("lock");
        Ok(rows
            .iter()
            .filter(|(_, p)| ids.contains(&p.id))
            .map(|(_, p)| p.clone())
            .collect())
    }

    async fn list(
        &self,
        filter: &ListFilter,
        before: Option<String>,
        limit: u64,
    ) -> Result<Vec<Product>, CatalogError> {
        let rows = self.rows.lock().expect("lock");
        let mut found: Vec<Product> = rows
            .iter()
            .map(|(_, p)| p)
            .filter(|p| matches(p, filter) && before.as_ref().is_none_or(|b| &p.id < b))
            .cloned()
            .collect();
        found.sort_by(|a, b| b.id.cmp(&a.id));
        found.truncate(usize::try_from(limit).expect("small limit"));
        Ok(found)
    }

    async fn update(&self, id: &str, changes: ProductChanges) -> Result<Product, CatalogError> {
        let mut rows = self.rows.lock().expect("lock");
        let (_, p) = rows
            .iter_mut()
            .find(|(_, p)| p.id == id)
            .ok_or(CatalogError::NotFound)?;
        p.other_prices = other_prices_after(&p.other_prices, &changes);
        if let Some(name) = changes.name {
            p.name = name;
        }
        if let Some(description) = changes.description {
            p.description = description;
        }
        if let Some(category) = changes.category {
            p.category = category;
        }
        if let Some(price) = changes.price {
            p.price = price;
        }
        if let Some(active) = changes.active {
            p.active = active;
        }
        p.updated_at = polyshop_platform::now_millis().max(p.updated_at + 1);
        Ok(p.clone())
    }
}
