//! Persistence of the inventory context with sea-orm: the `stock`, `reservations` and
//! `reservation_items` tables, their migrations, and [`SeaInventoryRepository`], the
//! implementation of [`crate::app::InventoryRepository`]. Entities never leave this module.

mod entities;
mod repository;

pub use repository::{SeaInventoryRepository, ensure_stock};

use polyshop_platform::db::Migration;

/// Schema of the inventory database, oldest first. The CHECK on `stock` is the last line of
/// defence of `0 ≤ reserved ≤ on_hand`: a bug that would oversell fails instead.
pub const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    name: "stock and reservations",
    sql: "CREATE TABLE stock (
            product_id TEXT PRIMARY KEY,
            on_hand INTEGER NOT NULL,
            reserved INTEGER NOT NULL,
            updated_at BIGINT NOT NULL,
            CONSTRAINT stock_reserved_within_on_hand CHECK (reserved >= 0 AND reserved <= on_hand));
          CREATE TABLE reservations (
            id TEXT PRIMARY KEY,
            status TEXT NOT NULL,
            expires_at BIGINT NOT NULL,
            created_at BIGINT NOT NULL,
            updated_at BIGINT NOT NULL,
            release_reason TEXT NOT NULL);
          CREATE INDEX reservations_by_status_expiry ON reservations (status, expires_at);
          CREATE TABLE reservation_items (
            reservation_id TEXT NOT NULL REFERENCES reservations (id) ON DELETE CASCADE,
            product_id TEXT NOT NULL,
            quantity INTEGER NOT NULL CHECK (quantity > 0),
            PRIMARY KEY (reservation_id, product_id))",
}];
