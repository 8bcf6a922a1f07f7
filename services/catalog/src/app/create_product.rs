//! CreateProduct: validate, then insert once per request id.

use super::CatalogRepository;
use crate::domain::{CatalogError, Product, ProductDraft};

/// The outcome of [`create_product`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Created {
    /// The product: new, or the one the request id created first.
    pub product: Product,
    /// Whether the request id had been used before, so nothing was created.
    pub replayed: bool,
}

/// Creates a product. A request id that was used before returns the product it created
/// first, whatever the rest of the request says; that holds for concurrent repeats too.
///
/// # Errors
/// `Invalid` with every field violation, `DuplicateRequest` if a concurrent repeat won and
/// its product cannot be read yet, `Internal`.
pub async fn create_product<R: CatalogRepository>(
    repo: &R,
    draft: ProductDraft,
) -> Result<Created, CatalogError> {
    let new = draft.validate()?;
    let request_id = new.request_id.clone();
    if let Some(first) = first_of(repo, request_id.as_deref()).await? {
        return Ok(Created {
            product: first,
            replayed: true,
        });
    }
    match repo.insert(polyshop_platform::new_id(), new).await {
        Ok(product) => Ok(Created {
            product,
            replayed: false,
        }),
        // A concurrent repeat inserted between our read and our insert: answer with its row.
        Err(CatalogError::DuplicateRequest) => first_of(repo, request_id.as_deref())
            .await?
            .map(|product| Created {
                product,
                replayed: true,
            })
            .ok_or(CatalogError::DuplicateRequest),
        Err(e) => Err(e),
    }
}

async fn first_of<R: CatalogRepository>(
    repo: &R,
    request_id: Option<&str>,
) -> Result<Option<Product>, CatalogError> {
    match request_id {
        Some(request_id) => repo.find_by_request_id(request_id).await,
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        app::memory::MemoryRepository,
        domain::{Money, ProductDraft},
    };

    fn draft(request_id: &str, name: &str) -> ProductDraft {
        ProductDraft {
            request_id: request_id.into(),
            name: name.into(),
            description: String::new(),
            category: "kitchen".into(),
            price: Some(Money {
                amount_minor: 1999,
                currency_code: "EUR".into(),
            }),
            other_prices: Vec::new(),
            active: true,
        }
    }

    #[tokio::test]
    async fn a_repeated_request_id_returns_the_first_product() {
        let repo = MemoryRepository::default();
        let first = create_product(&repo, draft("req-1", "Pan"))
            .await
            .expect("create");
        assert!(!first.replayed);
        let again = create_product(&repo, draft("req-1", "Another name"))
            .await
            .expect("repeat");
        assert!(again.replayed);
        assert_eq!(again.product, first.product);
        assert_eq!(repo.len(), 1);
    }

    #[tokio::test]
    async fn without_a_request_id_every_call_creates_a_product() {
        let repo = MemoryRepository::default();
        let a = create_product(&repo, draft("", "Pan"))
            .await
            .expect("create");
        let b = create_product(&repo, draft("", "Pan"))
            .await
            .expect("create");
        assert_ne!(a.product.id, b.product.id);
        assert_eq!(repo.len(), 2);
    }

    #[tokio::test]
    async fn a_repeat_that_loses_the_insert_race_returns_the_winners_product() {
        let repo = MemoryRepository::default();
        let first = create_product(&repo, draft("req-1", "Pan"))
            .await
            .expect("create");
        // The repeat's first read misses the row, as if the winner committed just after it.
        repo.miss_next_request_id_reads(1);
        let again = create_product(&repo, draft("req-1", "Pan"))
            .await
            .expect("repeat");
        assert!(again.replayed);
        assert_eq!(again.product.id, first.product.id);
        assert_eq!(repo.len(), 1);
    }

    #[tokio::test]
    async fn a_repeat_whose_winner_cannot_be_read_asks_for_a_retry() {
        let repo = MemoryRepository::default();
        create_product(&repo, draft("req-1", "Pan"))
            .await
            .expect("create");
        repo.miss_next_request_id_reads(2);
        let err = create_product(&repo, draft("req-1", "Pan"))
            .await
            .unwrap_err();
        assert!(matches!(err, CatalogError::DuplicateRequest), "{err:?}");
    }

    #[tokio::test]
    async fn invalid_drafts_store_nothing() {
        let repo = MemoryRepository::default();
        let err = create_product(&repo, draft("req-1", "")).await.unwrap_err();
        assert!(matches!(err, CatalogError::Invalid(_)), "{err:?}");
        assert_eq!(repo.len(), 0);
    }
}
