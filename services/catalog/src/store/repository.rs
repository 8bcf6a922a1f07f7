//! [`SeaCatalogRepository`]: the catalog repository over sea-orm (SQLite or PostgreSQL).
//!
//! Every write commits with its outbox events: a create with `ProductCreated`, an update with
//! `ProductUpdated` and/or `ProductPriceChanged` for what it really changed. A product's
//! prices in further currencies live in `product_prices` and are read with it, one query for
//! all the products a read returns.

use std::collections::HashMap;

use polyshop_platform::events::outbox::{self, OutboxSignal};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, DatabaseConnection,
    DatabaseTransaction, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set,
    TransactionTrait,
    sea_query::{BinOper, Expr, ExprTrait, Func},
};

use super::entities::{product, product_price};
use crate::{
    app::{CatalogRepository, ListFilter},
    domain::{
        CatalogError, Money, NewProduct, Product, ProductChanges, ProductEvent, other_prices_after,
    },
    events,
};

/// Newest rows a text query scans before it asks the search index for older ones.
pub const SCAN_FIRST: u64 = 1000;

/// The catalog repository over a sea-orm connection.
#[derive(Debug, Clone)]
pub struct SeaCatalogRepository {
    db: DatabaseConnection,
    signal: OutboxSignal,
    /// With the search index ([`super::search`]): how many newest rows a text query scans
    /// first.
    scan_first: Option<u64>,
}

impl SeaCatalogRepository {
    /// A repository over `db` (already migrated, outbox tables included) that wakes the
    /// outbox relay through `signal` after committing events.
    pub fn new(db: DatabaseConnection, signal: OutboxSignal) -> Self {
        Self {
            db,
            signal,
            scan_first: None,
        }
    }

    /// Text queries use the search index ([`super::search::install`] made it) past the
    /// newest `scan_first` rows.
    #[must_use]
    pub fn with_search_index(mut self, scan_first: u64) -> Self {
        self.scan_first = Some(Ord::max(scan_first, 1));
        self
    }

    /// Newest first, from the store's newest row before `before`, reading every row when
    /// the filter is rare.
    async fn scan(
        &self,
        filter: &ListFilter,
        before: Option<String>,
        limit: u64,
    ) -> Result<Vec<product::Model>, DbErr> {
        product::Entity::find()
            .filter(list_condition(filter, before))
            .order_by_desc(product::Column::Id)
            .limit(limit)
            .all(&self.db)
            .await
    }

    /// [`Self::scan`] of the newest `scan_first` rows, then the index for the older ones.
    async fn search(
        &self,
        filter: &ListFilter,
        query: &str,
        before: Option<String>,
        limit: u64,
        scan_first: u64,
    ) -> Result<Vec<product::Model>, DbErr> {
        let unfiltered = ListFilter {
            category: filter.category.clone(),
            query: None,
        };
        // The oldest row of the window, by the (active, id) or (category, active, id) index.
        let boundary: Option<String> = product::Entity::find()
            .select_only()
            .column(product::Column::Id)
            .filter(list_condition(&unfiltered, before.clone()))
            .order_by_desc(product::Column::Id)
            .offset(scan_first - 1)
            .limit(1)
            .into_tuple()
            .one(&self.db)
            .await?;
        let Some(boundary) = boundary else {
            // Fewer rows than the window: the scan reads no more than that.
            return self.scan(filter, before, limit).await;
        };
        let mut rows = product::Entity::find()
            .filter(list_condition(filter, before).add(product::Column::Id.gte(boundary.clone())))
            .order_by_desc(product::Column::Id)
            .limit(limit)
            .all(&self.db)
            .await?;
        let missing = limit.saturating_sub(rows.len() as u64);
        if missing > 0 {
            // The LIKE stays: the index only narrows the rows it is evaluated on.
            rows.extend(
                product::Entity::find()
                    .filter(indexed_condition(filter, query, boundary))
                    .order_by_desc(product::Column::Id)
                    .limit(missing)
                    .all(&self.db)
                    .await?,
            );
        }
        Ok(rows)
    }

    /// Writes `events` to the outbox in `txn`, commits, and wakes the relay if there were
    /// any. On failure the transaction rolls back, change and events together.
    async fn commit_with(
        &self,
        txn: DatabaseTransaction,
        events: &[ProductEvent],
    ) -> Result<(), CatalogError> {
        for e in events {
            if let Err(err) = outbox::enqueue(&txn, &events::outgoing(e)).await {
                return abandon(txn, internal(err)).await;
            }
        }
        txn.commit().await.map_err(internal)?;
        if !events.is_empty() {
            self.signal.wake();
        }
        Ok(())
    }
}

/// Rolls back now (SQLite has one pooled connection, so not on drop) and returns `err`.
async fn abandon<T>(txn: DatabaseTransaction, err: CatalogError) -> Result<T, CatalogError> {
    txn.rollback().await.map_err(internal)?;
    Err(err)
}

fn internal(e: DbErr) -> CatalogError {
    CatalogError::Internal(Box::new(e))
}

fn to_product(row: product::Model, other_prices: Vec<Money>) -> Product {
    Product {
        id: row.id,
        name: row.name,
        description: row.description,
        category: row.category,
        price: Money {
            amount_minor: row.price_amount_minor,
            currency_code: row.price_currency_code,
        },
        other_prices,
        active: row.active,
        created_at: row.created_at,
        updated_at: row.updated_at,
    }
}

/// The prices in further currencies of the products `ids`, each product's sorted by currency
/// code.
async fn other_prices_of<C: ConnectionTrait>(
    db: &C,
    ids: &[&str],
) -> Result<HashMap<String, Vec<Money>>, DbErr> {
    let mut by_product: HashMap<String, Vec<Money>> = HashMap::new();
    if ids.is_empty() {
        return Ok(by_product);
    }
    let rows = product_price::Entity::find()
        .filter(product_price::Column::ProductId.is_in(ids.iter().map(|id| (*id).to_owned())))
        .order_by_asc(product_price::Column::CurrencyCode)
        .all(db)
        .await?;
    for row in rows {
        by_product.entry(row.product_id).or_default().push(Money {
            amount_minor: row.amount_minor,
            currency_code: row.currency_code,
        });
    }
    Ok(by_product)
}

/// `rows` as products, with their prices in further currencies.
async fn with_prices<C: ConnectionTrait>(
    db: &C,
    rows: Vec<product::Model>,
) -> Result<Vec<Product>, CatalogError> {
    let ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
    let mut prices = other_prices_of(db, &ids).await.map_err(internal)?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let others = prices.remove(&row.id).unwrap_or_default();
            to_product(row, others)
        })
        .collect())
}

/// `row` as a product, with its prices in further currencies.
async fn one_with_prices<C: ConnectionTrait>(
    db: &C,
    row: Option<product::Model>,
) -> Result<Option<Product>, CatalogError> {
    Ok(with_prices(db, row.into_iter().collect()).await?.pop())
}

/// Stores `prices` as product `id`'s prices in further currencies (none stored before).
async fn insert_prices<C: ConnectionTrait>(
    db: &C,
    id: &str,
    prices: &[Money],
) -> Result<(), DbErr> {
    if prices.is_empty() {
        return Ok(());
    }
    product_price::Entity::insert_many(prices.iter().map(|p| product_price::ActiveModel {
        product_id: Set(id.to_owned()),
        currency_code: Set(p.currency_code.clone()),
        amount_minor: Set(p.amount_minor),
    }))
    .exec(db)
    .await?;
    Ok(())
}

/// The escape character of [`like_pattern`]; `!` needs no quoting in either SQL dialect,
/// unlike `\`.
const LIKE_ESCAPE: char = '!';

/// A `LIKE` pattern matching any text that contains `text` literally: `%`, `_` and the
/// escape character itself lose their wildcard meaning.
fn like_pattern(text: &str) -> String {
    let mut pattern = String::with_capacity(text.len() + 2);
    pattern.push('%');
    for c in text.chars() {
        if matches!(c, '%' | '_' | LIKE_ESCAPE) {
            pattern.push(LIKE_ESCAPE);
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

/// `LOWER(column) LIKE LOWER(pattern) ESCAPE '!'`. Lower-casing both sides in SQL keeps the
/// comparison consistent within each backend: SQLite's LOWER folds ASCII only, PostgreSQL's
/// folds all letters, and folding the pattern in Rust would disagree with either.
fn contains_ignoring_case(column: product::Column, pattern: &str) -> Expr {
    let pattern = Expr::expr(Func::lower(Expr::val(pattern.to_owned())))
        .binary(BinOper::Escape, Expr::Constant(LIKE_ESCAPE.into()));
    Expr::expr(Func::lower(Expr::col(column))).binary(BinOper::Like, pattern)
}

fn list_condition(filter: &ListFilter, before: Option<String>) -> Condition {
    let mut condition = Condition::all().add(product::Column::Active.eq(true));
    if let Some(category) = &filter.category {
        condition = condition.add(product::Column::Category.eq(category.clone()));
    }
    if let Some(query) = &filter.query {
        condition = condition.add(text_condition(query));
    }
    if let Some(before) = before {
        condition = condition.add(product::Column::Id.lt(before));
    }
    condition
}

/// The name or the description contains `query`, ignoring case.
fn text_condition(query: &str) -> Condition {
    let pattern = like_pattern(query);
    Condition::any()
        .add(contains_ignoring_case(product::Column::Name, &pattern))
        .add(contains_ignoring_case(
            product::Column::Description,
            &pattern,
        ))
}

/// [`list_condition`] for the rows older than `boundary` that the search index
/// ([`super::search`]) says contain `query` somewhere. The unary `+` keeps SQLite off the
/// (active, id) and category indexes, so it looks up the index's rows by rowid and sorts
/// those few, instead of reading every older row by index and testing each against the
/// match list (70 ms at 10^6 products, growing with the catalog).
fn indexed_condition(filter: &ListFilter, query: &str, boundary: String) -> Condition {
    let mut condition = Condition::all()
        .add(Expr::cust_with_values(
            "rowid IN (SELECT rowid FROM products_search WHERE products_search MATCH ?)",
            [super::search::phrase(query)],
        ))
        .add(Expr::cust_with_values(
            "+active = ? AND +id < ?",
            [sea_orm::Value::from(true), boundary.into()],
        ));
    if let Some(category) = &filter.category {
        condition = condition.add(Expr::cust_with_values("+category = ?", [category.clone()]));
    }
    condition.add(text_condition(query))
}

impl CatalogRepository for SeaCatalogRepository {
    async fn insert(&self, id: String, new: NewProduct) -> Result<Product, CatalogError> {
        let now = polyshop_platform::now_millis();
        let has_request_id = new.request_id.is_some();
        let row = product::ActiveModel {
            id: Set(id),
            request_id: Set(new.request_id),
            name: Set(new.name),
            description: Set(new.description),
            category: Set(new.category),
            price_amount_minor: Set(new.price.amount_minor),
            price_currency_code: Set(new.price.currency_code),
            active: Set(new.active),
            created_at: Set(now),
            updated_at: Set(now),
        };
        let txn = self.db.begin().await.map_err(internal)?;
        let inserted = match row.insert(&txn).await {
            Ok(inserted) => to_product(inserted, new.other_prices),
            // The id is a fresh UUIDv7, so the only key that can collide is the request id.
            Err(e) if has_request_id && polyshop_platform::db::is_unique_violation(&e) => {
                return abandon(txn, CatalogError::DuplicateRequest).await;
            }
            Err(e) => return abandon(txn, internal(e)).await,
        };
        if let Err(e) = insert_prices(&txn, &inserted.id, &inserted.other_prices).await {
            return abandon(txn, internal(e)).await;
        }
        self.commit_with(txn, &[ProductEvent::Created(inserted.clone())])
            .await?;
        Ok(inserted)
    }

    async fn find(&self, id: &str) -> Result<Option<Product>, CatalogError> {
        let row = product::Entity::find_by_id(id.to_owned())
            .one(&self.db)
            .await
            .map_err(internal)?;
        one_with_prices(&self.db, row).await
    }

    async fn find_by_request_id(&self, request_id: &str) -> Result<Option<Product>, CatalogError> {
        let row = product::Entity::find()
            .filter(product::Column::RequestId.eq(request_id))
            .one(&self.db)
            .await
            .map_err(internal)?;
        one_with_prices(&self.db, row).await
    }

    async fn find_many(&self, ids: &[String]) -> Result<Vec<Product>, CatalogError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let rows = product::Entity::find()
            .filter(product::Column::Id.is_in(ids.iter().cloned()))
            .all(&self.db)
            .await
            .map_err(internal)?;
        with_prices(&self.db, rows).await
    }

    async fn list(
        &self,
        filter: &ListFilter,
        before: Option<String>,
        limit: u64,
    ) -> Result<Vec<Product>, CatalogError> {
        let indexed = filter
            .query
            .as_deref()
            .filter(|q| q.chars().count() >= super::search::MIN_CHARS)
            .zip(self.scan_first);
        let rows = match indexed {
            Some((query, scan_first)) => {
                self.search(filter, query, before, limit, scan_first).await
            }
            None => self.scan(filter, before, limit).await,
        }
        .map_err(internal)?;
        with_prices(&self.db, rows).await
    }

    async fn update(&self, id: &str, changes: ProductChanges) -> Result<Product, CatalogError> {
        let txn = self.db.begin().await.map_err(internal)?;
        let found = product::Entity::find_by_id(id.to_owned()).one(&txn).await;
        let row = match found {
            Ok(Some(row)) => row,
            Ok(None) => return abandon(txn, CatalogError::NotFound).await,
            Err(e) => return abandon(txn, internal(e)).await,
        };
        let before = match one_with_prices(&txn, Some(row.clone())).await {
            Ok(before) => before.expect("the row read above"),
            Err(e) => return abandon(txn, e).await,
        };
        let other_prices = other_prices_after(&before.other_prices, &changes);
        // Strictly increasing, so two updates within one millisecond stay ordered.
        let updated_at = std::cmp::max(polyshop_platform::now_millis(), row.updated_at + 1);
        // Only the columns set here are written; the others keep whatever is stored.
        let mut active: product::ActiveModel = row.into();
        if let Some(name) = changes.name {
            active.name = Set(name);
        }
        if let Some(description) = changes.description {
            active.description = Set(description);
        }
        if let Some(category) = changes.category {
            active.category = Set(category);
        }
        if let Some(price) = changes.price {
            active.price_amount_minor = Set(price.amount_minor);
            active.price_currency_code = Set(price.currency_code);
        }
        if let Some(flag) = changes.active {
            active.active = Set(flag);
        }
        active.updated_at = Set(updated_at);
        let after = match active.update(&txn).await {
            Ok(row) => to_product(row, other_prices),
            Err(e) => return abandon(txn, internal(e)).await,
        };
        if after.other_prices != before.other_prices {
            let replaced = product_price::Entity::delete_many()
                .filter(product_price::Column::ProductId.eq(id))
                .exec(&txn)
                .await;
            let stored = match replaced {
                Ok(_) => insert_prices(&txn, id, &after.other_prices).await,
                Err(e) => Err(e),
            };
            if let Err(e) = stored {
                return abandon(txn, internal(e)).await;
            }
        }
        self.commit_with(txn, &ProductEvent::of_update(&before, &after))
            .await?;
        Ok(after)
    }
}

#[cfg(test)]
mod tests {
    use sea_orm::{DbBackend, QueryTrait};

    use super::*;

    #[test]
    fn like_patterns_match_wildcards_literally() {
        let cases = [
            ("pan", "%pan%"),
            ("100%", "%100!%%"),
            ("a_b", "%a!_b%"),
            ("wow!", "%wow!!%"),
            ("", "%%"),
        ];
        for (text, pattern) in cases {
            assert_eq!(like_pattern(text), pattern, "{text:?}");
        }
    }

    #[test]
    fn the_indexed_search_keeps_sqlite_off_the_scan_indexes() {
        let filter = ListFilter {
            category: Some("lamps".into()),
            query: Some("desk".into()),
        };
        let sql = product::Entity::find()
            .filter(indexed_condition(&filter, "desk", "b".into()))
            .build(DbBackend::Sqlite)
            .sql;
        for part in [
            "+active = ?",
            "+id < ?",
            "+category = ?",
            "products_search MATCH ?",
        ] {
            assert!(sql.contains(part), "{part}: {sql}");
        }
        assert!(!sql.contains(r#""active" = "#), "{sql}");
    }

    #[test]
    fn the_text_query_lower_cases_both_sides_on_both_backends() {
        let filter = ListFilter {
            category: None,
            query: Some("Pan".into()),
        };
        for (backend, placeholder) in [(DbBackend::Sqlite, "?"), (DbBackend::Postgres, "$2")] {
            let sql = product::Entity::find()
                .filter(list_condition(&filter, None))
                .build(backend)
                .sql;
            let expected = format!(r#"LOWER("name") LIKE LOWER({placeholder}) ESCAPE '!'"#);
            assert!(sql.contains(&expected), "{backend:?}: {sql}");
        }
    }
}
