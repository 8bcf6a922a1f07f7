//! Holding stock for an order.

use polyshop_platform::status::Violations;

use super::{InventoryRepository, NewReservation, Reserved};
use crate::domain::{
    InventoryError, ReservationItem, check_id, check_items, hold_expiry, in_lock_order,
};

/// Holds every item for `hold_secs`, or nothing. Idempotent by `reservation_id`: a repeat
/// returns the stored reservation unchanged (even if its items differ; that is logged).
///
/// # Errors
/// `Invalid` with every field violation the contract leaves to the domain (`reservation_id`,
/// `items[i].product_id`), `InsufficientStock` listing the short products, `Internal`.
pub async fn reserve_stock<R: InventoryRepository>(
    repo: &R,
    reservation_id: &str,
    items: Vec<ReservationItem>,
    hold_secs: u64,
    now: i64,
) -> Result<Reserved, InventoryError> {
    let mut v = Violations::new();
    // Blank ids pass the contract, and duplicates are beyond it (see check_items).
    v.check("reservation_id", check_id(reservation_id));
    check_items(&items, &mut v);
    v.into_result()?;
    let items = in_lock_order(items);
    let reserved = repo
        .reserve(NewReservation {
            id: reservation_id.to_owned(),
            items: items.clone(),
            expires_at: hold_expiry(now, hold_secs),
            created_at: now,
        })
        .await?;
    if let Reserved::Existing(stored) = &reserved
        && stored.items != items
    {
        tracing::warn!(
            reservation_id,
            "reservation id reused with different items; answering with the stored reservation"
        );
    }
    Ok(reserved)
}
