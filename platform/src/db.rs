//! Database connections and migrations. SQLite under the data dir by default (one file per
//! service), PostgreSQL when the service has a database URL. Migrations are plain SQL kept
//! portable across both backends (TEXT, BIGINT, BOOLEAN; timestamps as epoch milliseconds)
//! and run at start, each in its own transaction.

use std::{path::Path, time::Duration};

use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseBackend, DatabaseConnection, DbErr, SqlErr,
    Statement, TransactionTrait,
    sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous},
};
use secrecy::ExposeSecret;

use crate::{config::ServiceSettings, now_millis};

pub mod group;

/// One schema change. Statements are separated by `;` and must not contain one otherwise.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// Strictly increasing, starting at 1.
    pub version: i64,
    /// What it does, for the log and the migrations table.
    pub name: &'static str,
    /// The SQL, valid on SQLite and PostgreSQL.
    pub sql: &'static str,
}

/// Why a database could not be opened or migrated.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The connection failed.
    #[error("cannot connect to the {service} database: {source}")]
    Connect {
        /// Which service.
        service: String,
        /// The driver error.
        source: DbErr,
    },
    /// The data dir could not be created.
    #[error("cannot create data dir {path}: {source}")]
    DataDir {
        /// The directory.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A migration failed; nothing of it was applied.
    #[error("migration {version} ({name}) failed: {source}")]
    Migrate {
        /// Its version.
        version: i64,
        /// Its name.
        name: &'static str,
        /// The driver error.
        source: DbErr,
    },
}

/// Opens the service's database: its PostgreSQL URL when set, else `<data_dir>/<service>.db`.
///
/// # Errors
/// [`DbError`] when the directory, file or server cannot be opened.
pub async fn connect(
    data_dir: &Path,
    service: &str,
    settings: &ServiceSettings,
) -> Result<DatabaseConnection, DbError> {
    let url = match &settings.database_url {
        Some(url) => url.expose_secret().to_owned(),
        None => {
            std::fs::create_dir_all(data_dir).map_err(|source| DbError::DataDir {
                path: data_dir.display().to_string(),
                source,
            })?;
            format!(
                "sqlite://{}?mode=rwc",
                data_dir.join(format!("{service}.db")).display()
            )
        }
    };
    connect_url(&url, service).await
}

/// Opens a database by URL (`sqlite://…` or `postgres://…`).
///
/// # Errors
/// [`DbError::Connect`].
pub async fn connect_url(url: &str, service: &str) -> Result<DatabaseConnection, DbError> {
    let mut options = ConnectOptions::new(url.to_owned());
    options
        .sqlx_logging(false)
        .acquire_timeout(Duration::from_secs(10))
        .connect_timeout(Duration::from_secs(5));
    if url.starts_with("sqlite:") {
        // SQLite allows one writer. A single connection serialises transactions in the pool
        // instead of failing them with SQLITE_BUSY on lock upgrades; WAL + FULL sync makes a
        // commit durable before it is acknowledged.
        options
            .max_connections(1)
            .min_connections(1)
            .map_sqlx_sqlite_opts(|o| {
                o.journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Full)
                    .busy_timeout(Duration::from_secs(5))
                    .foreign_keys(true)
            });
    } else {
        options.max_connections(16).min_connections(1);
    }
    Database::connect(options)
        .await
        .map_err(|source| DbError::Connect {
            service: service.to_owned(),
            source,
        })
}

/// Applies the migrations not yet recorded in `_polyshop_migrations`, in order.
///
/// # Errors
/// [`DbError::Migrate`] for the first one that fails; it is rolled back.
pub async fn migrate(db: &DatabaseConnection, migrations: &[Migration]) -> Result<(), DbError> {
    let fail = |m: &Migration| {
        let (version, name) = (m.version, m.name);
        move |source| DbError::Migrate {
            version,
            name,
            source,
        }
    };
    let bootstrap = Migration {
        version: 0,
        name: "migrations table",
        sql: "CREATE TABLE IF NOT EXISTS _polyshop_migrations (
                version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)",
    };
    // PostgreSQL's IF NOT EXISTS is not atomic: two instances creating the table at once can
    // collide on its catalog entry; by the second try the table is there.
    if db.execute_unprepared(bootstrap.sql).await.is_err() {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        db.execute_unprepared(bootstrap.sql)
            .await
            .map_err(fail(&bootstrap))?;
    }
    let backend = db.get_database_backend();
    for m in migrations {
        let applied = db
            .query_one_raw(Statement::from_sql_and_values(
                backend,
                placeholders(
                    backend,
                    "SELECT version FROM _polyshop_migrations WHERE version = ?",
                ),
                [m.version.into()],
            ))
            .await
            .map_err(fail(m))?;
        if applied.is_some() {
            continue;
        }
        // The version row goes in first: of instances of one service starting together on
        // one database, the first insert holds the row (the others wait on it, then hit the
        // primary key), so exactly one applies the migration and the others skip it.
        let txn = db.begin().await.map_err(fail(m))?;
        let claimed = txn
            .execute_raw(Statement::from_sql_and_values(
                backend,
                placeholders(
                    backend,
                    "INSERT INTO _polyshop_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                ),
                [m.version.into(), m.name.into(), now_millis().into()],
            ))
            .await;
        match claimed {
            Ok(_) => {}
            Err(e) if matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => {
                txn.rollback().await.map_err(fail(m))?;
                tracing::info!(
                    version = m.version,
                    name = m.name,
                    "migration applied by another instance"
                );
                continue;
            }
            Err(e) => return Err(fail(m)(e)),
        }
        for statement in m.sql.split(';').map(str::trim).filter(|s| !s.is_empty()) {
            txn.execute_unprepared(statement).await.map_err(fail(m))?;
        }
        txn.commit().await.map_err(fail(m))?;
        tracing::info!(version = m.version, name = m.name, "applied migration");
    }
    Ok(())
}

/// Rewrites `?` placeholders as `$1, $2, …` for PostgreSQL.
pub fn placeholders(backend: DatabaseBackend, sql: &str) -> String {
    if backend != DatabaseBackend::Postgres {
        return sql.to_owned();
    }
    let mut out = String::with_capacity(sql.len() + 8);
    let mut n = 0;
    for c in sql.chars() {
        if c == '?' {
            n += 1;
            out.push('$');
            out.push_str(&n.to_string());
        } else {
            out.push(c);
        }
    }
    out
}

/// Whether an error is a unique-constraint violation (a concurrent duplicate insert).
pub fn is_unique_violation(err: &DbErr) -> bool {
    matches!(
        err.sql_err(),
        Some(sea_orm::SqlErr::UniqueConstraintViolation(_))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIGRATIONS: [Migration; 2] = [
        Migration {
            version: 1,
            name: "t",
            sql: "CREATE TABLE t (id TEXT PRIMARY KEY)",
        },
        Migration {
            version: 2,
            name: "t.n",
            sql: "ALTER TABLE t ADD COLUMN n BIGINT NOT NULL DEFAULT 0; CREATE INDEX t_n ON t (n)",
        },
    ];

    #[tokio::test]
    async fn migrations_apply_once_and_survive_a_restart() {
        let dir = tempfile::tempdir().expect("tempdir");
        let settings = ServiceSettings::default();
        let db = connect(dir.path(), "svc", &settings)
            .await
            .expect("connect");
        migrate(&db, &MIGRATIONS).await.expect("first run");
        migrate(&db, &MIGRATIONS)
            .await
            .expect("second run is a no-op");
        drop(db);
        let db = connect(dir.path(), "svc", &settings).await.expect("reopen");
        migrate(&db, &MIGRATIONS).await.expect("after restart");
        let rows = db
            .query_all_raw(Statement::from_string(
                DatabaseBackend::Sqlite,
                "SELECT version FROM _polyshop_migrations",
            ))
            .await
            .expect("query");
        assert_eq!(rows.len(), 2);
    }

    #[tokio::test]
    async fn a_failing_migration_leaves_nothing_half_applied() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = connect(dir.path(), "svc", &ServiceSettings::default())
            .await
            .expect("connect");
        let bad = [Migration {
            version: 1,
            name: "bad",
            sql: "CREATE TABLE a (id TEXT); CREATE TABLE a (id TEXT)",
        }];
        assert!(migrate(&db, &bad).await.is_err());
        let table = db
            .query_one_raw(Statement::from_string(
                DatabaseBackend::Sqlite,
                "SELECT name FROM sqlite_master WHERE name = 'a'",
            ))
            .await
            .expect("query");
        assert!(table.is_none(), "the first statement was rolled back");
    }

    #[test]
    fn postgres_placeholders_are_numbered() {
        assert_eq!(
            placeholders(DatabaseBackend::Postgres, "a = ? AND b = ?"),
            "a = $1 AND b = $2"
        );
        assert_eq!(placeholders(DatabaseBackend::Sqlite, "a = ?"), "a = ?");
    }
}
