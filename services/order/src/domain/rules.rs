//! Field rules of CreateOrder.

use std::collections::HashSet;

use polyshop_platform::status::Violations;

use super::ShippingAddress;

/// Most lines in one order.
pub const MAX_LINES: usize = 50;
/// Most units of one product in one order.
pub const MAX_QUANTITY: i32 = 1000;

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

/// Every violation of a CreateOrder request, by proto field path.
pub fn check_place_order(req: &PlaceOrder) -> Violations {
    let mut v = Violations::new();
    let key = req.idempotency_key.trim();
    if key.is_empty() {
        v.add("idempotency_key", "is required");
    } else if key.len() > 128 {
        v.add("idempotency_key", "must be at most 128 characters");
    }
    if req.lines.is_empty() {
        v.add("items", "must contain at least one item");
    } else if req.lines.len() > MAX_LINES {
        v.add("items", format!("must contain at most {MAX_LINES} items"));
    }
    let mut seen = HashSet::new();
    for (i, line) in req.lines.iter().enumerate() {
        if line.product_id.trim().is_empty() {
            v.add(format!("items[{i}].product_id"), "is required");
        } else if !seen.insert(line.product_id.as_str()) {
            v.add(format!("items[{i}].product_id"), "appears more than once");
        }
        if !(1..=MAX_QUANTITY).contains(&line.quantity) {
            v.add(
                format!("items[{i}].quantity"),
                format!("must be between 1 and {MAX_QUANTITY}"),
            );
        }
    }
    let a = &req.shipping;
    for (field, value) in [
        ("recipient", &a.recipient),
        ("line1", &a.line1),
        ("city", &a.city),
        ("postal_code", &a.postal_code),
    ] {
        if value.trim().is_empty() {
            v.add(format!("shipping_address.{field}"), "is required");
        }
    }
    if a.country_code.len() != 2 || !a.country_code.chars().all(|c| c.is_ascii_uppercase()) {
        v.add(
            "shipping_address.country_code",
            "must be an ISO 3166-1 alpha-2 code like \"DE\"",
        );
    }
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
        r.idempotency_key = String::new();
        r.lines.push(RequestedLine {
            product_id: "p1".into(),
            quantity: 0,
        });
        r.shipping.country_code = "Germany".into();
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
                "items[1].quantity",
                "shipping_address.country_code",
                "payment_method_token"
            ]
        );
    }
}
