//! Every step × every kind of answer, as a table; then the horizon and the keys.

use super::*;
use crate::domain::{Money, OrderStatus, RequestedLine, ShippingAddress};

const T: Timing = Timing {
    base_ms: 100,
    max_ms: 1_000,
    horizon_ms: 10_000,
};

fn request() -> PlaceOrder {
    PlaceOrder {
        idempotency_key: "k1".into(),
        lines: vec![RequestedLine {
            product_id: "p1".into(),
            quantity: 2,
        }],
        shipping: ShippingAddress::default(),
        payment_method_token: "tok_visa".into(),
    }
}

fn products() -> Vec<PricedProduct> {
    vec![PricedProduct {
        product_id: "p1".into(),
        name: "Mug".into(),
        active: true,
        price: Some(Money {
            amount_minor: 800,
            currency: "USD".into(),
        }),
    }]
}

fn pending() -> (Saga, Order) {
    let placed = place("o1", "u1", request(), None, &products());
    let order = Order::replay(None, &[(placed.events[0].clone(), 1)]).expect("created");
    (placed.saga, order)
}

/// A saga at `step` as it gets there on the happy path (or a cancellation).
fn at(step: Step) -> (Saga, Order) {
    let (mut saga, mut order) = pending();
    let now = now(0);
    let answer = |saga: &mut Saga, order: &mut Order, outcome| {
        if let Write::Append(events) = saga.advance(order, outcome, now, &T).expect("advance") {
            for e in events {
                order.apply(&e, 2);
            }
        }
    };
    match step {
        Step::Reserve => {}
        Step::Charge => answer(&mut saga, &mut order, Outcome::Reserved),
        Step::Confirm => {
            answer(&mut saga, &mut order, Outcome::Reserved);
            answer(&mut saga, &mut order, charged());
        }
        Step::Compensate => {
            answer(&mut saga, &mut order, Outcome::Reserved);
            answer(&mut saga, &mut order, charged());
            answer(
                &mut saga,
                &mut order,
                Outcome::ReservationLapsed { detail: "x".into() },
            );
            saga.reservation_id = Some("order-o1".into());
        }
        Step::VoidPayment => {
            answer(
                &mut saga,
                &mut order,
                Outcome::OutOfStock { detail: "x".into() },
            );
            answer(&mut saga, &mut order, Outcome::Finished);
        }
        Step::Cancel => {
            answer(&mut saga, &mut order, Outcome::Reserved);
            answer(&mut saga, &mut order, charged());
            answer(&mut saga, &mut order, Outcome::ReservationConfirmed);
            let event = saga
                .request_cancel(&order, "changed my mind")
                .expect("confirmed");
            order.apply(&event, 3);
        }
        Step::Done => unreachable!("no command at done"),
    }
    assert_eq!(saga.step, step, "set-up reaches {step:?}");
    (saga, order)
}

/// The clock at `at` ms, with no jitter.
fn now(at: i64) -> Now {
    Now { at, jitter: 0 }
}

fn charged() -> Outcome {
    Outcome::Charged {
        payment_id: "pay1".into(),
    }
}

/// The answers every step is tested with.
#[derive(Debug, Clone, Copy)]
enum Answer {
    Success,
    Refusal,
    NotSent,
    MaybeSent,
    Timeout,
}

fn outcome(step: Step, command: &Command, answer: Answer) -> Outcome {
    match answer {
        Answer::Success => match command {
            Command::Reserve { .. } => Outcome::Reserved,
            Command::Charge { .. } => charged(),
            Command::ConfirmReservation { .. } => Outcome::ReservationConfirmed,
            Command::Refund { .. } => Outcome::Refunded,
            Command::Release { .. } => Outcome::Released,
            Command::VoidCharges { .. } => Outcome::Voided,
            Command::Finish => panic!("{step:?} issues a call"),
        },
        Answer::Refusal => command.refusal("no"),
        Answer::NotSent => Outcome::Unreachable {
            sent: false,
            detail: "circuit open".into(),
        },
        Answer::MaybeSent => Outcome::Unreachable {
            sent: true,
            detail: "connection reset".into(),
        },
        Answer::Timeout => Outcome::Unreachable {
            sent: true,
            detail: "deadline exceeded".into(),
        },
    }
}

/// (step, answer) → (next step, what is written, charge still uncertain).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum W {
    Nothing,
    Save,
    Append(&'static str),
}

#[test]
fn every_step_answers_every_outcome() {
    use Answer::*;
    use Step::*;
    let table: &[(Step, Answer, Step, W, bool)] = &[
        (Reserve, Success, Charge, W::Nothing, true),
        (Reserve, Refusal, Compensate, W::Save, true),
        (Reserve, NotSent, Reserve, W::Save, true),
        (Reserve, MaybeSent, Reserve, W::Save, true),
        (Reserve, Timeout, Reserve, W::Save, true),
        (Charge, Success, Confirm, W::Nothing, false),
        (Charge, Refusal, Compensate, W::Save, false),
        (Charge, NotSent, Charge, W::Save, true),
        (Charge, MaybeSent, Charge, W::Save, true),
        (Charge, Timeout, Charge, W::Save, true),
        (Confirm, Success, Done, W::Append("confirmed"), false),
        (Confirm, Refusal, Compensate, W::Save, false),
        (Confirm, NotSent, Confirm, W::Save, false),
        (Confirm, MaybeSent, Confirm, W::Save, false),
        (Confirm, Timeout, Confirm, W::Save, false),
        // Compensating a capture: the refund first.
        (Compensate, Success, Compensate, W::Save, false),
        (Compensate, Refusal, Compensate, W::Save, false),
        (Compensate, NotSent, Compensate, W::Save, false),
        (Compensate, MaybeSent, Compensate, W::Save, false),
        (Compensate, Timeout, Compensate, W::Save, false),
        (VoidPayment, Success, Done, W::Save, false),
        (VoidPayment, Refusal, VoidPayment, W::Save, true),
        (VoidPayment, NotSent, VoidPayment, W::Save, true),
        (VoidPayment, MaybeSent, VoidPayment, W::Save, true),
        (VoidPayment, Timeout, VoidPayment, W::Save, true),
        // A cancellation refunds first.
        (Cancel, Success, Cancel, W::Save, false),
        (Cancel, Refusal, Cancel, W::Save, false),
        (Cancel, NotSent, Cancel, W::Save, false),
        (Cancel, MaybeSent, Cancel, W::Save, false),
        (Cancel, Timeout, Cancel, W::Save, false),
    ];
    for (step, answer, next, written, uncertain) in table {
        let (mut saga, order) = at(*step);
        let command = saga.command(&order);
        let got = saga
            .advance(
                &order,
                outcome(*step, &command, *answer),
                Now {
                    at: 1_000,
                    jitter: 500,
                },
                &T,
            )
            .unwrap_or_else(|e| panic!("{step:?} × {answer:?}: {e}"));
        let got = match got {
            Write::Nothing => W::Nothing,
            Write::Save => W::Save,
            Write::Append(events) => {
                assert_eq!(events.len(), 1, "{step:?} × {answer:?}");
                W::Append(events[0].kind())
            }
        };
        assert_eq!(
            (saga.step, got, saga.payment_uncertain),
            (*next, *written, *uncertain),
            "{step:?} × {answer:?}"
        );
        let transient = matches!(answer, NotSent | MaybeSent | Timeout)
            || (matches!(answer, Refusal) && step.returns_money_or_stock());
        assert_eq!(
            saga.is_waiting(1_000),
            transient,
            "{step:?} × {answer:?}: a transient failure waits, anything else goes on at once"
        );
        assert_eq!(
            saga.stuck, None,
            "{step:?} × {answer:?}: not stuck before the horizon"
        );
    }
}

/// Drives the saga from its step to the end with every call succeeding.
fn finish(saga: &mut Saga, order: &mut Order) -> Vec<&'static str> {
    let mut calls = Vec::new();
    for _ in 0..10 {
        if saga.is_done() {
            return calls;
        }
        let command = saga.command(order);
        calls.push(command.name());
        let answer = match command {
            Command::Finish => Outcome::Finished,
            ref c => outcome(saga.step, c, Answer::Success),
        };
        if let Write::Append(events) = saga.advance(order, answer, now(0), &T).expect("advance") {
            for e in events {
                order.apply(&e, 5);
            }
        }
    }
    panic!("saga never finished: {saga:?}");
}

#[test]
fn compensation_refunds_releases_then_rejects_and_voids_only_an_unseen_charge() {
    let (mut saga, mut order) = at(Step::Compensate);
    assert_eq!(
        finish(&mut saga, &mut order),
        ["refund", "release", "finish"]
    );
    assert_eq!(order.status, OrderStatus::Rejected);
    assert_eq!(order.rejection, Some(Rejection::InsufficientStock));

    let (mut saga, mut order) = pending();
    saga.advance(
        &order,
        Outcome::OutOfStock { detail: "x".into() },
        now(0),
        &T,
    )
    .expect("advance");
    assert_eq!(
        finish(&mut saga, &mut order),
        ["finish", "void_charges"],
        "nothing held; a crash before the charge's answer may have left one"
    );
    assert_eq!(order.status, OrderStatus::Rejected);
}

#[test]
fn a_cancellation_refunds_returns_the_stock_and_ends_cancelled() {
    let (mut saga, mut order) = at(Step::Cancel);
    assert_eq!(order.status, OrderStatus::Cancelling);
    assert_eq!(
        finish(&mut saga, &mut order),
        ["refund", "release", "finish"]
    );
    assert_eq!(order.status, OrderStatus::Cancelled);
    assert_eq!(order.status_detail, "changed my mind");
}

#[test]
fn past_the_horizon_a_forward_step_rejects_and_a_refund_is_flagged_not_dropped() {
    let unreachable = || Outcome::Unreachable {
        sent: false,
        detail: "circuit open".into(),
    };
    for step in [Step::Reserve, Step::Charge, Step::Confirm] {
        let (mut saga, order) = at(step);
        saga.advance(&order, unreachable(), now(0), &T)
            .expect("first");
        assert_eq!(saga.step, step, "{step:?}: inside the horizon it waits");
        saga.advance(&order, unreachable(), now(T.horizon_ms), &T)
            .expect("past");
        assert_eq!(
            saga.step,
            Step::Compensate,
            "{step:?}: past the horizon it compensates"
        );
        assert_eq!(saga.reason, Some(Rejection::ServiceUnavailable));
        assert!(
            !saga.is_waiting(T.horizon_ms),
            "{step:?}: compensation starts at once"
        );
    }
    for step in [Step::Compensate, Step::Cancel, Step::VoidPayment] {
        let (mut saga, order) = at(step);
        let refused = saga.command(&order).refusal("refunds are switched off");
        saga.advance(&order, refused.clone(), now(0), &T)
            .expect("first");
        saga.advance(&order, refused, now(T.horizon_ms), &T)
            .expect("past");
        assert_eq!(
            saga.step, step,
            "{step:?}: still trying to give the money back"
        );
        let why = saga.stuck.clone().unwrap_or_default();
        assert!(
            why.contains("refund refused"),
            "{step:?}: flagged with why: {why}"
        );
        assert!(saga.is_waiting(T.horizon_ms), "{step:?}: and retried later");
        // Once the refund goes through, the flag is cleared.
        let command = saga.command(&order);
        saga.advance(
            &order,
            outcome(step, &command, Answer::Success),
            now(T.horizon_ms + 1),
            &T,
        )
        .expect("refunded");
        assert_eq!(saga.stuck, None, "{step:?}");
    }
}

#[test]
fn backoff_doubles_up_to_the_cap_with_jitter_in_the_upper_half() {
    assert_eq!((T.backoff(1, 0), T.backoff(1, 1000)), (50, 100));
    assert_eq!((T.backoff(2, 0), T.backoff(2, 1000)), (100, 200));
    assert_eq!(T.backoff(40, 1000), 1_000, "capped");
    let (mut saga, order) = at(Step::Charge);
    for i in 1..=3 {
        let now = Now {
            at: i * 10,
            jitter: 1000,
        };
        saga.advance(
            &order,
            Outcome::Unreachable {
                sent: true,
                detail: String::new(),
            },
            now,
            &T,
        )
        .expect("advance");
        assert_eq!(
            saga.next_attempt_at,
            now.at + T.backoff(saga.attempts, 1000)
        );
    }
    assert_eq!((saga.attempts, saga.failing_since), (3, Some(10)));
}

#[test]
fn an_answer_to_another_command_and_an_unknown_stored_step_are_errors() {
    let (mut saga, order) = at(Step::Reserve);
    assert!(saga.advance(&order, Outcome::Refunded, now(0), &T).is_err());
    assert!(matches!(
        Step::parse("o1", "validate"),
        Err(OrderError::UnknownSagaState { .. })
    ));
    for step in [
        Step::Reserve,
        Step::Charge,
        Step::Confirm,
        Step::Compensate,
        Step::VoidPayment,
        Step::Cancel,
        Step::Done,
    ] {
        assert_eq!(Step::parse("o1", step.as_str()).expect("known"), step);
    }
}

#[test]
fn validation_prices_from_the_catalog_and_rejects_with_the_first_failed_check() {
    let ok = place("o1", "u1", request(), None, &products());
    assert_eq!(ok.saga.step, Step::Reserve);
    assert_eq!(ok.events.len(), 1);
    let OrderEvent::Created(order) = &ok.events[0] else {
        panic!("created first")
    };
    assert_eq!(order.total.amount_minor, 1600);

    let missing = place("o1", "u1", request(), None, &[]);
    assert_eq!(missing.saga.step, Step::Done);
    assert_eq!(missing.saga.reason, Some(Rejection::ProductNotFound));
    assert_eq!(missing.events[1].kind(), "rejected");

    let inactive = place(
        "o1",
        "u1",
        request(),
        Some((Rejection::UserInactive, "no".into())),
        &[],
    );
    assert_eq!(
        inactive.saga.reason,
        Some(Rejection::UserInactive),
        "the user check comes first"
    );
}

#[test]
fn every_call_of_an_order_has_its_own_key_and_they_are_stable() {
    let keys = [
        idempotency_key("o1", &Purpose::Charge),
        idempotency_key("o1", &Purpose::CompensationRefund),
        idempotency_key("o1", &Purpose::CancellationRefund),
        idempotency_key("o1", &Purpose::Void { payment_id: "p" }),
    ];
    assert_eq!(
        keys,
        [
            "order-o1",
            "order-o1-refund",
            "order-o1-cancel",
            "order-o1-void-p"
        ]
    );
}
