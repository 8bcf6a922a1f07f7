//! GetProduct and BatchGetProducts: reads by id, inactive products included (orders still
//! need to see what they bought).

use std::collections::{BTreeSet, HashMap};

use polyshop_platform::status::Violations;

use super::CatalogRepository;
use crate::domain::{CatalogError, Product, check_product_ids};

/// Reads one product, active or not.
///
/// # Errors
/// `NotFound`, `Internal`.
pub async fn get_product<R: CatalogRepository>(
    repo: &R,
    id: &str,
) -> Result<Product, CatalogError> {
    repo.find(id).await?.ok_or(CatalogError::NotFound)
}

/// The answer to a batch read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Batch {
    /// The products found, in request order.
    pub products: Vec<Product>,
    /// The requested ids that have no product, in request order.
    pub not_found_ids: Vec<String>,
}

/// Reads up to 100 products. Every request position is answered, so an id asked for twice
/// appears twice (in `products` or in `not_found_ids`).
///
/// # Errors
/// `Invalid` for a blank id (`product_ids[3]`; the contract refuses more than 100 ids and
/// empty ones), `Internal`.
pub async fn batch_get_products<R: CatalogRepository>(
    repo: &R,
    ids: Vec<String>,
) -> Result<Batch, CatalogError> {
    let mut v = Violations::new();
    check_product_ids(&ids, &mut v);
    v.into_result()?;
    if ids.is_empty() {
        return Ok(Batch::default());
    }
    let unique: Vec<String> = ids
        .iter()
        .cloned()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let found = repo.find_many(&unique).await?;
    let by_id: HashMap<&str, &Product> = found.iter().map(|p| (p.id.as_str(), p)).collect();
    let mut batch = Batch::default();
    for id in ids {
        match by_id.get(id.as_str()) {
            Some(product) => batch.products.push((*product).clone()),
            None => batch.not_found_ids.push(id),
        }
    }
    Ok(batch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        app::{create_product, memory::MemoryRepository, update_product},
        domain::{Money, ProductChanges, ProductDraft},
    };

    async fn add(repo: &MemoryRepository, name: &str) -> Product {
        let draft = ProductDraft {
            request_id: String::new(),
            name: name.into(),
            description: String::new(),
            category: "kitchen".into(),
            price: Some(Money {
                amount_minor: 100,
                currency_code: "USD".into(),
            }),
            other_prices: Vec::new(),
            active: true,
        };
        create_product(repo, draft).await.expect("create").product
    }

    #[tokio::test]
    async fn a_missing_product_is_not_found() {
        let repo = MemoryRepository::default();
        let err = get_product(&repo, "nope").await.unwrap_err();
        assert!(matches!(err, CatalogError::NotFound), "{err:?}");
    }

    #[tokio::test]
    async fn a_batch_answers_in_request_order_with_duplicates_and_inactive_products() {
        let repo = MemoryRepository::default();
        let a = add(&repo, "A").await;
        let b = add(&repo, "B").await;
        let inactive = ProductChanges {
            active: Some(false),
            ..ProductChanges::default()
        };
        let b = update_product(&repo, &b.id, inactive)
            .await
            .expect("deactivate");
        let ids = vec![
            b.id.clone(),
            "missing".into(),
            a.id.clone(),
            b.id.clone(),
            "missing".into(),
        ];
        let batch = batch_get_products(&repo, ids).await.expect("batch");
        let names: Vec<_> = batch.products.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["B", "A", "B"]);
        assert_eq!(batch.not_found_ids, ["missing", "missing"]);
    }

    #[tokio::test]
    async fn an_empty_batch_is_answered_without_reading() {
        let repo = MemoryRepository::default();
        assert_eq!(
            batch_get_products(&repo, Vec::new()).await.expect("batch"),
            Batch::default()
        );
    }

    #[tokio::test]
    async fn a_batch_with_an_empty_id_names_its_position() {
        let repo = MemoryRepository::default();
        let err = batch_get_products(&repo, vec!["a".into(), String::new()])
            .await
            .unwrap_err();
        let CatalogError::Invalid(v) = err else {
            panic!("expected Invalid, got {err:?}")
        };
        assert_eq!(
            v.iter().map(|(f, _)| f.as_str()).collect::<Vec<_>>(),
            ["product_ids[1]"]
        );
    }
}
