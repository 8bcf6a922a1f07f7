//! GetOrder and GetOrderHistory: an order (or its events) if the caller may see it.

use polyshop_platform::auth::Principal;

use super::ports::SagaLog;
use crate::{
    domain::{Order, OrderError},
    store::{EventStore, Recorded},
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
