//! Proto ↔ domain conversion for the catalog context.

use polyshop::{api::v1 as api, catalog::v1 as pb};
use polyshop_platform::{status::Violations, timestamp};

use crate::{
    app::ListRequest,
    domain::{CatalogError, Money, Product, ProductChanges, ProductDraft},
};

pub fn product(p: Product) -> pb::Product {
    pb::Product {
        product_id: p.id,
        name: p.name,
        description: p.description,
        category: p.category,
        price: Some(money(p.price)),
        active: p.active,
        create_time: Some(timestamp(p.created_at)),
        update_time: Some(timestamp(p.updated_at)),
    }
}

pub fn money(m: Money) -> api::Money {
    api::Money {
        amount_minor: m.amount_minor,
        currency_code: m.currency_code,
    }
}

pub fn money_in(m: api::Money) -> Money {
    Money {
        amount_minor: m.amount_minor,
        currency_code: m.currency_code,
    }
}

pub fn draft(r: pb::CreateProductRequest) -> ProductDraft {
    ProductDraft {
        request_id: r.request_id,
        name: r.name,
        description: r.description,
        category: r.category,
        price: r.price.map(money_in),
        other_prices: Vec::new(),
        active: r.active,
    }
}

pub fn changes(r: pb::UpdateProductRequest) -> ProductChanges {
    ProductChanges {
        name: r.name,
        description: r.description,
        category: r.category,
        // A message field is "set" when present.
        price: r.price.map(money_in),
        other_prices: None,
        active: r.active,
    }
}

pub fn list_request(r: pb::ListProductsRequest) -> ListRequest {
    ListRequest {
        page_size: r.page_size,
        page_token: r.page_token,
        category: r.category,
        query: r.query,
    }
}

/// Get and Update name the product in `product_id`; an empty one is a field violation, not
/// NOT_FOUND.
pub fn product_id(id: &str) -> Result<&str, CatalogError> {
    // The contract's min_len lets a whitespace-only id through.
    if id.trim().is_empty() {
        let mut v = Violations::new();
        v.add("product_id", "is required");
        return Err(CatalogError::Invalid(v));
    }
    Ok(id)
}
