//! The store's own guarantees under concurrent calls, driven directly so that no earlier read
//! can hide a race: an idempotency key is claimed once, a payment is refunded once, and each
//! write commits exactly one outbox event. On SQLite always, on PostgreSQL when
//! `POLYSHOP_TEST_POSTGRES_URL` is set.

use futures::future::join_all;
use polyshop_payment::{
    app::{NewCharge, NewRefund, PaymentRepository, Recorded},
    domain::{ChargeDraft, Money, PaymentError, PaymentStatus, provider},
    store::{self, SeaPaymentRepository},
};
use polyshop_platform::{
    config::ServiceSettings,
    db,
    events::outbox::{self, OutboxSignal},
    new_id, now_millis, testing,
};
use sea_orm::DatabaseConnection;

const RACERS: usize = 10;

async fn open(dir: &tempfile::TempDir, database_url: Option<String>) -> DatabaseConnection {
    let settings = ServiceSettings {
        database_url: database_url.map(Into::into),
        ..ServiceSettings::default()
    };
    let conn = db::connect(dir.path(), "payment", &settings)
        .await
        .expect("connect");
    db::migrate(&conn, &[store::MIGRATIONS, outbox::MIGRATIONS].concat())
        .await
        .expect("migrate");
    conn
}

/// The charge a racing call would store: same key and parameters, its own payment id.
fn racer(key: &str) -> NewCharge {
    let valid = ChargeDraft {
        idempotency_key: key.into(),
        order_id: "order-1".into(),
        user_id: "alice".into(),
        amount: Some(Money {
            amount_minor: 1000,
            currency_code: "EUR".into(),
        }),
        payment_method_token: "tok_visa".into(),
        line_items: vec![],
    }
    .validate()
    .expect("valid");
    let payment = valid
        .payment(new_id(), &provider::outcome(valid.card), now_millis())
        .expect("captured");
    NewCharge {
        idempotency_key: valid.idempotency_key.clone(),
        fingerprint: valid.fingerprint.clone(),
        invoice_lines: valid.invoice_lines(),
        payment,
    }
}

async fn racing_writes_apply_once(conn: DatabaseConnection) {
    let repo = SeaPaymentRepository::new(conn.clone(), OutboxSignal::new());
    let charges = (0..RACERS).map(|_| repo.record_charge(racer("key-1")));
    let results: Vec<Recorded> = join_all(charges)
        .await
        .into_iter()
        .map(|r| r.expect("every racer succeeds"))
        .collect();
    let new: Vec<_> = results
        .iter()
        .filter_map(|r| match r {
            Recorded::New(p) => Some(p.clone()),
            Recorded::Existing(_) => None,
        })
        .collect();
    assert_eq!(new.len(), 1, "exactly one racer stored its payment");
    for r in results {
        assert_eq!(
            r.into_payment(),
            new[0],
            "the others answer with the winner's"
        );
    }
    assert_eq!(outbox::pending(&conn).await.expect("pending"), 1);
    let invoice = repo.invoice(&new[0].id).await.expect("read").expect("one");
    assert_eq!(invoice.number, 1);

    let refunds = (0..RACERS).map(|i| {
        repo.refund(NewRefund {
            idempotency_key: format!("refund-{i}"),
            fingerprint: format!("fp-{i}"),
            payment_id: new[0].id.clone(),
            reason: "racing".into(),
            now: now_millis(),
        })
    });
    let results = join_all(refunds).await;
    let refunded = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(refunded, 1, "exactly one refund applied");
    for r in results {
        if let Err(e) = r {
            assert!(matches!(e, PaymentError::AlreadyRefunded), "{e:?}");
        }
    }
    let payment = repo.find(&new[0].id).await.expect("read").expect("one");
    assert_eq!(payment.status, PaymentStatus::Refunded);
    assert_eq!(payment.refunded_minor, 1000);
    assert_eq!(outbox::pending(&conn).await.expect("pending"), 2);
}

#[tokio::test]
async fn racing_writes_apply_once_on_sqlite() {
    let dir = tempfile::tempdir().expect("tempdir");
    racing_writes_apply_once(open(&dir, None).await).await;
}

#[tokio::test]
async fn racing_writes_apply_once_on_postgres() {
    let Some(url) = testing::postgres_database("payment store races").await else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    racing_writes_apply_once(open(&dir, Some(url)).await).await;
}
