//! CreateOrder: validate (user, catalog prices), store the order with its saga under the
//! idempotency key, and drive the saga. A replayed key answers with the stored order.

use std::{sync::Arc, time::Duration};

use super::{
    SagaRunner,
    ports::{Away, Standing},
};
use crate::{
    domain::{
        Order, OrderError, PlaceOrder, Rejection, check_place_order,
        saga::{self, PricedProduct},
    },
    store::Created,
};

/// How often a replayed key looks whether its order has settled.
const REPLAY_POLL: Duration = Duration::from_millis(25);

impl SagaRunner {
    /// Places an order for `user_id` and answers with it: CONFIRMED or REJECTED when the saga
    /// settles within the settle wait, else PENDING while it goes on (a participant that is
    /// away delays the order, it does not reject it). A repeated key answers with the order the
    /// first call placed, in its current status.
    ///
    /// # Errors
    /// `Invalid` for bad input; `Unavailable` when the user or catalog service cannot be asked
    /// (nothing is stored then, so the same request may be sent again); `Internal`.
    pub async fn place(
        self: &Arc<Self>,
        user_id: &str,
        request: PlaceOrder,
    ) -> Result<Order, OrderError> {
        check_place_order(&request).into_result()?;
        // A replay answers with its order without asking anyone: it must converge even while
        // the user or catalog service is away.
        if let Some(id) = self
            .log
            .placed_under(user_id, request.idempotency_key.trim())
            .await?
        {
            return self.replayed(&id).await;
        }
        let order_id = polyshop_platform::new_id();
        // Held from before the saga is stored: once it is, the resumer sees it unfinished and
        // must leave it to this call.
        let driving = self.driving(&order_id).ok_or_else(|| {
            OrderError::Internal("a freshly generated order id is being driven".into())
        })?;
        let (refusal, products) = match self.validation(user_id, &request).await {
            Ok(checked) => checked,
            Err(away) => {
                drop(driving);
                // A replay must converge even while the user or catalog service is away: it
                // answers with its stored order. (Looked up only here: on the happy path the
                // journal's insert finds a taken key at no extra cost.)
                let key = request.idempotency_key.trim();
                return match self.log.placed_under(user_id, key).await? {
                    Some(id) => self.replayed(&id).await,
                    None => Err(OrderError::Unavailable(format!(
                        "cannot place the order now: {}",
                        away.detail
                    ))),
                };
            }
        };
        let placement = saga::place(&order_id, user_id, request, refusal, &products);
        let (began, until) = self.new_lease();
        let created = self
            .log
            .create(&placement.events, &placement.saga, self.owner(), until)
            .await?;
        let order = match created {
            Created::New(order) => *order,
            Created::Existing(id) => {
                drop(driving);
                return self.replayed(&id).await;
            }
        };
        let claimed = Self::created(driving, &order_id, began);
        self.failpoints.hit("order.after_create").await;
        if placement.saga.is_done() {
            self.release(&claimed, None).await;
            return Ok(order);
        }
        self.settle(claimed, placement.saga, order).await
    }

    /// The order an earlier call placed under the same key, once it has left PENDING or the
    /// settle wait has passed (its first call may still be driving it).
    async fn replayed(&self, order_id: &str) -> Result<Order, OrderError> {
        let deadline = tokio::time::Instant::now() + self.settle;
        loop {
            let order = self
                .log
                .order(order_id)
                .await?
                .ok_or(OrderError::NotFound)?;
            if order.status != crate::domain::OrderStatus::Pending
                || tokio::time::Instant::now() >= deadline
            {
                return Ok(order);
            }
            tokio::time::sleep(REPLAY_POLL).await;
        }
    }

    /// Checks the user and prices the items (no effects anywhere): a refusal if the user may
    /// not order, and the products the catalog knows.
    async fn validation(
        &self,
        user_id: &str,
        request: &PlaceOrder,
    ) -> Result<(Option<(Rejection, String)>, Vec<PricedProduct>), Away> {
        let ids = request.lines.iter().map(|l| l.product_id.clone()).collect();
        let (standing, products) =
            tokio::join!(self.standing(user_id), self.participants.products(ids));
        Ok((standing?, products?))
    }

    async fn standing(&self, user_id: &str) -> Result<Option<(Rejection, String)>, Away> {
        let refusal = |standing| match standing {
            Standing::Active => None,
            Standing::Inactive => {
                Some((Rejection::UserInactive, "the account is not active".into()))
            }
            Standing::NotFound => Some((Rejection::UserNotFound, "no such account".into())),
        };
        let away = match self.participants.standing(user_id).await {
            Ok(standing) => return Ok(refusal(standing)),
            Err(away) => away,
        };
        if !self.flags.enabled("order_replica_fallback") {
            return Err(Away {
                detail: format!(
                    "user service: {} (replica fallback is switched off)",
                    away.detail
                ),
            });
        }
        // The user service is away: the replica fed by user events decides.
        let replicated = self.replica.status(user_id).await.map_err(|e| Away {
            detail: format!("user replica: {e}"),
        })?;
        tracing::warn!(%user_id, replica = ?replicated, detail = %away.detail, "user service unavailable; using the replica");
        match replicated.as_deref() {
            Some("active") => Ok(None),
            Some("deleted") => Ok(refusal(Standing::NotFound)),
            Some(_) => Ok(refusal(Standing::Inactive)),
            None => Err(Away {
                detail: format!("user service: {}", away.detail),
            }),
        }
    }
}
