//! What each notification says: the [`Trigger`] (the facts of one domain event that matter
//! to the customer) becomes a title and a body.

use super::{Money, NotificationKind, format_money};

/// Why the order saga rejected an order (the order context's `RejectionReason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectionReason {
    /// Not given.
    Unspecified,
    /// The customer's account does not exist.
    UserNotFound,
    /// The customer's account is inactive or suspended.
    UserInactive,
    /// An item's product does not exist or is inactive.
    ProductNotFound,
    /// Items are priced in more than one currency.
    CurrencyMismatch,
    /// Not enough stock for at least one item.
    InsufficientStock,
    /// The card was declined.
    PaymentDeclined,
    /// A participant kept failing.
    ServiceUnavailable,
}

impl RejectionReason {
    /// The contract's name without its prefix, e.g. `PAYMENT_DECLINED`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Unspecified => "UNSPECIFIED",
            Self::UserNotFound => "USER_NOT_FOUND",
            Self::UserInactive => "USER_INACTIVE",
            Self::ProductNotFound => "PRODUCT_NOT_FOUND",
            Self::CurrencyMismatch => "CURRENCY_MISMATCH",
            Self::InsufficientStock => "INSUFFICIENT_STOCK",
            Self::PaymentDeclined => "PAYMENT_DECLINED",
            Self::ServiceUnavailable => "SERVICE_UNAVAILABLE",
        }
    }

    fn phrase(self) -> &'static str {
        match self {
            Self::Unspecified => "it could not be completed",
            Self::UserNotFound => "your account was not found",
            Self::UserInactive => "your account is not active",
            Self::ProductNotFound => "a product is no longer available",
            Self::CurrencyMismatch => "its items are priced in different currencies",
            Self::InsufficientStock => "an item is out of stock",
            Self::PaymentDeclined => "your payment was declined",
            Self::ServiceUnavailable => "a service was unavailable",
        }
    }
}

/// The facts of one domain event that a customer is told about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger {
    /// `user.registered`.
    Welcome {
        /// The new user's name.
        display_name: String,
    },
    /// `order.confirmed`.
    OrderConfirmed {
        /// The order.
        order_id: String,
    },
    /// `order.rejected`.
    OrderRejected {
        /// The order.
        order_id: String,
        /// Why.
        reason: RejectionReason,
        /// Human-readable detail, may be empty.
        detail: String,
    },
    /// `order.cancelled`.
    OrderCancelled {
        /// The order.
        order_id: String,
        /// Why, may be empty.
        reason: String,
    },
    /// `order.shipped`.
    OrderShipped {
        /// The order.
        order_id: String,
        /// Carrier tracking number, may be empty.
        tracking_number: String,
    },
    /// `payment.refunded`.
    PaymentRefunded {
        /// The order paid for.
        order_id: String,
        /// What was returned.
        amount: Money,
        /// Why, may be empty.
        reason: String,
    },
}

/// A notification's text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Subject line.
    pub title: String,
    /// Body.
    pub body: String,
}

impl Trigger {
    /// The kind of notification it causes.
    pub fn kind(&self) -> NotificationKind {
        match self {
            Self::Welcome { .. } => NotificationKind::Welcome,
            Self::OrderConfirmed { .. } => NotificationKind::OrderConfirmed,
            Self::OrderRejected { .. } => NotificationKind::OrderRejected,
            Self::OrderCancelled { .. } => NotificationKind::OrderCancelled,
            Self::OrderShipped { .. } => NotificationKind::OrderShipped,
            Self::PaymentRefunded { .. } => NotificationKind::PaymentRefunded,
        }
    }

    /// The title and body of its notification.
    pub fn message(&self) -> Message {
        let (title, body) = match self {
            Self::Welcome { display_name } => {
                let greeting = match display_name.trim() {
                    "" => "Hello".to_owned(),
                    name => format!("Hello {name}"),
                };
                (
                    "Welcome to Polyshop".to_owned(),
                    format!("{greeting}, your account is ready. Happy shopping!"),
                )
            }
            Self::OrderConfirmed { order_id } => (
                format!("Your order {} is confirmed", short_id(order_id)),
                format!("We received your payment for order {order_id} and are preparing it."),
            ),
            Self::OrderRejected {
                order_id,
                reason,
                detail,
            } => (
                format!("Your order {} was rejected", short_id(order_id)),
                format!(
                    "We could not place order {order_id}: {} ({}).{}",
                    reason.phrase(),
                    reason.name(),
                    sentence(" Details: ", detail)
                ),
            ),
            Self::OrderCancelled { order_id, reason } => (
                format!("Your order {} was cancelled", short_id(order_id)),
                format!(
                    "Order {order_id} was cancelled and any payment refunded.{}",
                    sentence(" Reason: ", reason)
                ),
            ),
            Self::OrderShipped {
                order_id,
                tracking_number,
            } => (
                format!("Your order {} has shipped", short_id(order_id)),
                format!(
                    "Order {order_id} is on its way.{}",
                    sentence(" Tracking number: ", tracking_number)
                ),
            ),
            Self::PaymentRefunded {
                order_id,
                amount,
                reason,
            } => {
                let amount = format_money(amount.amount_minor, &amount.currency_code);
                (
                    format!("You were refunded {amount}"),
                    format!(
                        "We refunded {amount} for order {order_id}.{}",
                        sentence(" Reason: ", reason)
                    ),
                )
            }
        };
        Message { title, body }
    }
}

/// `prefix` + `text` + "." when `text` is not blank, else nothing.
fn sentence(prefix: &str, text: &str) -> String {
    let text = text.trim().trim_end_matches('.');
    if text.is_empty() {
        String::new()
    } else {
        format!("{prefix}{text}.")
    }
}

/// The first 8 characters of an id and an ellipsis, for subject lines.
pub fn short_id(id: &str) -> String {
    match id.char_indices().nth(8) {
        Some((end, _)) => format!("{}…", &id[..end]),
        None => id.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORDER: &str = "0190b7a2-5c3e-7d41-9a2b-3c4d5e6f7a8b";

    #[test]
    fn subject_lines_shorten_ids_and_bodies_keep_them_whole() {
        let m = Trigger::OrderConfirmed {
            order_id: ORDER.into(),
        }
        .message();
        assert_eq!(m.title, "Your order 0190b7a2… is confirmed");
        assert!(m.body.contains(ORDER), "{}", m.body);
        assert_eq!(short_id("abc"), "abc");
    }

    #[test]
    fn a_rejected_order_names_the_reason_and_the_detail() {
        let m = Trigger::OrderRejected {
            order_id: ORDER.into(),
            reason: RejectionReason::PaymentDeclined,
            detail: "card_declined".into(),
        }
        .message();
        assert_eq!(m.title, "Your order 0190b7a2… was rejected");
        assert!(
            m.body
                .contains("your payment was declined (PAYMENT_DECLINED)"),
            "{}",
            m.body
        );
        assert!(m.body.ends_with("Details: card_declined."), "{}", m.body);
    }

    #[test]
    fn a_shipped_order_carries_the_tracking_number_when_there_is_one() {
        let with = Trigger::OrderShipped {
            order_id: ORDER.into(),
            tracking_number: "1Z999".into(),
        };
        assert!(with.message().body.ends_with("Tracking number: 1Z999."));
        let without = Trigger::OrderShipped {
            order_id: ORDER.into(),
            tracking_number: " ".into(),
        };
        assert_eq!(
            without.message().body,
            format!("Order {ORDER} is on its way.")
        );
    }

    #[test]
    fn a_refund_states_the_formatted_amount_and_the_reason() {
        let m = Trigger::PaymentRefunded {
            order_id: ORDER.into(),
            amount: Money {
                amount_minor: 4250,
                currency_code: "EUR".into(),
            },
            reason: "order cancelled.".into(),
        }
        .message();
        assert_eq!(m.title, "You were refunded 42.50 EUR");
        assert_eq!(
            m.body,
            format!("We refunded 42.50 EUR for order {ORDER}. Reason: order cancelled.")
        );
    }

    #[test]
    fn a_welcome_greets_by_name_or_plainly() {
        let named = Trigger::Welcome {
            display_name: "Ada".into(),
        }
        .message();
        assert_eq!(named.title, "Welcome to Polyshop");
        assert!(named.body.starts_with("Hello Ada, "));
        let anonymous = Trigger::Welcome {
            display_name: String::new(),
        }
        .message();
        assert!(anonymous.body.starts_with("Hello, "));
    }

    #[test]
    fn every_trigger_maps_to_its_kind() {
        let cancelled = Trigger::OrderCancelled {
            order_id: ORDER.into(),
            reason: String::new(),
        };
        assert_eq!(cancelled.kind(), NotificationKind::OrderCancelled);
        assert_eq!(
            cancelled.message().body,
            format!("Order {ORDER} was cancelled and any payment refunded.")
        );
        assert_eq!(
            Trigger::Welcome {
                display_name: String::new()
            }
            .kind(),
            NotificationKind::Welcome
        );
    }
}
