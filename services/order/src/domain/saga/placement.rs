//! Deciding a new order from the user check and the catalog's prices.

use super::Saga;
use crate::domain::{Order, OrderEvent, OrderLine, PlaceOrder, Rejection};

/// What validation found: the order's priced lines, or why it is rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    /// The Created event, and Rejected when a check failed.
    pub events: Vec<OrderEvent>,
    /// The saga to store with them.
    pub saga: Saga,
}

/// A product as the catalog priced it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PricedProduct {
    /// Id.
    pub product_id: String,
    /// Name.
    pub name: String,
    /// On sale.
    pub active: bool,
    /// Price, if any.
    pub price: Option<crate::domain::Money>,
}

/// Decides a new order from the user check and the catalog's prices (never the client's):
/// the Created event, and Rejected with the first failed check.
pub fn place(
    order_id: &str,
    user_id: &str,
    request: PlaceOrder,
    user_refusal: Option<(Rejection, String)>,
    products: &[PricedProduct],
) -> Placement {
    let mut rejection = user_refusal;
    let mut lines = Vec::with_capacity(request.lines.len());
    for requested in &request.lines {
        let found = products
            .iter()
            .find(|p| p.product_id == requested.product_id && p.active);
        if found.is_none() && rejection.is_none() {
            rejection = Some((
                Rejection::ProductNotFound,
                format!("product {} is not available", requested.product_id),
            ));
        }
        lines.push(OrderLine {
            product_id: requested.product_id.clone(),
            product_name: found.map(|p| p.name.clone()).unwrap_or_default(),
            quantity: requested.quantity,
            unit_price: found.and_then(|p| p.price.clone()).unwrap_or_default(),
        });
    }
    let total = crate::domain::total_of(&lines);
    if total.is_none() && rejection.is_none() {
        rejection = Some((
            Rejection::CurrencyMismatch,
            "items are priced in different currencies".into(),
        ));
    }
    let order = Order::placed(
        order_id.to_owned(),
        user_id.to_owned(),
        lines,
        total.unwrap_or_default(),
        request.shipping.clone(),
    );
    let mut events = vec![OrderEvent::Created(Box::new(order))];
    let saga = match rejection {
        Some((reason, detail)) => {
            events.push(OrderEvent::Rejected {
                reason,
                detail: detail.clone(),
            });
            Saga::rejected(order_id, user_id, request, reason, &detail)
        }
        None => Saga::started(order_id, user_id, request),
    };
    Placement { events, saga }
}
