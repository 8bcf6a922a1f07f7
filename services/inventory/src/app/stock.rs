//! Reading and counting stock.

use polyshop_platform::status::Violations;

use super::InventoryRepository;
use crate::domain::{InventoryError, StockLevel, check_id, check_on_hand};

/// The stock of a product; all zeros for one never stocked (inventory does not know the
/// catalog, so it cannot say "no such product").
///
/// # Errors
/// `Invalid` (`product_id`), `Internal`.
pub async fn get_stock<R: InventoryRepository>(
    repo: &R,
    product_id: &str,
) -> Result<StockLevel, InventoryError> {
    let mut v = Violations::new();
    v.check("product_id", check_id(product_id));
    v.into_result()?;
    Ok(repo
        .stock(product_id)
        .await?
        .unwrap_or_else(|| StockLevel::empty(product_id)))
}

/// Sets the quantity on hand after a stock count, creating the product's row if needed.
///
/// # Errors
/// `Invalid` (`product_id`, `quantity_on_hand`), `BelowReserved` when more units are held by
/// reservations than the new count, `Internal`.
pub async fn set_stock<R: InventoryRepository>(
    repo: &R,
    product_id: &str,
    on_hand: i32,
    now: i64,
) -> Result<StockLevel, InventoryError> {
    let mut v = Violations::new();
    v.check("product_id", check_id(product_id));
    v.check("quantity_on_hand", check_on_hand(on_hand));
    v.into_result()?;
    repo.set_on_hand(product_id, on_hand, now).await
}
