//! Saga state, persisted after every step so a restarted process resumes where it stopped.

use sea_orm::{ConnectionTrait, DatabaseConnection, Value};

use super::{all, exec, one};
use crate::domain::{OrderError, PlaceOrder, Rejection};

/// Where a saga is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SagaStep {
    /// Check the user and price the items; then the order is created.
    Validate,
    /// Reserve stock.
    Reserve,
    /// Charge the card.
    Charge,
    /// Confirm the reservation; then the order is confirmed.
    Confirm,
    /// Undo what was done (refund, release), then reject the order.
    Compensate,
    /// The order is rejected; refund a charge whose answer was never seen, if it happened.
    VoidPayment,
    /// Finished.
    Done,
}

impl SagaStep {
    fn as_str(self) -> &'static str {
        match self {
            Self::Validate => "validate",
            Self::Reserve => "reserve",
            Self::Charge => "charge",
            Self::Confirm => "confirm",
            Self::Compensate => "compensate",
            Self::VoidPayment => "void_payment",
            Self::Done => "done",
        }
    }

    fn parse(s: &str) -> Self {
        match s {
            "validate" => Self::Validate,
            "reserve" => Self::Reserve,
            "charge" => Self::Charge,
            "confirm" => Self::Confirm,
            "compensate" => Self::Compensate,
            "void_payment" => Self::VoidPayment,
            _ => Self::Done,
        }
    }
}

/// A saga's persisted state.
#[derive(Debug, Clone)]
pub struct Saga {
    /// The order it places.
    pub order_id: String,
    /// The customer.
    pub user_id: String,
    /// The request.
    pub request: PlaceOrder,
    /// Current step.
    pub step: SagaStep,
    /// Reservation, once attempted.
    pub reservation_id: Option<String>,
    /// Payment, once captured.
    pub payment_id: Option<String>,
    /// A charge may have happened without us seeing the answer.
    pub payment_uncertain: bool,
    /// Why it is being compensated.
    pub reason: Option<Rejection>,
    /// Detail of that.
    pub detail: String,
}

impl Saga {
    /// A new order's saga: at the first step, nothing done.
    pub fn claimed(order_id: &str, user_id: &str, request: PlaceOrder) -> Self {
        Self {
            order_id: order_id.to_owned(),
            user_id: user_id.to_owned(),
            request,
            step: SagaStep::Validate,
            reservation_id: None,
            payment_id: None,
            payment_uncertain: false,
            reason: None,
            detail: String::new(),
        }
    }
}

/// The result of storing a new saga under its idempotency key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// This call owns the new saga for this order id.
    New(String),
    /// An earlier call with the same key owns it.
    Existing(String),
}

/// The progress columns' values: step, reservation_id, payment_id, payment_uncertain, reason,
/// detail.
fn progress(saga: &Saga) -> Vec<Value> {
    vec![
        saga.step.as_str().into(),
        saga.reservation_id.clone().into(),
        saga.payment_id.clone().into(),
        saga.payment_uncertain.into(),
        saga.reason.map(|r| r.as_str().to_owned()).into(),
        saga.detail.clone().into(),
    ]
}

/// Saga rows.
#[derive(Debug, Clone)]
pub struct SagaStore {
    db: DatabaseConnection,
}

impl SagaStore {
    /// Sagas in `db`.
    pub fn new(db: DatabaseConnection) -> Self {
        Self { db }
    }

    /// Stores a new saga on `conn` unless its `(user, key)` is taken, in which case it returns
    /// the order an earlier call placed under that key.
    ///
    /// # Errors
    /// `Internal` for storage errors.
    pub async fn insert<C: ConnectionTrait>(conn: &C, saga: &Saga) -> Result<Claim, OrderError> {
        let json =
            serde_json::to_string(&saga.request).map_err(|e| OrderError::Internal(Box::new(e)))?;
        let now = polyshop_platform::now_millis();
        let key = saga.request.idempotency_key.trim();
        let inserted = exec(
            conn,
            "INSERT INTO sagas (order_id, user_id, idempotency_key, request, step, reservation_id,
                                payment_id, payment_uncertain, reason, detail, created_at, updated_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (user_id, idempotency_key) DO NOTHING",
            [
                vec![
                    saga.order_id.clone().into(),
                    saga.user_id.clone().into(),
                    key.into(),
                    json.into(),
                ],
                progress(saga),
                vec![now.into(), now.into()],
            ]
            .concat(),
        )
        .await?;
        if inserted == 1 {
            return Ok(Claim::New(saga.order_id.clone()));
        }
        let row = one(
            conn,
            "SELECT order_id FROM sagas WHERE user_id = ? AND idempotency_key = ?",
            vec![saga.user_id.clone().into(), key.into()],
        )
        .await?
        .ok_or(OrderError::Conflict)?;
        Ok(Claim::Existing(row.try_get("", "order_id")?))
    }

    /// Loads a saga.
    ///
    /// # Errors
    /// `Internal` for storage or decoding errors.
    pub async fn get(&self, order_id: &str) -> Result<Option<Saga>, OrderError> {
        let Some(row) = one(
            &self.db,
            "SELECT order_id, user_id, request, step, reservation_id, payment_id, payment_uncertain, reason, detail
             FROM sagas WHERE order_id = ?",
            vec![order_id.into()],
        )
        .await?
        else {
            return Ok(None);
        };
        let request: String = row.try_get("", "request")?;
        let reason: Option<String> = row.try_get("", "reason")?;
        Ok(Some(Saga {
            order_id: row.try_get("", "order_id")?,
            user_id: row.try_get("", "user_id")?,
            request: serde_json::from_str(&request)
                .map_err(|e| OrderError::Internal(Box::new(e)))?,
            step: SagaStep::parse(&row.try_get::<String>("", "step")?),
            reservation_id: row.try_get("", "reservation_id")?,
            payment_id: row.try_get("", "payment_id")?,
            payment_uncertain: row.try_get("", "payment_uncertain")?,
            reason: reason.as_deref().and_then(Rejection::parse),
            detail: row.try_get("", "detail")?,
        }))
    }

    /// Saves the saga's progress, inside `conn` (a transaction when it goes with events).
    ///
    /// # Errors
    /// `Internal` for storage errors.
    pub async fn save<C: ConnectionTrait>(conn: &C, saga: &Saga) -> Result<(), OrderError> {
        exec(
            conn,
            "UPDATE sagas SET step = ?, reservation_id = ?, payment_id = ?, payment_uncertain = ?, reason = ?,
             detail = ?, updated_at = ? WHERE order_id = ?",
            [
                progress(saga),
                vec![
                    polyshop_platform::now_millis().into(),
                    saga.order_id.clone().into(),
                ],
            ]
            .concat(),
        )
        .await?;
        Ok(())
    }

    /// Order ids of sagas that have not finished.
    ///
    /// # Errors
    /// `Internal` for storage errors.
    pub async fn unfinished(&self) -> Result<Vec<String>, OrderError> {
        let rows = all(
            &self.db,
            "SELECT order_id FROM sagas WHERE step <> 'done' ORDER BY created_at",
            vec![],
        )
        .await?;
        Ok(rows
            .into_iter()
            .filter_map(|r| r.try_get::<String>("", "order_id").ok())
            .collect())
    }
}
