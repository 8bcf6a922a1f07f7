//! Confirming (selling) and releasing (returning) held stock.

use polyshop_platform::status::Violations;

use super::InventoryRepository;
use crate::domain::{InventoryError, RELEASED_ON_REQUEST, Reservation, Settlement, check_id};

fn check_reservation_id(id: &str, v: &mut Violations) {
    // A whitespace-only id passes the contract's min_len.
    v.check("reservation_id", check_id(id));
}

/// Turns a HELD reservation's stock into sold stock. Idempotent: confirming a confirmed
/// reservation returns it unchanged. A HELD reservation past its expiry that the sweeper has
/// not released yet is still confirmed.
///
/// # Errors
/// `Invalid` (`reservation_id`), `ReservationNotFound`, `ReservationReleased`, `Internal`.
pub async fn confirm_reservation<R: InventoryRepository>(
    repo: &R,
    reservation_id: &str,
    now: i64,
) -> Result<Reservation, InventoryError> {
    let mut v = Violations::new();
    check_reservation_id(reservation_id, &mut v);
    v.into_result()?;
    let (reservation, _) = repo
        .settle(reservation_id, &Settlement::Confirm, now)
        .await?;
    Ok(reservation)
}

/// Returns a reservation's stock: held stock becomes available again, and the sold stock of
/// a confirmed reservation goes back on hand (a cancelled order). Idempotent: releasing a
/// released reservation returns it unchanged, with the reason it was first released for.
///
/// # Errors
/// `Invalid` (`reservation_id`), `ReservationNotFound`, `Internal`.
pub async fn release_reservation<R: InventoryRepository>(
    repo: &R,
    reservation_id: &str,
    reason: &str,
    now: i64,
) -> Result<Reservation, InventoryError> {
    let mut v = Violations::new();
    // The contract limits the reason to 500 characters.
    check_reservation_id(reservation_id, &mut v);
    v.into_result()?;
    let reason = match reason.trim() {
        "" => RELEASED_ON_REQUEST.to_owned(),
        given => given.to_owned(),
    };
    let (reservation, _) = repo
        .settle(reservation_id, &Settlement::Return { reason }, now)
        .await?;
    Ok(reservation)
}
