//! CancelOrder: the cancellation is journalled first (CANCELLING, version-checked, so a ship
//! racing it loses), then the saga refunds and returns the stock, then the order is
//! CANCELLED. A crash anywhere in between is resumed like any saga.

use std::sync::Arc;

use polyshop_platform::auth::Principal;

use super::{SagaRunner, get_order};
use crate::domain::{Order, OrderError, OrderStatus};

impl SagaRunner {
    /// Cancels a confirmed order and answers with it: CANCELLED once refunded and restocked
    /// within the settle wait, else CANCELLING while that goes on. Repeating it on a cancelled
    /// or cancelling order answers with it as it is.
    ///
    /// # Errors
    /// `NotFound`; `NotAllowed` (e.g. once shipped); `Conflict` when the order changed under
    /// us (a ship won the race); `Internal`.
    pub async fn cancel(
        self: &Arc<Self>,
        caller: &Principal,
        order_id: &str,
        reason: &str,
    ) -> Result<Order, OrderError> {
        let order = get_order(self.log.as_ref(), caller, order_id).await?;
        if matches!(
            order.status,
            OrderStatus::Cancelled | OrderStatus::Cancelling
        ) {
            return Ok(order);
        }
        // Held by another task or instance: it is still settling the order, so a cancel now
        // would race it.
        let Some(claimed) = self.claim(order_id).await? else {
            return Err(OrderError::Conflict);
        };
        let reason = match reason.trim() {
            "" => "cancelled by request",
            reason => reason,
        };
        let journalled = async {
            let mut saga = self.log.saga(order_id).await?.ok_or(OrderError::NotFound)?;
            let event = saga.request_cancel(&order, reason)?;
            let fenced = Some((&saga, &claimed.fence));
            let order = self.log.append(&order, &[event], fenced).await?;
            Ok((saga, order))
        }
        .await;
        match journalled {
            Ok((saga, order)) => self.settle(claimed, saga, order).await,
            Err(e) => {
                self.release(&claimed, Some(&e)).await;
                Err(e)
            }
        }
    }
}
