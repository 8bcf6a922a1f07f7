//! UpdateOrderStatus: CONFIRMED → SHIPPED → DELIVERED (refused while a cancellation is
//! under way: the order is CANCELLING then).

use polyshop_platform::{auth::Principal, status::Violations};

use super::{get_order, ports::SagaLog};
use crate::domain::{Order, OrderError, OrderStatus};

/// CONFIRMED → SHIPPED (with a tracking number) → DELIVERED.
///
/// # Errors
/// `Invalid`, `NotFound`, `NotAllowed`, `Conflict`, `Internal`.
pub async fn update_status(
    log: &dyn SagaLog,
    caller: &Principal,
    order_id: &str,
    status: Option<OrderStatus>,
    tracking_number: &str,
) -> Result<Order, OrderError> {
    let order = get_order(log, caller, order_id).await?;
    let event = match status {
        Some(OrderStatus::Shipped) => {
            // "required when shipping" is a cross-field (CEL) rule the contract lacks.
            if tracking_number.trim().is_empty() {
                let mut v = Violations::new();
                v.add("tracking_number", "is required when shipping");
                return Err(OrderError::Invalid(v));
            }
            if order.status == OrderStatus::Shipped
                && order.tracking_number == tracking_number.trim()
            {
                return Ok(order);
            }
            order.ship(tracking_number.trim())?
        }
        Some(OrderStatus::Delivered) => {
            if order.status == OrderStatus::Delivered {
                return Ok(order);
            }
            order.deliver()?
        }
        // The contract refuses any other status (`in: [5, 6]`); kept so the match is total.
        _ => {
            let mut v = Violations::new();
            v.add(
                "status",
                "must be ORDER_STATUS_SHIPPED or ORDER_STATUS_DELIVERED",
            );
            return Err(OrderError::Invalid(v));
        }
    };
    log.append(&order, &[event], None).await
}
