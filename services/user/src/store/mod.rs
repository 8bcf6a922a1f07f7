//! Persistence of the user context with sea-orm: the `users` and `addresses` tables, their
//! migrations, and [`SeaUserRepository`], the implementation of [`crate::app::UserRepository`].
//! Entities never leave this module.

mod cache;
mod entities;
mod repository;

pub use cache::{CachedUsers, TTL as CACHE_TTL};
pub use repository::SeaUserRepository;

use polyshop_platform::db::Migration;

/// Schema of the user database, oldest first.
pub const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    name: "users and addresses",
    sql: "CREATE TABLE users (
            id TEXT PRIMARY KEY,
            username TEXT NOT NULL,
            username_key TEXT NOT NULL UNIQUE,
            email TEXT NOT NULL,
            email_key TEXT NOT NULL UNIQUE,
            display_name TEXT NOT NULL,
            password_hash TEXT NOT NULL,
            status TEXT NOT NULL,
            roles TEXT NOT NULL,
            created_at BIGINT NOT NULL,
            updated_at BIGINT NOT NULL);
          CREATE TABLE addresses (
            id TEXT PRIMARY KEY,
            user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
            recipient TEXT NOT NULL,
            line1 TEXT NOT NULL,
            line2 TEXT NOT NULL,
            city TEXT NOT NULL,
            region TEXT NOT NULL,
            postal_code TEXT NOT NULL,
            country_code TEXT NOT NULL,
            created_at BIGINT NOT NULL);
          CREATE INDEX addresses_by_user ON addresses (user_id, id)",
}];
