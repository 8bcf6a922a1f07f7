//! The saga runner against fakes: the happy path, a crash after every command, outages that
//! delay, the horizon, refunds that are refused, and cancellation. Milliseconds each.

use std::{sync::Arc, time::Duration};

use polyshop_platform::auth::Principal;

use super::{
    Drive, SagaRunner,
    memory::{FakeParticipants, Hold, MemoryLog, NoReplica},
    ports::SagaLog,
};
use crate::{
    domain::{
        OrderError, OrderStatus, PlaceOrder, Rejection, RequestedLine, ShippingAddress,
        saga::{self, Timing},
    },
    store::Created,
};

const FAST: Timing = Timing {
    base_ms: 2,
    max_ms: 10,
    horizon_ms: 60_000,
};

fn request(key: &str, token: &str) -> PlaceOrder {
    PlaceOrder {
        idempotency_key: key.into(),
        lines: vec![RequestedLine {
            product_id: "p1".into(),
            quantity: 2,
        }],
        shipping: ShippingAddress {
            recipient: "Jane Doe".into(),
            line1: "1 Main St".into(),
            city: "Berlin".into(),
            postal_code: "10115".into(),
            country_code: "DE".into(),
            ..ShippingAddress::default()
        },
        payment_method_token: token.into(),
    }
}

fn runner(log: &Arc<MemoryLog>, world: &Arc<FakeParticipants>, timing: Timing) -> Arc<SagaRunner> {
    Arc::new(
        SagaRunner::new(log.clone(), world.clone(), Arc::new(NoReplica))
            .with_timing(timing, Duration::from_millis(200))
            // A crashed runner's claim holds this long; the runner that resumes waits it out.
            .with_lease(Duration::from_millis(20), Duration::from_millis(5)),
    )
}

fn customer() -> Principal {
    Principal::User {
        id: "u1".into(),
        roles: vec![],
    }
}

/// An empty saga log, and participants with 10 units of `p1`.
fn fresh() -> (Arc<MemoryLog>, Arc<FakeParticipants>) {
    (
        Arc::new(MemoryLog::default()),
        Arc::new(FakeParticipants::new(10)),
    )
}

/// Stores a new order's saga, as `place` does, without driving it.
async fn stored(log: &MemoryLog, token: &str) -> String {
    let placement = saga::place(
        "o1",
        "u1",
        request("k1", token),
        None,
        &[saga::PricedProduct {
            product_id: "p1".into(),
            name: "Mug".into(),
            active: true,
            price: Some(crate::domain::Money {
                amount_minor: 800,
                currency: "USD".into(),
            }),
        }],
    );
    match log
        // As stored by an instance that crashed: its lease ran out long ago.
        .create(&placement.events, &placement.saga, "crashed", 0)
        .await
        .expect("create")
    {
        Created::New(order) => order.id,
        Created::Existing(_) => panic!("fresh log"),
    }
}

/// Drives until the saga finishes, as the resumer would (waiting out backoffs).
async fn settle(runner: &SagaRunner, order_id: &str) {
    for _ in 0..500 {
        if runner.drive(order_id).await.expect("drive") == Drive::Finished {
            return;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    panic!("saga of {order_id} never finished");
}

#[tokio::test]
async fn a_good_order_is_confirmed_with_one_charge_and_the_stock_sold() {
    let (log, world) = fresh();
    let order = runner(&log, &world, FAST)
        .place("u1", request("k1", "tok_visa"))
        .await
        .expect("placed");
    assert_eq!(order.status, OrderStatus::Confirmed);
    let w = world.world();
    assert_eq!(w.calls, ["reserve", "charge", "confirm_reservation"]);
    assert_eq!((w.on_hand, w.payments.len()), (8, 1));
}

#[tokio::test]
async fn a_crash_after_any_command_resumes_to_the_same_end_without_repeating_effects() {
    // (token, commands on the way, end, units sold, charges kept)
    let journeys = [
        ("tok_visa", 3, OrderStatus::Confirmed, 2, 1),
        ("tok_declined", 3, OrderStatus::Rejected, 0, 0),
    ];
    for (token, commands, end, sold, kept) in journeys {
        for crash in 0..commands {
            let (log, world) = fresh();
            let id = stored(&log, token).await;
            world.world().crash_at = Some(crash);
            let crashed = tokio::time::timeout(
                Duration::from_millis(50),
                runner(&log, &world, FAST).drive(&id),
            )
            .await;
            assert!(
                crashed.is_err(),
                "{token}: the process died at command {crash}"
            );
            world.world().crash_at = None;
            // A new process resumes from what was stored.
            let resumed = runner(&log, &world, FAST);
            settle(&resumed, &id).await;
            let order = log.order(&id).await.expect("load").expect("order");
            assert_eq!(order.status, end, "{token}, crash at {crash}");
            let w = world.world();
            assert_eq!(
                w.on_hand,
                10 - sold,
                "{token}, crash at {crash}: stock conserved"
            );
            assert!(
                w.holds.values().all(|(h, _)| *h != Hold::Held),
                "{token}, crash at {crash}: no hold left"
            );
            let kept_charges = w
                .payments
                .values()
                .filter(|(_, refunded)| !refunded)
                .count();
            assert_eq!(
                kept_charges, kept,
                "{token}, crash at {crash}: charges kept"
            );
            assert!(
                w.payments.len() <= 1,
                "{token}, crash at {crash}: never charged twice"
            );
        }
    }
}

#[tokio::test]
async fn an_outage_delays_the_order_and_it_is_confirmed_once_the_participant_is_back() {
    let (log, world) = fresh();
    world.world().away_for = 5;
    let runner = runner(&log, &world, FAST);
    let order = runner
        .place("u1", request("k1", "tok_visa"))
        .await
        .expect("stored, not refused");
    assert_eq!(
        order.status,
        OrderStatus::Pending,
        "answered at once, still being placed"
    );
    settle(&runner, &order.id).await;
    let order = log.order(&order.id).await.expect("load").expect("order");
    assert_eq!(order.status, OrderStatus::Confirmed);
    // A replay of the key answers with the same order as it is now.
    let again = runner
        .place("u1", request("k1", "tok_visa"))
        .await
        .expect("replay");
    assert_eq!((again.id, again.status), (order.id, OrderStatus::Confirmed));
}

#[tokio::test]
async fn past_the_horizon_an_unreachable_participant_rejects_and_compensates() {
    let (log, world) = fresh();
    let id = stored(&log, "tok_visa").await;
    world.world().away = vec!["charge", "void_charges"];
    let runner = runner(
        &log,
        &world,
        Timing {
            horizon_ms: 20,
            ..FAST
        },
    );
    for _ in 0..30 {
        runner.drive(&id).await.expect("drive");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let order = log.order(&id).await.expect("load").expect("order");
    assert_eq!(
        (order.status, order.rejection),
        (OrderStatus::Rejected, Some(Rejection::ServiceUnavailable)),
        "{:?} {:?}",
        log.stored(&id),
        world.world()
    );
    assert_eq!(
        log.stored(&id).expect("saga").step,
        saga::Step::VoidPayment,
        "a charge whose answer was never seen is still to be voided"
    );
    world.world().away.clear();
    settle(&runner, &id).await;
    assert_eq!(world.world().on_hand, 10, "the hold was released");
}

#[tokio::test]
async fn a_refused_refund_flags_the_order_for_reconciliation_instead_of_dropping_the_money() {
    let (log, world) = fresh();
    let id = stored(&log, "tok_visa").await;
    let runner = runner(
        &log,
        &world,
        Timing {
            horizon_ms: 20,
            ..FAST
        },
    );
    // The hold lapses between the charge and the confirmation, and refunds are refused.
    {
        let mut w = world.world();
        w.lapse_confirms = true;
        w.refuse_refunds = true;
    }
    for _ in 0..40 {
        runner.drive(&id).await.expect("drive");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let saga = log.stored(&id).expect("saga");
    assert_eq!(saga.step, saga::Step::Compensate);
    assert!(
        saga.stuck
            .as_deref()
            .is_some_and(|w| w.contains("refund refused")),
        "{saga:?}"
    );
    let order = log.order(&id).await.expect("load").expect("order");
    assert_eq!(
        order.status,
        OrderStatus::Pending,
        "not REJECTED while the money is held"
    );
    assert!(
        world
            .world()
            .payments
            .values()
            .all(|(_, refunded)| !refunded)
    );

    world.world().refuse_refunds = false;
    settle(&runner, &id).await;
    let order = log.order(&id).await.expect("load").expect("order");
    assert_eq!(order.status, OrderStatus::Rejected);
    assert!(
        world
            .world()
            .payments
            .values()
            .all(|(_, refunded)| *refunded),
        "refunded at last"
    );
    assert_eq!(log.stored(&id).expect("saga").stuck, None);
}

#[tokio::test]
async fn a_cancellation_is_recorded_first_blocks_shipping_and_survives_a_crash() {
    let (log, world) = fresh();
    let runner = runner(&log, &world, FAST);
    let order = runner
        .place("u1", request("k1", "tok_visa"))
        .await
        .expect("placed");
    assert_eq!(order.status, OrderStatus::Confirmed);
    // The process dies right after the refund.
    world.world().crash_at = Some(3);
    let cancelling = runner
        .cancel(&customer(), &order.id, "changed my mind")
        .await
        .expect("recorded");
    assert_eq!(cancelling.status, OrderStatus::Cancelling);
    let ship = super::update_status(
        log.as_ref(),
        &customer(),
        &order.id,
        Some(OrderStatus::Shipped),
        "T1",
    )
    .await;
    assert!(
        matches!(ship, Err(OrderError::NotAllowed(_))),
        "no shipping while cancelling: {ship:?}"
    );

    world.world().crash_at = None;
    // The crashed call hangs in a task that still renews its claim; a dead process would not.
    log.lapse(&order.id);
    let resumed = self::runner(&log, &world, FAST);
    settle(&resumed, &order.id).await;
    let order = log.order(&order.id).await.expect("load").expect("order");
    assert_eq!(order.status, OrderStatus::Cancelled);
    let w = world.world();
    assert_eq!(w.on_hand, 10, "stock back");
    assert!(
        w.payments.values().all(|(_, refunded)| *refunded),
        "refunded"
    );
    assert_eq!(
        w.calls.iter().filter(|c| **c == "refund").count(),
        2,
        "the refund whose answer was lost is sent again, under the same key"
    );
    assert_eq!(w.payments.len(), 1);
}

#[tokio::test]
async fn a_replayed_key_converges_even_while_validation_cannot_run() {
    let (log, world) = fresh();
    let runner = runner(&log, &world, FAST);
    let order = runner
        .place("u1", request("k1", "tok_visa"))
        .await
        .expect("placed");
    world.world().catalog_away = true;
    let again = runner
        .place("u1", request("k1", "tok_visa"))
        .await
        .expect("a stored order is answered, whoever is away");
    assert_eq!((again.id, again.status), (order.id, OrderStatus::Confirmed));
    let new = runner.place("u1", request("k2", "tok_visa")).await;
    assert!(
        matches!(new, Err(OrderError::Unavailable(_))),
        "nothing stored for a new key: try again later: {new:?}"
    );
    assert!(
        log.placed_under("u1", "k2")
            .await
            .expect("lookup")
            .is_none(),
        "and nothing was kept"
    );
}
