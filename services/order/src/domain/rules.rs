//! Field rules of CreateOrder that its contract cannot state (the contract is checked on
//! every request before the handler: item count 1–50, quantities 1–1000, the key's length,
//! a shipping address present with a country code).

use std::collections::HashSet;

use polyshop_platform::status::Violations;

use super::ShippingAddress;

/// A requested line before pricing.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RequestedLine {
    /// The product.
    pub product_id: String,
    /// Units.
    pub quantity: i32,
}

/// A CreateOrder request as the domain sees it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PlaceOrder {
    /// The client's idempotency key.
    pub idempotency_key: String,
    /// Lines.
    pub lines: Vec<RequestedLine>,
    /// Delivery address.
    pub shipping: ShippingAddress,
    /// Card token.
    pub payment_method_token: String,
}

/// Every violation of a CreateOrder request the contract cannot state, by proto field path:
/// blank (whitespace-only) strings, which pass the contract's `min_len` but not the trim, and
/// a product listed twice.
pub fn check_place_order(req: &PlaceOrder) -> Violations {
    let mut v = Violations::new();
    // Whitespace-only passes the contract's min_len.
    if req.idempotency_key.trim().is_empty() {
        v.add("idempotency_key", "is required");
    }
    let mut seen = HashSet::new();
    for (i, line) in req.lines.iter().enumerate() {
        // Whitespace-only passes the contract; uniqueness within a list is beyond it.
        if line.product_id.trim().is_empty() {
            v.add(format!("items[{i}].product_id"), "is required");
        } else if !seen.insert(line.product_id.as_str()) {
            v.add(format!("items[{i}].product_id"), "appears more than once");
        }
    }
    let a = &req.shipping;
    for (field, value) in [
        ("recipient", &a.recipient),
        ("line1", &a.line1),
        ("city", &a.city),
        ("postal_code", &a.postal_code),
    ] {
        // Whitespace-only passes the contract's min_len.
        if value.trim().is_empty() {
            v.add(format!("shipping_address.{field}"), "is required");
        }
    }
    // Whitespace-only passes the contract's min_len.
    if req.payment_method_token.trim().is_empty() {
        v.add("payment_method_token", "is required");
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid() -> PlaceOrder {
        PlaceOrder {
            idempotency_key: "k1".into(),
            lines: vec![RequestedLine {
                product_id: "p1".into(),
                quantity: 2,
            }],
            shipping: ShippingAddress {
                recipient: "Jane".into(),
                line1: "Main St 1".into(),
                city: "Berlin".into(),
                postal_code: "10115".into(),
                country_code: "DE".into(),
                ..Default::default()
            },
            payment_method_token: "tok_visa".into(),
        }
    }

    #[test]
    fn a_valid_request_has_no_violations() {
        assert!(check_place_order(&valid()).is_empty());
    }

    #[test]
    fn every_bad_field_is_named() {
        let mut r = valid();
        r.idempotency_key = " ".into();
        r.lines.push(RequestedLine {
            product_id: "p1".into(),
            quantity: 1,
        });
        r.lines.push(RequestedLine {
            product_id: " ".into(),
            quantity: 1,
        });
        r.shipping.city = "\t".into();
        r.payment_method_token = String::new();
        let fields: Vec<String> = check_place_order(&r)
            .iter()
            .map(|(f, _)| f.clone())
            .collect();
        assert_eq!(
            fields,
            [
                "idempotency_key",
                "items[1].product_id",
                "items[2].product_id",
                "shipping_address.city",
                "payment_method_token"
            ]
        );
    }
}
