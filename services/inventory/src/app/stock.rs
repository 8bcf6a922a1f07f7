//! Reading and counting stock.

use polyshop_platform::status::Violations;

use super::InventoryRepository;
use crate::domain::{InventoryError, StockLevel, check_id};

/// The stock of a product; all zeros (no update time) for one without a stock row, so a
/// reader never has to tell "unknown" from "out of stock".
///
/// # Errors
/// `Invalid` (`product_id`), `Internal`.
pub async fn get_stock<R: InventoryRepository>(
    repo: &R,
    product_id: &str,
) -> Result<StockLevel, InventoryError> {
    let mut v = Violations::new();
    // A whitespace-only id passes the contract's min_len.
    v.check("product_id", check_id(product_id));
    v.into_result()?;
    Ok(repo
        .stock(product_id)
        .await?
        .unwrap_or_else(|| StockLevel::empty(product_id)))
}

/// Sets the quantity on hand after a stock count. Only products the catalog created are
/// counted: their row comes from `product.created`, so an id without one is refused instead of
/// growing stock for a product nobody can order.
///
/// # Errors
/// `Invalid` (`product_id`; the contract checks `quantity_on_hand`), `ProductNotFound` when
/// the product has no stock row (never created, or its `product.created` has not arrived yet:
/// the caller retries),
/// `BelowReserved` when more units are held by reservations than the new count, `Internal`.
pub async fn set_stock<R: InventoryRepository>(
    repo: &R,
    product_id: &str,
    on_hand: i32,
    now: i64,
) -> Result<StockLevel, InventoryError> {
    let mut v = Violations::new();
    // A whitespace-only id passes the contract; the contract checks quantity_on_hand ≥ 0.
    v.check("product_id", check_id(product_id));
    v.into_result()?;
    repo.set_on_hand(product_id, on_hand, now).await
}
