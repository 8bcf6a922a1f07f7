//! `just bench-orders`: CreateOrder throughput and latency against a running system (SQLite, or
//! PostgreSQL under `just bench-orders-postgres`, or the cluster layout under
//! `just bench-orders-cluster`)
//! at the addresses in POLYSHOP_<SERVICE>_LISTEN, else the default ports; the orders go to
//! every URL in BENCH_ORDER_URLS (comma-separated: several order instances) when it is set. Admin credentials come from ADMIN_LOGIN / ADMIN_PASSWORD; the
//! concurrency and duration from BENCH_CONCURRENCY (32) and BENCH_SECONDS (10). With
//! SYSTEM_PID (set by `gateway/scripts/with-system.sh`: the `polyshop up` process) it also
//! prints the CPU each of its child processes spent per order during the measured window.

use std::time::{Duration, Instant};

use polyshop::{
    api::v1::Money,
    catalog::v1::{CreateProductRequest, catalog_service_client::CatalogServiceClient},
    inventory::v1::{SetStockRequest, inventory_service_client::InventoryServiceClient},
    order::v1::{
        CreateOrderItem, CreateOrderRequest, OrderStatus, ShippingAddress,
        order_service_client::OrderServiceClient,
    },
    user::v1::{LoginRequest, RegisterRequest, user_service_client::UserServiceClient},
};
use tonic::Request;

fn authed<T>(message: T, token: &str) -> Request<T> {
    let mut r = Request::new(message);
    r.metadata_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("ascii"),
    );
    r
}

/// The URL of a service: its POLYSHOP_<SERVICE>_LISTEN address, else the default port.
fn service_url(service: &str, default_port: u16) -> String {
    let addr = std::env::var(format!("POLYSHOP_{service}_LISTEN"))
        .unwrap_or_else(|_| format!("127.0.0.1:{default_port}"));
    format!("http://{addr}")
}

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let concurrency = env_or("BENCH_CONCURRENCY", 32);
    let seconds = env_or("BENCH_SECONDS", 10);
    let admin_login = std::env::var("ADMIN_LOGIN").unwrap_or_else(|_| "admin".into());
    let admin_password = std::env::var("ADMIN_PASSWORD")?;
    let mut users = UserServiceClient::connect(service_url("USER", 50051)).await?;
    let admin = users
        .login(LoginRequest {
            login: admin_login,
            password: admin_password,
        })
        .await?
        .into_inner()
        .access_token;
    let product = CatalogServiceClient::connect(service_url("CATALOG", 50052))
        .await?
        .create_product(authed(
            CreateProductRequest {
                request_id: String::new(),
                name: "Bench Mug".into(),
                description: String::new(),
                category: "bench".into(),
                price: Some(Money {
                    amount_minor: 990,
                    currency_code: "USD".into(),
                }),
                active: true,
            },
            &admin,
        ))
        .await?
        .into_inner()
        .product
        .ok_or_else(|| anyhow::anyhow!("no product"))?;
    // Inventory counts a product once its product.created has arrived: until then, NOT_FOUND.
    let mut inventory = InventoryServiceClient::connect(service_url("INVENTORY", 50053)).await?;
    let known_by = Instant::now() + Duration::from_secs(30);
    loop {
        let count = SetStockRequest {
            product_id: product.product_id.clone(),
            quantity_on_hand: 10_000_000,
        };
        match inventory.set_stock(authed(count, &admin)).await {
            Err(e) if e.code() == tonic::Code::NotFound && Instant::now() < known_by => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            answer => {
                answer?;
                break;
            }
        }
    }

    let run = polyshop_platform::new_id();
    let mut tokens = Vec::new();
    for i in 0..concurrency {
        let name = format!("bench{}{i}", &run[run.len() - 6..]);
        users
            .register(RegisterRequest {
                username: name.clone(),
                email: format!("{name}@example.com"),
                password: "correct horse battery".into(),
                display_name: String::new(),
            })
            .await?;
        tokens.push(
            users
                .login(LoginRequest {
                    login: name,
                    password: "correct horse battery".into(),
                })
                .await?
                .into_inner()
                .access_token,
        );
    }

    let order_urls: Vec<String> = std::env::var("BENCH_ORDER_URLS")
        .ok()
        .filter(|v| !v.is_empty())
        .map_or_else(
            || vec![service_url("ORDER", 50054)],
            |v| v.split(',').map(str::to_owned).collect(),
        );
    let mut order_clients = Vec::new();
    for url in &order_urls {
        order_clients.push(OrderServiceClient::connect(url.clone()).await?);
    }
    let system = std::env::var("SYSTEM_PID")
        .ok()
        .and_then(|p| p.parse::<u32>().ok());
    let cpu_before = system.map(cpu_of_children);
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (worker, token) in tokens.into_iter().enumerate() {
        let mut orders = order_clients[worker % order_clients.len()].clone();
        let product_id = product.product_id.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut confirmed = 0u64;
            let mut failures = Vec::new();
            let mut n = 0u64;
            while Instant::now() < deadline {
                n += 1;
                let request = CreateOrderRequest {
                    idempotency_key: format!("bench-{worker}-{n}"),
                    items: vec![CreateOrderItem {
                        product_id: product_id.clone(),
                        quantity: 1,
                    }],
                    shipping_address: Some(ShippingAddress {
                        recipient: "Bench".into(),
                        line1: "Main St 1".into(),
                        city: "Berlin".into(),
                        postal_code: "10115".into(),
                        country_code: "DE".into(),
                        ..Default::default()
                    }),
                    payment_method_token: "tok_visa".into(),
                };
                let t = Instant::now();
                let result = orders.create_order(authed(request, &token)).await;
                latencies.push(t.elapsed());
                match result.map(|r| r.into_inner().order) {
                    Ok(Some(o)) if o.status == OrderStatus::Confirmed as i32 => confirmed += 1,
                    Ok(Some(o)) => failures.push(format!(
                        "order {} ended {:?}: {}",
                        o.order_id,
                        OrderStatus::try_from(o.status).unwrap_or_default(),
                        o.status_detail
                    )),
                    Ok(None) => failures.push("an answer without an order".into()),
                    Err(s) => failures.push(format!("{:?}: {}", s.code(), s.message())),
                }
            }
            (latencies, confirmed, failures)
        }));
    }
    let mut latencies = Vec::new();
    let mut confirmed = 0;
    let mut failures = Vec::new();
    for task in tasks {
        let (l, c, f) = task.await?;
        latencies.extend(l);
        confirmed += c;
        failures.extend(f);
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort();
    let pct =
        |p: f64| latencies[((latencies.len() as f64 - 1.0) * p) as usize].as_secs_f64() * 1000.0;
    println!(
        "bench-orders: {} CreateOrder calls in {elapsed:.1}s with {concurrency} clients: {:.0} orders/s, {} confirmed, p50 {:.1} ms, p99 {:.1} ms",
        latencies.len(),
        latencies.len() as f64 / elapsed,
        confirmed,
        pct(0.5),
        pct(0.99)
    );
    // Every call that did not confirm an order, so a short count is never a mystery.
    for failure in &failures {
        println!("bench-orders: not confirmed: {failure}");
    }
    match (system, cpu_before) {
        (Some(root), Some(before)) => {
            print_cpu_per_order(&before, &cpu_of_children(root), latencies.len())
        }
        _ => println!(
            "bench-orders: no SYSTEM_PID, so no CPU per process (run through with-system.sh)"
        ),
    }
    Ok(())
}

/// CPU time (clock ticks) of every child of process `root`, by name: the service a
/// `polyshop serve <service>` runs, else the program (nats-server). When the services use
/// PostgreSQL (a `POLYSHOP_<SERVICE>_DATABASE_URL` is set), the processes of a PostgreSQL
/// server on this machine count too, as `postgres`: its backends do the database work.
fn cpu_of_children(root: u32) -> Vec<(String, u64)> {
    let on_postgres =
        std::env::vars().any(|(k, _)| k.starts_with("POLYSHOP_") && k.ends_with("_DATABASE_URL"));
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(stat) = std::fs::read_to_string(path.join("stat")) else {
            continue;
        };
        // The command name is in parentheses and may hold spaces: fields start after it.
        let Some((head, rest)) = stat.rsplit_once(") ") else {
            continue;
        };
        let comm = head.split_once('(').map_or("", |(_, c)| c);
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // rest[0] is field 3 (state): ppid is field 4, utime and stime fields 14 and 15.
        let number = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
        let (Some(user), Some(system)) = (number(11), number(12)) else {
            continue;
        };
        if on_postgres && comm == "postgres" {
            out.push(("postgres".to_owned(), user + system));
            continue;
        }
        if number(1) != Some(u64::from(root)) {
            continue;
        }
        let args: Vec<String> = std::fs::read(path.join("cmdline"))
            .unwrap_or_default()
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        let name = match args.iter().position(|a| a == "serve") {
            Some(i) => args.get(i + 1).cloned().unwrap_or_default(),
            None => args
                .first()
                .and_then(|a| a.rsplit('/').next())
                .unwrap_or("?")
                .to_owned(),
        };
        out.push((name, user + system));
    }
    out.sort();
    out
}

/// One entry per name (PostgreSQL runs a process per connection).
fn summed(processes: &[(String, u64)]) -> Vec<(String, u64)> {
    let mut out: Vec<(String, u64)> = Vec::new();
    for (name, ticks) in processes {
        match out.iter_mut().find(|(n, _)| n == name) {
            Some((_, t)) => *t += ticks,
            None => out.push((name.clone(), *ticks)),
        }
    }
    out
}

fn print_cpu_per_order(before: &[(String, u64)], after: &[(String, u64)], orders: usize) {
    // /proc reports CPU time in USER_HZ, 100 per second on Linux whatever the kernel's HZ.
    const TICK_US: f64 = 10_000.0;
    let orders = orders.max(1) as f64;
    let mut total = 0.0;
    let mut parts = Vec::new();
    let after = summed(after);
    let before = summed(before);
    for (name, ticks) in &after {
        let start = before
            .iter()
            .find(|(n, _)| n == name)
            .map_or(0, |(_, t)| *t);
        let us = ticks.saturating_sub(start) as f64 * TICK_US / orders;
        total += us;
        parts.push(format!("{name} {us:.0}"));
    }
    println!(
        "bench-orders: CPU per order {total:.0} us ({})",
        parts.join(", ")
    );
}
