//! The orders read model (CQRS query side): one row per order, maintained by the projection
//! from the order stream and rebuildable from the event store.

use prost::Message;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr};

use super::{all, exec, one};
use crate::{
    codec,
    domain::{Order, OrderEvent, OrderStatus},
};

/// Filters of ListOrders.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    /// Only this user's orders.
    pub user_id: Option<String>,
    /// Only this status.
    pub status: Option<OrderStatus>,
    /// Keyset: order ids below this one.
    pub before: Option<String>,
    /// Page size.
    pub limit: u64,
}

/// What the projection did with an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Projected {
    /// Applied.
    Applied,
    /// The order's creation has not been projected yet: retry later.
    MissingOrder,
}

/// The `order_view` table.
#[derive(Debug, Clone)]
pub struct ReadModel {
    db: DatabaseConnection,
}

fn decode_row(row: &sea_orm::QueryResult) -> Result<Order, DbErr> {
    let payload: Vec<u8> = row.try_get("", "payload")?;
    let pb = polyshop::order::v1::Order::decode(payload.as_slice())
        .map_err(|e| DbErr::Custom(e.to_string()))?;
    Ok(codec::order_in(&pb))
}

impl ReadModel {
    /// The read model in `db`.
    pub fn new(db: DatabaseConnection) -> Self {
        Self { db }
    }

    /// Applies one order event (recorded at `at`) to the view, inside `conn`.
    ///
    /// # Errors
    /// Storage errors.
    pub async fn project<C: ConnectionTrait>(
        conn: &C,
        order_id: &str,
        event: &OrderEvent,
        at: i64,
    ) -> Result<Projected, DbErr> {
        if matches!(event, OrderEvent::Created(_)) {
            // A creation needs no read: the insert keeps a row a redelivery finds there.
            if let Some(order) = Order::replay(None, &[(event.clone(), at)]) {
                Self::write(conn, &order, false).await?;
            }
            return Ok(Projected::Applied);
        }
        let current = match one(
            conn,
            "SELECT payload FROM order_view WHERE order_id = ?",
            vec![order_id.into()],
        )
        .await?
        {
            Some(row) => Some(decode_row(&row)?),
            None => None,
        };
        if current.is_none() {
            return Ok(Projected::MissingOrder);
        }
        let Some(order) = Order::replay(current.clone(), &[(event.clone(), at)]) else {
            return Ok(Projected::MissingOrder);
        };
        Self::write(conn, &order, true).await?;
        Ok(Projected::Applied)
    }

    async fn write<C: ConnectionTrait>(conn: &C, order: &Order, exists: bool) -> Result<(), DbErr> {
        let payload = codec::order(order).encode_to_vec();
        if exists {
            exec(
                conn,
                "UPDATE order_view SET status = ?, version = ?, payload = ?, updated_at = ? WHERE order_id = ?",
                vec![
                    order.status.as_str().into(),
                    order.version.into(),
                    payload.into(),
                    order.updated_at.into(),
                    order.id.clone().into(),
                ],
            )
            .await?;
        } else {
            exec(
                conn,
                "INSERT INTO order_view (order_id, user_id, status, version, payload, updated_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (order_id) DO NOTHING",
                vec![
                    order.id.clone().into(),
                    order.user_id.clone().into(),
                    order.status.as_str().into(),
                    order.version.into(),
                    payload.into(),
                    order.updated_at.into(),
                ],
            )
            .await?;
        }
        Ok(())
    }

    /// Replaces the whole view with `orders` (a rebuild from history).
    ///
    /// # Errors
    /// Storage errors; the transaction rolls back and the old view stays.
    pub async fn replace_all<C: ConnectionTrait>(conn: &C, orders: &[Order]) -> Result<(), DbErr> {
        exec(conn, "DELETE FROM order_view", vec![]).await?;
        for order in orders {
            Self::write(conn, order, false).await?;
        }
        Ok(())
    }

    /// One page, newest first.
    ///
    /// # Errors
    /// Storage errors.
    pub async fn list(&self, filter: &ListFilter) -> Result<Vec<Order>, DbErr> {
        let mut sql = String::from("SELECT payload FROM order_view WHERE 1 = 1");
        let mut values = Vec::new();
        if let Some(user) = &filter.user_id {
            sql.push_str(" AND user_id = ?");
            values.push(user.clone().into());
        }
        if let Some(status) = filter.status {
            sql.push_str(" AND status = ?");
            values.push(status.as_str().into());
        }
        if let Some(before) = &filter.before {
            sql.push_str(" AND order_id < ?");
            values.push(before.clone().into());
        }
        sql.push_str(&format!(" ORDER BY order_id DESC LIMIT {}", filter.limit));
        all(&self.db, &sql, values)
            .await?
            .iter()
            .map(decode_row)
            .collect()
    }
}
