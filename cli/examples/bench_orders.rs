//! `just bench-orders`: CreateOrder throughput and latency against a running system (SQLite, or
//! PostgreSQL under `just bench-orders-postgres`, or the cluster layout under
//! `just bench-orders-cluster`)
//! at the addresses in POLYSHOP_<SERVICE>_LISTEN, else the default ports; the orders go to
//! every URL in BENCH_ORDER_URLS (comma-separated: several order instances) when it is set. Admin credentials come from ADMIN_LOGIN / ADMIN_PASSWORD; the
//! concurrency and duration from BENCH_CONCURRENCY (32) and BENCH_SECONDS (10). With
//! SYSTEM_PID (set by `gateway/scripts/with-system.sh`: the `polyshop up` process) it also
//! prints the CPU each of its child processes spent per order during the measured window.
//! With BENCH_RATE (orders/s) it is an open loop instead: an order every 1/rate seconds, the
//! shoppers taking turns, whatever the answers. Either way it ends with the event →
//! notification stored latency of the run's events, from the notification service's
//! `polyshop_event_lag_seconds` histogram (bucket-interpolated p50/p99, and the share within
//! 50 ms, exact as 50 ms is a bucket bound).

mod common;

use common::{authed, service_url};
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
    let rate = std::env::var("BENCH_RATE")
        .ok()
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|r| *r > 0.0);
    let notification_url = service_url("NOTIFICATION", 50056);
    let lag_before = event_lag(&notification_url).await;
    let cpu_before = system.map(cpu_of_children);
    let started = Instant::now();
    let calls = Calls {
        clients: order_clients,
        tokens,
        product_id: product.product_id.clone(),
        deadline: started + Duration::from_secs(seconds),
    };
    let (mut latencies, confirmed, failures) = match rate {
        Some(rate) => open_loop(calls, rate).await?,
        None => closed_loop(calls).await?,
    };
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort();
    let pct =
        |p: f64| latencies[((latencies.len() as f64 - 1.0) * p) as usize].as_secs_f64() * 1000.0;
    let load = rate.map_or_else(
        || format!("{concurrency} clients"),
        |r| format!("{r} orders/s offered by {concurrency} shoppers"),
    );
    println!(
        "bench-orders: {} CreateOrder calls in {elapsed:.1}s with {load}: {:.0} orders/s, {} confirmed, p50 {:.1} ms, p99 {:.1} ms",
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
    print_notification_lag(&notification_url, &lag_before).await;
    Ok(())
}

/// What the order loops need: the order service(s), the shoppers' tokens, what to order, and
/// when to stop.
struct Calls {
    clients: Vec<OrderServiceClient<tonic::transport::Channel>>,
    tokens: Vec<String>,
    product_id: String,
    deadline: Instant,
}

/// Latencies, orders confirmed, and every call that did not confirm one.
type Outcome = (Vec<Duration>, u64, Vec<String>);

/// Adds one call's latency and verdict to `outcome`.
fn record(outcome: &mut Outcome, (latency, verdict): (Duration, Result<(), String>)) {
    outcome.0.push(latency);
    match verdict {
        Ok(()) => outcome.1 += 1,
        Err(why) => outcome.2.push(why),
    }
}

fn order_request(key: String, product_id: &str) -> CreateOrderRequest {
    CreateOrderRequest {
        idempotency_key: key,
        items: vec![CreateOrderItem {
            product_id: product_id.to_owned(),
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
    }
}

/// One CreateOrder: its latency, and `Err` with why when it did not confirm an order.
async fn place(
    orders: &mut OrderServiceClient<tonic::transport::Channel>,
    request: CreateOrderRequest,
    token: &str,
) -> (Duration, Result<(), String>) {
    let t = Instant::now();
    let result = orders.create_order(authed(request, token)).await;
    let latency = t.elapsed();
    let verdict = match result.map(|r| r.into_inner().order) {
        Ok(Some(o)) if o.status == OrderStatus::Confirmed as i32 => Ok(()),
        Ok(Some(o)) => Err(format!(
            "order {} ended {:?}: {}",
            o.order_id,
            OrderStatus::try_from(o.status).unwrap_or_default(),
            o.status_detail
        )),
        Ok(None) => Err("an answer without an order".into()),
        Err(s) => Err(format!("{:?}: {}", s.code(), s.message())),
    };
    (latency, verdict)
}

/// Closed loop: each shopper orders again as soon as its last order is answered.
async fn closed_loop(calls: Calls) -> anyhow::Result<Outcome> {
    let mut tasks = Vec::new();
    for (worker, token) in calls.tokens.into_iter().enumerate() {
        let mut orders = calls.clients[worker % calls.clients.len()].clone();
        let product_id = calls.product_id.clone();
        let deadline = calls.deadline;
        tasks.push(tokio::spawn(async move {
            let mut outcome: Outcome = (Vec::new(), 0, Vec::new());
            let mut n = 0u64;
            while Instant::now() < deadline {
                n += 1;
                let request = order_request(format!("bench-{worker}-{n}"), &product_id);
                record(&mut outcome, place(&mut orders, request, &token).await);
            }
            outcome
        }));
    }
    let mut all: Outcome = (Vec::new(), 0, Vec::new());
    for task in tasks {
        let (l, c, f) = task.await?;
        all.0.extend(l);
        all.1 += c;
        all.2.extend(f);
    }
    Ok(all)
}

/// Orders in flight at most in the open loop; an arrival beyond it is reported, not queued.
const MAX_IN_FLIGHT: usize = 2048;

/// Open loop: an order every 1/`rate` seconds whatever the answers, the shoppers taking turns.
async fn open_loop(calls: Calls, rate: f64) -> anyhow::Result<Outcome> {
    let mut ticks = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let in_flight = std::sync::Arc::new(tokio::sync::Semaphore::new(MAX_IN_FLIGHT));
    let mut tasks = tokio::task::JoinSet::new();
    let mut dropped = 0u64;
    let mut n = 0usize;
    while Instant::now() < calls.deadline {
        ticks.tick().await;
        let Ok(permit) = in_flight.clone().try_acquire_owned() else {
            dropped += 1;
            continue;
        };
        n += 1;
        let mut orders = calls.clients[n % calls.clients.len()].clone();
        let token = calls.tokens[n % calls.tokens.len()].clone();
        let request = order_request(format!("bench-open-{n}"), &calls.product_id);
        tasks.spawn(async move {
            let answer = place(&mut orders, request, &token).await;
            drop(permit);
            answer
        });
    }
    let mut all: Outcome = (Vec::new(), 0, Vec::new());
    while let Some(answer) = tasks.join_next().await {
        record(&mut all, answer?);
    }
    if dropped > 0 {
        all.2.push(format!(
            "{dropped} arrivals dropped: {MAX_IN_FLIGHT} orders already in flight"
        ));
    }
    Ok(all)
}

/// The notification service's `polyshop_event_lag_seconds` histogram, summed over its
/// consumers: (upper bound, cumulative count) per bucket, `+Inf` last. Empty when the service
/// cannot be asked.
async fn event_lag(notification_url: &str) -> Vec<(f64, f64)> {
    use http_body_util::{BodyExt, Full};
    use hyper_util::{client::legacy::Client, rt::TokioExecutor};
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<bytes::Bytes>>();
    let Ok(uri) = format!("{notification_url}/metrics").parse() else {
        return Vec::new();
    };
    let Ok(response) = client.get(uri).await else {
        return Vec::new();
    };
    let Ok(body) = response.into_body().collect().await else {
        return Vec::new();
    };
    let text = String::from_utf8_lossy(&body.to_bytes()).into_owned();
    let mut buckets: Vec<(f64, f64)> = Vec::new();
    for line in text.lines() {
        let Some(labels) = line.strip_prefix("polyshop_event_lag_seconds_bucket{") else {
            continue;
        };
        if !labels.contains("consumer=\"notification") {
            continue;
        }
        let le = labels
            .split("le=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .map(|v| {
                if v == "+Inf" {
                    f64::INFINITY
                } else {
                    v.parse().unwrap_or(f64::NAN)
                }
            });
        let count = line.rsplit(' ').next().and_then(|c| c.parse::<f64>().ok());
        if let (Some(le), Some(count)) = (le, count) {
            match buckets.iter_mut().find(|(b, _)| *b == le) {
                Some((_, c)) => *c += count,
                None => buckets.push((le, count)),
            }
        }
    }
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    buckets
}

/// The `q` quantile of a cumulative histogram, interpolated linearly inside its bucket.
fn quantile(buckets: &[(f64, f64)], q: f64) -> f64 {
    let total = buckets.last().map_or(0.0, |(_, c)| *c);
    let rank = q * total;
    let (mut lower, mut below) = (0.0, 0.0);
    for &(bound, count) in buckets {
        if count >= rank {
            if bound.is_infinite() {
                return f64::INFINITY;
            }
            let share = if count > below {
                (rank - below) / (count - below)
            } else {
                1.0
            };
            return lower + (bound - lower) * share;
        }
        (lower, below) = (bound, count);
    }
    f64::NAN
}

/// Waits until the notification service has stored what the run caused (its lag histogram
/// stops growing), then prints the event → notification stored latency of the run's events.
async fn print_notification_lag(notification_url: &str, before: &[(f64, f64)]) {
    let mut last = f64::NAN;
    let mut delta = Vec::new();
    for _ in 0..60 {
        let now = event_lag(notification_url).await;
        delta = now
            .iter()
            .map(|(le, c)| {
                let earlier = before
                    .iter()
                    .find(|(b, _)| b == le)
                    .map_or(0.0, |(_, c)| *c);
                (*le, c - earlier)
            })
            .collect::<Vec<_>>();
        let total = delta.last().map_or(0.0, |(_, c)| *c);
        if total > 0.0 && total == last {
            break;
        }
        last = total;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let total = delta.last().map_or(0.0, |(_, c)| *c);
    if total == 0.0 {
        println!(
            "bench-orders: no event → notification figures (no lag histogram at {notification_url})"
        );
        return;
    }
    let within_50ms = delta
        .iter()
        .find(|(le, _)| (*le - 0.05).abs() < 1e-9)
        .map_or(f64::NAN, |(_, c)| c / total * 100.0);
    println!(
        "bench-orders: event → notification stored: {total:.0} events, p50 {:.1} ms, p99 {:.1} ms, {within_50ms:.1}% within 50 ms",
        quantile(&delta, 0.5) * 1000.0,
        quantile(&delta, 0.99) * 1000.0
    );
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
