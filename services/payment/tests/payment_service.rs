//! Black-box tests of the payment service through the generated client, against a real server
//! on 127.0.0.1:0 with its own nats-server and a fresh SQLite file, and the same flows on
//! PostgreSQL when `POLYSHOP_TEST_POSTGRES_URL` is set. Access and validation are in
//! `access.rs`.

mod common;

use common::{Env, charge_request, reason};
use futures::future::join_all;
use polyshop::payment::v1::{self as pb, PaymentStatus};
use polyshop_platform::testing::{bearer, expect_published, last_event};
use tonic::Code;

const CAPTURED: &str = "polyshop.payment.captured";
const DECLINED: &str = "polyshop.payment.declined";
const REFUNDED: &str = "polyshop.payment.refunded";

async fn a_captured_charge_is_stored_invoiced_and_announced(env: &Env) {
    let s = &env.server;
    let payment = s
        .charge(charge_request("k-1", "order-1", "alice", "tok_visa"))
        .await
        .expect("charge");
    assert_eq!(payment.status(), PaymentStatus::Captured);
    assert_eq!(payment.card_last4, "4242");
    assert_eq!(payment.amount, common::usd(2500));
    assert_eq!(payment.refunded_amount, common::usd(0));
    assert_eq!(
        s.get(&payment.payment_id, &s.admin()).await.expect("get"),
        payment
    );

    let invoice = s
        .invoice(&payment.payment_id, &s.admin())
        .await
        .expect("invoice");
    assert_eq!(invoice.invoice_number, "INV-000001");
    assert_eq!(invoice.total, payment.amount);
    assert_eq!(invoice.line_items.len(), 2);
    assert_eq!(invoice.order_id, "order-1");

    expect_published(&env.nats, CAPTURED, 1).await;
    let event: pb::PaymentCaptured = last_event(&env.nats, CAPTURED).await;
    assert_eq!(event.payment, Some(payment));
    assert!(event.occur_time.is_some());
}

async fn declines_are_stored_results_with_their_events_and_no_invoice(env: &Env) {
    let s = &env.server;
    let cases = [
        ("tok_chargeDeclined", "card_declined", "0002"),
        ("tok_insufficientFunds", "insufficient_funds", "9995"),
    ];
    for (i, (token, code, last4)) in cases.into_iter().enumerate() {
        let order = format!("order-d{i}");
        let payment = s
            .charge(charge_request(&order, &order, "alice", token))
            .await
            .expect("a decline is not an error");
        assert_eq!(payment.status(), PaymentStatus::Declined);
        assert_eq!(
            (payment.decline_code.as_str(), payment.card_last4.as_str()),
            (code, last4)
        );

        let err = s
            .invoice(&payment.payment_id, &s.admin())
            .await
            .expect_err("no invoice");
        assert_eq!(
            (err.code(), reason(&err)),
            (Code::FailedPrecondition, "NO_INVOICE".into())
        );
        let err = s
            .refund(&format!("refund-{order}"), &payment.payment_id)
            .await
            .expect_err("nothing to refund");
        assert_eq!(
            (err.code(), reason(&err)),
            (Code::FailedPrecondition, "NOT_CAPTURED".into())
        );
    }
    expect_published(&env.nats, DECLINED, 2).await;
    let event: pb::PaymentDeclined = last_event(&env.nats, DECLINED).await;
    assert_eq!(
        event.payment.expect("payment").decline_code,
        "insufficient_funds"
    );
}

async fn an_unavailable_provider_fails_and_stores_nothing(env: &Env) {
    let s = &env.server;
    let request = charge_request("k-u", "order-u", "alice", "tok_providerUnavailable");
    for _ in 0..2 {
        let err = s.charge(request.clone()).await.expect_err("unavailable");
        assert_eq!(err.code(), Code::Unavailable);
        assert_eq!(reason(&err), "PROVIDER_UNAVAILABLE");
    }
    assert!(
        s.list("order-u", &s.service()).await.is_empty(),
        "nothing stored"
    );
    // The only event published is that of a later successful charge.
    s.charge(charge_request(
        "k-ok",
        "order-ok",
        "alice",
        "tok_mastercard",
    ))
    .await
    .expect("charge");
    expect_published(&env.nats, "polyshop.payment.>", 1).await;
}

async fn a_repeated_charge_returns_the_same_payment_and_a_changed_one_is_refused(env: &Env) {
    let s = &env.server;
    let request = charge_request("k-r", "order-r", "alice", "tok_visa");
    let first = s.charge(request.clone()).await.expect("charge");
    let again = s.charge(request.clone()).await.expect("repeat");
    assert_eq!(again, first);

    let mut changed = request.clone();
    changed.amount = common::usd(2600);
    changed.line_items.clear();
    let err = s.charge(changed).await.expect_err("other amount");
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert_eq!(reason(&err), "IDEMPOTENCY_KEY_REUSED");
    let mut changed = request;
    changed.payment_method_token = "tok_chargeDeclined".into();
    let err = s.charge(changed).await.expect_err("other card");
    assert_eq!(reason(&err), "IDEMPOTENCY_KEY_REUSED");

    assert_eq!(s.list("order-r", &s.service()).await, [first]);
    expect_published(&env.nats, CAPTURED, 1).await;
}

async fn ten_concurrent_charges_with_one_key_make_one_payment(env: &Env) {
    let s = &env.server;
    let token = s.service();
    let calls = s.connected_clients(10).await.into_iter().map(|mut client| {
        let request = bearer(
            charge_request("k-c", "order-c", "alice", "tok_visa"),
            &token,
        );
        async move { client.charge(request).await }
    });
    let results: Vec<pb::Payment> = join_all(calls)
        .await
        .into_iter()
        .map(|r| {
            r.expect("every duplicate succeeds")
                .into_inner()
                .payment
                .expect("payment")
        })
        .collect();
    assert!(
        results.iter().all(|p| *p == results[0]),
        "every caller sees the same payment"
    );
    let stored = s.list("order-c", &s.service()).await;
    assert_eq!(stored.len(), 1, "one payment for the order");
    assert_eq!(stored[0], results[0]);
    let invoice = s
        .invoice(&stored[0].payment_id, &s.admin())
        .await
        .expect("invoice");
    assert_eq!(
        invoice.invoice_number, "INV-000001",
        "one invoice number used"
    );
    expect_published(&env.nats, CAPTURED, 1).await;
}

async fn a_payment_is_refunded_once_in_full(env: &Env) {
    let s = &env.server;
    let payment = s
        .charge(charge_request("k-f", "order-f", "alice", "tok_visa"))
        .await
        .expect("charge");
    let refunded = s.refund("r-1", &payment.payment_id).await.expect("refund");
    assert_eq!(refunded.status(), PaymentStatus::Refunded);
    assert_eq!(refunded.refunded_amount, payment.amount);
    assert_eq!(
        s.refund("r-1", &payment.payment_id).await.expect("repeat"),
        refunded
    );

    let err = s
        .refund("r-2", &payment.payment_id)
        .await
        .expect_err("twice");
    assert_eq!(
        (err.code(), reason(&err)),
        (Code::FailedPrecondition, "ALREADY_REFUNDED".into())
    );
    let other = s
        .charge(charge_request("k-g", "order-g", "alice", "tok_visa"))
        .await
        .expect("charge");
    let err = s
        .refund("r-1", &other.payment_id)
        .await
        .expect_err("key reused");
    assert_eq!(reason(&err), "IDEMPOTENCY_KEY_REUSED");
    let err = s
        .refund("r-3", "no-such-payment")
        .await
        .expect_err("unknown");
    assert_eq!(
        (err.code(), reason(&err)),
        (Code::NotFound, "PAYMENT_NOT_FOUND".into())
    );

    let invoice = s.invoice(&payment.payment_id, &s.admin()).await;
    assert!(invoice.is_ok(), "a refunded payment keeps its invoice");
    expect_published(&env.nats, REFUNDED, 1).await;
    let event: pb::PaymentRefunded = last_event(&env.nats, REFUNDED).await;
    assert_eq!(event.reason, "order rejected");
    assert_eq!(event.payment, Some(refunded));
}

async fn racing_refunds_under_different_keys_refund_once(env: &Env) {
    let s = &env.server;
    let payment = s
        .charge(charge_request("k-x", "order-x", "alice", "tok_visa"))
        .await
        .expect("charge");
    let keys: Vec<String> = (0..10).map(|i| format!("race-{i}")).collect();
    let calls = keys.iter().map(|key| s.refund(key, &payment.payment_id));
    let results = join_all(calls).await;
    assert_eq!(
        results.iter().filter(|r| r.is_ok()).count(),
        1,
        "{results:?}"
    );
    for err in results.iter().filter_map(|r| r.as_ref().err()) {
        assert_eq!(reason(err), "ALREADY_REFUNDED", "{err:?}");
    }
    expect_published(&env.nats, REFUNDED, 1).await;
}

async fn invoice_numbers_increase_without_gaps(env: &Env) {
    let s = &env.server;
    let mut numbers = Vec::new();
    let tokens = [
        "tok_visa",
        "tok_chargeDeclined",
        "tok_providerUnavailable",
        "tok_mastercard",
    ];
    for (i, token) in tokens.iter().cycle().take(8).enumerate() {
        let order = format!("order-n{i}");
        let Ok(payment) = s
            .charge(charge_request(&order, &order, "alice", token))
            .await
        else {
            continue;
        };
        // A repeat must not take a number either.
        s.charge(charge_request(&order, &order, "alice", token))
            .await
            .expect("repeat");
        if let Ok(invoice) = s.invoice(&payment.payment_id, &s.admin()).await {
            numbers.push(invoice.invoice_number);
        }
    }
    assert_eq!(
        numbers,
        ["INV-000001", "INV-000002", "INV-000003", "INV-000004"]
    );
}

async fn payments_and_keys_survive_a_restart(env: Env) {
    let payment = env
        .server
        .charge(charge_request("k-s", "order-s", "alice", "tok_visa"))
        .await
        .expect("charge");
    let env = env.restart().await;
    let s = &env.server;
    assert_eq!(
        s.get(&payment.payment_id, &s.admin()).await.expect("get"),
        payment
    );
    let again = s
        .charge(charge_request("k-s", "order-s", "alice", "tok_visa"))
        .await
        .expect("repeat");
    assert_eq!(again, payment, "the key was kept");
    let next = s
        .charge(charge_request("k-t", "order-t", "alice", "tok_visa"))
        .await
        .expect("charge");
    let invoice = s
        .invoice(&next.payment_id, &s.admin())
        .await
        .expect("invoice");
    assert_eq!(invoice.invoice_number, "INV-000002", "the counter was kept");
    expect_published(&env.nats, CAPTURED, 2).await;
    env.stop().await;
}

/// Each flow as a test on a fresh SQLite file (`sqlite::…`) and on a fresh PostgreSQL database
/// (`postgres::…`, skipped with a note when no server is configured).
macro_rules! flows {
    ($($flow:ident),* $(,)?) => {
        mod sqlite {
            use super::*;
            $(
                #[tokio::test]
                async fn $flow() {
                    let env = Env::sqlite().await;
                    super::$flow(&env).await;
                    env.stop().await;
                }
            )*

            #[tokio::test]
            async fn payments_and_keys_survive_a_restart() {
                super::payments_and_keys_survive_a_restart(Env::sqlite().await).await;
            }
        }

        mod postgres {
            use super::*;
            $(
                #[tokio::test]
                async fn $flow() {
                    let Some(env) = Env::postgres(concat!("payment ", stringify!($flow))).await
                    else {
                        return;
                    };
                    super::$flow(&env).await;
                    env.stop().await;
                }
            )*

            #[tokio::test]
            async fn payments_and_keys_survive_a_restart() {
                if let Some(env) = Env::postgres("payment restart").await {
                    super::payments_and_keys_survive_a_restart(env).await;
                }
            }
        }
    };
}

flows! {
    a_captured_charge_is_stored_invoiced_and_announced,
    declines_are_stored_results_with_their_events_and_no_invoice,
    an_unavailable_provider_fails_and_stores_nothing,
    a_repeated_charge_returns_the_same_payment_and_a_changed_one_is_refused,
    ten_concurrent_charges_with_one_key_make_one_payment,
    a_payment_is_refunded_once_in_full,
    racing_refunds_under_different_keys_refund_once,
    invoice_numbers_increase_without_gaps,
}
