//! Feature flags against a real nats-server: an override set through the config service
//! reaches a watching process, and clearing it restores the configured value.

use std::collections::BTreeMap;

use polyshop_platform::{
    flags::{self, Flags},
    shutdown,
    testing::{NatsServer, eventually, jetstream},
};

#[tokio::test]
async fn overrides_reach_watchers_and_clearing_restores_the_configured_value() {
    let nats = NatsServer::start().await;
    let js = jetstream(&nats).await;
    // An override that exists before the process starts applies at once.
    flags::set(&js, "notification_email", Some(false))
        .await
        .expect("set");

    let configured = BTreeMap::from([("order_replica_fallback".to_owned(), false)]);
    let flags = Flags::new(&configured);
    let (_stop, stopped) = shutdown::channel();
    flags.watch(js.clone(), stopped);
    eventually("the earlier override applies", async || {
        !flags.enabled("notification_email")
    })
    .await;
    assert!(!flags.enabled("order_replica_fallback"), "configured off");

    flags::set(&js, "order_replica_fallback", Some(true))
        .await
        .expect("set");
    eventually("a new override arrives", async || {
        flags.enabled("order_replica_fallback")
    })
    .await;
    flags::set(&js, "order_replica_fallback", None)
        .await
        .expect("clear");
    eventually("clearing goes back to config", async || {
        !flags.enabled("order_replica_fallback")
    })
    .await;
    let overrides = flags::overrides(&js).await.expect("list");
    assert_eq!(
        overrides,
        BTreeMap::from([("notification_email".to_owned(), false)])
    );
    let err = flags::set(&js, "no_such_flag", Some(true))
        .await
        .expect_err("unknown");
    assert!(err.contains("unknown flag"), "{err}");
}
