//! Proto ↔ domain conversion for `polyshop.catalog.v2`: a product's `prices` are its default
//! price followed by its prices in further currencies.

use polyshop::catalog::v2 as pb;
use polyshop_platform::{status::Violations, timestamp};

use super::convert::{money, money_in};
use crate::{
    app::ListRequest,
    domain::{CatalogError, Money, Product, ProductChanges, ProductDraft},
};

pub fn product(p: Product) -> pb::Product {
    pb::Product {
        prices: p.prices().cloned().map(money).collect(),
        product_id: p.id,
        name: p.name,
        description: p.description,
        category: p.category,
        active: p.active,
        create_time: Some(timestamp(p.created_at)),
        update_time: Some(timestamp(p.updated_at)),
    }
}

/// The first price is the default, the rest are in further currencies.
fn split(prices: Vec<polyshop::api::v1::Money>) -> (Option<Money>, Vec<Money>) {
    let mut prices = prices.into_iter().map(money_in);
    let default = prices.next();
    (default, prices.collect())
}

pub fn draft(r: pb::CreateProductRequest) -> ProductDraft {
    let (price, other_prices) = split(r.prices);
    ProductDraft {
        request_id: r.request_id,
        name: r.name,
        description: r.description,
        category: r.category,
        price,
        other_prices,
        active: r.active,
    }
}

pub fn changes(r: pb::UpdateProductRequest) -> ProductChanges {
    // A message field is "set" when present; then its prices replace all stored ones.
    let (price, other_prices) = match r.prices {
        Some(list) => {
            let (price, others) = split(list.prices);
            (price, Some(others))
        }
        None => (None, None),
    };
    ProductChanges {
        name: r.name,
        description: r.description,
        category: r.category,
        price,
        other_prices,
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

/// Names the domain's price violations by this version's fields: `price…` is
/// `<list>[0]…` and `other_prices[i]…` is `<list>[i + 1]…`, where `<list>` is `prices` in
/// CreateProduct and `prices.prices` in UpdateProduct.
pub fn price_fields(err: CatalogError, list: &str) -> CatalogError {
    let CatalogError::Invalid(v) = err else {
        return err;
    };
    let mut renamed = Violations::new();
    for (field, description) in v.iter() {
        renamed.add(price_field(field, list), description.clone());
    }
    CatalogError::Invalid(renamed)
}

fn price_field(field: &str, list: &str) -> String {
    if let Some(rest) = field.strip_prefix("price")
        && (rest.is_empty() || rest.starts_with('.'))
    {
        return format!("{list}[0]{rest}");
    }
    if let Some(rest) = field.strip_prefix("other_prices[")
        && let Some((index, rest)) = rest.split_once(']')
        && let Ok(i) = index.parse::<usize>()
    {
        return format!("{list}[{}]{rest}", i + 1);
    }
    field.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn price_violations_are_named_by_the_v2_fields() {
        let cases = [
            ("price", "prices[0]"),
            ("price.amount_minor", "prices[0].amount_minor"),
            ("other_prices[0].currency_code", "prices[1].currency_code"),
            ("other_prices[11]", "prices[12]"),
            ("name", "name"),
            ("prices_extra", "prices_extra"),
        ];
        for (domain, wire) in cases {
            assert_eq!(price_field(domain, "prices"), wire, "{domain}");
        }
        assert_eq!(
            price_field("other_prices[2].amount_minor", "prices.prices"),
            "prices.prices[3].amount_minor"
        );
    }
}
