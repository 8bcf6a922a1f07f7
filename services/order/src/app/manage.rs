//! Reading and changing orders after placement: get, history, list (from the read model), and
//! the shipping status. (Cancelling is a saga: `cancel_order.rs`.)

use polyshop_platform::{auth::Principal, paging, status::Violations};

use super::ports::SagaLog;
use crate::{
    domain::{Order, OrderError, OrderStatus},
    store::{EventStore, ListFilter, ReadModel, Recorded},
};

/// The order if the caller may see it; someone else's order is NOT_FOUND, like a missing one.
///
/// # Errors
/// `NotFound`, `Internal`.
pub async fn get_order(
    log: &dyn SagaLog,
    caller: &Principal,
    order_id: &str,
) -> Result<Order, OrderError> {
    let order = log.order(order_id).await?.ok_or(OrderError::NotFound)?;
    if caller.may_act_for(&order.user_id) {
        Ok(order)
    } else {
        Err(OrderError::NotFound)
    }
}

/// The order's stored events.
///
/// # Errors
/// `NotFound`, `Internal`.
pub async fn order_history(
    log: &dyn SagaLog,
    events: &EventStore,
    caller: &Principal,
    order_id: &str,
) -> Result<Vec<Recorded>, OrderError> {
    get_order(log, caller, order_id).await?;
    events.history(order_id).await
}

/// What ListOrders asks for.
#[derive(Debug, Clone, Default)]
pub struct ListRequest {
    /// Page size as requested.
    pub page_size: i32,
    /// Page token as received.
    pub page_token: String,
    /// Status filter.
    pub status: Option<OrderStatus>,
    /// Admin-only user filter.
    pub user_id: String,
}

/// One page of orders from the read model, newest first. Users see their own orders; admins
/// anyone's (optionally one user's).
///
/// # Errors
/// `Invalid` for bad paging, `Internal`.
pub async fn list_orders(
    read: &ReadModel,
    caller: &Principal,
    req: ListRequest,
) -> Result<(Vec<Order>, String), OrderError> {
    let mut v = Violations::new();
    let size = v.check("page_size", paging::page_size(req.page_size));
    let before = v.check("page_token", paging::decode_token(&req.page_token));
    v.into_result()?;
    let size = size.unwrap_or(paging::DEFAULT_PAGE_SIZE);
    let user_id = match caller.user_id() {
        Some(me) if !caller.is_admin() => Some(me.to_owned()),
        _ => (!req.user_id.is_empty()).then_some(req.user_id),
    };
    let mut orders = read
        .list(&ListFilter {
            user_id,
            status: req.status,
            before: before.flatten(),
            limit: size + 1,
        })
        .await?;
    let next = if orders.len() as u64 > size {
        orders.truncate(usize::try_from(size).unwrap_or(usize::MAX));
        orders
            .last()
            .map(|o| paging::encode_token(&o.id))
            .unwrap_or_default()
    } else {
        String::new()
    };
    Ok((orders, next))
}

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
