//! ListProducts: active products, newest first, one keyset page at a time.

use polyshop_platform::{paging, status::Violations};

use super::{CatalogRepository, ListFilter};
use crate::domain::{CatalogError, Product};

/// What ListProducts asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListRequest {
    /// 0 for the default, at most [`paging::MAX_PAGE_SIZE`].
    pub page_size: i32,
    /// Empty for the first page, else a previous page's next token.
    pub page_token: String,
    /// Exact category slug, or empty for all.
    pub category: String,
    /// Case-insensitive text to find in name or description, or empty for all.
    pub query: String,
}

/// One page of active products (newest first) and the token of the next, empty on the last.
///
/// # Errors
/// `Invalid` for a bad page size or page token; `Internal`.
pub async fn list_products<R: CatalogRepository>(
    repo: &R,
    request: ListRequest,
) -> Result<(Vec<Product>, String), CatalogError> {
    let category = request.category.trim();
    let query = request.query.trim();
    let mut v = Violations::new();
    // The contract has checked the category slug, the query's length and the page size's
    // range; reading the size (0 is the default) and the token stays here.
    let size = v.check("page_size", paging::page_size(request.page_size));
    // The contract checks only the token's alphabet, not that it decodes to a key.
    let before = v.check("page_token", paging::decode_token(&request.page_token));
    v.into_result()?;
    let size = size.unwrap_or(paging::DEFAULT_PAGE_SIZE);
    let filter = ListFilter {
        category: Some(category.to_owned()).filter(|c| !c.is_empty()),
        query: Some(query.to_owned()).filter(|q| !q.is_empty()),
    };
    // One extra row tells whether another page exists.
    let mut products = repo.list(&filter, before.flatten(), size + 1).await?;
    let next = if products.len() as u64 > size {
        products.truncate(usize::try_from(size).unwrap_or(usize::MAX));
        products
            .last()
            .map(|p| paging::encode_token(&p.id))
            .unwrap_or_default()
    } else {
        String::new()
    };
    Ok((products, next))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        app::{create_product, memory::MemoryRepository},
        domain::{Money, ProductDraft},
    };

    async fn add(repo: &MemoryRepository, name: &str, category: &str, active: bool) -> Product {
        let draft = ProductDraft {
            request_id: String::new(),
            name: name.into(),
            description: String::new(),
            category: category.into(),
            price: Some(Money {
                amount_minor: 100,
                currency_code: "USD".into(),
            }),
            other_prices: Vec::new(),
            active,
        };
        create_product(repo, draft).await.expect("create").product
    }

    fn page(size: i32, token: &str) -> ListRequest {
        ListRequest {
            page_size: size,
            page_token: token.into(),
            ..ListRequest::default()
        }
    }

    #[tokio::test]
    async fn pages_walk_active_products_newest_first_and_the_last_has_no_token() {
        let repo = MemoryRepository::default();
        let mut expected = Vec::new();
        for i in 0..5 {
            expected.push(add(&repo, &format!("p{i}"), "kitchen", true).await.id);
        }
        add(&repo, "hidden", "kitchen", false).await;
        expected.reverse();

        let (first, token) = list_products(&repo, page(2, "")).await.expect("page 1");
        let (second, token) = list_products(&repo, page(2, &token)).await.expect("page 2");
        let (third, token) = list_products(&repo, page(2, &token)).await.expect("page 3");
        assert!(token.is_empty());
        let seen: Vec<_> = first
            .iter()
            .chain(&second)
            .chain(&third)
            .map(|p| p.id.clone())
            .collect();
        assert_eq!(seen, expected);
    }

    #[tokio::test]
    async fn an_exactly_full_last_page_has_no_token() {
        let repo = MemoryRepository::default();
        for i in 0..2 {
            add(&repo, &format!("p{i}"), "kitchen", true).await;
        }
        let (products, token) = list_products(&repo, page(2, "")).await.expect("list");
        assert_eq!((products.len(), token.as_str()), (2, ""));
    }

    #[tokio::test]
    async fn bad_paging_is_all_reported() {
        let repo = MemoryRepository::default();
        let request = ListRequest {
            page_size: -1,
            page_token: "garbage".into(),
            ..ListRequest::default()
        };
        let err = list_products(&repo, request).await.unwrap_err();
        let CatalogError::Invalid(v) = err else {
            panic!("expected Invalid, got {err:?}")
        };
        let fields: Vec<_> = v.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(fields, ["page_size", "page_token"]);
    }

    #[tokio::test]
    async fn blank_filters_mean_no_filter() {
        let repo = MemoryRepository::default();
        add(&repo, "Pan", "kitchen", true).await;
        add(&repo, "Hose", "garden", true).await;
        let request = ListRequest {
            category: "  ".into(),
            query: " ".into(),
            ..page(0, "")
        };
        let (products, _) = list_products(&repo, request).await.expect("list");
        assert_eq!(products.len(), 2);
        let request = ListRequest {
            category: " garden ".into(),
            ..page(0, "")
        };
        let (products, _) = list_products(&repo, request).await.expect("list");
        assert_eq!(
            products.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(),
            ["Hose"]
        );
    }
}
