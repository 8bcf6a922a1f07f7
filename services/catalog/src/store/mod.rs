//! Persistence of the catalog context with sea-orm: the `products` and `product_prices`
//! tables, their migrations, and
//! [`SeaCatalogRepository`], the implementation of [`crate::app::CatalogRepository`].
//! Entities never leave this module.

mod cache;
mod entities;
mod repository;
pub mod search;

pub use cache::{CachedCatalog, TTL as CACHE_TTL};
pub use repository::{SCAN_FIRST, SeaCatalogRepository};

use polyshop_platform::db::Migration;

/// Schema of the catalog database, oldest first.
///
/// `request_id` is UNIQUE but nullable: both SQLite and PostgreSQL allow any number of NULLs,
/// so only creates that carry a request id are deduplicated. The list indexes serve
/// `WHERE active … ORDER BY id DESC` with and without a category.
///
/// Version 2 (`polyshop.catalog.v2`, a price per currency) keeps the default price in
/// `products`, so version 1 reads it unchanged, and a product's prices in further currencies
/// in `product_prices`, one row per currency.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "products",
        sql: "CREATE TABLE products (
            id TEXT PRIMARY KEY,
            request_id TEXT UNIQUE,
            name TEXT NOT NULL,
            description TEXT NOT NULL,
            category TEXT NOT NULL,
            price_amount_minor BIGINT NOT NULL CHECK (price_amount_minor > 0),
            price_currency_code TEXT NOT NULL,
            active BOOLEAN NOT NULL,
            created_at BIGINT NOT NULL,
            updated_at BIGINT NOT NULL);
          CREATE INDEX products_active_by_id ON products (active, id);
          CREATE INDEX products_by_category ON products (category, active, id)",
    },
    Migration {
        version: 2,
        name: "product_prices",
        sql: "CREATE TABLE product_prices (
            product_id TEXT NOT NULL REFERENCES products (id),
            currency_code TEXT NOT NULL,
            amount_minor BIGINT NOT NULL CHECK (amount_minor > 0),
            PRIMARY KEY (product_id, currency_code))",
    },
];
