//! Black-box tests of `polyshop.catalog.v2` (a price per currency) served beside version 1 by
//! the same catalog server from the same products: what one version writes, the other reads
//! (version 1 shows the default price), on SQLite and, when configured, PostgreSQL.

use polyshop::{
    api::v1::Money,
    catalog::{
        v1::{self as v1pb, catalog_service_client::CatalogServiceClient as V1Client},
        v2::{self as pb, catalog_service_client::CatalogServiceClient},
    },
};
use polyshop_platform::testing::{self, bearer};
use tonic::{Code, transport::Channel};
use tonic_types::StatusExt;

mod common;

use common::{Running, start};

fn money(amount_minor: i64, currency_code: &str) -> Money {
    Money {
        amount_minor,
        currency_code: currency_code.into(),
    }
}

fn priced(name: &str, prices: Vec<Money>) -> pb::CreateProductRequest {
    pb::CreateProductRequest {
        request_id: String::new(),
        name: name.into(),
        description: String::new(),
        category: "kitchen".into(),
        prices,
        active: true,
    }
}

async fn get_v2(client: &mut CatalogServiceClient<Channel>, id: &str) -> pb::Product {
    client
        .get_product(pb::GetProductRequest {
            product_id: id.into(),
        })
        .await
        .expect("v2 get")
        .into_inner()
        .product
        .expect("product")
}

async fn get_v1(client: &mut V1Client<Channel>, id: &str) -> v1pb::Product {
    client
        .get_product(v1pb::GetProductRequest {
            product_id: id.into(),
        })
        .await
        .expect("v1 get")
        .into_inner()
        .product
        .expect("product")
}

/// Creates through version 2 and reads, lists and updates through both versions.
async fn both_versions_share_the_products(server: &Running) {
    let (mut v2, mut v1) = (server.v2(), server.client());
    let admin = server.admin();
    let kettle = v2
        .create_product(bearer(
            priced(
                "Kettle",
                vec![money(4999, "EUR"), money(5499, "USD"), money(4299, "GBP")],
            ),
            &admin,
        ))
        .await
        .expect("v2 create")
        .into_inner()
        .product
        .expect("product");
    let currencies = |p: &pb::Product| -> Vec<(String, i64)> {
        p.prices
            .iter()
            .map(|m| (m.currency_code.clone(), m.amount_minor))
            .collect()
    };
    let expected = vec![
        ("EUR".to_owned(), 4999),
        ("GBP".to_owned(), 4299),
        ("USD".to_owned(), 5499),
    ];
    assert_eq!(currencies(&kettle), expected, "default first, then by code");
    assert_eq!(get_v2(&mut v2, &kettle.product_id).await, kettle);

    // Version 1 shows what it can: the default price.
    let old = get_v1(&mut v1, &kettle.product_id).await;
    assert_eq!(
        (old.name.as_str(), old.price),
        ("Kettle", Some(money(4999, "EUR")))
    );
    let listed = v1
        .list_products(v1pb::ListProductsRequest::default())
        .await
        .expect("v1 list")
        .into_inner()
        .products;
    assert!(listed.iter().any(|p| p.product_id == kettle.product_id));
    let batch = v2
        .batch_get_products(pb::BatchGetProductsRequest {
            product_ids: vec![kettle.product_id.clone(), "missing".into()],
        })
        .await
        .expect("v2 batch")
        .into_inner();
    assert_eq!((batch.products.len(), batch.not_found_ids.len()), (1, 1));
    assert_eq!(currencies(&batch.products[0]), expected);

    // A version 1 price in a currency the product has replaces the default and drops the
    // other price in that currency: one price per currency.
    v1.update_product(bearer(
        v1pb::UpdateProductRequest {
            product_id: kettle.product_id.clone(),
            price: Some(money(5999, "USD")),
            ..Default::default()
        },
        &admin,
    ))
    .await
    .expect("v1 update");
    let after = get_v2(&mut v2, &kettle.product_id).await;
    assert_eq!(
        currencies(&after),
        [("USD".to_owned(), 5999), ("GBP".to_owned(), 4299)]
    );

    // Version 2 replaces the whole list.
    let updated = v2
        .update_product(bearer(
            pb::UpdateProductRequest {
                product_id: kettle.product_id.clone(),
                prices: Some(pb::PriceList {
                    prices: vec![money(3999, "GBP"), money(4599, "EUR")],
                }),
                ..Default::default()
            },
            &admin,
        ))
        .await
        .expect("v2 update")
        .into_inner()
        .product
        .expect("product");
    assert_eq!(
        currencies(&updated),
        [("GBP".to_owned(), 3999), ("EUR".to_owned(), 4599)]
    );
    let old = get_v1(&mut v1, &kettle.product_id).await;
    assert_eq!(old.price, Some(money(3999, "GBP")));

    // A product version 1 created has one price in version 2.
    let mug = v1
        .create_product(bearer(
            v1pb::CreateProductRequest {
                name: "Mug".into(),
                category: "kitchen".into(),
                price: Some(money(899, "EUR")),
                active: true,
                ..Default::default()
            },
            &admin,
        ))
        .await
        .expect("v1 create")
        .into_inner()
        .product
        .expect("product");
    assert_eq!(
        currencies(&get_v2(&mut v2, &mug.product_id).await),
        [("EUR".to_owned(), 899)]
    );
}

#[tokio::test]
async fn products_created_in_version_2_are_read_by_both_versions() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = start(testing::settings(dir.path())).await;
    both_versions_share_the_products(&server).await;
    server.stop().await;
}

#[tokio::test]
async fn both_versions_share_the_products_on_postgres() {
    let Some(url) = testing::postgres_database("catalog_v2").await else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let mut settings = testing::settings(dir.path());
    settings.catalog.database_url = Some(url.into());
    let server = start(settings).await;
    both_versions_share_the_products(&server).await;
    server.stop().await;
}

#[tokio::test]
async fn version_2_names_bad_prices_by_its_own_fields() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = start(testing::settings(dir.path())).await;
    let mut v2 = server.v2();
    let admin = server.admin();
    let cases = [
        // The contract: at least one price.
        (priced("Pan", vec![]), vec!["prices"]),
        // The domain: a positive amount, one price per currency.
        (
            priced(
                "Pan",
                vec![money(0, "EUR"), money(5, "USD"), money(7, "EUR")],
            ),
            vec!["prices[0].amount_minor", "prices[2].currency_code"],
        ),
    ];
    for (request, fields) in cases {
        let status = v2
            .create_product(bearer(request, &admin))
            .await
            .expect_err("invalid");
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        let details = status.get_error_details();
        let info = details.error_info().expect("ErrorInfo");
        assert_eq!(
            (info.reason.as_str(), info.domain.as_str()),
            ("INVALID_ARGUMENT", "polyshop.catalog")
        );
        let named: Vec<&str> = details
            .bad_request()
            .expect("BadRequest")
            .field_violations
            .iter()
            .map(|f| f.field.as_str())
            .collect();
        assert_eq!(named, fields);
    }
    server.stop().await;
}
