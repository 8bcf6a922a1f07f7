//! Money, invoice lines, the currency-code rule, and the fingerprint that tells a repeat from
//! a different request. (Idempotency keys and ids are the contract's rules, checked before the
//! handler.)

use sha2::{Digest, Sha256};

/// An amount of money: integer minor units and an ISO 4217 code, never a float.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Money {
    /// In the currency's minor unit, e.g. 1999 for 19.99 USD.
    pub amount_minor: i64,
    /// Three upper-case ASCII letters, e.g. `USD`.
    pub currency_code: String,
}

/// One line of what is paid for, as shown on the invoice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineItem {
    /// What it is.
    pub description: String,
    /// Units, at least 1.
    pub quantity: i32,
    /// Price per unit, in the charge's currency.
    pub unit_price: Money,
}

impl LineItem {
    /// `quantity × unit_price` in minor units; `None` on overflow.
    pub fn total_minor(&self) -> Option<i64> {
        self.unit_price
            .amount_minor
            .checked_mul(i64::from(self.quantity))
    }
}

/// An ISO 4217 currency code: exactly three upper-case ASCII letters.
///
/// # Errors
/// What is wrong with it.
pub fn check_currency_code(code: &str) -> Result<(), String> {
    if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err("must be three upper-case letters, e.g. \"USD\"".into());
    }
    Ok(())
}

/// A fingerprint of a request's parameters: SHA-256 over the length-prefixed fields, so no
/// two different field lists (`["ab", "c"]` and `["a", "bc"]`) share a canonical form.
pub fn fingerprint<'a>(fields: impl IntoIterator<Item = &'a str>) -> String {
    let mut hash = Sha256::new();
    for field in fields {
        hash.update(field.len().to_string().as_bytes());
        hash.update(b":");
        hash.update(field.as_bytes());
        hash.update(b";");
    }
    hex::encode(hash.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn currency_codes_are_three_upper_case_letters() {
        let cases = [
            ("USD", true),
            ("EUR", true),
            ("usd", false),
            ("US", false),
            ("USDX", false),
            ("U$D", false),
            ("", false),
        ];
        for (code, ok) in cases {
            assert_eq!(check_currency_code(code).is_ok(), ok, "{code:?}");
        }
    }

    #[test]
    fn fingerprints_tell_field_boundaries_apart() {
        assert_eq!(fingerprint(["a", "b"]), fingerprint(["a", "b"]));
        assert_ne!(fingerprint(["ab", "c"]), fingerprint(["a", "bc"]));
        assert_ne!(fingerprint(["a"]), fingerprint(["a", ""]));
        assert_eq!(fingerprint(["x"]).len(), 64);
    }

    #[test]
    fn line_totals_refuse_to_overflow() {
        let item = |unit, quantity| LineItem {
            description: "x".into(),
            quantity,
            unit_price: Money {
                amount_minor: unit,
                currency_code: "USD".into(),
            },
        };
        assert_eq!(item(250, 3).total_minor(), Some(750));
        assert_eq!(item(i64::MAX, 2).total_minor(), None);
    }
}
