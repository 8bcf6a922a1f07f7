//! With `discovery.mode = "nats"` every service registers in the NATS KV registry and the
//! order saga reaches its participants through it.

use std::time::Duration;

use polyshop::order::v1::OrderStatus;
use polyshop_platform::testing::poll_until;

use crate::{crash::place, harness::System};

#[tokio::test]
async fn services_register_and_the_saga_finds_its_participants_in_the_registry() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut env = System::environment(dir.path());
    env.insert("POLYSHOP_DISCOVERY_MODE".into(), "nats".into());
    let system = System::up(dir.path(), env).await;

    let mut listed = String::new();
    let all_listed = poll_until(Duration::from_secs(10), async || {
        listed = system.polyshop(&["admin", "services"]).await;
        (listed.lines().count() == 6).then_some(())
    })
    .await;
    assert!(all_listed.is_some(), "six services registered: {listed}");
    for service in [
        "user",
        "catalog",
        "inventory",
        "order",
        "payment",
        "notification",
    ] {
        let line = listed
            .lines()
            .find(|l| l.starts_with(&format!("{service}\t")))
            .unwrap_or_else(|| panic!("{service} registered: {listed}"));
        let url = system.url(&service.to_ascii_uppercase());
        assert!(line.contains(&url), "{line} names {url}");
    }

    let token = system.signup("discovered").await;
    let product = system.first_product().await;
    let order = place(&system, &token, &product.product_id)
        .await
        .expect("order");
    assert_eq!(order.status, OrderStatus::Confirmed as i32, "{order:?}");
    assert!(system.stop().await);
}
