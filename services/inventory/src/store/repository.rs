//! [`SeaInventoryRepository`]: the inventory repository over sea-orm (SQLite or PostgreSQL).
//!
//! Stock moves with conditional `UPDATE`s whose `WHERE` states the invariant, checked by rows
//! affected, never read-then-write: on PostgreSQL the `UPDATE` takes the row lock and
//! re-checks its condition against the latest committed row, and SQLite runs on one pooled
//! connection, so transactions are serialised. Either way two callers cannot both take the
//! last unit. Every change commits with its outbox event (StockAdjusted, StockReserved,
//! StockConfirmed or StockReleased); a repeat that changes nothing writes none.

use std::sync::Arc;

use futures::future::BoxFuture;
use polyshop_platform::{
    db::group::{GroupCommit, Grouped},
    events::outbox::{self, OutboxSignal},
};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr,
    EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set, Statement, TransactionTrait, Value,
};

use super::entities::{reservation, reservation_item, stock};
use crate::{
    app::{InventoryRepository, NewReservation, Reserved},
    domain::{
        InventoryError, InventoryEvent, Reservation, ReservationItem, ReservationStatus,
        Settlement, StockLevel, Transition, settle,
    },
    events,
};

/// Creates the reservation unless its id exists; 0 rows affected means a repeat. On
/// PostgreSQL a concurrent insert of the same id waits for the first transaction to finish.
const INSERT_RESERVATION: &str = "INSERT INTO reservations
    (id, status, expires_at, created_at, updated_at, release_reason) VALUES (?, ?, ?, ?, ?, '')
    ON CONFLICT (id) DO NOTHING";
/// Holds `q` units only if that many are available.
const HOLD: &str = "UPDATE stock SET reserved = reserved + ?, updated_at = ?
    WHERE product_id = ? AND on_hand - reserved >= ?";
/// Moves a reservation out of HELD; 0 rows affected means someone else settled it first.
const SETTLE: &str = "UPDATE reservations SET status = ?, release_reason = ?, updated_at = ?
    WHERE id = ? AND status = ?";
/// Puts `q` sold units back on hand (a confirmed reservation returned).
const RESTOCK_ITEM: &str = "UPDATE stock SET on_hand = on_hand + ?, updated_at = ?
    WHERE product_id = ?";
/// Sells `q` held units.
const CONFIRM_ITEM: &str =
    "UPDATE stock SET on_hand = on_hand - ?, reserved = reserved - ?, updated_at = ?
    WHERE product_id = ? AND reserved >= ?";
/// Returns `q` held units.
const RELEASE_ITEM: &str = "UPDATE stock SET reserved = reserved - ?, updated_at = ?
    WHERE product_id = ? AND reserved >= ?";
/// Makes sure a product has a stock row (`product.created` only: SetStock never creates one).
const ENSURE_STOCK: &str = "INSERT INTO stock (product_id, on_hand, reserved, updated_at)
    VALUES (?, 0, 0, ?) ON CONFLICT (product_id) DO NOTHING";
/// Sets on hand only if it stays at or above what is reserved.
const SET_ON_HAND: &str = "UPDATE stock SET on_hand = ?, updated_at = ?
    WHERE product_id = ? AND reserved <= ?";

/// The inventory repository over a sea-orm connection.
#[derive(Debug, Clone)]
pub struct SeaInventoryRepository {
    db: DatabaseConnection,
    signal: OutboxSignal,
    /// Reservations and settlements (every order's two calls here), committed in groups.
    moves: GroupCommit<Moves>,
}

impl SeaInventoryRepository {
    /// A repository over `db` (already migrated, outbox tables included) that wakes the
    /// outbox relay through `signal` after committing events. Starts the task that commits
    /// reservations and settlements, so it must be called inside a Tokio runtime.
    pub fn new(db: DatabaseConnection, signal: OutboxSignal) -> Self {
        let moves = Moves {
            db: db.clone(),
            signal: signal.clone(),
        };
        Self {
            moves: GroupCommit::start(db.clone(), Arc::new(moves)),
            db,
            signal,
        }
    }

    /// Writes `event` to the outbox in `txn`, commits, and wakes the relay. On failure the
    /// transaction rolls back, change and event together.
    async fn commit_with(
        &self,
        txn: DatabaseTransaction,
        event: &InventoryEvent,
    ) -> Result<(), InventoryError> {
        if let Err(e) = outbox::enqueue(&txn, &events::outgoing(event)).await {
            txn.rollback().await.map_err(internal)?;
            return Err(internal(e));
        }
        txn.commit().await.map_err(internal)?;
        self.signal.wake();
        Ok(())
    }
}

/// Gives `product_id` a stock row at 0 in `txn` unless it has one; returns whether it
/// created it. The `product.created` consumer calls this in its transaction.
///
/// # Errors
/// `Internal` for database trouble.
pub async fn ensure_stock(
    txn: &DatabaseTransaction,
    product_id: &str,
    now: i64,
) -> Result<bool, InventoryError> {
    Ok(exec(txn, ENSURE_STOCK, [product_id.into(), now.into()]).await? > 0)
}

fn internal(e: DbErr) -> InventoryError {
    InventoryError::Internal(Box::new(e))
}

fn broken(what: String) -> InventoryError {
    InventoryError::Internal(what.into())
}

/// `sql` (with `?` placeholders) for `conn`'s backend.
fn statement<C: ConnectionTrait>(
    conn: &C,
    sql: &str,
    values: impl IntoIterator<Item = Value>,
) -> Statement {
    let backend: DbBackend = conn.get_database_backend();
    Statement::from_sql_and_values(
        backend,
        polyshop_platform::db::placeholders(backend, sql),
        values,
    )
}

/// Runs `sql` (with `?` placeholders) and returns the rows affected.
async fn exec(
    txn: &DatabaseTransaction,
    sql: &str,
    values: impl IntoIterator<Item = Value>,
) -> Result<u64, InventoryError> {
    Ok(txn
        .execute_raw(statement(txn, sql, values))
        .await
        .map_err(internal)?
        .rows_affected())
}

fn to_stock(row: stock::Model) -> StockLevel {
    StockLevel {
        product_id: row.product_id,
        on_hand: row.on_hand,
        reserved: row.reserved,
        updated_at: Some(row.updated_at),
    }
}

/// A reservation and its items in one read (a row per item; one row with no item columns
/// for a reservation without items).
const LOAD_RESERVATION: &str = "SELECT r.id, r.status, r.expires_at, r.created_at, r.updated_at,
        r.release_reason, i.product_id, i.quantity
    FROM reservations r LEFT JOIN reservation_items i ON i.reservation_id = r.id
    WHERE r.id = ? ORDER BY i.product_id";

/// A reservation with its items, read on `conn` (the pool or an open transaction).
async fn load<C: ConnectionTrait>(
    conn: &C,
    id: &str,
) -> Result<Option<Reservation>, InventoryError> {
    let rows = conn
        .query_all_raw(statement(conn, LOAD_RESERVATION, [id.into()]))
        .await
        .map_err(internal)?;
    let Some(first) = rows.first() else {
        return Ok(None);
    };
    let mut items = Vec::with_capacity(rows.len());
    for row in &rows {
        let product_id: Option<String> = row.try_get("", "product_id").map_err(internal)?;
        let quantity: Option<i32> = row.try_get("", "quantity").map_err(internal)?;
        if let (Some(product_id), Some(quantity)) = (product_id, quantity) {
            items.push(ReservationItem {
                product_id,
                quantity,
            });
        }
    }
    let column = |name: &str| -> Result<String, InventoryError> {
        first.try_get("", name).map_err(internal)
    };
    let number =
        |name: &str| -> Result<i64, InventoryError> { first.try_get("", name).map_err(internal) };
    let status = column("status")?;
    let status = ReservationStatus::parse(&status)
        .ok_or_else(|| broken(format!("reservation {id} has unknown status {status:?}")))?;
    Ok(Some(Reservation {
        id: column("id")?,
        items,
        status,
        expires_at: number("expires_at")?,
        created_at: number("created_at")?,
        updated_at: number("updated_at")?,
        release_reason: column("release_reason")?,
    }))
}

impl InventoryRepository for SeaInventoryRepository {
    async fn stock(&self, product_id: &str) -> Result<Option<StockLevel>, InventoryError> {
        let row = stock::Entity::find_by_id(product_id.to_owned())
            .one(&self.db)
            .await
            .map_err(internal)?;
        Ok(row.map(to_stock))
    }

    async fn set_on_hand(
        &self,
        product_id: &str,
        on_hand: i32,
        now: i64,
    ) -> Result<StockLevel, InventoryError> {
        let txn = self.db.begin().await.map_err(internal)?;
        // Locked (PostgreSQL; SQLite serialises anyway) so the count before is the one this
        // update replaces. No row: the catalog's product.created never arrived for this id.
        let Some(before) = stock::Entity::find_by_id(product_id.to_owned())
            .lock_exclusive()
            .one(&txn)
            .await
            .map_err(internal)?
        else {
            txn.rollback().await.map_err(internal)?;
            return Err(InventoryError::ProductNotFound);
        };
        let updated = exec(
            &txn,
            SET_ON_HAND,
            [
                on_hand.into(),
                now.into(),
                product_id.into(),
                on_hand.into(),
            ],
        )
        .await?;
        if updated == 0 {
            txn.rollback().await.map_err(internal)?;
            return Err(InventoryError::BelowReserved {
                product_id: product_id.to_owned(),
                reserved: before.reserved,
            });
        }
        let row = stock::Entity::find_by_id(product_id.to_owned())
            .one(&txn)
            .await
            .map_err(internal)?
            .ok_or_else(|| broken(format!("stock row of {product_id} vanished")))?;
        let stock = to_stock(row);
        let event = InventoryEvent::StockAdjusted {
            stock: stock.clone(),
            previous_on_hand: before.on_hand,
        };
        self.commit_with(txn, &event).await?;
        Ok(stock)
    }

    async fn reserve(&self, new: NewReservation) -> Result<Reserved, InventoryError> {
        match self.moves.submit(Move::Reserve(new)).await? {
            Moved::Reserved(reserved) => Ok(reserved),
            Moved::Settled(..) | Moved::Raced => {
                Err(broken("a reservation was answered as a settlement".into()))
            }
        }
    }

    async fn settle(
        &self,
        id: &str,
        settlement: &Settlement,
        now: i64,
    ) -> Result<(Reservation, Transition), InventoryError> {
        let settle = Move::Settle {
            id: id.to_owned(),
            settlement: settlement.clone(),
            now,
        };
        match self.moves.submit(settle).await? {
            Moved::Settled(reservation, transition) => Ok((reservation, transition)),
            Moved::Raced => settled_by_another(&self.db, id, settlement).await,
            Moved::Reserved(_) => Err(broken("a settlement was answered as a reservation".into())),
        }
    }

    async fn expired(&self, now: i64, limit: u64) -> Result<Vec<String>, InventoryError> {
        reservation::Entity::find()
            .select_only()
            .column(reservation::Column::Id)
            .filter(reservation::Column::Status.eq(ReservationStatus::Held.as_str()))
            .filter(reservation::Column::ExpiresAt.lte(now))
            .order_by_asc(reservation::Column::ExpiresAt)
            .limit(limit)
            .into_tuple::<String>()
            .all(&self.db)
            .await
            .map_err(internal)
    }
}

/// A write that [`GroupCommit`] may share a transaction with others.
enum Move {
    /// [`InventoryRepository::reserve`].
    Reserve(NewReservation),
    /// [`InventoryRepository::settle`].
    Settle {
        id: String,
        settlement: Settlement,
        now: i64,
    },
}

/// What a [`Move`] answers.
enum Moved {
    Reserved(Reserved),
    Settled(Reservation, Transition),
    /// A concurrent call settled the reservation after it was read; nothing was written.
    Raced,
}

/// Applies [`Move`]s for [`GroupCommit`].
struct Moves {
    db: DatabaseConnection,
    signal: OutboxSignal,
}

impl Grouped for Moves {
    type Write = Move;
    type Output = Moved;
    type Error = InventoryError;
    type Deferred = ();

    fn apply<'a>(
        &'a self,
        txn: &'a DatabaseTransaction,
        write: &'a Move,
        (): &'a mut (),
    ) -> BoxFuture<'a, Result<Moved, InventoryError>> {
        Box::pin(apply(txn, write))
    }

    fn db(&self) -> &DatabaseConnection {
        &self.db
    }

    fn db_error(e: DbErr) -> InventoryError {
        internal(e)
    }

    fn committed(&self) {
        self.signal.wake();
    }

    fn stopped() -> InventoryError {
        broken("the inventory's write queue has stopped".into())
    }
}

/// Applies `write` in `txn` with its outbox event.
async fn apply(txn: &DatabaseTransaction, write: &Move) -> Result<Moved, InventoryError> {
    match write {
        Move::Reserve(new) => Ok(Moved::Reserved(reserve_in(txn, new).await?)),
        Move::Settle {
            id,
            settlement,
            now,
        } => Ok(match settle_in(txn, id, settlement, *now).await? {
            Some((reservation, transition)) => Moved::Settled(reservation, transition),
            None => Moved::Raced,
        }),
    }
}

/// Writes `event` to the outbox in `txn`.
async fn enqueue(txn: &DatabaseTransaction, event: &InventoryEvent) -> Result<(), InventoryError> {
    outbox::enqueue(txn, &events::outgoing(event))
        .await
        .map_err(internal)
}

async fn reserve_in(
    txn: &DatabaseTransaction,
    new: &NewReservation,
) -> Result<Reserved, InventoryError> {
    let status = ReservationStatus::Held.as_str();
    let values = [
        new.id.as_str().into(),
        status.into(),
        new.expires_at.into(),
        new.created_at.into(),
        new.created_at.into(),
    ];
    if exec(txn, INSERT_RESERVATION, values).await? == 0 {
        let stored = load(txn, &new.id).await?.ok_or_else(|| {
            broken(format!(
                "reservation {} conflicts but cannot be read",
                new.id
            ))
        })?;
        return Ok(Reserved::Existing(stored));
    }
    let mut short = Vec::new();
    for item in &new.items {
        let q = item.quantity;
        let values = [
            q.into(),
            new.created_at.into(),
            item.product_id.as_str().into(),
            q.into(),
        ];
        if exec(txn, HOLD, values).await? == 0 {
            short.push(item.product_id.clone());
        }
    }
    if !short.is_empty() {
        // Nothing of it stays (the caller rolls back): neither the holds taken nor the
        // reservation row.
        return Err(InventoryError::InsufficientStock(short));
    }
    let rows = new.items.iter().map(|item| reservation_item::ActiveModel {
        reservation_id: Set(new.id.clone()),
        product_id: Set(item.product_id.clone()),
        quantity: Set(item.quantity),
    });
    reservation_item::Entity::insert_many(rows)
        .exec_without_returning(txn)
        .await
        .map_err(internal)?;
    let reservation = Reservation {
        id: new.id.clone(),
        items: new.items.clone(),
        status: ReservationStatus::Held,
        expires_at: new.expires_at,
        created_at: new.created_at,
        updated_at: new.created_at,
        release_reason: String::new(),
    };
    enqueue(txn, &InventoryEvent::StockReserved(reservation.clone())).await?;
    Ok(Reserved::New(reservation))
}

/// Settles reservation `id` in `txn`; `None`, having written nothing, when a concurrent call
/// settled it after it was read here (the caller then asks [`settled_by_another`]).
async fn settle_in(
    txn: &DatabaseTransaction,
    id: &str,
    settlement: &Settlement,
    now: i64,
) -> Result<Option<(Reservation, Transition)>, InventoryError> {
    let current = load(txn, id)
        .await?
        .ok_or(InventoryError::ReservationNotFound)?;
    if settle(current.status, settlement)? == Transition::AlreadyDone {
        return Ok(Some((current, Transition::AlreadyDone)));
    }
    let target = settlement.target();
    let reason = match settlement {
        Settlement::Confirm => String::new(),
        Settlement::Release { reason } | Settlement::Return { reason } => reason.clone(),
    };
    let values = [
        target.as_str().into(),
        reason.as_str().into(),
        now.into(),
        id.into(),
        current.status.as_str().into(),
    ];
    if exec(txn, SETTLE, values).await? == 0 {
        // Settled by a concurrent call after we read it (the sweeper racing a confirm).
        return Ok(None);
    }
    for item in &current.items {
        let (q, product) = (item.quantity, item.product_id.as_str());
        let moved = match settlement {
            Settlement::Confirm => {
                exec(
                    txn,
                    CONFIRM_ITEM,
                    [q.into(), q.into(), now.into(), product.into(), q.into()],
                )
                .await?
            }
            Settlement::Release { .. } | Settlement::Return { .. }
                if current.status == ReservationStatus::Confirmed =>
            {
                exec(txn, RESTOCK_ITEM, [q.into(), now.into(), product.into()]).await?
            }
            Settlement::Release { .. } | Settlement::Return { .. } => {
                exec(
                    txn,
                    RELEASE_ITEM,
                    [q.into(), now.into(), product.into(), q.into()],
                )
                .await?
            }
        };
        if moved == 0 {
            return Err(broken(format!(
                "stock of {product} holds fewer units than reservation {id}"
            )));
        }
    }
    let settled = Reservation {
        status: target,
        release_reason: reason,
        updated_at: now,
        ..current
    };
    let event = InventoryEvent::settled(settlement, settled.clone());
    enqueue(txn, &event).await?;
    Ok(Some((settled, Transition::Apply)))
}

/// After a settlement lost a race: the answer as if this call came second, from the committed
/// state.
async fn settled_by_another(
    db: &DatabaseConnection,
    id: &str,
    settlement: &Settlement,
) -> Result<(Reservation, Transition), InventoryError> {
    let latest = load(db, id)
        .await?
        .ok_or(InventoryError::ReservationNotFound)?;
    match settle(latest.status, settlement)? {
        Transition::AlreadyDone => Ok((latest, Transition::AlreadyDone)),
        Transition::Apply => Err(broken(format!(
            "reservation {id} is held but cannot be settled"
        ))),
    }
}
