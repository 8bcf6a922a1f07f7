//! The `order_replica_fallback` feature flag, switched at runtime through NATS KV: off, an
//! order is refused while the user service is away; on, the user replica decides.

mod common;

use std::time::Duration;

use common::System;
use polyshop::order::v1::OrderStatus;
use polyshop_platform::flags;
use polyshop_platform::testing::poll_until;
use tonic::Code;

#[tokio::test]
async fn the_replica_fallback_follows_its_runtime_flag() {
    let mut system = System::start_with(|s| {
        s.flags.insert("order_replica_fallback".into(), false);
    })
    .await;
    let admin = system.admin().await;
    let mug = system.product(&admin, "Mug", 1250, 10).await;
    let (_, token) = system.customer("jane").await;
    // The replica learns the account from user.registered before the user service goes.
    let placed = system
        .place(&token, "before", &[(&mug, 1)], "tok_visa")
        .await
        .expect("placed");
    assert_eq!(placed.status, OrderStatus::Confirmed as i32);
    tokio::time::sleep(Duration::from_millis(500)).await;
    system.stop("user").await;

    let err = system
        .place(&token, "flag-off", &[(&mug, 1)], "tok_visa")
        .await
        .expect_err("no fallback while the flag is off");
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    assert!(
        err.message().contains("replica fallback is switched off"),
        "{err:?}"
    );

    let js =
        async_nats::jetstream::new(async_nats::connect(system.nats.url()).await.expect("nats"));
    flags::set(&js, "order_replica_fallback", Some(true))
        .await
        .expect("set the flag");
    let mut attempt = 0;
    let confirmed = poll_until(Duration::from_secs(10), async || {
        attempt += 1;
        let key = format!("flag-on-{attempt}");
        let order = system
            .place(&token, &key, &[(&mug, 1)], "tok_visa")
            .await
            .ok()?;
        (order.status == OrderStatus::Confirmed as i32).then_some(order)
    })
    .await;
    assert!(
        confirmed.is_some(),
        "with the flag on the replica vouches for the user"
    );
    system.shutdown().await;
}
