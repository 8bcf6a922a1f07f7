//! NATS authentication and per-subject permissions (decision 0016), attacked from outside a
//! running `polyshop up`: a client without credentials is refused, the catalog's identity
//! cannot publish another context's events nor write another service's registry entry or a
//! flag, the admin identity can set a flag, and the system still confirms an order with no
//! service running into a permission it lacks.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use async_nats::jetstream;
use polyshop::order::v1::{OrderStatus, order_service_client::OrderServiceClient};
use polyshop_platform::testing::{bearer, poll_until};

use crate::harness::{System, order_request};

/// The name of the attacking connections, so their violations in the server log are told
/// from a service's.
const ATTACKER: &str = "nats-auth-attacker";

/// The server errors a connection was told about (e.g. `Permissions Violation for Publish
/// to "…"`).
type Errors = Arc<Mutex<Vec<String>>>;

async fn connect_recording(system: &System, identity: &str) -> (async_nats::Client, Errors) {
    let errors: Errors = Arc::default();
    let sink = errors.clone();
    let client = system
        .nats_options(identity)
        .name(ATTACKER)
        .event_callback(move |event| {
            let sink = sink.clone();
            async move {
                if let async_nats::Event::ServerError(e) = event {
                    sink.lock().expect("errors").push(e.to_string());
                }
            }
        })
        .connect(system.nats_url())
        .await
        .expect("connect");
    (client, errors)
}

/// Waits until the server reported a permission violation naming `subject`.
async fn violation(errors: &Errors, subject: &str) -> bool {
    poll_until(Duration::from_secs(10), async || {
        errors
            .lock()
            .expect("errors")
            .iter()
            .any(|e| e.contains("Permissions Violation") && e.contains(subject))
            .then_some(())
    })
    .await
    .is_some()
}

#[tokio::test]
async fn nats_admits_each_identity_only_to_its_own_subjects() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut env = System::environment(dir.path());
    // Every service registers and watches the registry, under its own identity.
    env.insert("POLYSHOP_DISCOVERY_MODE".into(), "nats".into());
    let system = System::up(dir.path(), env).await;
    let url = system.nats_url();

    // Without credentials, or with a wrong password: refused at connect.
    let anonymous = async_nats::ConnectOptions::new()
        .name(ATTACKER)
        .connect(&url)
        .await;
    assert!(
        anonymous.is_err(),
        "a client without credentials is refused"
    );
    let wrong = async_nats::ConnectOptions::with_user_and_password(
        "catalog".into(),
        "not-the-password".into(),
    )
    .name(ATTACKER)
    .connect(&url)
    .await;
    assert!(wrong.is_err(), "a wrong password is refused");

    // The generated passwords are the owner's only.
    #[cfg(unix)]
    for file in ["admin.password", "catalog.password"] {
        use std::os::unix::fs::PermissionsExt;
        let path = dir.path().join("nats-users").join(file);
        let mode = std::fs::metadata(&path).expect("file").permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{}", path.display());
    }
    let conf = dir.path().join("nats").join("nats.conf");
    let mode = {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(&conf)
            .expect("nats.conf")
            .permissions()
            .mode()
    };
    assert_eq!(mode & 0o777, 0o600, "nats.conf holds the passwords");

    let admin = jetstream::new(system.nats_as("admin", "nats-auth-admin").await);
    let payment_events = || async {
        let mut stream = admin.get_stream("POLYSHOP_PAYMENT").await.expect("stream");
        stream.info().await.expect("info").state.messages
    };
    let before = payment_events().await;

    // The catalog's identity: another context's events are refused by the server.
    let (catalog, errors) = connect_recording(&system, "catalog").await;
    let js = jetstream::context::ContextBuilder::new()
        .timeout(Duration::from_secs(2))
        .build(catalog.clone());
    let forged = js
        .publish("polyshop.payment.captured", "forged".into())
        .await
        .expect("sent")
        .await;
    assert!(forged.is_err(), "no ack for a forged payment event");
    assert!(
        violation(&errors, "polyshop.payment.captured").await,
        "permission violation reported: {:?}",
        errors.lock().expect("errors")
    );
    // Plain core NATS fares no better.
    catalog
        .publish("polyshop.payment.refunded", "forged".into())
        .await
        .expect("sent");
    catalog.flush().await.expect("flush");
    assert!(violation(&errors, "polyshop.payment.refunded").await);
    assert_eq!(
        payment_events().await,
        before,
        "nothing reached POLYSHOP_PAYMENT"
    );

    // Its own events it may publish (the control: the restriction is by subject).
    let own = js
        .publish("polyshop.catalog.nats_auth_probe", "probe".into())
        .await
        .expect("sent")
        .await;
    assert!(own.is_ok(), "own context's subject: {own:?}");

    // The registry: its own key yes, another service's no.
    let registry = js
        .get_key_value(polyshop_platform::discovery::BUCKET)
        .await
        .expect("registry bucket");
    registry
        .put("catalog.nats-auth-probe", "{}".into())
        .await
        .expect("own registry entry");
    registry
        .delete("catalog.nats-auth-probe")
        .await
        .expect("own registry entry deleted");
    let hijack = registry.put("payment.nats-auth-hijack", "{}".into()).await;
    assert!(hijack.is_err(), "another service's registry key");
    assert!(violation(&errors, "$KV.polyshop_registry.payment.nats-auth-hijack").await);
    let admin_registry = admin
        .get_key_value(polyshop_platform::discovery::BUCKET)
        .await
        .expect("registry");
    assert_eq!(
        admin_registry
            .get("payment.nats-auth-hijack")
            .await
            .expect("get"),
        None
    );

    // Flags: readable, not writable.
    let flags = js
        .get_key_value(polyshop_platform::flags::BUCKET)
        .await
        .expect("flags bucket");
    let flipped = flags.put("order_replica_fallback", "off".into()).await;
    assert!(flipped.is_err(), "a service cannot set a flag");
    assert!(violation(&errors, "$KV.polyshop_flags.order_replica_fallback").await);

    // Nor destroy another context's stream, or the registry.
    assert!(js.delete_stream("POLYSHOP_PAYMENT").await.is_err());
    let registry_stream = js.get_stream("KV_polyshop_registry").await.expect("info");
    assert!(registry_stream.purge().await.is_err());
    assert!(violation(&errors, "$JS.API.STREAM.DELETE.POLYSHOP_PAYMENT").await);
    assert!(admin.get_stream("POLYSHOP_PAYMENT").await.is_ok());

    // The admin identity (what `polyshop admin` finds on the data dir) sets a flag.
    system
        .polyshop(&["admin", "flags", "set", "notification_email", "off"])
        .await;
    let listed = system.polyshop(&["admin", "flags", "list"]).await;
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with("notification_email") && l.contains("override off")),
        "{listed}"
    );
    system
        .polyshop(&["admin", "flags", "clear", "notification_email"])
        .await;

    // And the services, each under its own identity, still confirm an order end to end.
    let token = system.signup("natsauth").await;
    let product = system.first_product().await;
    let mut orders = OrderServiceClient::connect(system.url("ORDER"))
        .await
        .expect("connect");
    let order = orders
        .create_order(bearer(
            order_request("nats-auth", &product.product_id, 1),
            &token,
        ))
        .await
        .expect("create order")
        .into_inner()
        .order
        .expect("order");
    assert_eq!(order.status, OrderStatus::Confirmed as i32, "{order:?}");
    // Its events flowed: the projection (a consumer under the order identity) lists it.
    let listed = poll_until(Duration::from_secs(15), async || {
        let list = orders
            .list_orders(bearer(
                polyshop::order::v1::ListOrdersRequest::default(),
                &token,
            ))
            .await
            .ok()?
            .into_inner();
        list.orders
            .iter()
            .any(|o| o.order_id == order.order_id)
            .then_some(())
    })
    .await;
    assert!(
        listed.is_some(),
        "the order projection saw the order's events"
    );

    let services = system.polyshop(&["admin", "services"]).await;
    for service in ["user", "catalog", "order", "gateway"] {
        assert!(
            services
                .lines()
                .any(|l| l.starts_with(&format!("{service}\t"))),
            "{service} registered under its identity: {services}"
        );
    }

    // No service ran into a permission it lacks: every violation in the server log is the
    // attacker's.
    let log = std::fs::read_to_string(dir.path().join("nats").join("nats-server.log"))
        .expect("server log");
    assert!(
        log.lines()
            .any(|l| l.contains(ATTACKER) && l.contains("Publish Violation")),
        "the attacks are in the server log"
    );
    let foreign: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("Violation") && !l.contains(ATTACKER))
        .collect();
    assert!(
        foreign.is_empty(),
        "services hit permission violations: {foreign:#?}"
    );
    assert!(system.stop().await);
}
