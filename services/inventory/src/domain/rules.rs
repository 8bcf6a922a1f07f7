//! Field rules the contract cannot state (it is checked on every request before the
//! handler), and the reservation state machine.

use std::collections::HashSet;

use polyshop_platform::status::Violations;

use super::{InventoryError, ReservationItem, ReservationStatus, Settlement, Transition};

/// Longest product id and reservation id (characters).
pub const MAX_ID_LEN: usize = 128;
/// The release reason the sweeper records.
pub const HOLD_EXPIRED: &str = "hold expired";
/// The release reason recorded when a caller gives none.
pub const RELEASED_ON_REQUEST: &str = "released on request";

/// An id (product or reservation): required, at most 128 characters, no control characters.
///
/// # Errors
/// What is wrong with it.
pub fn check_id(id: &str) -> Result<(), String> {
    // Whole, because product ids also arrive in the catalog's `product.created` events
    // (no layer checks those) and a whitespace-only id passes the contract's min_len.
    if id.trim().is_empty() {
        return Err("is required".into());
    }
    if id.chars().count() > MAX_ID_LEN {
        return Err(format!("must be at most {MAX_ID_LEN} characters"));
    }
    if id.chars().any(char::is_control) {
        return Err("must not contain control characters".into());
    }
    Ok(())
}

/// Checks the items of a reservation for what the contract cannot state: each product at
/// most once, and not blank. Their count (1–50) and quantities (1–10000) are the contract's.
/// Violations name the item as sent (`items[3].product_id`).
pub fn check_items(items: &[ReservationItem], violations: &mut Violations) {
    let mut seen = HashSet::new();
    for (i, item) in items.iter().enumerate() {
        let field = format!("items[{i}].product_id");
        // Uniqueness within a list is not a field rule; blank ids pass the contract.
        if violations
            .check(&field, check_id(&item.product_id))
            .is_some()
            && !seen.insert(item.product_id.as_str())
        {
            violations.add(field, "appears more than once; list each product once");
        }
    }
}

/// Items in product-id order. Every writer touches stock rows in this order, so two
/// reservations over the same products cannot deadlock on PostgreSQL's row locks.
pub fn in_lock_order(mut items: Vec<ReservationItem>) -> Vec<ReservationItem> {
    items.sort_by(|a, b| a.product_id.cmp(&b.product_id));
    items
}

/// When a hold taken at `now` (epoch ms) expires.
pub fn hold_expiry(now: i64, hold_secs: u64) -> i64 {
    let hold_ms = i64::try_from(hold_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
    now.saturating_add(hold_ms)
}

/// What `settlement` does to a reservation in status `from`: only HELD moves; a repeat of the
/// same settlement is a no-op; the opposite one is refused.
///
/// # Errors
/// `ReservationReleased` when confirming a released one, `ReservationConfirmed` when
/// releasing a confirmed one.
pub fn settle(
    from: ReservationStatus,
    settlement: &Settlement,
) -> Result<Transition, InventoryError> {
    use ReservationStatus::{Confirmed, Held, Released};
    if let (Confirmed, Settlement::Return { .. }) = (from, settlement) {
        return Ok(Transition::Apply);
    }
    match (from, settlement.target()) {
        (Held, _) => Ok(Transition::Apply),
        (Confirmed, Confirmed) | (Released, Released) => Ok(Transition::AlreadyDone),
        (Released, _) => Err(InventoryError::ReservationReleased),
        (Confirmed, _) => Err(InventoryError::ReservationConfirmed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(product_id: &str, quantity: i32) -> ReservationItem {
        ReservationItem {
            product_id: product_id.into(),
            quantity,
        }
    }

    fn fields(items: &[ReservationItem]) -> Vec<String> {
        let mut v = Violations::new();
        check_items(items, &mut v);
        v.iter().map(|(f, _)| f.clone()).collect()
    }

    #[test]
    fn ids_are_required_and_bounded() {
        assert!(check_id("p-1").is_ok());
        assert!(check_id(&"x".repeat(MAX_ID_LEN)).is_ok());
        for bad in ["", "   ", "a\nb", "x".repeat(MAX_ID_LEN + 1).as_str()] {
            assert!(check_id(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn valid_items_pass() {
        assert!(fields(&[item("a", 1), item("b", 10_000)]).is_empty());
    }

    #[test]
    fn item_violations_name_the_offending_item() {
        let items = [item(" ", 1), item("a", 1), item("b", 1), item("a", 1)];
        assert_eq!(
            fields(&items),
            ["items[0].product_id", "items[3].product_id"]
        );
    }

    #[test]
    fn items_are_locked_in_product_order() {
        let sorted = in_lock_order(vec![item("c", 1), item("a", 2), item("b", 3)]);
        let ids: Vec<_> = sorted.iter().map(|i| i.product_id.as_str()).collect();
        assert_eq!(ids, ["a", "b", "c"]);
    }

    #[test]
    fn a_hold_expires_after_the_hold_time() {
        assert_eq!(hold_expiry(1_000, 900), 901_000);
        assert_eq!(hold_expiry(i64::MAX - 1, u64::MAX), i64::MAX);
    }

    #[test]
    fn only_a_held_reservation_is_settled_and_repeats_are_no_ops() {
        use ReservationStatus::{Confirmed, Held, Released};
        let confirm = Settlement::Confirm;
        let release = Settlement::Release {
            reason: HOLD_EXPIRED.into(),
        };
        let cases = [
            (Held, &confirm, Some(Transition::Apply)),
            (Held, &release, Some(Transition::Apply)),
            (Confirmed, &confirm, Some(Transition::AlreadyDone)),
            (Released, &release, Some(Transition::AlreadyDone)),
            (Released, &confirm, None),
            (Confirmed, &release, None),
        ];
        for (from, settlement, expected) in cases {
            assert_eq!(
                settle(from, settlement).ok(),
                expected,
                "{from:?} + {settlement:?}"
            );
        }
    }

    #[test]
    fn returning_stock_works_for_held_and_sold_reservations_but_the_sweeper_never_unsells() {
        use ReservationStatus::{Confirmed, Held, Released};
        let back = Settlement::Return {
            reason: "order cancelled".into(),
        };
        assert_eq!(settle(Held, &back).ok(), Some(Transition::Apply));
        assert_eq!(settle(Confirmed, &back).ok(), Some(Transition::Apply));
        assert_eq!(settle(Released, &back).ok(), Some(Transition::AlreadyDone));
        let sweep = Settlement::Release {
            reason: HOLD_EXPIRED.into(),
        };
        assert!(settle(Confirmed, &sweep).is_err());
    }

    #[test]
    fn confirming_a_released_reservation_says_it_was_released() {
        let err = settle(ReservationStatus::Released, &Settlement::Confirm).unwrap_err();
        assert!(matches!(err, InventoryError::ReservationReleased));
        let release = Settlement::Release {
            reason: String::new(),
        };
        let err = settle(ReservationStatus::Confirmed, &release).unwrap_err();
        assert!(matches!(err, InventoryError::ReservationConfirmed));
    }

    #[test]
    fn statuses_round_trip_through_their_stored_form() {
        for s in [
            ReservationStatus::Held,
            ReservationStatus::Confirmed,
            ReservationStatus::Released,
        ] {
            assert_eq!(ReservationStatus::parse(s.as_str()), Some(s));
        }
        assert_eq!(ReservationStatus::parse("HELD"), None);
    }
}
