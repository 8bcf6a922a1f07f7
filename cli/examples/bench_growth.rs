//! `just bench` (growth runs): how catalog list and search and order listing latency grow
//! with the rows behind them. Runs against a system on SQLite started by
//! `gateway/scripts/with-system.sh` (its data dir in POLYSHOP_DATA_DIR, every service's address
//! in POLYSHOP_<SERVICE>_LISTEN, admin credentials in ADMIN_LOGIN / ADMIN_PASSWORD).
//!
//! For each size in BENCH_GROWTH_SIZES (default `10000,100000,1000000`) it tops the
//! `products` table and the orders' read model (`order_view`) up to that many rows by writing
//! them straight into the services' SQLite files (the API would take an hour for a million
//! orders; the rows are what the services themselves write, built from the contracts' types),
//! then times through the services' gRPC API, BENCH_CALLS (100) calls per case:
//! the first catalog page, a category, a search matching one product in eight, one matching
//! one in a thousand, one matching ten products (the oldest ten: the worst case for a newest-first scan), page 20 of
//! the catalog reached by tokens, and the first page of one shopper's orders (a hundredth of
//! all) and of everybody's (as admin). Prints a table, and a `RESULT` line of JSON for
//! `bench/run.py`.

mod common;

use common::{authed, service_url};
use std::time::{Duration, Instant};

use polyshop::{
    api::v1::Money,
    catalog::v1::{ListProductsRequest, catalog_service_client::CatalogServiceClient},
    order::v1::{
        ListOrdersRequest, Order, OrderItem, OrderStatus, order_service_client::OrderServiceClient,
    },
    user::v1::{LoginRequest, RegisterRequest, user_service_client::UserServiceClient},
};
use prost::Message;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement, TransactionTrait, Value};
use tonic::transport::Channel;

/// Rows per INSERT statement (SQLite allows 32,766 bound values).
const ROWS_PER_STATEMENT: usize = 500;
/// Rows per transaction while seeding.
const ROWS_PER_TRANSACTION: usize = 10_000;
/// Words the product names are made of; "lamp" is one noun in eight.
const ADJECTIVES: [&str; 8] = [
    "red", "oak", "tall", "soft", "round", "steel", "linen", "woven",
];
const NOUNS: [&str; 8] = [
    "lamp", "chair", "table", "mug", "rug", "shelf", "vase", "stool",
];
const CATEGORIES: usize = 20;
/// The word in exactly [`RARE_COUNT`] product names, all among the oldest rows.
const RARE_WORD: &str = "zircon";
const RARE_COUNT: usize = 10;
/// The word in one product name in [`SOME_EVERY`].
const SOME_WORD: &str = "walnut";
const SOME_EVERY: usize = 1000;

async fn open(service: &str) -> anyhow::Result<DatabaseConnection> {
    let dir = std::env::var("POLYSHOP_DATA_DIR")
        .map_err(|_| anyhow::anyhow!("POLYSHOP_DATA_DIR not set: run through with-system.sh"))?;
    let url = format!("sqlite://{dir}/{service}.db?mode=rw");
    Ok(polyshop_platform::db::connect_url(&url, service).await?)
}

async fn count(db: &DatabaseConnection, table: &str) -> anyhow::Result<usize> {
    let row = db
        .query_one_raw(Statement::from_string(
            DbBackend::Sqlite,
            format!("SELECT COUNT(*) AS n FROM {table}"),
        ))
        .await?
        .ok_or_else(|| anyhow::anyhow!("no count"))?;
    Ok(usize::try_from(row.try_get::<i64>("", "n")?)?)
}

/// Inserts `rows` (each `columns.len()` values) into `table`, in batched statements and
/// transactions.
async fn insert(
    db: &DatabaseConnection,
    table: &str,
    columns: &[&str],
    rows: impl Iterator<Item = Vec<Value>>,
) -> anyhow::Result<()> {
    let placeholders = format!("({})", vec!["?"; columns.len()].join(", "));
    let mut rows = rows.peekable();
    while rows.peek().is_some() {
        let txn = db.begin().await?;
        for _ in 0..ROWS_PER_TRANSACTION / ROWS_PER_STATEMENT {
            let chunk: Vec<Vec<Value>> = rows.by_ref().take(ROWS_PER_STATEMENT).collect();
            if chunk.is_empty() {
                break;
            }
            let sql = format!(
                "INSERT INTO {table} ({}) VALUES {}",
                columns.join(", "),
                vec![placeholders.as_str(); chunk.len()].join(", ")
            );
            let values = chunk.into_iter().flatten().collect::<Vec<_>>();
            txn.execute_raw(Statement::from_sql_and_values(
                DbBackend::Sqlite,
                sql,
                values,
            ))
            .await?;
        }
        txn.commit().await?;
    }
    Ok(())
}

fn product_row(i: usize, now: i64) -> Vec<Value> {
    let adjective = ADJECTIVES[i % ADJECTIVES.len()];
    let noun = NOUNS[(i / ADJECTIVES.len()) % NOUNS.len()];
    let name = if i < RARE_COUNT {
        format!("{RARE_WORD} {noun} {i}")
    } else if i % SOME_EVERY == SOME_EVERY / 2 {
        format!("{SOME_WORD} {noun} {i}")
    } else {
        format!("{adjective} {noun} {i}")
    };
    let amount = 100 + i64::try_from(i % 10_000).unwrap_or(0);
    vec![
        polyshop_platform::new_id().into(),
        name.into(),
        format!("A {adjective} {noun}, seeded for the growth benchmark.").into(),
        format!("category-{}", i % CATEGORIES).into(),
        amount.into(),
        "EUR".into(),
        true.into(),
        now.into(),
        now.into(),
    ]
}

fn order_row(i: usize, user_id: &str, now: i64) -> Vec<Value> {
    let order_id = polyshop_platform::new_id();
    let price = Money {
        amount_minor: 990,
        currency_code: "EUR".into(),
    };
    let order = Order {
        order_id: order_id.clone(),
        user_id: user_id.to_owned(),
        items: vec![OrderItem {
            product_id: polyshop_platform::new_id(),
            product_name: format!("Seeded item {i}"),
            quantity: 1,
            unit_price: Some(price.clone()),
            line_total: Some(price.clone()),
        }],
        total: Some(price),
        status: OrderStatus::Confirmed.into(),
        version: 3,
        create_time: Some(polyshop_platform::timestamp(now)),
        update_time: Some(polyshop_platform::timestamp(now)),
        ..Default::default()
    };
    vec![
        order_id.into(),
        user_id.to_owned().into(),
        "CONFIRMED".into(),
        3i64.into(),
        order.encode_to_vec().into(),
        now.into(),
    ]
}

/// Tops `products` and `order_view` up to `size` rows; every hundredth order is `shopper`'s.
async fn seed(
    catalog: &DatabaseConnection,
    orders: &DatabaseConnection,
    size: usize,
    shopper: &str,
) -> anyhow::Result<()> {
    let now = polyshop_platform::now_millis();
    let have = count(catalog, "products").await?;
    insert(
        catalog,
        "products",
        &[
            "id",
            "name",
            "description",
            "category",
            "price_amount_minor",
            "price_currency_code",
            "active",
            "created_at",
            "updated_at",
        ],
        (have..size).map(|i| product_row(i, now)),
    )
    .await?;
    let have = count(orders, "order_view").await?;
    let others: Vec<String> = (0..99).map(|_| polyshop_platform::new_id()).collect();
    insert(
        orders,
        "order_view",
        &[
            "order_id",
            "user_id",
            "status",
            "version",
            "payload",
            "updated_at",
        ],
        (have..size).map(|i| {
            let owner = if i % 100 == 0 {
                shopper
            } else {
                &others[i % 99]
            };
            order_row(i, owner, now)
        }),
    )
    .await?;
    Ok(())
}

/// Latencies of `calls` runs of `call`, sorted.
async fn time<F, Fut>(calls: usize, mut call: F) -> anyhow::Result<Vec<Duration>>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<usize>>,
{
    let mut out = Vec::with_capacity(calls);
    for _ in 0..calls {
        let t = Instant::now();
        let rows = call().await?;
        out.push(t.elapsed());
        anyhow::ensure!(rows > 0, "a page came back empty");
    }
    out.sort();
    Ok(out)
}

fn ms(sorted: &[Duration], q: f64) -> f64 {
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

struct Clients {
    catalog: CatalogServiceClient<Channel>,
    orders: OrderServiceClient<Channel>,
    admin: String,
    shopper: String,
}

impl Clients {
    async fn products(
        &self,
        query: &str,
        category: &str,
        token: String,
    ) -> anyhow::Result<(usize, String)> {
        let page = self
            .catalog
            .clone()
            .list_products(authed(
                ListProductsRequest {
                    page_size: 20,
                    page_token: token,
                    category: category.to_owned(),
                    query: query.to_owned(),
                },
                &self.admin,
            ))
            .await?
            .into_inner();
        Ok((page.products.len(), page.next_page_token))
    }

    async fn orders(&self, as_admin: bool) -> anyhow::Result<usize> {
        let token = if as_admin { &self.admin } else { &self.shopper };
        let page = self
            .orders
            .clone()
            .list_orders(authed(
                ListOrdersRequest {
                    page_size: 20,
                    ..Default::default()
                },
                token,
            ))
            .await?
            .into_inner();
        Ok(page.orders.len())
    }
}

/// The cases timed at each size, by name.
const CASES: [&str; 8] = [
    "catalog first page",
    "catalog category",
    "search (1 in 8 match)",
    "search (1 in 1000 match)",
    "search (10 match, oldest)",
    "catalog page 20 by token",
    "orders, one shopper",
    "orders, admin (all)",
];

async fn measure(clients: &Clients, calls: usize) -> anyhow::Result<Vec<Vec<Duration>>> {
    // The token of page 20, found once: the timed call is that one page.
    let mut token = String::new();
    for _ in 0..19 {
        token = clients.products("", "", token).await?.1;
    }
    let token = &token;
    let products = |query: &'static str, category: &'static str, token: &String| {
        let token = token.clone();
        async move { Ok(clients.products(query, category, token).await?.0) }
    };
    let first = String::new();
    Ok(vec![
        time(calls, || products("", "", &first)).await?,
        time(calls, || products("", "category-7", &first)).await?,
        time(calls, || products("lamp", "", &first)).await?,
        time(calls, || products(SOME_WORD, "", &first)).await?,
        time(calls, || products(RARE_WORD, "", &first)).await?,
        time(calls, || products("", "", token)).await?,
        time(calls, || clients.orders(false)).await?,
        time(calls, || clients.orders(true)).await?,
    ])
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let sizes: Vec<usize> = std::env::var("BENCH_GROWTH_SIZES")
        .unwrap_or_else(|_| "10000,100000,1000000".into())
        .split(',')
        .map(str::parse)
        .collect::<Result<_, _>>()?;
    let calls: usize = std::env::var("BENCH_CALLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let mut users = UserServiceClient::connect(service_url("USER", 50051)).await?;
    let admin = users
        .login(LoginRequest {
            login: std::env::var("ADMIN_LOGIN").unwrap_or_else(|_| "admin".into()),
            password: std::env::var("ADMIN_PASSWORD")?,
        })
        .await?
        .into_inner()
        .access_token;
    let name = format!("growth{}", &polyshop_platform::new_id()[30..]);
    let shopper_id = users
        .register(RegisterRequest {
            username: name.clone(),
            email: format!("{name}@example.com"),
            password: "correct horse battery".into(),
            display_name: String::new(),
        })
        .await?
        .into_inner()
        .user
        .ok_or_else(|| anyhow::anyhow!("no user"))?
        .user_id;
    let shopper = users
        .login(LoginRequest {
            login: name,
            password: "correct horse battery".into(),
        })
        .await?
        .into_inner()
        .access_token;
    let clients = Clients {
        catalog: CatalogServiceClient::connect(service_url("CATALOG", 50052)).await?,
        orders: OrderServiceClient::connect(service_url("ORDER", 50054)).await?,
        admin,
        shopper,
    };
    let catalog_db = open("catalog").await?;
    let order_db = open("order").await?;

    let mut results = Vec::new();
    for &size in &sizes {
        let t = Instant::now();
        seed(&catalog_db, &order_db, size, &shopper_id).await?;
        eprintln!(
            "bench-growth: {size} products and orders in place ({:.1}s)",
            t.elapsed().as_secs_f64()
        );
        // Warm the services' statement caches and SQLite's pages as a running system has them.
        measure(&clients, 3).await?;
        let timed = measure(&clients, calls).await?;
        println!("bench-growth: {size} rows");
        for (case, latencies) in CASES.iter().zip(&timed) {
            println!(
                "bench-growth:   {case:<28} p50 {:>8.2} ms  p99 {:>8.2} ms",
                ms(latencies, 0.5),
                ms(latencies, 0.99)
            );
        }
        results.push(serde_json::json!({
            "rows": size,
            "cases": CASES.iter().zip(&timed).map(|(case, l)| serde_json::json!({
                "case": case, "p50_ms": ms(l, 0.5), "p99_ms": ms(l, 0.99),
            })).collect::<Vec<_>>(),
        }));
    }
    println!("RESULT {}", serde_json::json!({ "growth": results }));
    Ok(())
}
