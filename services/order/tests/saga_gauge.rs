//! `polyshop_sagas{state}` follows the saga store: an order held up by a payment outage counts
//! at `charge`, and once payment is back it moves to `done`. Its own test binary, since the
//! gauge is one per process.

mod common;

use common::System;
use polyshop::order::v1::OrderStatus;
use polyshop_platform::{metrics, testing::eventually};

/// The value of `polyshop_sagas{state="<state>"}` in this process's exposition.
fn sagas(state: &str) -> Option<f64> {
    let prefix = format!("polyshop_sagas{{state=\"{state}\"}} ");
    metrics::render().lines().find_map(|l| {
        l.strip_prefix(&prefix)
            .map(|v| v.parse().expect("a number"))
    })
}

async fn sagas_become(state: &str, want: f64) {
    eventually(
        &format!("polyshop_sagas{{state=\"{state}\"}} = {want}"),
        async || sagas(state) == Some(want),
    )
    .await;
}

#[tokio::test]
async fn the_saga_gauge_counts_sagas_by_state() {
    let mut system = System::start_with(|s| {
        s.events.gauge_interval_ms = 100;
        s.order.breaker_failures = 2;
        s.order.call_attempts = 1;
        s.order.call_timeout_ms = 500;
        s.order.saga_retry_base_ms = 100;
        s.order.saga_retry_max_ms = 500;
        s.order.settle_wait_ms = 1000;
    })
    .await;
    sagas_become("done", 0.0).await;
    sagas_become("charge", 0.0).await;
    let admin = system.admin().await;
    let mug = system.product(&admin, "Mug", 800, 20).await;
    let (_, token) = system.customer("jane").await;

    system.stop("payment").await;
    let order = system
        .place(&token, "gauge-1", &[(&mug, 1)], "tok_visa")
        .await
        .expect("stored while payment is down");
    assert_eq!(order.status, OrderStatus::Pending as i32);
    sagas_become("charge", 1.0).await;
    assert_eq!(sagas("done"), Some(0.0));

    system.restart("payment").await;
    sagas_become("done", 1.0).await;
    sagas_become("charge", 0.0).await;
    system.shutdown().await;
}
