//! Unit tests of the Charge rules.

use super::*;

fn usd(amount_minor: i64) -> Option<Money> {
    Some(Money {
        amount_minor,
        currency_code: "USD".into(),
    })
}

fn line(description: &str, quantity: i32, unit: Option<Money>) -> ChargeLine {
    ChargeLine {
        description: description.into(),
        quantity,
        unit_price: unit,
    }
}

fn draft() -> ChargeDraft {
    ChargeDraft {
        idempotency_key: "order-1/charge".into(),
        order_id: "order-1".into(),
        user_id: "user-1".into(),
        amount: usd(2500),
        payment_method_token: "tok_visa".into(),
        line_items: vec![line("Mug", 2, usd(1000)), line("Spoon", 1, usd(500))],
    }
}

fn fields(draft: ChargeDraft) -> Vec<String> {
    draft
        .validate()
        .expect_err("invalid")
        .iter()
        .map(|(f, _)| f.clone())
        .collect()
}

#[test]
fn a_complete_charge_is_valid() {
    let valid = draft().validate().expect("valid");
    assert_eq!(valid.card, TestCard::Visa);
    assert_eq!(valid.amount, usd(2500).expect("usd"));
    assert_eq!(valid.line_items.len(), 2);
}

#[test]
fn required_fields_are_named_by_their_proto_path() {
    let empty = ChargeDraft {
        idempotency_key: String::new(),
        order_id: String::new(),
        user_id: String::new(),
        amount: None,
        payment_method_token: String::new(),
        line_items: vec![],
    };
    assert_eq!(fields(empty), ["payment_method_token", "amount"]);
}

#[test]
fn amounts_must_be_positive_in_a_valid_currency() {
    let mut d = draft();
    d.line_items.clear();
    d.amount = Some(Money {
        amount_minor: 0,
        currency_code: "usd".into(),
    });
    assert_eq!(fields(d), ["amount.amount_minor", "amount.currency_code"]);
}

#[test]
fn an_unknown_card_token_is_refused_with_the_known_ones_listed() {
    let mut d = draft();
    d.payment_method_token = "tok_amex".into();
    let v = d.validate().expect_err("invalid");
    let (field, why) = v.iter().next().expect("one violation");
    assert_eq!(field, "payment_method_token");
    assert!(why.contains("tok_visa"), "{why}");
}

#[test]
fn line_items_need_a_description_a_price_and_the_charge_currency() {
    let mut d = draft();
    d.line_items = vec![
        line(" ", 1, usd(100)),
        line("Mug", 1, None),
        line(
            "Spoon",
            1,
            Some(Money {
                amount_minor: 100,
                currency_code: "EUR".into(),
            }),
        ),
    ];
    assert_eq!(
        fields(d),
        [
            "line_items[0].description",
            "line_items[1].unit_price",
            "line_items[2].unit_price.currency_code",
        ]
    );
}

#[test]
fn line_items_must_add_up_to_the_amount() {
    let mut d = draft();
    d.amount = usd(2400);
    let v = d.validate().expect_err("invalid");
    let (field, why) = v.iter().next().expect("one violation");
    assert_eq!(field, "amount.amount_minor");
    assert!(why.contains("2500"), "{why}");
}

#[test]
fn line_totals_that_overflow_are_refused_not_wrapped() {
    let mut d = draft();
    d.line_items = vec![line("Gold", i32::MAX, usd(i64::MAX / 2))];
    assert_eq!(fields(d), ["amount.amount_minor"]);
}

#[test]
fn the_same_parameters_give_the_same_fingerprint_and_any_change_another() {
    let base = draft().validate().expect("valid").fingerprint;
    assert_eq!(draft().validate().expect("valid").fingerprint, base);
    let changes: [fn(&mut ChargeDraft); 6] = [
        |d| d.order_id = "order-2".into(),
        |d| d.user_id = "user-2".into(),
        |d| d.payment_method_token = "tok_mastercard".into(),
        |d| {
            d.line_items.clear();
        },
        |d| d.line_items[0].description = "Cup".into(),
        |d| {
            d.line_items = vec![line("Mug", 1, usd(2000)), line("Spoon", 1, usd(500))];
        },
    ];
    for change in changes {
        let mut d = draft();
        change(&mut d);
        let other = d.validate().expect("still valid").fingerprint;
        assert_ne!(other, base);
    }
    // The key itself is not a parameter: it is what the fingerprint is stored under.
    let mut d = draft();
    d.idempotency_key = "another".into();
    assert_eq!(d.validate().expect("valid").fingerprint, base);
}

#[test]
fn a_decline_makes_a_declined_payment_and_unavailability_makes_none() {
    let valid = draft().validate().expect("valid");
    let declined = valid
        .payment(
            "p1".into(),
            &ProviderOutcome::Declined {
                card_last4: "0002",
                decline_code: "card_declined",
            },
            7,
        )
        .expect("payment");
    assert_eq!(declined.status, PaymentStatus::Declined);
    assert_eq!(declined.decline_code, "card_declined");
    assert_eq!((declined.created_at, declined.refunded_minor), (7, 0));
    assert_eq!(
        valid.payment("p2".into(), &ProviderOutcome::Unavailable, 7),
        None
    );
}

#[test]
fn an_invoice_without_line_items_shows_the_order_as_one_line() {
    let mut d = draft();
    d.line_items.clear();
    let lines = d.validate().expect("valid").invoice_lines();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0].description, "Order order-1");
    assert_eq!(lines[0].total_minor(), Some(2500));
}
