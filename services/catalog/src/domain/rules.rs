//! Field rules for products, prices and batch reads that the contract cannot state (it is
//! checked on every request before the handler). Each check returns the description of a
//! field violation; the callers name the field.

use polyshop_platform::status::Violations;

use super::{Money, NewProduct, ProductChanges, ProductDraft};

/// Name length bounds (characters, after trimming): the contract's, for the message.
pub const NAME_LEN: (usize, usize) = (1, 200);

/// A product name, after trimming: not blank. Length and control characters are the
/// contract's rules on the request (`CreateProductRequest.name`), which the server checks
/// before the handler; trimming only shortens a name and removes control whitespace.
///
/// # Errors
/// What is wrong with it.
pub fn check_name(name: &str) -> Result<(), String> {
    // The domain trims first, so a whitespace-only name passes the contract's min_len.
    if name.is_empty() {
        return Err(format!("must be {}–{} characters", NAME_LEN.0, NAME_LEN.1));
    }
    Ok(())
}

/// A price amount in minor units: strictly positive.
///
/// # Errors
/// What is wrong with it.
pub fn check_amount_minor(amount_minor: i64) -> Result<(), String> {
    // The shared `Money.amount_minor` says only `gte: 0` (a line item may be free).
    if amount_minor <= 0 {
        return Err("must be greater than 0".into());
    }
    Ok(())
}

/// An ISO 4217 currency code: exactly three upper-case ASCII letters.
///
/// # Errors
/// What is wrong with it.
pub fn check_currency_code(code: &str) -> Result<(), String> {
    // The shared `Money.currency_code` ignores an empty code (IGNORE_IF_ZERO_VALUE).
    if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err("must be three upper-case letters, e.g. \"USD\"".into());
    }
    Ok(())
}

/// Checks a price, recording violations under `prefix` (e.g. `price`).
pub fn check_price(price: &Money, prefix: &str, violations: &mut Violations) {
    violations.check(
        &format!("{prefix}.amount_minor"),
        check_amount_minor(price.amount_minor),
    );
    violations.check(
        &format!("{prefix}.currency_code"),
        check_currency_code(&price.currency_code),
    );
}

/// Checks the prices in further currencies, recording violations under
/// `other_prices[i]`: each valid, sorted by currency code afterwards, and none in the currency
/// of `price` or of an earlier one (a product has one price per currency; the contract's
/// rules are per item, so the domain checks the list).
fn check_other_prices(price: Option<&Money>, others: &mut [Money], violations: &mut Violations) {
    let mut seen: Vec<&str> = price
        .map(|p| p.currency_code.as_str())
        .into_iter()
        .collect();
    for (i, other) in others.iter().enumerate() {
        let prefix = format!("other_prices[{i}]");
        check_price(other, &prefix, violations);
        if seen.contains(&other.currency_code.as_str()) {
            violations.add(
                format!("{prefix}.currency_code"),
                "repeats the currency of an earlier price",
            );
        }
        seen.push(&other.currency_code);
    }
    others.sort_by(|a, b| a.currency_code.cmp(&b.currency_code));
}

/// Checks the ids of a batch read: none blank (`product_ids[3]`). Their count and empty
/// ids are the contract's rules on `BatchGetProductsRequest.product_ids`.
pub fn check_product_ids(ids: &[String], violations: &mut Violations) {
    for (i, id) in ids.iter().enumerate() {
        // The contract's min_len lets a whitespace-only id through; the domain trims.
        if id.trim().is_empty() {
            violations.add(format!("product_ids[{i}]"), "must not be empty");
        }
    }
}

impl ProductDraft {
    /// Trims name, description and category, then checks what the contract cannot: a blank
    /// name and the price (the layer has checked the request's shape before the handler).
    ///
    /// # Errors
    /// Every violation, named by proto field (`name`, `price.currency_code`, …).
    pub fn validate(mut self) -> Result<NewProduct, Violations> {
        let name = self.name.trim().to_owned();
        let description = self.description.trim().to_owned();
        let category = self.category.trim().to_owned();
        let mut v = Violations::new();
        v.check("name", check_name(&name));
        match &self.price {
            Some(price) => check_price(price, "price", &mut v),
            // The contract requires it too, but a NewProduct cannot be built without one.
            None => v.add("price", "is required"),
        }
        check_other_prices(self.price.as_ref(), &mut self.other_prices, &mut v);
        match self.price {
            Some(price) if v.is_empty() => Ok(NewProduct {
                request_id: Some(self.request_id).filter(|r| !r.is_empty()),
                name,
                description,
                category,
                price,
                other_prices: self.other_prices,
                active: self.active,
            }),
            _ => Err(v),
        }
    }
}

impl ProductChanges {
    /// Trims the set name, description and category, then checks what the contract cannot
    /// of the set fields: a blank name and the price.
    ///
    /// # Errors
    /// Every violation, named by proto field.
    pub fn validate(self) -> Result<Self, Violations> {
        let trim = |s: String| s.trim().to_owned();
        let mut changes = Self {
            name: self.name.map(trim),
            description: self.description.map(trim),
            category: self.category.map(trim),
            ..self
        };
        let mut v = Violations::new();
        if let Some(name) = &changes.name {
            v.check("name", check_name(name));
        }
        if let Some(price) = &changes.price {
            check_price(price, "price", &mut v);
        }
        if let Some(others) = &mut changes.other_prices {
            check_other_prices(changes.price.as_ref(), others, &mut v);
        }
        v.into_result().map(|()| changes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(v: &Violations) -> Vec<&str> {
        v.iter().map(|(f, _)| f.as_str()).collect()
    }

    fn usd(amount_minor: i64) -> Money {
        Money {
            amount_minor,
            currency_code: "USD".into(),
        }
    }

    #[test]
    fn a_trimmed_name_must_not_be_blank() {
        assert!(check_name("é").is_ok());
        assert!(check_name("").is_err());
    }

    #[test]
    fn amounts_must_be_positive() {
        for (amount, ok) in [(1, true), (i64::MAX, true), (0, false), (-1, false)] {
            assert_eq!(check_amount_minor(amount).is_ok(), ok, "{amount}");
        }
    }

    #[test]
    fn currency_codes_are_three_upper_case_letters() {
        for (code, ok) in [
            ("USD", true),
            ("EUR", true),
            ("usd", false),
            ("US", false),
            ("USDT", false),
            ("U5D", false),
            ("", false),
        ] {
            assert_eq!(check_currency_code(code).is_ok(), ok, "{code:?}");
        }
    }

    #[test]
    fn a_batch_names_each_blank_id() {
        let mut v = Violations::new();
        let ids = vec!["a".to_owned(), String::new(), "c".into(), " ".into()];
        check_product_ids(&ids, &mut v);
        assert_eq!(fields(&v), ["product_ids[1]", "product_ids[3]"]);
    }

    fn draft() -> ProductDraft {
        ProductDraft {
            request_id: String::new(),
            name: "Cast iron pan".into(),
            description: "Heavy.".into(),
            category: "kitchen".into(),
            price: Some(usd(3999)),
            other_prices: Vec::new(),
            active: true,
        }
    }

    #[test]
    fn a_draft_reports_every_violation_the_contract_cannot_in_field_order() {
        let bad = ProductDraft {
            name: "   ".into(),
            price: Some(Money {
                amount_minor: 0,
                currency_code: "usd".into(),
            }),
            ..draft()
        };
        let v = bad.validate().unwrap_err();
        assert_eq!(
            fields(&v),
            ["name", "price.amount_minor", "price.currency_code"]
        );
    }

    #[test]
    fn a_draft_without_a_price_is_invalid() {
        let v = ProductDraft {
            price: None,
            ..draft()
        }
        .validate()
        .unwrap_err();
        assert_eq!(fields(&v), ["price"]);
    }

    #[test]
    fn a_valid_draft_is_trimmed_and_an_empty_request_id_means_none() {
        let new = ProductDraft {
            name: "  Pan ".into(),
            description: "\nHeavy.\n".into(),
            category: " kitchen ".into(),
            ..draft()
        }
        .validate()
        .expect("valid");
        assert_eq!(
            (new.name.as_str(), new.description.as_str()),
            ("Pan", "Heavy.")
        );
        assert_eq!((new.category.as_str(), new.request_id), ("kitchen", None));

        let new = ProductDraft {
            request_id: "req-1".into(),
            ..draft()
        }
        .validate()
        .expect("valid");
        assert_eq!(new.request_id.as_deref(), Some("req-1"));
    }

    #[test]
    fn the_currency_code_is_not_trimmed_or_upper_cased() {
        let price = Some(Money {
            amount_minor: 5,
            currency_code: " USD".into(),
        });
        let v = ProductDraft { price, ..draft() }.validate().unwrap_err();
        assert_eq!(fields(&v), ["price.currency_code"]);
    }

    #[test]
    fn changes_check_only_the_fields_that_are_set() {
        assert_eq!(
            ProductChanges::default().validate(),
            Ok(ProductChanges::default())
        );

        let changes = ProductChanges {
            name: Some(" ".into()),
            price: Some(usd(-5)),
            active: Some(false),
            ..ProductChanges::default()
        };
        assert_eq!(
            fields(&changes.validate().unwrap_err()),
            ["name", "price.amount_minor"]
        );

        let changes = ProductChanges {
            category: Some(" garden ".into()),
            ..ProductChanges::default()
        };
        assert_eq!(
            changes.validate().expect("valid").category.as_deref(),
            Some("garden")
        );
    }
}
