//! A participant that stops answering while orders are placed, the way operators meet it:
//! frozen for 6 s (SIGSTOP, then SIGCONT), or killed (SIGKILL) and kept down for 10 s. Every
//! order ends CONFIRMED, no client sees a 5xx for an order that was stored, and replaying any
//! key answers 200 with the same order id.

use std::{collections::HashMap, time::Duration};

use nix::{sys::signal, unistd::Pid};
use polyshop::order::v1::{Order, OrderStatus};

use crate::{
    crash::place_with_key,
    harness::{System, children_of},
};

/// Orders placed in all, one every [`SPACING`].
const ORDERS: usize = 24;
const SPACING: Duration = Duration::from_millis(350);

/// The pid of `up`'s child serving `service`, if one runs.
pub fn child_pid(system: &System, service: &str) -> Option<Pid> {
    let parent = system.child.id().expect("up runs");
    children_of(parent)
        .into_iter()
        .find(|(_, cmdline)| {
            let words: Vec<&str> = cmdline.split_whitespace().collect();
            words.windows(2).any(|w| w == ["serve", service])
        })
        .map(|(pid, _)| pid)
}

/// What one shopper saw: the order id each answer named, and every 5xx.
#[derive(Debug, Default)]
struct Seen {
    ids: Vec<String>,
    failures: Vec<String>,
    last: Option<Order>,
}

/// Places `ORDERS` orders (one client each, retrying its own key) while `outage` runs, then
/// replays every key until its order settles; checks every promise.
async fn orders_survive(what: &str, outage: impl AsyncFnOnce(&System)) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut env = System::environment(dir.path());
    // Retries come back quickly once the participant is back; answers within a second.
    env.insert("POLYSHOP_ORDER_SAGA_RETRY_MAX_MS".into(), "1000".into());
    env.insert("POLYSHOP_ORDER_SETTLE_WAIT_MS".into(), "1000".into());
    let system = System::up(dir.path(), env).await;
    let token = system.signup("jane").await;
    let product = system.first_product().await.product_id;

    let shoppers = (0..ORDERS).map(|i| {
        let (system, token, product) = (&system, token.clone(), product.clone());
        async move {
            tokio::time::sleep(SPACING * u32::try_from(i).expect("small")).await;
            let key = format!("{what}-{i}");
            let mut seen = Seen::default();
            // Like a client with a 10 s deadline: retry the same key until it is answered.
            for _ in 0..20 {
                match tokio::time::timeout(
                    Duration::from_secs(10),
                    place_with_key(system, &token, &product, &key, 1),
                )
                .await
                {
                    Ok(Ok(order)) => {
                        seen.ids.push(order.order_id.clone());
                        seen.last = Some(order);
                        break;
                    }
                    Ok(Err(status))
                        if polyshop_platform::testing::is_server_error(status.code()) =>
                    {
                        seen.failures
                            .push(format!("{:?}: {}", status.code(), status.message()));
                    }
                    Ok(Err(status)) => panic!("{key}: refused {status:?}"),
                    Err(_) => seen.failures.push("no answer in 10 s".into()),
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            (key, seen)
        }
    });
    let (mut seen, ()) = tokio::join!(futures::future::join_all(shoppers), async {
        // The outage starts with the first orders.
        tokio::time::sleep(SPACING).await;
        outage(&system).await;
    });

    // Every key replays to its order until it settles.
    for (key, seen) in &mut seen {
        for _ in 0..240 {
            match place_with_key(&system, &token, &product, key, 1).await {
                Ok(order) => {
                    let settled = order.status != OrderStatus::Pending as i32;
                    seen.ids.push(order.order_id.clone());
                    seen.last = Some(order);
                    if settled {
                        break;
                    }
                }
                Err(status) => {
                    seen.failures
                        .push(format!("replay {:?}: {}", status.code(), status.message()))
                }
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
    let mut ids = HashMap::new();
    for (key, seen) in &seen {
        let last = seen
            .last
            .as_ref()
            .unwrap_or_else(|| panic!("{what} {key}: never answered: {seen:?}"));
        assert_eq!(
            last.status,
            OrderStatus::Confirmed as i32,
            "{what} {key}: {last:?}"
        );
        assert!(
            seen.ids.iter().all(|id| *id == last.order_id),
            "{what} {key}: every answer names one order: {:?}",
            seen.ids
        );
        // A 5xx is acceptable only before the order was stored: never once an answer named it.
        assert!(
            seen.failures.is_empty(),
            "{what} {key}: a client saw a 5xx: {:?}",
            seen.failures
        );
        assert!(
            ids.insert(last.order_id.clone(), key.clone()).is_none(),
            "one order per key"
        );
    }
    assert!(system.stop().await);
}

#[tokio::test]
async fn payment_frozen_for_six_seconds_delays_orders_but_confirms_every_one() {
    orders_survive("frozen", async |system: &System| {
        let payment = child_pid(system, "payment").expect("payment runs");
        signal::kill(payment, signal::Signal::SIGSTOP).expect("SIGSTOP");
        tokio::time::sleep(Duration::from_secs(6)).await;
        signal::kill(payment, signal::Signal::SIGCONT).expect("SIGCONT");
    })
    .await;
}

#[tokio::test]
async fn payment_killed_and_kept_down_for_ten_seconds_delays_orders_but_confirms_every_one() {
    orders_survive("killed", async |system: &System| {
        // Holding its port keeps the process `up` restarts from serving until we let go.
        let addr = system.env["POLYSHOP_PAYMENT_LISTEN"].clone();
        let mut squat = None;
        for _ in 0..400 {
            if let Some(payment) = child_pid(system, "payment") {
                let _ = signal::kill(payment, signal::Signal::SIGKILL);
            }
            // The port frees once the process is gone.
            if let Ok(listener) = std::net::TcpListener::bind(&addr) {
                squat = Some(listener);
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(squat.is_some(), "payment's port was never free");
        tokio::time::sleep(Duration::from_secs(10)).await;
        drop(squat);
    })
    .await;
}
