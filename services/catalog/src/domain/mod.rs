//! The catalog context's rules: what a product and its price are, what a valid name,
//! description, category slug, price and request id look like, and what can go wrong.
//! Pure: no I/O, no generated or storage types.

mod rules;

pub use rules::*;

use polyshop_platform::status::Violations;

/// An amount of money: integer minor units and an ISO 4217 code, never a float.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Money {
    /// In the currency's minor unit, e.g. 1999 for 19.99 USD.
    pub amount_minor: i64,
    /// Three upper-case ASCII letters, e.g. `USD`.
    pub currency_code: String,
}

/// Something the shop sells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Product {
    /// UUIDv7, so ids sort by creation.
    pub id: String,
    /// 1–200 characters, trimmed.
    pub name: String,
    /// Up to 5000 characters.
    pub description: String,
    /// Lower-case slug, e.g. `kitchen`.
    pub category: String,
    /// Unit price.
    pub price: Money,
    /// Listed and orderable when true; inactive products are still readable by id.
    pub active: bool,
    /// Epoch ms.
    pub created_at: i64,
    /// Epoch ms; strictly increases with every update.
    pub updated_at: i64,
}

/// What CreateProduct asks for, before validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProductDraft {
    /// Client-chosen idempotency key; empty for none.
    pub request_id: String,
    /// Name.
    pub name: String,
    /// Description.
    pub description: String,
    /// Category slug.
    pub category: String,
    /// Unit price; required.
    pub price: Option<Money>,
    /// Whether it starts active.
    pub active: bool,
}

/// A product about to be created: trimmed and valid, not yet stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewProduct {
    /// Idempotency key; a second create with the same one returns the first product.
    pub request_id: Option<String>,
    /// Name.
    pub name: String,
    /// Description.
    pub description: String,
    /// Category slug.
    pub category: String,
    /// Unit price.
    pub price: Money,
    /// Whether it starts active.
    pub active: bool,
}

/// What UpdateProduct changes: `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProductChanges {
    /// New name.
    pub name: Option<String>,
    /// New description.
    pub description: Option<String>,
    /// New category.
    pub category: Option<String>,
    /// New price.
    pub price: Option<Money>,
    /// Activate or deactivate.
    pub active: Option<bool>,
}

/// What can go wrong in the catalog context. Mapped to gRPC in `grpc::status`.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// The request breaks field rules; every violation is listed.
    #[error("invalid request: {0}")]
    Invalid(Violations),
    /// No product with that id.
    #[error("product not found")]
    NotFound,
    /// Another CreateProduct with the same request id won the insert, and its product could
    /// not be read back; retrying the request returns it.
    #[error("a concurrent request with this request_id is in progress")]
    DuplicateRequest,
    /// Storage failed.
    #[error("internal: {0}")]
    Internal(Box<dyn std::error::Error + Send + Sync>),
}

impl From<Violations> for CatalogError {
    fn from(v: Violations) -> Self {
        Self::Invalid(v)
    }
}
