//! The Order aggregate: state, events, `apply`, and the commands' rules.

use super::{Money, OrderError, OrderLine, OrderStatus, Rejection, ShippingAddress};

/// An order as its events built it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Order {
    /// UUIDv7.
    pub id: String,
    /// Customer.
    pub user_id: String,
    /// Lines.
    pub lines: Vec<OrderLine>,
    /// Sum of line totals.
    pub total: Money,
    /// Status.
    pub status: OrderStatus,
    /// Why rejected.
    pub rejection: Option<Rejection>,
    /// Detail of a rejection or cancellation.
    pub status_detail: String,
    /// Delivery address.
    pub shipping: ShippingAddress,
    /// Payment, once captured.
    pub payment_id: String,
    /// Carrier tracking, once shipped.
    pub tracking_number: String,
    /// Events applied.
    pub version: i64,
    /// Epoch ms.
    pub created_at: i64,
    /// Epoch ms.
    pub updated_at: i64,
}

/// What happened to an order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrderEvent {
    /// Placed and priced (status PENDING; `order.version` is 0 inside).
    Created(Box<Order>),
    /// The saga completed.
    Confirmed {
        /// The captured payment.
        payment_id: String,
    },
    /// The saga failed and was compensated.
    Rejected {
        /// Why.
        reason: Rejection,
        /// Detail.
        detail: String,
    },
    /// Cancellation of a confirmed order was recorded; refund and restock follow.
    CancellationRequested {
        /// Why.
        reason: String,
    },
    /// Cancelled after confirmation: refunded and restocked.
    Cancelled {
        /// Why.
        reason: String,
    },
    /// Handed to the carrier.
    Shipped {
        /// Tracking number.
        tracking_number: String,
    },
    /// Received.
    Delivered,
}

impl OrderEvent {
    /// Short name, stored beside the payload.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Created(_) => "created",
            Self::Confirmed { .. } => "confirmed",
            Self::Rejected { .. } => "rejected",
            Self::CancellationRequested { .. } => "cancellation_requested",
            Self::Cancelled { .. } => "cancelled",
            Self::Shipped { .. } => "shipped",
            Self::Delivered => "delivered",
        }
    }
}

/// Sums line totals; `None` if lines mix currencies or there are none.
pub fn total_of(lines: &[OrderLine]) -> Option<Money> {
    let currency = lines.first()?.unit_price.currency.clone();
    let mut amount: i64 = 0;
    for line in lines {
        if line.unit_price.currency != currency {
            return None;
        }
        amount = amount.checked_add(line.total().amount_minor)?;
    }
    Some(Money {
        amount_minor: amount,
        currency,
    })
}

impl Order {
    /// A newly placed order as its Created event carries it: PENDING, nothing paid or
    /// shipped yet, version 0 (the store stamps version and times when it appends).
    pub fn placed(
        id: String,
        user_id: String,
        lines: Vec<OrderLine>,
        total: Money,
        shipping: ShippingAddress,
    ) -> Self {
        Self {
            id,
            user_id,
            lines,
            total,
            status: OrderStatus::Pending,
            rejection: None,
            status_detail: String::new(),
            shipping,
            payment_id: String::new(),
            tracking_number: String::new(),
            version: 0,
            created_at: 0,
            updated_at: 0,
        }
    }

    /// Rebuilds an order from its events (after an optional snapshot).
    pub fn replay(snapshot: Option<Order>, events: &[(OrderEvent, i64)]) -> Option<Order> {
        let mut state = snapshot;
        for (event, at) in events {
            state = Some(match state {
                None => match event {
                    OrderEvent::Created(order) => {
                        let mut o = (**order).clone();
                        o.version = 1;
                        o.created_at = *at;
                        o.updated_at = *at;
                        o
                    }
                    _ => continue,
                },
                Some(mut o) => {
                    o.apply(event, *at);
                    o
                }
            });
        }
        state
    }

    /// Applies one later event (not `Created`) recorded at `at`.
    pub fn apply(&mut self, event: &OrderEvent, at: i64) {
        match event {
            OrderEvent::Created(_) => return,
            OrderEvent::Confirmed { payment_id } => {
                self.status = OrderStatus::Confirmed;
                self.payment_id.clone_from(payment_id);
            }
            OrderEvent::Rejected { reason, detail } => {
                self.status = OrderStatus::Rejected;
                self.rejection = Some(*reason);
                self.status_detail.clone_from(detail);
            }
            OrderEvent::CancellationRequested { reason } => {
                self.status = OrderStatus::Cancelling;
                self.status_detail.clone_from(reason);
            }
            OrderEvent::Cancelled { reason } => {
                self.status = OrderStatus::Cancelled;
                self.status_detail.clone_from(reason);
            }
            OrderEvent::Shipped { tracking_number } => {
                self.status = OrderStatus::Shipped;
                self.tracking_number.clone_from(tracking_number);
            }
            OrderEvent::Delivered => self.status = OrderStatus::Delivered,
        }
        self.version += 1;
        self.updated_at = at;
    }

    fn require(&self, allowed: &[OrderStatus], action: &str) -> Result<(), OrderError> {
        if allowed.contains(&self.status) {
            Ok(())
        } else {
            Err(OrderError::NotAllowed(format!(
                "cannot {action} an order that is {}",
                self.status.as_str()
            )))
        }
    }

    /// The saga finished.
    ///
    /// # Errors
    /// `NotAllowed` unless PENDING.
    pub fn confirm(&self, payment_id: &str) -> Result<OrderEvent, OrderError> {
        self.require(&[OrderStatus::Pending], "confirm")?;
        Ok(OrderEvent::Confirmed {
            payment_id: payment_id.to_owned(),
        })
    }

    /// The saga failed.
    ///
    /// # Errors
    /// `NotAllowed` unless PENDING.
    pub fn reject(&self, reason: Rejection, detail: &str) -> Result<OrderEvent, OrderError> {
        self.require(&[OrderStatus::Pending], "reject")?;
        Ok(OrderEvent::Rejected {
            reason,
            detail: detail.to_owned(),
        })
    }

    /// Records a cancellation: allowed for a confirmed order only (once shipped it is too
    /// late). Recorded before the refund and restock, so a ship racing it loses.
    ///
    /// # Errors
    /// `NotAllowed` otherwise.
    pub fn request_cancel(&self, reason: &str) -> Result<OrderEvent, OrderError> {
        self.require(&[OrderStatus::Confirmed], "cancel")?;
        Ok(OrderEvent::CancellationRequested {
            reason: reason.to_owned(),
        })
    }

    /// Ends a recorded cancellation once refunded and restocked.
    ///
    /// # Errors
    /// `NotAllowed` unless CANCELLING.
    pub fn cancel(&self) -> Result<OrderEvent, OrderError> {
        self.require(&[OrderStatus::Cancelling], "finish cancelling")?;
        Ok(OrderEvent::Cancelled {
            reason: self.status_detail.clone(),
        })
    }

    /// CONFIRMED → SHIPPED.
    ///
    /// # Errors
    /// `NotAllowed` unless CONFIRMED.
    pub fn ship(&self, tracking_number: &str) -> Result<OrderEvent, OrderError> {
        self.require(&[OrderStatus::Confirmed], "ship")?;
        Ok(OrderEvent::Shipped {
            tracking_number: tracking_number.to_owned(),
        })
    }

    /// SHIPPED → DELIVERED.
    ///
    /// # Errors
    /// `NotAllowed` unless SHIPPED.
    pub fn deliver(&self) -> Result<OrderEvent, OrderError> {
        self.require(&[OrderStatus::Shipped], "deliver")?;
        Ok(OrderEvent::Delivered)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(price: i64, qty: i32, currency: &str) -> OrderLine {
        OrderLine {
            product_id: "p".into(),
            product_name: "P".into(),
            quantity: qty,
            unit_price: Money {
                amount_minor: price,
                currency: currency.into(),
            },
        }
    }

    fn placed() -> Order {
        let lines = vec![line(250, 2, "USD"), line(1000, 1, "USD")];
        let total = total_of(&lines).expect("one currency");
        Order::placed(
            "o1".into(),
            "u1".into(),
            lines,
            total,
            ShippingAddress::default(),
        )
    }

    #[test]
    fn totals_are_integer_sums_in_one_currency() {
        assert_eq!(
            placed().total,
            Money {
                amount_minor: 1500,
                currency: "USD".into()
            }
        );
        assert_eq!(total_of(&[line(1, 1, "USD"), line(1, 1, "EUR")]), None);
        assert_eq!(total_of(&[]), None);
    }

    #[test]
    fn replay_builds_the_state_and_counts_versions() {
        let o = placed();
        let events = vec![
            (OrderEvent::Created(Box::new(o.clone())), 10),
            (o.confirm("pay1").expect("pending"), 20),
            (
                OrderEvent::Shipped {
                    tracking_number: "T1".into(),
                },
                30,
            ),
        ];
        let state = Order::replay(None, &events).expect("created");
        assert_eq!((state.status, state.version), (OrderStatus::Shipped, 3));
        assert_eq!(
            (state.payment_id.as_str(), state.tracking_number.as_str()),
            ("pay1", "T1")
        );
        assert_eq!((state.created_at, state.updated_at), (10, 30));
        // A snapshot plus the remaining events gives the same state.
        let snapshot = Order::replay(None, &events[..2]).expect("created");
        assert_eq!(Order::replay(Some(snapshot), &events[2..]), Some(state));
    }

    #[test]
    fn the_status_machine_allows_only_forward_moves() {
        let mut o = placed();
        assert!(
            o.request_cancel("x").is_err(),
            "pending orders are not cancelled, they are rejected"
        );
        assert!(o.cancel().is_err(), "only a recorded cancellation ends");
        assert!(o.ship("T").is_err());
        o.apply(&o.confirm("p").expect("ok"), 1);
        assert!(o.confirm("p").is_err());
        assert!(o.deliver().is_err(), "deliver needs shipped");
        let shipped = {
            let mut s = o.clone();
            s.apply(&o.ship("T").expect("ok"), 2);
            s
        };
        assert!(
            shipped.request_cancel("too late").is_err(),
            "cannot cancel once shipped"
        );
        assert!(shipped.deliver().is_ok());
        let mut cancelling = o.clone();
        cancelling.apply(&o.request_cancel("changed my mind").expect("ok"), 3);
        assert_eq!(cancelling.status, OrderStatus::Cancelling);
        assert!(
            cancelling.ship("T").is_err(),
            "no shipping while cancelling"
        );
        assert_eq!(
            cancelling.cancel().expect("ok"),
            OrderEvent::Cancelled {
                reason: "changed my mind".into()
            }
        );
    }

    #[test]
    fn rejection_names_round_trip() {
        for r in [
            Rejection::PaymentDeclined,
            Rejection::InsufficientStock,
            Rejection::ServiceUnavailable,
        ] {
            assert_eq!(Rejection::parse(r.as_str()), Some(r));
        }
    }
}
