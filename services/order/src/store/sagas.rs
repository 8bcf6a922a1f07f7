//! Saga state, persisted after every step that needs it so a restarted process resumes where
//! it stopped (see `domain::saga` for which steps write).

use sea_orm::{ConnectionTrait, DatabaseConnection, QueryResult, Value};

use super::{all, exec, one};
use crate::{
    app::ports::{FIRST_EPOCH, Fence},
    domain::{
        OrderError, Rejection,
        saga::{Saga, Step},
    },
};

/// The result of storing a new saga under its idempotency key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// This call owns the new saga for this order id.
    New(String),
    /// An earlier call with the same key owns it.
    Existing(String),
}

/// The progress columns, in the order [`progress`] gives their values.
const PROGRESS: &str = "step, reservation_id, payment_id, payment_uncertain, reason, detail, \
                        attempts, failing_since, next_attempt_at, stuck";

/// The values of the [`PROGRESS`] columns.
fn progress(saga: &Saga) -> Vec<Value> {
    vec![
        saga.step.as_str().into(),
        saga.reservation_id.clone().into(),
        saga.payment_id.clone().into(),
        saga.payment_uncertain.into(),
        saga.reason.map(|r| r.as_str().to_owned()).into(),
        saga.detail.clone().into(),
        i64::from(saga.attempts).into(),
        saga.failing_since.into(),
        saga.next_attempt_at.into(),
        saga.stuck.clone().into(),
    ]
}

/// A saga from a row holding `order_id, user_id, request` and the [`PROGRESS`] columns.
fn from_row(row: &QueryResult) -> Result<Saga, OrderError> {
    let order_id: String = row.try_get("", "order_id")?;
    let request: String = row.try_get("", "request")?;
    let reason: Option<String> = row.try_get("", "reason")?;
    let step = Step::parse(&order_id, &row.try_get::<String>("", "step")?)?;
    let reason = match reason.as_deref() {
        None => None,
        Some(name) => Some(
            Rejection::parse(name).ok_or_else(|| OrderError::UnknownSagaState {
                order_id: order_id.clone(),
                state: format!("reason {name}"),
            })?,
        ),
    };
    Ok(Saga {
        user_id: row.try_get("", "user_id")?,
        request: serde_json::from_str(&request).map_err(|e| OrderError::Internal(Box::new(e)))?,
        step,
        reservation_id: row.try_get("", "reservation_id")?,
        payment_id: row.try_get("", "payment_id")?,
        payment_uncertain: row.try_get("", "payment_uncertain")?,
        reason,
        detail: row.try_get("", "detail")?,
        attempts: u32::try_from(row.try_get::<i64>("", "attempts")?).unwrap_or(u32::MAX),
        failing_since: row.try_get("", "failing_since")?,
        next_attempt_at: row.try_get("", "next_attempt_at")?,
        stuck: row.try_get("", "stuck")?,
        order_id,
    })
}

/// `Ok` when a fenced statement touched the saga's row, `LeaseLost` when the epoch moved on.
fn fenced(rows: u64, fence: &Fence) -> Result<(), OrderError> {
    if rows == 0 {
        return Err(OrderError::LeaseLost {
            order_id: fence.order_id.clone(),
        });
    }
    Ok(())
}

/// A saga flagged for reconciliation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stuck {
    /// The order.
    pub order_id: String,
    /// The customer.
    pub user_id: String,
    /// The step it keeps failing at.
    pub step: String,
    /// Why.
    pub why: String,
    /// Epoch ms of its last write.
    pub updated_at: i64,
}

/// The order `user_id` placed under idempotency `key`, on `conn`.
async fn order_under<C: ConnectionTrait>(
    conn: &C,
    user_id: &str,
    key: &str,
) -> Result<Option<String>, OrderError> {
    let row = one(
        conn,
        "SELECT order_id FROM sagas WHERE user_id = ? AND idempotency_key = ?",
        vec![user_id.into(), key.into()],
    )
    .await?;
    Ok(row.map(|r| r.try_get("", "order_id")).transpose()?)
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

    /// Stores a new saga on `conn`, claimed by `owner` until `lease_until` at [`FIRST_EPOCH`],
    /// unless its `(user, key)` is taken, in which case it returns the order an earlier call
    /// placed under that key.
    ///
    /// # Errors
    /// `Internal` for storage errors.
    pub async fn insert<C: ConnectionTrait>(
        conn: &C,
        saga: &Saga,
        owner: &str,
        lease_until: i64,
    ) -> Result<Claim, OrderError> {
        let json =
            serde_json::to_string(&saga.request).map_err(|e| OrderError::Internal(Box::new(e)))?;
        let now = polyshop_platform::now_millis();
        let key = saga.request.idempotency_key.trim();
        let inserted = exec(
            conn,
            &format!(
                "INSERT INTO sagas (order_id, user_id, idempotency_key, request, {PROGRESS}, created_at, updated_at,
                   owner, lease_until, epoch)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                 ON CONFLICT (user_id, idempotency_key) DO NOTHING"
            ),
            [
                vec![
                    saga.order_id.clone().into(),
                    saga.user_id.clone().into(),
                    key.into(),
                    json.into(),
                ],
                progress(saga),
                vec![
                    now.into(),
                    now.into(),
                    owner.into(),
                    lease_until.into(),
                    FIRST_EPOCH.into(),
                ],
            ]
            .concat(),
        )
        .await?;
        if inserted == 1 {
            return Ok(Claim::New(saga.order_id.clone()));
        }
        let existing = order_under(conn, &saga.user_id, key)
            .await?
            .ok_or(OrderError::Conflict)?;
        Ok(Claim::Existing(existing))
    }

    /// The order placed by `user_id` under idempotency `key`, if any.
    ///
    /// # Errors
    /// `Internal` for storage errors.
    pub async fn placed_under(
        &self,
        user_id: &str,
        key: &str,
    ) -> Result<Option<String>, OrderError> {
        order_under(&self.db, user_id, key.trim()).await
    }

    /// Loads a saga.
    ///
    /// # Errors
    /// `Internal` for storage or decoding errors; `UnknownSagaState` for a state this version
    /// does not know.
    pub async fn get(&self, order_id: &str) -> Result<Option<Saga>, OrderError> {
        one(
            &self.db,
            &format!("SELECT order_id, user_id, request, {PROGRESS} FROM sagas WHERE order_id = ?"),
            vec![order_id.into()],
        )
        .await?
        .as_ref()
        .map(from_row)
        .transpose()
    }

    /// Saves the saga's progress under `fence`, inside `conn` (a transaction when it goes with
    /// events).
    ///
    /// # Errors
    /// `LeaseLost` when the saga was claimed since (its epoch moved on; nothing is written);
    /// `Internal` for storage errors.
    pub async fn save<C: ConnectionTrait>(
        conn: &C,
        saga: &Saga,
        fence: &Fence,
    ) -> Result<(), OrderError> {
        let saved = exec(
            conn,
            "UPDATE sagas SET step = ?, reservation_id = ?, payment_id = ?, payment_uncertain = ?, reason = ?,
             detail = ?, attempts = ?, failing_since = ?, next_attempt_at = ?, stuck = ?, updated_at = ?
             WHERE order_id = ? AND epoch = ?",
            [
                progress(saga),
                vec![
                    polyshop_platform::now_millis().into(),
                    saga.order_id.clone().into(),
                    fence.epoch.into(),
                ],
            ]
            .concat(),
        )
        .await?;
        fenced(saved, fence)
    }

    /// Claims the saga of `order_id` for `owner` until `lease_until` unless another owner
    /// holds it at `now` (an owner's own claim from before a restart is taken back); the claim
    /// bumps the epoch, which fences off the previous holder.
    ///
    /// # Errors
    /// `Internal` for storage errors.
    pub async fn claim(
        &self,
        order_id: &str,
        owner: &str,
        now: i64,
        lease_until: i64,
    ) -> Result<Option<Fence>, OrderError> {
        // One conditional statement, so of two instances claiming at once exactly one matches
        // the row; RETURNING hands back the epoch it set without a second, racing read.
        let row = one(
            &self.db,
            "UPDATE sagas SET owner = ?, lease_until = ?, epoch = epoch + 1
             WHERE order_id = ? AND (owner IS NULL OR lease_until < ? OR owner = ?)
             RETURNING epoch",
            vec![
                owner.into(),
                lease_until.into(),
                order_id.into(),
                now.into(),
                owner.into(),
            ],
        )
        .await?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(Fence {
            order_id: order_id.to_owned(),
            epoch: row.try_get("", "epoch")?,
        }))
    }

    /// Extends `fence`'s claim to `lease_until`.
    ///
    /// # Errors
    /// `LeaseLost` when another instance claimed the saga since; `Internal` for storage errors.
    pub async fn renew(&self, fence: &Fence, lease_until: i64) -> Result<(), OrderError> {
        let renewed = exec(
            &self.db,
            "UPDATE sagas SET lease_until = ? WHERE order_id = ? AND epoch = ?",
            vec![
                lease_until.into(),
                fence.order_id.clone().into(),
                fence.epoch.into(),
            ],
        )
        .await?;
        fenced(renewed, fence)
    }

    /// Gives up `fence`'s claim (nothing happens if another instance holds the saga by now).
    ///
    /// # Errors
    /// `Internal` for storage errors.
    pub async fn release(&self, fence: &Fence) -> Result<(), OrderError> {
        exec(
            &self.db,
            "UPDATE sagas SET owner = NULL, lease_until = 0 WHERE order_id = ? AND epoch = ?",
            vec![fence.order_id.clone().into(), fence.epoch.into()],
        )
        .await?;
        Ok(())
    }

    /// Order ids of unfinished sagas due at `now` (not waiting out a backoff) that no instance
    /// holds, oldest first, at most `limit`.
    ///
    /// # Errors
    /// `Internal` for storage errors.
    pub async fn due(&self, now: i64, limit: u64) -> Result<Vec<String>, OrderError> {
        let rows = all(
            &self.db,
            "SELECT order_id FROM sagas WHERE step <> 'done' AND next_attempt_at <= ?
             AND (owner IS NULL OR lease_until < ?)
             ORDER BY next_attempt_at, created_at LIMIT ?",
            vec![
                now.into(),
                now.into(),
                i64::try_from(limit).unwrap_or(i64::MAX).into(),
            ],
        )
        .await?;
        rows.iter()
            .map(|r| {
                r.try_get::<String>("", "order_id")
                    .map_err(OrderError::from)
            })
            .collect()
    }

    /// Sagas flagged for reconciliation, oldest first.
    ///
    /// # Errors
    /// `Internal` for storage errors.
    pub async fn stuck(&self) -> Result<Vec<Stuck>, OrderError> {
        let rows = all(
            &self.db,
            "SELECT order_id, user_id, step, stuck, updated_at FROM sagas
             WHERE stuck IS NOT NULL ORDER BY created_at",
            vec![],
        )
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Stuck {
                    order_id: r.try_get("", "order_id")?,
                    user_id: r.try_get("", "user_id")?,
                    step: r.try_get("", "step")?,
                    why: r.try_get("", "stuck")?,
                    updated_at: r.try_get("", "updated_at")?,
                })
            })
            .collect()
    }

    /// How many sagas are at each step, every step listed (0 when none).
    ///
    /// # Errors
    /// `Internal` for storage errors.
    pub async fn count_by_step(&self) -> Result<Vec<(String, i64)>, OrderError> {
        let rows = all(
            &self.db,
            "SELECT step, COUNT(*) AS n FROM sagas GROUP BY step",
            vec![],
        )
        .await?;
        let mut counts: Vec<(String, i64)> = Step::ALL
            .iter()
            .map(|s| (s.as_str().to_owned(), 0))
            .collect();
        for row in rows {
            let step: String = row.try_get("", "step")?;
            let n: i64 = row.try_get("", "n")?;
            match counts.iter_mut().find(|(s, _)| *s == step) {
                Some(entry) => entry.1 = n,
                None => counts.push((step, n)),
            }
        }
        Ok(counts)
    }

    /// When the oldest unfinished saga started (epoch ms), if any runs.
    ///
    /// # Errors
    /// `Internal` for storage errors.
    pub async fn oldest_running(&self) -> Result<Option<i64>, OrderError> {
        let rows = all(
            &self.db,
            "SELECT MIN(created_at) AS oldest FROM sagas WHERE step <> 'done'",
            vec![],
        )
        .await?;
        match rows.first() {
            Some(row) => Ok(row.try_get::<Option<i64>>("", "oldest")?),
            None => Ok(None),
        }
    }

    /// Sets `polyshop_sagas{state}` from [`Self::count_by_step`] and
    /// `polyshop_saga_oldest_running_age_seconds` from [`Self::oldest_running`].
    ///
    /// # Errors
    /// `Internal` for storage errors; the gauges keep their last values.
    pub async fn sample_gauge(&self) -> Result<(), OrderError> {
        let oldest = self.oldest_running().await?;
        let age_ms = oldest.map_or(0, |t| {
            polyshop_platform::now_millis().saturating_sub(t).max(0)
        });
        #[allow(clippy::cast_precision_loss)]
        polyshop_platform::metrics::set(
            "polyshop_saga_oldest_running_age_seconds",
            "Age in seconds of the oldest saga not yet done, 0 when none runs (sampled every \
             events.gauge_interval_ms).",
            &[],
            age_ms as f64 / 1000.0,
        );
        for (step, n) in self.count_by_step().await? {
            #[allow(clippy::cast_precision_loss)]
            polyshop_platform::metrics::set(
                "polyshop_sagas",
                "Sagas by state (the step they are at; done when finished), sampled every \
                 events.gauge_interval_ms (5 s by default).",
                &[("state", &step)],
                n as f64,
            );
        }
        Ok(())
    }

    /// Samples the saga gauge now and every `interval` until `shutdown`.
    pub fn spawn_gauge(
        self,
        interval: std::time::Duration,
        shutdown: polyshop_platform::shutdown::Shutdown,
    ) {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = tick.tick() => {
                        if let Err(e) = self.sample_gauge().await {
                            tracing::debug!(error = %e, "cannot sample the saga gauge");
                        }
                    }
                    () = shutdown.clone().wait() => return,
                }
            }
        });
    }
}
