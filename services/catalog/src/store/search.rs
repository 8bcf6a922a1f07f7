//! The product search index on SQLite: an FTS5 table with the trigram tokenizer over the
//! products' names and descriptions, kept in step by triggers.
//!
//! ListProducts with a query is a case-insensitive "contains" (`LOWER(name) LIKE '%…%'`),
//! newest first. Scanning newest first stops after a page when the text is common and reads
//! the whole catalog when it is rare: ten matches among 10^6 products took 706 ms
//! (`just bench`, growth runs). A trigram index finds any substring of three characters or
//! more; the repository scans the newest rows first (a window of
//! [`super::repository::SCAN_FIRST`]) and asks the index only for older ones, so the common
//! text stays as fast as before and the rare one no longer reads every row. The `LIKE` stays in the query: the index only narrows the
//! rows it runs on, so the answers are the scan's answers (the test below holds both to it).
//!
//! PostgreSQL keeps the scan: its counterpart (`pg_trgm`) needs an extension the database
//! owner must allow, and is the next step there (docs/performance.md).

use polyshop_platform::db::is_unique_violation;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, DbErr, Statement, TransactionTrait};

/// Its row in `_polyshop_migrations`, in a range of its own: the shared migrations (1, 2, …)
/// run on both backends and this one on SQLite only.
const VERSION: i64 = 2001;
const NAME: &str = "product search index (SQLite FTS5 trigram)";

/// The shortest text the index can look up (a trigram); shorter ones are scanned.
pub const MIN_CHARS: usize = 3;

/// Whole statements: trigger bodies hold `;`, so they cannot go through the shared migration
/// runner, which splits on it.
const STATEMENTS: [&str; 5] = [
    "CREATE VIRTUAL TABLE products_search USING fts5(
        name, description, content = 'products', content_rowid = 'rowid', tokenize = 'trigram')",
    "CREATE TRIGGER products_search_insert AFTER INSERT ON products BEGIN
        INSERT INTO products_search (rowid, name, description)
        VALUES (new.rowid, new.name, new.description);
     END",
    "CREATE TRIGGER products_search_delete AFTER DELETE ON products BEGIN
        INSERT INTO products_search (products_search, rowid, name, description)
        VALUES ('delete', old.rowid, old.name, old.description);
     END",
    "CREATE TRIGGER products_search_update AFTER UPDATE OF name, description ON products BEGIN
        INSERT INTO products_search (products_search, rowid, name, description)
        VALUES ('delete', old.rowid, old.name, old.description);
        INSERT INTO products_search (rowid, name, description)
        VALUES (new.rowid, new.name, new.description);
     END",
    // Products stored before the index existed.
    "INSERT INTO products_search (products_search) VALUES ('rebuild')",
];

/// Creates the index unless done before; `true` when `db` has one (SQLite).
///
/// # Errors
/// Storage errors; nothing is left half-made (one transaction).
pub async fn install(db: &DatabaseConnection) -> Result<bool, DbErr> {
    if db.get_database_backend() != DbBackend::Sqlite {
        return Ok(false);
    }
    let done = db
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Sqlite,
            "SELECT version FROM _polyshop_migrations WHERE version = ?",
            [VERSION.into()],
        ))
        .await?;
    if done.is_some() {
        return Ok(true);
    }
    // As in the shared runner: the version row first, so of instances starting together on
    // one file exactly one builds the index.
    let txn = db.begin().await?;
    let claimed = txn
        .execute_raw(Statement::from_sql_and_values(
            DbBackend::Sqlite,
            "INSERT INTO _polyshop_migrations (version, name, applied_at) VALUES (?, ?, ?)",
            [
                VERSION.into(),
                NAME.into(),
                polyshop_platform::now_millis().into(),
            ],
        ))
        .await;
    match claimed {
        Ok(_) => {}
        Err(e) if is_unique_violation(&e) => {
            txn.rollback().await?;
            return Ok(true);
        }
        Err(e) => return Err(e),
    }
    for statement in STATEMENTS {
        txn.execute_unprepared(statement).await?;
    }
    txn.commit().await?;
    tracing::info!(version = VERSION, name = NAME, "applied migration");
    Ok(true)
}

/// `text` as an FTS5 phrase: matched as one string (a substring, with the trigram
/// tokenizer), whatever operators or quotes it holds.
pub fn phrase(text: &str) -> String {
    format!("\"{}\"", text.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use polyshop_platform::{db, events::outbox};

    use super::*;
    use crate::{
        app::{CatalogRepository, ListFilter},
        domain::{Money, NewProduct, ProductChanges},
        store::{MIGRATIONS, SeaCatalogRepository},
    };

    #[test]
    fn phrases_quote_their_text() {
        assert_eq!(phrase("lamp"), "\"lamp\"");
        assert_eq!(phrase("a \"b\" OR c*"), "\"a \"\"b\"\" OR c*\"");
    }

    async fn catalog() -> DatabaseConnection {
        let conn = db::connect_url("sqlite::memory:", "catalog")
            .await
            .expect("sqlite");
        db::migrate(&conn, &[MIGRATIONS, outbox::MIGRATIONS].concat())
            .await
            .expect("migrate");
        conn
    }

    fn product(name: &str, description: &str, category: &str) -> NewProduct {
        NewProduct {
            request_id: None,
            name: name.into(),
            description: description.into(),
            category: category.into(),
            price: Money {
                amount_minor: 100,
                currency_code: "EUR".into(),
            },
            other_prices: Vec::new(),
            active: true,
        }
    }

    /// Every page of `filter` at `size`, following the cursor.
    async fn pages(
        repo: &SeaCatalogRepository,
        filter: &ListFilter,
        size: u64,
    ) -> Vec<Vec<String>> {
        let mut out = Vec::new();
        let mut before = None;
        loop {
            let page = repo.list(filter, before, size).await.expect("list");
            let ids: Vec<String> = page.iter().map(|p| p.id.clone()).collect();
            if ids.is_empty() {
                return out;
            }
            before = ids.last().cloned();
            out.push(ids);
        }
    }

    #[tokio::test]
    async fn a_search_through_the_index_answers_what_the_scan_answers() {
        let conn = catalog().await;
        // Products made before the index: the rebuild must take them in.
        let scan = SeaCatalogRepository::new(conn.clone(), outbox::OutboxSignal::new());
        let mut ids = Vec::new();
        for i in 0..40 {
            let (name, description) = match i {
                0 | 1 => (format!("Zircon ring {i}"), "rare".to_owned()),
                2 => ("Plain mug".to_owned(), "a ZIRCON inlay".to_owned()),
                _ if i % 3 == 0 => (format!("Desk lamp {i}"), "light".to_owned()),
                _ => (
                    format!("Oak chair {i}"),
                    "100% oak_wood \"solid\"".to_owned(),
                ),
            };
            let category = if i % 2 == 0 { "even" } else { "odd" };
            let id = polyshop_platform::new_id();
            scan.insert(id.clone(), product(&name, &description, category))
                .await
                .expect("insert");
            ids.push(id);
        }
        assert!(install(&conn).await.expect("install"));
        assert!(install(&conn).await.expect("a second time does nothing"));
        // Renamed after the index: the trigger keeps it in step.
        scan.update(
            &ids[5],
            ProductChanges {
                name: Some("Zircon lamp".into()),
                ..Default::default()
            },
        )
        .await
        .expect("update");
        scan.update(
            &ids[1],
            ProductChanges {
                name: Some("Silver ring".into()),
                description: Some("common".into()),
                ..Default::default()
            },
        )
        .await
        .expect("update");

        // A window of 4 rows makes nearly every search reach the index.
        let indexed = SeaCatalogRepository::new(conn.clone(), outbox::OutboxSignal::new())
            .with_search_index(4);
        let queries = [
            "zircon",
            "ZIRCON",
            "lamp",
            "oak",
            "100% oak",
            "oak_w",
            "\"solid\"",
            "ring",
            "mu",
            "nothing",
        ];
        for query in queries {
            for category in [None, Some("even")] {
                let filter = ListFilter {
                    category: category.map(str::to_owned),
                    query: Some(query.into()),
                };
                for size in [1, 3, 20] {
                    assert_eq!(
                        pages(&indexed, &filter, size).await,
                        pages(&scan, &filter, size).await,
                        "{query:?} in {category:?}, pages of {size}"
                    );
                }
            }
        }
        let zircon = ListFilter {
            category: None,
            query: Some("zircon".into()),
        };
        let found: Vec<String> = pages(&indexed, &zircon, 20).await.concat();
        assert_eq!(found, vec![ids[5].clone(), ids[2].clone(), ids[0].clone()]);
    }
}
