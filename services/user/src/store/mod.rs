//! Persistence of the user context with sea-orm: the `users`, `addresses` and
//! `refresh_tokens` tables, their migrations, [`SeaUserRepository`] (the implementation of
//! [`crate::app::UserRepository`]) and [`SeaRefreshTokens`] (of
//! [`crate::app::RefreshTokenRepository`]). Entities never leave this module.

mod cache;
mod entities;
mod refresh;
mod repository;

use std::time::Duration;

pub use cache::{CachedUsers, TTL as CACHE_TTL};
pub use refresh::SeaRefreshTokens;
pub use repository::SeaUserRepository;

use polyshop_platform::{db::Migration, retention::Rule};

/// Retention of refresh tokens: a row goes a day after its token expired (an expired token is
/// refused either way; the day keeps a late replay reported as expired, not unknown).
pub fn refresh_token_retention() -> Rule {
    Rule {
        table: "refresh_tokens",
        key: "token_hash",
        timestamp: "expires_at",
        window: Duration::from_secs(86_400),
    }
}

/// Schema of the user database, oldest first.
pub const MIGRATIONS: &[Migration] = &[MIGRATION_1, MIGRATION_2];

const MIGRATION_1: Migration = Migration {
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
};

/// Refresh tokens, by the SHA-256 of the token (the token itself is never stored). A family
/// is one sign-in: every token rotated from the same login. `used_at` marks a token consumed
/// by a refresh, `revoked_at` one revoked with its family (logout, reuse, suspension).
const MIGRATION_2: Migration = Migration {
    version: 2,
    name: "refresh tokens",
    sql: "CREATE TABLE refresh_tokens (
            token_hash TEXT PRIMARY KEY,
            family_id TEXT NOT NULL,
            user_id TEXT NOT NULL,
            created_at BIGINT NOT NULL,
            expires_at BIGINT NOT NULL,
            used_at BIGINT,
            revoked_at BIGINT);
          CREATE INDEX refresh_tokens_by_family ON refresh_tokens (family_id);
          CREATE INDEX refresh_tokens_by_user ON refresh_tokens (user_id);
          CREATE INDEX refresh_tokens_by_expiry ON refresh_tokens (expires_at)",
};
