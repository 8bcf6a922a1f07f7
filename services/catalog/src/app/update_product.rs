//! UpdateProduct: change only the fields that are set.

use super::CatalogRepository;
use crate::domain::{CatalogError, Product, ProductChanges};

/// Applies the set fields of `changes` to product `id` and bumps its update time (also when
/// nothing is set, so every accepted call is visible in `update_time`).
///
/// # Errors
/// `Invalid` with every field violation, `NotFound`, `Internal`.
pub async fn update_product<R: CatalogRepository>(
    repo: &R,
    id: &str,
    changes: ProductChanges,
) -> Result<Product, CatalogError> {
    let changes = changes.validate()?;
    repo.update(id, changes).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        app::{create_product, memory::MemoryRepository},
        domain::{Money, ProductDraft},
    };

    #[tokio::test]
    async fn only_set_fields_change_and_the_update_time_moves_forward() {
        let repo = MemoryRepository::default();
        let draft = ProductDraft {
            request_id: String::new(),
            name: "Pan".into(),
            description: "Heavy.".into(),
            category: "kitchen".into(),
            price: Some(Money {
                amount_minor: 100,
                currency_code: "USD".into(),
            }),
            other_prices: Vec::new(),
            active: true,
        };
        let before = create_product(&repo, draft).await.expect("create").product;
        let changes = ProductChanges {
            name: Some("  Big pan ".into()),
            ..ProductChanges::default()
        };
        let after = update_product(&repo, &before.id, changes)
            .await
            .expect("update");
        assert_eq!(after.name, "Big pan");
        assert!(after.updated_at > before.updated_at);
        let unchanged = Product {
            name: before.name.clone(),
            updated_at: before.updated_at,
            ..after
        };
        assert_eq!(unchanged, before);
    }

    #[tokio::test]
    async fn invalid_changes_leave_the_product_alone() {
        let repo = MemoryRepository::default();
        let err = update_product(
            &repo,
            "nope",
            ProductChanges {
                name: Some(String::new()),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
        assert!(matches!(err, CatalogError::Invalid(_)), "{err:?}");
        let err = update_product(&repo, "nope", ProductChanges::default())
            .await
            .unwrap_err();
        assert!(matches!(err, CatalogError::NotFound), "{err:?}");
    }
}
