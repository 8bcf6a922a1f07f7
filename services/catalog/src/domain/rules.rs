//! Field rules for products, prices, batch reads, list filters and idempotency keys. Each
//! check returns the description of a field violation; the callers name the field.

use polyshop_platform::status::Violations;

use super::{Money, NewProduct, ProductChanges, ProductDraft};

/// Name length bounds (characters, after trimming).
pub const NAME_LEN: (usize, usize) = (1, 200);
/// Longest description (characters).
pub const DESCRIPTION_MAX: usize = 5000;
/// Category slug length bounds.
pub const CATEGORY_LEN: (usize, usize) = (1, 50);
/// Longest client-chosen request id.
pub const REQUEST_ID_MAX: usize = 128;
/// Most ids one BatchGetProducts may ask for.
pub const BATCH_MAX: usize = 100;
/// Longest ListProducts text query (characters).
pub const QUERY_MAX: usize = 200;

/// A product name: 1–200 characters, no control characters.
///
/// # Errors
/// What is wrong with it.
pub fn check_name(name: &str) -> Result<(), String> {
    let len = name.chars().count();
    if len < NAME_LEN.0 || len > NAME_LEN.1 {
        return Err(format!("must be {}–{} characters", NAME_LEN.0, NAME_LEN.1));
    }
    if name.chars().any(char::is_control) {
        return Err("must not contain control characters".into());
    }
    Ok(())
}

/// A description: at most 5000 characters (empty is fine).
///
/// # Errors
/// What is wrong with it.
pub fn check_description(description: &str) -> Result<(), String> {
    if description.chars().count() > DESCRIPTION_MAX {
        return Err(format!("must be at most {DESCRIPTION_MAX} characters"));
    }
    Ok(())
}

/// A category slug: 1–50 of `a-z`, `0-9` and `-`.
///
/// # Errors
/// What is wrong with it.
pub fn check_category(category: &str) -> Result<(), String> {
    let len = category.len();
    if len < CATEGORY_LEN.0 || len > CATEGORY_LEN.1 {
        // Only ASCII is allowed, so bytes are characters for every valid slug.
        return Err(format!(
            "must be {}–{} characters",
            CATEGORY_LEN.0, CATEGORY_LEN.1
        ));
    }
    if !category
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err("may contain only lower-case letters, digits and '-'".into());
    }
    Ok(())
}

/// A price amount in minor units: strictly positive.
///
/// # Errors
/// What is wrong with it.
pub fn check_amount_minor(amount_minor: i64) -> Result<(), String> {
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

/// A client-chosen request id: at most 128 characters (empty means none).
///
/// # Errors
/// What is wrong with it.
pub fn check_request_id(request_id: &str) -> Result<(), String> {
    if request_id.chars().count() > REQUEST_ID_MAX {
        return Err(format!("must be at most {REQUEST_ID_MAX} characters"));
    }
    Ok(())
}

/// A ListProducts text query: at most 200 characters (empty means no filter).
///
/// # Errors
/// What is wrong with it.
pub fn check_query(query: &str) -> Result<(), String> {
    if query.chars().count() > QUERY_MAX {
        return Err(format!("must be at most {QUERY_MAX} characters"));
    }
    Ok(())
}

/// Checks the ids of a batch read: at most 100, none empty (`product_ids[3]`).
pub fn check_product_ids(ids: &[String], violations: &mut Violations) {
    if ids.len() > BATCH_MAX {
        violations.add("product_ids", format!("must list at most {BATCH_MAX} ids"));
    }
    for (i, id) in ids.iter().enumerate() {
        if id.trim().is_empty() {
            violations.add(format!("product_ids[{i}]"), "must not be empty");
        }
    }
}

impl ProductDraft {
    /// Trims name, description and category, then checks every field in the proto's order.
    ///
    /// # Errors
    /// Every violation, named by proto field (`name`, `price.currency_code`, …).
    pub fn validate(self) -> Result<NewProduct, Violations> {
        let name = self.name.trim().to_owned();
        let description = self.description.trim().to_owned();
        let category = self.category.trim().to_owned();
        let mut v = Violations::new();
        v.check("request_id", check_request_id(&self.request_id));
        v.check("name", check_name(&name));
        v.check("description", check_description(&description));
        v.check("category", check_category(&category));
        match &self.price {
            Some(price) => check_price(price, "price", &mut v),
            None => v.add("price", "is required"),
        }
        match self.price {
            Some(price) if v.is_empty() => Ok(NewProduct {
                request_id: Some(self.request_id).filter(|r| !r.is_empty()),
                name,
                description,
                category,
                price,
                active: self.active,
            }),
            _ => Err(v),
        }
    }
}

impl ProductChanges {
    /// Trims the set name, description and category, then checks every set field.
    ///
    /// # Errors
    /// Every violation, named by proto field.
    pub fn validate(self) -> Result<Self, Violations> {
        let trim = |s: String| s.trim().to_owned();
        let changes = Self {
            name: self.name.map(trim),
            description: self.description.map(trim),
            category: self.category.map(trim),
            ..self
        };
        let mut v = Violations::new();
        if let Some(name) = &changes.name {
            v.check("name", check_name(name));
        }
        if let Some(description) = &changes.description {
            v.check("description", check_description(description));
        }
        if let Some(category) = &changes.category {
            v.check("category", check_category(category));
        }
        if let Some(price) = &changes.price {
            check_price(price, "price", &mut v);
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
    fn names_need_one_to_two_hundred_printable_characters() {
        let cases: [(&str, bool); 6] = [
            ("Chef's knife", true),
            ("é", true),
            (&"x".repeat(200), true),
            ("", false),
            (&"x".repeat(201), false),
            ("tab\there", false),
        ];
        for (name, ok) in cases {
            assert_eq!(check_name(name).is_ok(), ok, "{name:?}");
        }
    }

    #[test]
    fn descriptions_may_be_empty_but_not_longer_than_five_thousand_characters() {
        assert!(check_description("").is_ok());
        assert!(check_description(&"ü".repeat(5000)).is_ok());
        assert!(check_description(&"ü".repeat(5001)).is_err());
    }

    #[test]
    fn categories_are_lower_case_slugs() {
        let cases: [(&str, bool); 8] = [
            ("kitchen", true),
            ("home-office", true),
            ("4k-tv", true),
            (&"a".repeat(50), true),
            ("", false),
            ("Kitchen", false),
            ("home office", false),
            (&"a".repeat(51), false),
        ];
        for (category, ok) in cases {
            assert_eq!(check_category(category).is_ok(), ok, "{category:?}");
        }
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
    fn request_ids_are_optional_and_at_most_128_characters() {
        assert!(check_request_id("").is_ok());
        assert!(check_request_id(&"r".repeat(128)).is_ok());
        assert!(check_request_id(&"r".repeat(129)).is_err());
    }

    #[test]
    fn a_batch_names_each_empty_id_and_a_too_long_list() {
        let mut v = Violations::new();
        let ids = vec!["a".to_owned(), String::new(), "c".into(), " ".into()];
        check_product_ids(&ids, &mut v);
        assert_eq!(fields(&v), ["product_ids[1]", "product_ids[3]"]);

        let mut v = Violations::new();
        check_product_ids(&vec!["a".to_owned(); BATCH_MAX + 1], &mut v);
        assert_eq!(fields(&v), ["product_ids"]);
    }

    fn draft() -> ProductDraft {
        ProductDraft {
            request_id: String::new(),
            name: "Cast iron pan".into(),
            description: "Heavy.".into(),
            category: "kitchen".into(),
            price: Some(usd(3999)),
            active: true,
        }
    }

    #[test]
    fn a_draft_reports_every_violation_in_field_order() {
        let bad = ProductDraft {
            request_id: "r".repeat(129),
            name: "   ".into(),
            category: "Not A Slug".into(),
            price: Some(Money {
                amount_minor: 0,
                currency_code: "usd".into(),
            }),
            ..draft()
        };
        let v = bad.validate().unwrap_err();
        assert_eq!(
            fields(&v),
            [
                "request_id",
                "name",
                "category",
                "price.amount_minor",
                "price.currency_code"
            ]
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
