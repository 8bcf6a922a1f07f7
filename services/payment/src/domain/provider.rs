//! The simulated card provider. It is deterministic: the outcome depends only on the card
//! token, so tests and demos can drive every branch of the order saga.
//!
//! | token                     | outcome                                                   |
//! |---------------------------|-----------------------------------------------------------|
//! | `tok_visa`                | CAPTURED, card ending `4242`                              |
//! | `tok_mastercard`          | CAPTURED, card ending `4444`                              |
//! | `tok_chargeDeclined`      | DECLINED with `card_declined`, card ending `0002`         |
//! | `tok_insufficientFunds`   | DECLINED with `insufficient_funds`, card ending `9995`    |
//! | `tok_providerUnavailable` | UNAVAILABLE error; nothing is charged or stored           |
//!
//! Any other token is an INVALID_ARGUMENT on `payment_method_token`. A decline is a stored
//! result, not an error. Because an idempotency key is bound to its token, a charge that met
//! `tok_providerUnavailable` stays unavailable when retried with the same key. The provider
//! also remembers the keys it settled (`crate::provider`): this module is only its rule.

/// A test card token the simulated provider knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TestCard {
    /// `tok_visa`: succeeds.
    Visa,
    /// `tok_mastercard`: succeeds.
    Mastercard,
    /// `tok_chargeDeclined`: declined, `card_declined`.
    ChargeDeclined,
    /// `tok_insufficientFunds`: declined, `insufficient_funds`.
    InsufficientFunds,
    /// `tok_providerUnavailable`: the provider does not answer.
    ProviderUnavailable,
}

/// Every test card with its token.
pub const TEST_CARDS: [(&str, TestCard); 5] = [
    ("tok_visa", TestCard::Visa),
    ("tok_mastercard", TestCard::Mastercard),
    ("tok_chargeDeclined", TestCard::ChargeDeclined),
    ("tok_insufficientFunds", TestCard::InsufficientFunds),
    ("tok_providerUnavailable", TestCard::ProviderUnavailable),
];

/// Decline code of `tok_chargeDeclined`.
pub const CARD_DECLINED: &str = "card_declined";
/// Decline code of `tok_insufficientFunds`.
pub const INSUFFICIENT_FUNDS: &str = "insufficient_funds";

impl TestCard {
    /// The card a token names, exactly as spelled.
    pub fn parse(token: &str) -> Option<Self> {
        TEST_CARDS
            .iter()
            .find(|(t, _)| *t == token)
            .map(|(_, card)| *card)
    }

    /// Its token.
    pub fn token(self) -> &'static str {
        TEST_CARDS
            .iter()
            .find(|(_, card)| *card == self)
            .map_or("", |(t, _)| *t)
    }
}

/// What the provider answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProviderOutcome {
    /// The money was taken.
    Captured {
        /// Last four digits of the card.
        card_last4: &'static str,
    },
    /// The card was refused.
    Declined {
        /// Last four digits of the card.
        card_last4: &'static str,
        /// Why, e.g. `card_declined`.
        decline_code: &'static str,
    },
    /// The provider did not answer; nothing happened.
    Unavailable,
    /// The provider refused the idempotency key: it settled it before for another card or
    /// amount. Nothing happened.
    KeyReused,
}

/// What the simulated provider answers for `card` under a key it has not seen.
pub fn outcome(card: TestCard) -> ProviderOutcome {
    match card {
        TestCard::Visa => ProviderOutcome::Captured { card_last4: "4242" },
        TestCard::Mastercard => ProviderOutcome::Captured { card_last4: "4444" },
        TestCard::ChargeDeclined => ProviderOutcome::Declined {
            card_last4: "0002",
            decline_code: CARD_DECLINED,
        },
        TestCard::InsufficientFunds => ProviderOutcome::Declined {
            card_last4: "9995",
            decline_code: INSUFFICIENT_FUNDS,
        },
        TestCard::ProviderUnavailable => ProviderOutcome::Unavailable,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_test_token_has_its_documented_outcome() {
        let cases = [
            ("tok_visa", ProviderOutcome::Captured { card_last4: "4242" }),
            (
                "tok_mastercard",
                ProviderOutcome::Captured { card_last4: "4444" },
            ),
            (
                "tok_chargeDeclined",
                ProviderOutcome::Declined {
                    card_last4: "0002",
                    decline_code: "card_declined",
                },
            ),
            (
                "tok_insufficientFunds",
                ProviderOutcome::Declined {
                    card_last4: "9995",
                    decline_code: "insufficient_funds",
                },
            ),
            ("tok_providerUnavailable", ProviderOutcome::Unavailable),
        ];
        for (token, outcome) in cases {
            let card = TestCard::parse(token).expect("known token");
            assert_eq!(card.token(), token);
            assert_eq!(super::outcome(card), outcome, "{token}");
        }
    }

    #[test]
    fn unknown_or_misspelled_tokens_are_not_cards() {
        for token in ["", "tok_amex", "TOK_VISA", "tok_visa "] {
            assert_eq!(TestCard::parse(token), None, "{token:?}");
        }
    }
}
