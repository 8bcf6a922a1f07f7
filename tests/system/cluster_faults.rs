//! Losing any one process costs latency, never an order: a cluster on one machine (two
//! instances of every context and edge, three NATS nodes; PostgreSQL when the test server is
//! set) under a steady CreateOrder load through both edges, while one instance of every
//! context, one edge and one NATS node are SIGKILLed a few seconds apart. Every order placed
//! ends CONFIRMED, each is charged once, stock drops by exactly what was confirmed, each
//! confirmation is stored once, and the killed processes come back, re-register and serve.

use std::{
    collections::{HashMap, HashSet},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use nix::sys::signal;
use polyshop::{
    inventory::v1::{
        GetStockRequest, SetStockRequest, inventory_service_client::InventoryServiceClient,
    },
    notification::v1::{
        ListNotificationsRequest, NotificationKind,
        notification_service_client::NotificationServiceClient,
    },
    order::v1::{GetOrderRequest, OrderStatus, order_service_client::OrderServiceClient},
    payment::v1::{
        ListPaymentsRequest, PaymentStatus, payment_service_client::PaymentServiceClient,
    },
};
use polyshop_platform::{
    events::streams,
    testing::{bearer, eventually_some, poll_until},
};

use crate::{
    cluster::{
        ONE_CLUSTER_AT_A_TIME, Started, cluster_args, confirmed_through, drop_databases, up,
    },
    harness::{System, children_of, order_request},
};

/// Units on hand before the load: more than the load can order.
const STOCK: i32 = 10_000;
/// Shoppers placing orders at once, and the pause between one shopper's orders.
const SHOPPERS: usize = 3;
const SPACING: Duration = Duration::from_millis(200);

/// Places `key` through the edges in turn until one answers with the order (a client's retry
/// of UNAVAILABLE under the same idempotency key); the order id.
async fn place(edges: &[String], token: &str, product: &str, key: &str, first: usize) -> String {
    for attempt in 0..600 {
        let edge = &edges[(first + attempt) % edges.len()];
        if let Ok(mut orders) = OrderServiceClient::connect(edge.clone()).await
            && let Ok(answer) = orders
                .create_order(bearer(order_request(key, product, 1), token))
                .await
            && let Some(order) = answer.into_inner().order
        {
            return order.order_id;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("order {key} was never answered");
}

/// The order's status once it left PENDING (and CANCELLING), read through the edges.
async fn settled(edges: &[String], token: &str, order_id: &str) -> i32 {
    eventually_some(
        &format!("order {order_id} to settle"),
        Duration::from_secs(120),
        async || {
            for edge in edges {
                let Ok(mut orders) = OrderServiceClient::connect(edge.clone()).await else {
                    continue;
                };
                let Ok(answer) = orders
                    .get_order(bearer(
                        GetOrderRequest {
                            order_id: order_id.to_owned(),
                        },
                        token,
                    ))
                    .await
                else {
                    continue;
                };
                let status = answer.into_inner().order?.status;
                let open = [OrderStatus::Pending as i32, OrderStatus::Cancelling as i32];
                return (!open.contains(&status)).then_some(status);
            }
            None
        },
    )
    .await
}

/// SIGKILLs the first child of `up` whose command line has all of `words`; whether one ran.
fn kill_one(up_pid: u32, words: &[&str]) -> bool {
    let victim = children_of(up_pid)
        .into_iter()
        .find(|(_, cmdline)| words.iter().all(|w| cmdline.contains(w)));
    match victim {
        Some((pid, cmdline)) => {
            eprintln!("cluster_faults: SIGKILL {pid} ({cmdline})");
            signal::kill(pid, signal::Signal::SIGKILL).is_ok()
        }
        None => false,
    }
}

#[tokio::test]
async fn killing_one_instance_of_everything_under_load_loses_no_order() {
    let _one_cluster = ONE_CLUSTER_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut env = System::environment(dir.path());
    env.insert("POLYSHOP_ORDER_SAGA_RETRY_MAX_MS".into(), "1000".into());
    // One shopper checks every order afterwards: more calls than a person's limit allows.
    env.insert("POLYSHOP_GATEWAY_RATE_PER_SEC".into(), "10000".into());
    env.insert("POLYSHOP_GATEWAY_RATE_BURST".into(), "10000".into());
    let (args, postgres, prefix) = cluster_args("cluster_faults");
    let Started {
        system,
        edges,
        nats: _,
    } = up(dir.path(), env, &args).await;
    assert_eq!(edges.len(), 2, "two edges: {edges:?}");
    let up_pid = system.child.id().expect("up runs");

    let admin = system.login("admin", &system.admin_password()).await;
    let token = system.signup("faults").await;
    let product = system.first_product().await.product_id;
    let mut inventory = InventoryServiceClient::connect(edges[0].clone())
        .await
        .expect("inventory through the edge");
    inventory
        .set_stock(bearer(
            SetStockRequest {
                product_id: product.clone(),
                quantity_on_hand: STOCK,
            },
            &admin,
        ))
        .await
        .expect("set stock");
    // Both edges serve before the load starts.
    for (i, edge) in edges.iter().enumerate() {
        let order = confirmed_through(edge, &token, &product, &format!("warm-{i}")).await;
        assert_eq!(order.status, OrderStatus::Confirmed as i32, "{order:?}");
    }
    let warm_up = edges.len();

    // The load: each shopper places an order every SPACING, alternating edges.
    let stop = Arc::new(AtomicBool::new(false));
    let placed: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let shoppers: Vec<_> = (0..SHOPPERS)
        .map(|s| {
            let (stop, placed) = (stop.clone(), placed.clone());
            let (edges, token, product) = (edges.clone(), token.clone(), product.clone());
            tokio::spawn(async move {
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    let key = format!("fault-{s}-{n}");
                    let id = place(&edges, &token, &product, &key, s + n).await;
                    placed.lock().expect("placed").push((key, id));
                    n += 1;
                    tokio::time::sleep(SPACING).await;
                }
            })
        })
        .collect();

    // One of each, a few seconds apart: an instance of every context, an edge, a NATS node
    // (not the first, which `polyshop admin` dials).
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut victims: Vec<Vec<&str>> = streams::contexts()
        .map(|context| vec!["serve", context])
        .collect();
    victims.push(vec!["serve", "gateway"]);
    victims.push(vec!["nats-server", "nats-cluster/n2/"]);
    for words in &victims {
        assert!(kill_one(up_pid, words), "a process to kill for {words:?}");
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, Ordering::Relaxed);
    for shopper in shoppers {
        shopper.await.expect("shopper");
    }
    let placed = placed.lock().expect("placed").clone();
    assert!(placed.len() >= 30, "a steady load: {} orders", placed.len());

    // Every order placed is confirmed: none rejected because a process died.
    let mut statuses: HashMap<i32, usize> = HashMap::new();
    for (key, id) in &placed {
        let status = settled(&edges, &token, id).await;
        assert_eq!(
            status,
            OrderStatus::Confirmed as i32,
            "order {key} ({id}) ended {status}"
        );
        *statuses.entry(status).or_default() += 1;
    }
    let ids: HashSet<&String> = placed.iter().map(|(_, id)| id).collect();
    assert_eq!(ids.len(), placed.len(), "one order per key");

    // Charged once each.
    let mut payments = PaymentServiceClient::connect(edges[0].clone())
        .await
        .expect("payment through the edge");
    for id in &ids {
        let listed = payments
            .list_payments(bearer(
                ListPaymentsRequest {
                    page_size: 100,
                    order_id: (*id).clone(),
                    ..Default::default()
                },
                &token,
            ))
            .await
            .expect("list payments")
            .into_inner()
            .payments;
        assert_eq!(listed.len(), 1, "order {id}: {listed:?}");
        assert_eq!(
            listed[0].status,
            PaymentStatus::Captured as i32,
            "{listed:?}"
        );
    }

    // Stock dropped by exactly what was confirmed, nothing left reserved.
    let confirmed = i32::try_from(placed.len() + warm_up).expect("count");
    let stock = poll_until(Duration::from_secs(30), async || {
        let level = inventory
            .get_stock(GetStockRequest {
                product_id: product.clone(),
            })
            .await
            .ok()?
            .into_inner()
            .stock?;
        (level.quantity_reserved == 0 && level.quantity_on_hand == STOCK - confirmed)
            .then_some(level)
    })
    .await;
    assert!(
        stock.is_some(),
        "stock is {STOCK} - {confirmed} with nothing reserved"
    );

    // Each confirmation stored once.
    let mut notifications = NotificationServiceClient::connect(edges[0].clone())
        .await
        .expect("notification through the edge");
    let counted = poll_until(Duration::from_secs(60), async || {
        let mut sources = Vec::new();
        let mut page_token = String::new();
        loop {
            let page = notifications
                .list_notifications(bearer(
                    ListNotificationsRequest {
                        page_size: 100,
                        page_token: page_token.clone(),
                        unread_only: false,
                    },
                    &token,
                ))
                .await
                .ok()?
                .into_inner();
            sources.extend(
                page.notifications
                    .iter()
                    .filter(|n| n.kind == NotificationKind::OrderConfirmed as i32)
                    .map(|n| n.source_event_id.clone()),
            );
            if page.next_page_token.is_empty() {
                break;
            }
            page_token = page.next_page_token;
        }
        (sources.len() >= confirmed as usize).then_some(sources)
    })
    .await
    .expect("a confirmation per order");
    let unique: HashSet<&String> = counted.iter().collect();
    assert_eq!(counted.len(), confirmed as usize, "each stored once");
    assert_eq!(unique.len(), counted.len(), "no duplicate source event");

    // The killed processes are back: two instances of every context and edge registered,
    // and both edges (one of them restarted) serve an order.
    let mut listed = String::new();
    let back = poll_until(Duration::from_secs(60), async || {
        listed = system.polyshop(&["admin", "services"]).await;
        streams::contexts()
            .chain(["gateway"])
            .all(|context| {
                listed
                    .lines()
                    .filter(|l| l.starts_with(&format!("{context}\t")))
                    .filter_map(|l| l.split('\t').nth(2))
                    .collect::<HashSet<_>>()
                    .len()
                    == 2
            })
            .then_some(())
    })
    .await;
    assert!(
        back.is_some(),
        "every killed process re-registered: {listed}"
    );
    for (i, edge) in edges.iter().enumerate() {
        let order = confirmed_through(edge, &token, &product, &format!("after-{i}")).await;
        assert_eq!(order.status, OrderStatus::Confirmed as i32, "{order:?}");
    }

    assert!(system.stop().await, "up exits 0");
    if let Some(server) = postgres {
        drop_databases(&server, &prefix).await;
    }
}
