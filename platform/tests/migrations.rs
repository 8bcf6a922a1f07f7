//! Instances of one service starting together on one database: each runs the migrations, and
//! exactly one applies each of them (SQLite file shared by processes, and PostgreSQL when the
//! test server is set).

use polyshop_platform::{
    config::ServiceSettings,
    db::{self, Migration},
    testing,
};
use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};

const MIGRATIONS: [Migration; 3] = [
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
    Migration {
        version: 3,
        name: "u",
        sql: "CREATE TABLE u (id TEXT PRIMARY KEY)",
    },
];

/// Every instance migrates at once; each succeeds and each migration is recorded once.
async fn migrate_together(instances: Vec<DatabaseConnection>) {
    let runs = instances.iter().map(|db| db::migrate(db, &MIGRATIONS));
    for (i, result) in futures::future::join_all(runs)
        .await
        .into_iter()
        .enumerate()
    {
        result.unwrap_or_else(|e| panic!("instance {i}: {e}"));
    }
    let backend = instances[0].get_database_backend();
    let rows = instances[0]
        .query_all_raw(Statement::from_string(
            backend,
            "SELECT version FROM _polyshop_migrations ORDER BY version",
        ))
        .await
        .expect("versions");
    assert_eq!(rows.len(), MIGRATIONS.len(), "each migration recorded once");
}

#[tokio::test]
async fn instances_starting_together_on_one_sqlite_file_apply_each_migration_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let settings = ServiceSettings::default();
    let mut instances = Vec::new();
    for _ in 0..4 {
        instances.push(
            db::connect(dir.path(), "svc", &settings)
                .await
                .expect("connect"),
        );
    }
    migrate_together(instances).await;
}

#[tokio::test]
async fn instances_starting_together_on_one_postgres_database_apply_each_migration_once() {
    let Some(url) = testing::postgres_database("migrations").await else {
        return;
    };
    let mut instances = Vec::new();
    for i in 0..4 {
        instances.push(
            db::connect_url(&url, &format!("instance-{i}"))
                .await
                .expect("connect"),
        );
    }
    migrate_together(instances).await;
}
