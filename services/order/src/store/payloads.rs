//! Migration 3 of the order database, in Rust because SQL cannot decode base64 portably:
//! event, snapshot and read-model payloads move from base64 TEXT to bytes (BYTEA, which
//! SQLite stores as a blob). Each table is rebuilt as `<table>_bytes`, filled a page at a time,
//! and renamed into place, all in one transaction recorded in `_polyshop_migrations`.

use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr, TransactionTrait, Value};

use super::{all, exec, one};

/// The version this step records.
const VERSION: i64 = 3;
/// Rows copied per statement.
const PAGE: u64 = 500;

/// One table to convert: its new definition, its columns (payload last) and its key.
struct Table {
    name: &'static str,
    create: &'static str,
    columns: &'static [&'static str],
    key: &'static [&'static str],
    after: &'static str,
}

const TABLES: [Table; 3] = [
    Table {
        name: "order_events",
        create: "CREATE TABLE order_events_bytes (
            order_id TEXT NOT NULL,
            version BIGINT NOT NULL,
            event_id TEXT NOT NULL UNIQUE,
            kind TEXT NOT NULL,
            recorded_at BIGINT NOT NULL,
            payload BYTEA NOT NULL,
            PRIMARY KEY (order_id, version))",
        columns: &[
            "order_id",
            "version",
            "event_id",
            "kind",
            "recorded_at",
            "payload",
        ],
        key: &["order_id", "version"],
        after: "",
    },
    Table {
        name: "order_snapshots",
        create: "CREATE TABLE order_snapshots_bytes (
            order_id TEXT PRIMARY KEY,
            version BIGINT NOT NULL,
            taken_at BIGINT NOT NULL,
            payload BYTEA NOT NULL)",
        columns: &["order_id", "version", "taken_at", "payload"],
        key: &["order_id"],
        after: "",
    },
    Table {
        name: "order_view",
        create: "CREATE TABLE order_view_bytes (
            order_id TEXT PRIMARY KEY,
            user_id TEXT NOT NULL,
            status TEXT NOT NULL,
            version BIGINT NOT NULL,
            updated_at BIGINT NOT NULL,
            payload BYTEA NOT NULL)",
        columns: &[
            "order_id",
            "user_id",
            "status",
            "version",
            "updated_at",
            "payload",
        ],
        key: &["order_id"],
        after: "CREATE INDEX order_view_by_user ON order_view (user_id, order_id)",
    },
];

/// Converts the payloads unless done before.
///
/// # Errors
/// Storage errors, or a stored payload that is not base64; nothing changes then.
pub async fn to_bytes(db: &DatabaseConnection) -> Result<(), DbErr> {
    let done = one(
        db,
        "SELECT version FROM _polyshop_migrations WHERE version = ?",
        vec![VERSION.into()],
    )
    .await?;
    if done.is_some() {
        return Ok(());
    }
    let txn = db.begin().await?;
    for table in &TABLES {
        if let Err(e) = convert(&txn, table).await {
            let _ = txn.rollback().await;
            return Err(e);
        }
    }
    exec(
        &txn,
        "INSERT INTO _polyshop_migrations (version, name, applied_at) VALUES (?, ?, ?)",
        vec![
            VERSION.into(),
            "order payloads as bytes".into(),
            polyshop_platform::now_millis().into(),
        ],
    )
    .await?;
    txn.commit().await
}

async fn convert<C: ConnectionTrait>(conn: &C, table: &Table) -> Result<(), DbErr> {
    conn.execute_unprepared(table.create).await?;
    let columns = table.columns.join(", ");
    let order = table.key.join(", ");
    let mut offset = 0;
    loop {
        let rows = all(
            conn,
            &format!(
                "SELECT {columns} FROM {} ORDER BY {order} LIMIT {PAGE} OFFSET {offset}",
                table.name
            ),
            vec![],
        )
        .await?;
        if rows.is_empty() {
            break;
        }
        offset += PAGE;
        let tuple = format!("({})", vec!["?"; table.columns.len()].join(", "));
        let mut values: Vec<Value> = Vec::with_capacity(rows.len() * table.columns.len());
        for row in &rows {
            for column in &table.columns[..table.columns.len() - 1] {
                values.push(cell(row, column)?);
            }
            let text: String = row.try_get("", "payload")?;
            values.push(unb64(&text)?.into());
        }
        exec(
            conn,
            &format!(
                "INSERT INTO {}_bytes ({columns}) VALUES {}",
                table.name,
                vec![tuple.as_str(); rows.len()].join(", ")
            ),
            values,
        )
        .await?;
    }
    conn.execute_unprepared(&format!("DROP TABLE {}", table.name))
        .await?;
    conn.execute_unprepared(&format!("ALTER TABLE {0}_bytes RENAME TO {0}", table.name))
        .await?;
    if !table.after.is_empty() {
        conn.execute_unprepared(table.after).await?;
    }
    Ok(())
}

/// A text or integer cell as it was.
fn cell(row: &sea_orm::QueryResult, column: &str) -> Result<Value, DbErr> {
    Ok(match column {
        "version" | "recorded_at" | "taken_at" | "updated_at" => {
            row.try_get::<i64>("", column)?.into()
        }
        _ => row.try_get::<String>("", column)?.into(),
    })
}

fn unb64(text: &str) -> Result<Vec<u8>, DbErr> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|e| DbErr::Custom(format!("corrupt payload: {e}")))
}
