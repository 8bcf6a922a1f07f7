//! The event store: per-order streams with a version and optimistic concurrency (a write
//! that expected another version fails with `Conflict`), snapshots, and the outbox row of each
//! event in the same transaction.
//!
//! Snapshot policy: when an order reaches a terminal status (REJECTED, CANCELLED, DELIVERED),
//! and every N events as a backstop. Terminal orders are read for ever (history, lists,
//! details) and never written again, so one snapshot serves every later read with no replay;
//! the placement hot path (Created, Confirmed) writes none, and a live order has too few events
//! (at most four before it ends) for a replay to cost anything.

use polyshop_platform::events::{OutgoingEvent, outbox};
use prost::Message;
use sea_orm::{DatabaseConnection, DatabaseTransaction, TransactionTrait, Value};

use super::{all, exec, one};
use crate::{
    codec,
    domain::{Order, OrderError, OrderEvent},
};

/// One stored event.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// Position in the order's stream, from 1.
    pub version: i64,
    /// Event id (also the `Nats-Msg-Id`).
    pub event_id: String,
    /// `created`, `confirmed`, …
    pub kind: String,
    /// The proto event.
    pub payload: Vec<u8>,
    /// Epoch ms.
    pub recorded_at: i64,
}

/// What appends record, waiting to be written together ([`EventStore::prepare`] fills it,
/// [`EventStore::write`] writes it).
#[derive(Debug, Default)]
pub struct Rows {
    events: Vec<Vec<Value>>,
    outbox: Vec<OutgoingEvent>,
    snapshots: Vec<Order>,
}

/// Appends and loads order streams.
#[derive(Debug, Clone)]
pub struct EventStore {
    db: DatabaseConnection,
    snapshot_every: i64,
}

impl EventStore {
    /// A store over `db`, snapshotting every `snapshot_every` events.
    pub fn new(db: DatabaseConnection, snapshot_every: i64) -> Self {
        Self {
            db,
            snapshot_every: snapshot_every.max(1),
        }
    }

    /// The connection, for transactions that span the saga table too.
    pub fn db(&self) -> &DatabaseConnection {
        &self.db
    }

    /// Appends `events` to `order`'s stream inside `txn`, expecting the stream to be at
    /// `order.version` (0 for a new order); returns the new state.
    ///
    /// # Errors
    /// `Conflict` when another writer got there first; `Internal` for storage errors.
    pub async fn append_in(
        &self,
        txn: &DatabaseTransaction,
        current: Option<&Order>,
        events: &[OrderEvent],
    ) -> Result<Order, OrderError> {
        let mut rows = Rows::default();
        let order = self.prepare(current, events, &mut rows)?;
        self.write(txn, rows).await?;
        Ok(order)
    }

    /// The state after `events` (expected at `current`'s version, 0 for a new order), with
    /// the rows that record them added to `rows`; nothing is written until [`EventStore::write`].
    ///
    /// # Errors
    /// `NotFound` for a first event that does not create the order.
    pub fn prepare(
        &self,
        current: Option<&Order>,
        events: &[OrderEvent],
        rows: &mut Rows,
    ) -> Result<Order, OrderError> {
        let now = polyshop_platform::now_millis();
        let mut state = current.cloned();
        for event in events {
            let version = state.as_ref().map_or(0, |s| s.version) + 1;
            let (order_id, user_id) = match (&state, event) {
                (_, OrderEvent::Created(o)) => (o.id.clone(), o.user_id.clone()),
                (Some(s), _) => (s.id.clone(), s.user_id.clone()),
                (None, _) => return Err(OrderError::NotFound),
            };
            let event_id = polyshop_platform::new_id();
            let out = codec::outgoing(&order_id, &user_id, event, &event_id, now);
            rows.events.push(vec![
                order_id.into(),
                version.into(),
                event_id.into(),
                event.kind().into(),
                out.payload.clone().into(),
                now.into(),
            ]);
            rows.outbox.push(out);
            state = Order::replay(state, &[(event.clone(), now)]);
            if let Some(s) = &state
                && (s.version % self.snapshot_every == 0 || s.status.is_terminal())
            {
                rows.snapshots.push(s.clone());
            }
        }
        state.ok_or(OrderError::NotFound)
    }

    /// Writes `rows` inside `txn`: the events and their outbox rows with one statement each.
    ///
    /// # Errors
    /// `Conflict` when an event's version is taken (another writer got there first);
    /// `Internal` for storage errors.
    pub async fn write(&self, txn: &DatabaseTransaction, rows: Rows) -> Result<(), OrderError> {
        if rows.events.is_empty() {
            return Ok(());
        }
        let tuples = vec!["(?, ?, ?, ?, ?, ?)"; rows.events.len()].join(", ");
        let inserted = exec(
            txn,
            &format!(
                "INSERT INTO order_events (order_id, version, event_id, kind, payload, recorded_at)
                 VALUES {tuples}"
            ),
            rows.events.into_iter().flatten().collect(),
        )
        .await;
        match inserted {
            Ok(_) => {}
            Err(e) if polyshop_platform::db::is_unique_violation(&e) => {
                return Err(OrderError::Conflict);
            }
            Err(e) => return Err(e.into()),
        }
        outbox::enqueue_all(txn, &rows.outbox).await?;
        for order in &rows.snapshots {
            self.snapshot(txn, order).await?;
        }
        Ok(())
    }

    /// Appends in a transaction of its own.
    ///
    /// # Errors
    /// As [`EventStore::append_in`].
    pub async fn append(
        &self,
        current: Option<&Order>,
        events: &[OrderEvent],
    ) -> Result<Order, OrderError> {
        let txn = self.db.begin().await?;
        let result = self.append_in(&txn, current, events).await;
        super::finish(txn, result).await
    }

    async fn snapshot(&self, txn: &DatabaseTransaction, order: &Order) -> Result<(), OrderError> {
        let payload = codec::order(order).encode_to_vec();
        let now = polyshop_platform::now_millis();
        let updated = exec(
            txn,
            "UPDATE order_snapshots SET version = ?, payload = ?, taken_at = ? WHERE order_id = ?",
            vec![
                order.version.into(),
                payload.clone().into(),
                now.into(),
                order.id.clone().into(),
            ],
        )
        .await?;
        if updated == 0 {
            exec(
                txn,
                "INSERT INTO order_snapshots (order_id, version, payload, taken_at) VALUES (?, ?, ?, ?)",
                vec![order.id.clone().into(), order.version.into(), payload.into(), now.into()],
            )
            .await?;
        }
        Ok(())
    }

    /// The current state: the latest snapshot plus the events after it.
    ///
    /// # Errors
    /// `Internal` for storage or decoding errors.
    pub async fn load(&self, order_id: &str) -> Result<Option<Order>, OrderError> {
        let snapshot = match one(
            &self.db,
            "SELECT version, payload FROM order_snapshots WHERE order_id = ?",
            vec![order_id.into()],
        )
        .await?
        {
            Some(row) => {
                let payload: Vec<u8> = row.try_get("", "payload")?;
                let pb = polyshop::order::v1::Order::decode(payload.as_slice())
                    .map_err(|e| OrderError::Internal(Box::new(e)))?;
                Some(codec::order_in(&pb))
            }
            None => None,
        };
        let after = snapshot.as_ref().map_or(0, |s| s.version);
        let events = self.events_after(order_id, after).await?;
        let decoded = events
            .iter()
            .map(|r| codec::decode(&r.kind, &r.payload).map(|d| (d.event, r.recorded_at)))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| OrderError::Internal(Box::new(e)))?;
        Ok(Order::replay(snapshot, &decoded))
    }

    /// Every event of an order, oldest first.
    ///
    /// # Errors
    /// `Internal` for storage errors.
    pub async fn history(&self, order_id: &str) -> Result<Vec<Recorded>, OrderError> {
        self.events_after(order_id, 0).await
    }

    async fn events_after(
        &self,
        order_id: &str,
        version: i64,
    ) -> Result<Vec<Recorded>, OrderError> {
        let rows = all(
            &self.db,
            "SELECT version, event_id, kind, payload, recorded_at FROM order_events
             WHERE order_id = ? AND version > ? ORDER BY version",
            vec![order_id.into(), version.into()],
        )
        .await?;
        rows.into_iter()
            .map(|row| {
                Ok(Recorded {
                    version: row.try_get("", "version")?,
                    event_id: row.try_get("", "event_id")?,
                    kind: row.try_get("", "kind")?,
                    payload: row.try_get("", "payload")?,
                    recorded_at: row.try_get("", "recorded_at")?,
                })
            })
            .collect::<Result<Vec<_>, sea_orm::DbErr>>()
            .map_err(OrderError::from)
    }

    /// Ids of every order, oldest first (for rebuilding the read model).
    ///
    /// # Errors
    /// `Internal` for storage errors.
    pub async fn order_ids(&self) -> Result<Vec<String>, OrderError> {
        let rows = all(
            &self.db,
            "SELECT DISTINCT order_id FROM order_events ORDER BY order_id",
            vec![],
        )
        .await?;
        Ok(rows
            .into_iter()
            .filter_map(|r| r.try_get::<String>("", "order_id").ok())
            .collect())
    }
}
