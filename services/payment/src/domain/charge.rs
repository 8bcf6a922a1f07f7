//! What a valid Charge is, its fingerprint, and the payment a provider outcome makes of it.

use polyshop_platform::status::Violations;

use super::{
    LineItem, Money, Payment, PaymentStatus, ProviderOutcome, TestCard, check_currency_code,
    fingerprint, provider::TEST_CARDS,
};

/// One line as sent, before validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChargeLine {
    /// What it is.
    pub description: String,
    /// Units.
    pub quantity: i32,
    /// Price per unit; required.
    pub unit_price: Option<Money>,
}

/// What Charge asks for, before validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChargeDraft {
    /// Idempotency key.
    pub idempotency_key: String,
    /// The order paid for.
    pub order_id: String,
    /// Who pays.
    pub user_id: String,
    /// Amount; required.
    pub amount: Option<Money>,
    /// Card token, see [`super::provider`].
    pub payment_method_token: String,
    /// What is paid for; may be empty.
    pub line_items: Vec<ChargeLine>,
}

/// A charge that passed the domain's field rules (its request passed the contract's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidCharge {
    /// Idempotency key.
    pub idempotency_key: String,
    /// The order paid for.
    pub order_id: String,
    /// Who pays.
    pub user_id: String,
    /// Positive amount.
    pub amount: Money,
    /// The card.
    pub card: TestCard,
    /// Lines as sent, descriptions trimmed; they add up to `amount` when present.
    pub line_items: Vec<LineItem>,
    /// Fingerprint of every parameter, stored with the idempotency key.
    pub fingerprint: String,
}

fn check_token(token: &str) -> Result<TestCard, String> {
    // Which tokens are known is the provider's, not the contract's.
    TestCard::parse(token).ok_or_else(|| {
        let known: Vec<&str> = TEST_CARDS.iter().map(|(t, _)| *t).collect();
        format!(
            "is not a known card token; test tokens: {}",
            known.join(", ")
        )
    })
}

fn check_amount(amount: Option<&Money>, v: &mut Violations) {
    let Some(amount) = amount else {
        // The contract requires it too, but a ValidCharge cannot be built without one.
        v.add("amount", "is required");
        return;
    };
    // The shared `Money.amount_minor` says only `gte: 0` (a line item may be free).
    if amount.amount_minor <= 0 {
        v.add("amount.amount_minor", "must be positive");
    }
    // The shared `Money.currency_code` ignores an empty code (IGNORE_IF_ZERO_VALUE).
    v.check(
        "amount.currency_code",
        check_currency_code(&amount.currency_code),
    );
}

/// Validates one line for what the contract cannot state (its description's length, the
/// quantity and a non-negative unit price are the contract's); `currency` is the charge's,
/// when valid.
fn check_line(i: usize, line: ChargeLine, currency: Option<&str>, v: &mut Violations) -> LineItem {
    let field = |name: &str| format!("line_items[{i}].{name}");
    let description = line.description.trim().to_owned();
    // The domain trims first, so a whitespace-only description passes the contract.
    if description.is_empty() {
        v.add(field("description"), "is required");
    }
    let unit_price = line.unit_price.unwrap_or_else(|| {
        // The contract requires it too, but a LineItem cannot be built without one.
        v.add(field("unit_price"), "is required");
        Money {
            amount_minor: 0,
            currency_code: String::new(),
        }
    });
    // A line's currency equal to the charge's is a cross-field rule.
    if let Some(currency) = currency
        && !unit_price.currency_code.is_empty()
        && unit_price.currency_code != currency
    {
        v.add(
            field("unit_price.currency_code"),
            format!("must be the charge's currency, {currency}"),
        );
    }
    LineItem {
        description,
        quantity: line.quantity,
        unit_price,
    }
}

/// Lines, when sent, must add up to the amount exactly (a cross-field rule: the contract
/// cannot state it).
fn check_sum(lines: &[LineItem], amount_minor: i64, v: &mut Violations) {
    if lines.is_empty() {
        return;
    }
    let sum = lines
        .iter()
        .try_fold(0_i64, |sum, l| sum.checked_add(l.total_minor()?));
    if sum != Some(amount_minor) {
        let sum = sum.map_or_else(|| "too large".to_owned(), |s| s.to_string());
        v.add(
            "amount.amount_minor",
            format!("must equal the sum of line_items ({sum})"),
        );
    }
}

/// Every parameter except the key itself, in a fixed order.
fn fingerprint_of(
    order_id: &str,
    user_id: &str,
    amount: &Money,
    card: TestCard,
    lines: &[LineItem],
) -> String {
    let numbers: Vec<[String; 2]> = (lines.iter())
        .map(|l| {
            [
                l.quantity.to_string(),
                l.unit_price.amount_minor.to_string(),
            ]
        })
        .collect();
    let (amount_minor, count) = (amount.amount_minor.to_string(), lines.len().to_string());
    let mut fields = vec![
        "charge/v1",
        order_id,
        user_id,
        &amount_minor,
        &amount.currency_code,
        card.token(),
        &count,
    ];
    for (line, [quantity, unit]) in lines.iter().zip(&numbers) {
        fields.extend([line.description.as_str(), quantity, unit]);
    }
    fingerprint(fields)
}

impl ChargeDraft {
    /// Checks, at once, every field rule the contract cannot state: the request's lengths,
    /// patterns, item count, quantities and required fields are checked before the handler.
    ///
    /// # Errors
    /// Every violation, named by proto field (`amount.currency_code`,
    /// `line_items[1].quantity`, …).
    pub fn validate(self) -> Result<ValidCharge, Violations> {
        let mut v = Violations::new();
        let card = v.check(
            "payment_method_token",
            check_token(&self.payment_method_token),
        );
        check_amount(self.amount.as_ref(), &mut v);
        let currency = self
            .amount
            .as_ref()
            .map(|a| a.currency_code.as_str())
            .filter(|c| check_currency_code(c).is_ok());
        let lines: Vec<LineItem> = (self.line_items.into_iter().enumerate())
            .map(|(i, line)| check_line(i, line, currency, &mut v))
            .collect();
        let (Some(amount), Some(card)) = (self.amount, card) else {
            return Err(v);
        };
        if v.is_empty() {
            check_sum(&lines, amount.amount_minor, &mut v);
        }
        v.into_result()?;
        let fingerprint = fingerprint_of(&self.order_id, &self.user_id, &amount, card, &lines);
        Ok(ValidCharge {
            idempotency_key: self.idempotency_key,
            order_id: self.order_id,
            user_id: self.user_id,
            amount,
            card,
            line_items: lines,
            fingerprint,
        })
    }
}

impl ValidCharge {
    /// The payment a settled provider outcome makes; `None` for [`ProviderOutcome::Unavailable`]
    /// and [`ProviderOutcome::KeyReused`], which make nothing.
    pub fn payment(&self, id: String, outcome: &ProviderOutcome, now: i64) -> Option<Payment> {
        let (status, card_last4, decline_code) = match outcome {
            ProviderOutcome::Captured { card_last4 } => (PaymentStatus::Captured, *card_last4, ""),
            ProviderOutcome::Declined {
                card_last4,
                decline_code,
            } => (PaymentStatus::Declined, *card_last4, *decline_code),
            ProviderOutcome::Unavailable | ProviderOutcome::KeyReused => return None,
        };
        Some(Payment {
            id,
            order_id: self.order_id.clone(),
            user_id: self.user_id.clone(),
            amount: self.amount.clone(),
            status,
            refunded_minor: 0,
            decline_code: decline_code.to_owned(),
            card_last4: card_last4.to_owned(),
            created_at: now,
            updated_at: now,
        })
    }

    /// The lines an invoice shows: those sent, or one line for the whole order when none were.
    pub fn invoice_lines(&self) -> Vec<LineItem> {
        if !self.line_items.is_empty() {
            return self.line_items.clone();
        }
        vec![LineItem {
            description: format!("Order {}", self.order_id),
            quantity: 1,
            unit_price: self.amount.clone(),
        }]
    }
}

#[cfg(test)]
#[path = "charge_tests.rs"]
mod tests;
