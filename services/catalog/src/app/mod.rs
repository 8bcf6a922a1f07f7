//! Use cases of the catalog context, over the [`CatalogRepository`] port. One file per use
//! case; each validates its input with the domain rules, then calls the repository. Access
//! (admin for writes, public for reads) is enforced by the contract before a use case runs.

mod create_product;
mod get_products;
mod list_products;
mod update_product;

#[cfg(test)]
pub(crate) mod memory;

pub use create_product::*;
pub use get_products::*;
pub use list_products::*;
pub use update_product::*;

use std::future::Future;

use crate::domain::{CatalogError, NewProduct, Product, ProductChanges};

/// Which active products a list shows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListFilter {
    /// Only this category (exact slug).
    pub category: Option<String>,
    /// Only products whose name or description contains this, ignoring case.
    pub query: Option<String>,
}

/// Storage of products. Request ids are unique: inserting a second product with a stored
/// request id fails with `DuplicateRequest`. Each write records its domain events
/// ([`crate::domain::ProductEvent`]) in the same transaction as the change.
pub trait CatalogRepository: Send + Sync + 'static {
    /// Stores a new product under `id`, stamping its creation and update time, with
    /// `ProductCreated`.
    fn insert(
        &self,
        id: String,
        new: NewProduct,
    ) -> impl Future<Output = Result<Product, CatalogError>> + Send;
    /// The product with `id`, active or not.
    fn find(&self, id: &str) -> impl Future<Output = Result<Option<Product>, CatalogError>> + Send;
    /// The product created with `request_id`.
    fn find_by_request_id(
        &self,
        request_id: &str,
    ) -> impl Future<Output = Result<Option<Product>, CatalogError>> + Send;
    /// The products among `ids` that exist, active or not, each once, in any order.
    fn find_many(
        &self,
        ids: &[String],
    ) -> impl Future<Output = Result<Vec<Product>, CatalogError>> + Send;
    /// Active products matching `filter` with id less than `before`, newest (greatest id)
    /// first, at most `limit`.
    fn list(
        &self,
        filter: &ListFilter,
        before: Option<String>,
        limit: u64,
    ) -> impl Future<Output = Result<Vec<Product>, CatalogError>> + Send;
    /// Applies the set fields of `changes` and bumps the update time, with the events
    /// [`crate::domain::ProductEvent::of_update`] names; `NotFound` if missing.
    fn update(
        &self,
        id: &str,
        changes: ProductChanges,
    ) -> impl Future<Output = Result<Product, CatalogError>> + Send;
}
