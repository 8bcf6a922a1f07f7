//! Black-box tests of the catalog service through the generated client, against a real server
//! on 127.0.0.1:0 with a fresh SQLite file (and PostgreSQL when configured) and its own
//! nats-server, whose `POLYSHOP_CATALOG` stream the event tests read. Tokens come from a test
//! issuer the server's authenticator trusts.

use std::collections::HashSet;

use polyshop::{
    api::v1::Money,
    catalog::v1::{self as pb, catalog_service_client::CatalogServiceClient},
};
use polyshop_platform::{
    config::Settings,
    db,
    events::outbox,
    testing::{self, NatsServer, bearer, eventually, expect_published, last_event, published},
};
use tonic::{Code, Status, transport::Channel};
use tonic_types::StatusExt;

mod common;

use common::{Running, start, start_with};

const CREATED: &str = "polyshop.catalog.product.created";
const UPDATED: &str = "polyshop.catalog.product.updated";
const PRICE_CHANGED: &str = "polyshop.catalog.product.price_changed";

/// Outbox rows the server has not published yet, read from its database.
async fn pending(settings: &Settings) -> u64 {
    let conn = db::connect(&settings.data_dir, "catalog", &settings.catalog)
        .await
        .expect("connect");
    outbox::pending(&conn).await.expect("pending")
}

fn price(amount_minor: i64, currency_code: &str) -> Option<Money> {
    Some(Money {
        amount_minor,
        currency_code: currency_code.into(),
    })
}

fn product(name: &str, category: &str, description: &str) -> pb::CreateProductRequest {
    pb::CreateProductRequest {
        request_id: String::new(),
        name: name.into(),
        description: description.into(),
        category: category.into(),
        price: price(1999, "EUR"),
        active: true,
    }
}

async fn create(
    client: &mut CatalogServiceClient<Channel>,
    token: &str,
    request: pb::CreateProductRequest,
) -> pb::Product {
    client
        .create_product(bearer(request, token))
        .await
        .expect("create product")
        .into_inner()
        .product
        .expect("product")
}

async fn get(client: &mut CatalogServiceClient<Channel>, id: &str) -> Result<pb::Product, Status> {
    Ok(client
        .get_product(pb::GetProductRequest {
            product_id: id.into(),
        })
        .await?
        .into_inner()
        .product
        .expect("product"))
}

async fn list(
    client: &mut CatalogServiceClient<Channel>,
    request: pb::ListProductsRequest,
) -> Result<pb::ListProductsResponse, Status> {
    Ok(client.list_products(request).await?.into_inner())
}

/// Names of every product a filtered list returns, walking all pages.
async fn names(
    client: &mut CatalogServiceClient<Channel>,
    category: &str,
    query: &str,
) -> Vec<String> {
    let mut names = Vec::new();
    let mut page_token = String::new();
    loop {
        let request = pb::ListProductsRequest {
            page_size: 2,
            page_token,
            category: category.into(),
            query: query.into(),
        };
        let page = list(client, request).await.expect("list");
        names.extend(page.products.into_iter().map(|p| p.name));
        if page.next_page_token.is_empty() {
            return names;
        }
        page_token = page.next_page_token;
    }
}

fn millis(time: &Option<prost_types::Timestamp>) -> i64 {
    let time = time.expect("timestamp");
    time.seconds * 1000 + i64::from(time.nanos / 1_000_000)
}

fn violations(err: &Status) -> Vec<String> {
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    let details = err.get_error_details();
    assert_eq!(
        details.error_info().expect("ErrorInfo").domain,
        "polyshop.catalog"
    );
    details
        .bad_request()
        .expect("BadRequest detail")
        .field_violations
        .iter()
        .map(|v| v.field.clone())
        .collect()
}

#[tokio::test]
async fn admins_create_products_that_anyone_reads_without_a_token() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = start(testing::settings(dir.path())).await;
    let mut client = server.client();

    let mut request = product("  Cast iron pan ", "kitchen", "Heavy, for searing.");
    request.price = price(3999, "USD");
    let created = create(&mut client, &server.admin(), request).await;
    assert_eq!(created.name, "Cast iron pan", "the name is trimmed");
    assert_eq!(created.price, price(3999, "USD"));
    assert!(created.active);
    assert!(created.create_time.is_some() && created.create_time == created.update_time);

    assert_eq!(
        get(&mut client, &created.product_id)
            .await
            .expect("public get"),
        created
    );
    let page = list(&mut client, pb::ListProductsRequest::default())
        .await
        .expect("public list");
    assert_eq!(page.products, std::slice::from_ref(&created));
    assert!(page.next_page_token.is_empty());

    // A customer's token on a public read is fine too.
    let customer = server.tokens.customer("customer-1");
    client
        .get_product(bearer(
            pb::GetProductRequest {
                product_id: created.product_id,
            },
            &customer,
        ))
        .await
        .expect("customer get");
    server.stop().await;
}

#[tokio::test]
async fn customers_may_not_create_or_update_products() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = start(testing::settings(dir.path())).await;
    let mut client = server.client();
    let customer = server.tokens.customer("customer-1");

    let err = client
        .create_product(bearer(product("Pan", "kitchen", ""), &customer))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);

    let pan = create(&mut client, &server.admin(), product("Pan", "kitchen", "")).await;
    let update = pb::UpdateProductRequest {
        product_id: pan.product_id.clone(),
        name: Some("Stolen".into()),
        ..Default::default()
    };
    let err = client
        .update_product(bearer(update, &customer))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    assert_eq!(
        get(&mut client, &pan.product_id).await.expect("get").name,
        "Pan"
    );
    server.stop().await;
}

#[tokio::test]
async fn writing_without_a_token_is_unauthenticated() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = start(testing::settings(dir.path())).await;
    let mut client = server.client();

    let err = client
        .create_product(product("Pan", "kitchen", ""))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    let err = client
        .update_product(pb::UpdateProductRequest {
            product_id: "x".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    let err = client
        .create_product(bearer(product("Pan", "kitchen", ""), "not-a-token"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    assert!(
        list(&mut client, pb::ListProductsRequest::default())
            .await
            .expect("list")
            .products
            .is_empty()
    );
    server.stop().await;
}

#[tokio::test]
async fn bad_input_names_every_offending_field() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = start(testing::settings(dir.path())).await;
    let mut client = server.client();
    let admin = server.admin();

    // Broken contract: the server's layer answers before the handler.
    let bad = pb::CreateProductRequest {
        request_id: "r".repeat(129),
        name: "tab\there".into(),
        description: "d".repeat(5001),
        category: "Kitchen Stuff".into(),
        price: price(0, "usd"),
        active: true,
    };
    let err = client
        .create_product(bearer(bad, &admin))
        .await
        .unwrap_err();
    assert_eq!(
        violations(&err),
        [
            "request_id",
            "name",
            "description",
            "category",
            "price.currency_code"
        ]
    );
    // Within the contract, broken only by the domain's rules (trimmed name, positive price,
    // a currency the shared Money may leave empty).
    let bad = pb::CreateProductRequest {
        name: "   ".into(),
        price: price(0, ""),
        ..product("Pan", "kitchen", "")
    };
    let err = client
        .create_product(bearer(bad, &admin))
        .await
        .unwrap_err();
    assert_eq!(
        violations(&err),
        ["name", "price.amount_minor", "price.currency_code"]
    );

    let no_price = pb::CreateProductRequest {
        price: None,
        ..product("Pan", "kitchen", "")
    };
    let err = client
        .create_product(bearer(no_price, &admin))
        .await
        .unwrap_err();
    assert_eq!(violations(&err), ["price"]);

    let pan = create(&mut client, &admin, product("Pan", "kitchen", "")).await;
    let bad_update = pb::UpdateProductRequest {
        product_id: pan.product_id.clone(),
        name: Some(String::new()),
        category: Some("UPPER".into()),
        price: price(-1, "EURO"),
        ..Default::default()
    };
    let err = client
        .update_product(bearer(bad_update, &admin))
        .await
        .unwrap_err();
    assert_eq!(
        violations(&err),
        [
            "name",
            "category",
            "price.amount_minor",
            "price.currency_code"
        ]
    );
    let domain_only_update = pb::UpdateProductRequest {
        product_id: pan.product_id.clone(),
        name: Some(" ".into()),
        price: price(0, "EUR"),
        ..Default::default()
    };
    let err = client
        .update_product(bearer(domain_only_update, &admin))
        .await
        .unwrap_err();
    assert_eq!(violations(&err), ["name", "price.amount_minor"]);
    assert_eq!(
        get(&mut client, &pan.product_id).await.expect("get"),
        pan,
        "nothing changed"
    );

    let err = client
        .update_product(bearer(pb::UpdateProductRequest::default(), &admin))
        .await
        .unwrap_err();
    assert_eq!(violations(&err), ["product_id"]);

    for blank in ["", " "] {
        let err = get(&mut client, blank).await.unwrap_err();
        assert_eq!(violations(&err), ["product_id"], "{blank:?}");
    }

    let ids = vec!["a".into(), "b".into(), "c".into(), String::new()];
    let err = client
        .batch_get_products(pb::BatchGetProductsRequest { product_ids: ids })
        .await
        .unwrap_err();
    assert_eq!(violations(&err), ["product_ids[3]"]);
    let ids = vec!["a".into(), " ".into()];
    let err = client
        .batch_get_products(pb::BatchGetProductsRequest { product_ids: ids })
        .await
        .unwrap_err();
    assert_eq!(violations(&err), ["product_ids[1]"]);
    let ids = vec!["a".to_owned(); 101];
    let err = client
        .batch_get_products(pb::BatchGetProductsRequest { product_ids: ids })
        .await
        .unwrap_err();
    assert_eq!(violations(&err), ["product_ids"]);

    for page_size in [-1, 101] {
        let err = list(
            &mut client,
            pb::ListProductsRequest {
                page_size,
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
        assert_eq!(violations(&err), ["page_size"], "page_size {page_size}");
    }
    let bad_list = pb::ListProductsRequest {
        page_token: "not a token".into(),
        category: "Not A Slug".into(),
        query: "q".repeat(201),
        ..Default::default()
    };
    let err = list(&mut client, bad_list).await.unwrap_err();
    assert_eq!(violations(&err), ["page_token", "category", "query"]);
    // In the token alphabet, but not a token the service issued.
    let bad_list = pb::ListProductsRequest {
        page_token: "garbage".into(),
        ..Default::default()
    };
    let err = list(&mut client, bad_list).await.unwrap_err();
    assert_eq!(violations(&err), ["page_token"]);
    server.stop().await;
}

/// Sends eight creates with the same fresh `request_id` at once; all must answer with the
/// same product, whichever of them won the insert.
async fn concurrent_repeats_create_one_product(server: &Running, request_id: &str) -> String {
    let mut calls = Vec::new();
    for i in 0..8 {
        let mut client = server.client();
        let request = pb::CreateProductRequest {
            request_id: request_id.into(),
            ..product(&format!("Kettle {i}"), "kitchen", "")
        };
        let admin = server.admin();
        calls.push(tokio::spawn(async move {
            create(&mut client, &admin, request).await
        }));
    }
    let mut ids = HashSet::new();
    for call in calls {
        ids.insert(call.await.expect("task").product_id);
    }
    assert_eq!(
        ids.len(),
        1,
        "one product for request id {request_id}: {ids:?}"
    );
    ids.into_iter().next().expect("an id")
}

#[tokio::test]
async fn repeating_a_request_id_returns_the_product_created_first() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = start(testing::settings(dir.path())).await;
    let mut client = server.client();
    let admin = server.admin();

    let first = create(
        &mut client,
        &admin,
        pb::CreateProductRequest {
            request_id: "req-1".into(),
            ..product("Pan", "kitchen", "")
        },
    )
    .await;
    let repeat = create(
        &mut client,
        &admin,
        pb::CreateProductRequest {
            request_id: "req-1".into(),
            ..product("A different name", "garden", "")
        },
    )
    .await;
    assert_eq!(repeat, first);

    // Concurrent repeats of a fresh request id all get the one product that was created.
    concurrent_repeats_create_one_product(&server, "req-2").await;

    // Without a request id, every call creates.
    create(&mut client, &admin, product("Pan", "kitchen", "")).await;
    let mut all = names(&mut client, "", "").await;
    all.sort();
    assert_eq!(all.len(), 3, "{all:?}");
    assert_eq!(all.iter().filter(|n| *n == "Pan").count(), 2);
    // One ProductCreated per product; the repeats published nothing.
    expect_published(&server.nats, CREATED, 3).await;
    server.stop().await;
}

#[tokio::test]
async fn paging_walks_every_active_product_newest_first_without_duplicates_or_gaps() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = start(testing::settings(dir.path())).await;
    let mut client = server.client();
    let admin = server.admin();

    let mut expected = Vec::new();
    for i in 0..7 {
        expected.push(
            create(
                &mut client,
                &admin,
                product(&format!("Product {i}"), "misc", ""),
            )
            .await
            .product_id,
        );
    }
    let hidden = pb::CreateProductRequest {
        active: false,
        ..product("Hidden", "misc", "")
    };
    create(&mut client, &admin, hidden).await;
    expected.reverse();

    let mut seen = Vec::new();
    let mut pages = 0;
    let mut page_token = String::new();
    loop {
        let page = list(
            &mut client,
            pb::ListProductsRequest {
                page_size: 3,
                page_token,
                ..Default::default()
            },
        )
        .await
        .expect("list");
        assert!(page.products.len() <= 3);
        assert!(page.products.iter().all(|p| p.active));
        seen.extend(page.products.into_iter().map(|p| p.product_id));
        pages += 1;
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    assert_eq!(pages, 3);
    assert_eq!(
        seen, expected,
        "newest first, each active product exactly once"
    );

    // Page size 0 means the default (20), which holds them all.
    let page = list(&mut client, pb::ListProductsRequest::default())
        .await
        .expect("list");
    assert_eq!(page.products.len(), 7);
    assert!(page.next_page_token.is_empty());
    server.stop().await;
}

async fn create_shop(client: &mut CatalogServiceClient<Channel>, admin: &str) {
    for (name, category, description) in [
        ("Chef Knife", "kitchen", "Forged steel."),
        ("Cast Iron Pan", "kitchen", "Great for SEARING steaks."),
        ("Garden Hose", "garden", "Twenty metres."),
        ("100% Cotton Towel", "bath", "Soft."),
        ("Pan_Handle Cover", "kitchen", "Silicone."),
    ] {
        create(client, admin, product(name, category, description)).await;
    }
    let retired = pb::CreateProductRequest {
        active: false,
        ..product("Retired Pan", "kitchen", "")
    };
    create(client, admin, retired).await;
}

#[tokio::test]
async fn lists_filter_by_category_and_by_text_in_name_or_description() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = start(testing::settings(dir.path())).await;
    let mut client = server.client();
    create_shop(&mut client, &server.admin()).await;

    assert_eq!(
        names(&mut client, "kitchen", "").await,
        ["Pan_Handle Cover", "Cast Iron Pan", "Chef Knife"]
    );
    assert_eq!(names(&mut client, "garden", "").await, ["Garden Hose"]);
    assert!(names(&mut client, "toys", "").await.is_empty());
    assert_eq!(names(&mut client, "", "KNIFE").await, ["Chef Knife"]);
    assert_eq!(
        names(&mut client, "", "searing").await,
        ["Cast Iron Pan"],
        "matches the description"
    );
    assert_eq!(
        names(&mut client, "kitchen", "pan").await,
        ["Pan_Handle Cover", "Cast Iron Pan"]
    );
    assert!(names(&mut client, "bath", "pan").await.is_empty());
    // Wildcards are matched literally.
    assert_eq!(names(&mut client, "", "%").await, ["100% Cotton Towel"]);
    assert_eq!(names(&mut client, "", "n_h").await, ["Pan_Handle Cover"]);
    server.stop().await;
}

#[tokio::test]
async fn batch_get_answers_in_request_order_and_reports_missing_ids() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = start(testing::settings(dir.path())).await;
    let mut client = server.client();
    let admin = server.admin();
    let pan = create(&mut client, &admin, product("Pan", "kitchen", "")).await;
    let retired = pb::CreateProductRequest {
        active: false,
        ..product("Retired", "kitchen", "")
    };
    let retired = create(&mut client, &admin, retired).await;

    let ids = vec![
        retired.product_id.clone(),
        "no-such-product".into(),
        pan.product_id.clone(),
        retired.product_id.clone(),
    ];
    let batch = client
        .batch_get_products(pb::BatchGetProductsRequest { product_ids: ids })
        .await
        .expect("batch get")
        .into_inner();
    assert_eq!(
        batch.products,
        [retired.clone(), pan, retired],
        "inactive included, duplicates kept"
    );
    assert_eq!(batch.not_found_ids, ["no-such-product"]);

    let empty = client
        .batch_get_products(pb::BatchGetProductsRequest::default())
        .await
        .expect("empty batch")
        .into_inner();
    assert!(empty.products.is_empty() && empty.not_found_ids.is_empty());
    server.stop().await;
}

#[tokio::test]
async fn getting_a_missing_product_is_not_found() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = start(testing::settings(dir.path())).await;
    let mut client = server.client();
    let err = get(&mut client, "0190a0a0-0000-7000-8000-000000000000")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let details = err.get_error_details();
    let info = details.error_info().expect("ErrorInfo");
    assert_eq!(
        (info.reason.as_str(), info.domain.as_str()),
        ("PRODUCT_NOT_FOUND", "polyshop.catalog")
    );

    let update = pb::UpdateProductRequest {
        product_id: "0190a0a0-0000-7000-8000-000000000000".into(),
        name: Some("Ghost".into()),
        ..Default::default()
    };
    let err = client
        .update_product(bearer(update, &server.admin()))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    server.stop().await;
}

#[tokio::test]
async fn update_changes_only_the_fields_that_are_set() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = start(testing::settings(dir.path())).await;
    let mut client = server.client();
    let admin = server.admin();
    let pan = create(&mut client, &admin, product("Pan", "kitchen", "Heavy.")).await;

    let update = |request: pb::UpdateProductRequest| {
        let mut client = client.clone();
        let admin = admin.clone();
        async move {
            client
                .update_product(bearer(request, &admin))
                .await
                .expect("update")
                .into_inner()
                .product
                .expect("product")
        }
    };
    let renamed = update(pb::UpdateProductRequest {
        product_id: pan.product_id.clone(),
        name: Some(" Big pan ".into()),
        ..Default::default()
    })
    .await;
    assert_eq!(renamed.name, "Big pan");
    assert!(
        millis(&renamed.update_time) > millis(&pan.update_time),
        "update_time moves forward"
    );
    assert_eq!(renamed.create_time, pan.create_time);
    let expected = pb::Product {
        name: "Big pan".into(),
        update_time: renamed.update_time,
        ..pan.clone()
    };
    assert_eq!(renamed, expected, "only the name changed");

    let repriced = update(pb::UpdateProductRequest {
        product_id: pan.product_id.clone(),
        price: price(2500, "USD"),
        description: Some(String::new()),
        ..Default::default()
    })
    .await;
    assert_eq!(repriced.price, price(2500, "USD"));
    assert_eq!(
        (repriced.name.as_str(), repriced.description.as_str()),
        ("Big pan", "")
    );
    assert_eq!(repriced.category, "kitchen");

    let retired = update(pb::UpdateProductRequest {
        product_id: pan.product_id.clone(),
        active: Some(false),
        ..Default::default()
    })
    .await;
    assert!(!retired.active);
    assert!(
        list(&mut client, pb::ListProductsRequest::default())
            .await
            .expect("list")
            .products
            .is_empty()
    );
    assert_eq!(
        get(&mut client, &pan.product_id).await.expect("get"),
        retired,
        "still readable by id"
    );
    server.stop().await;
}

#[tokio::test]
async fn products_survive_a_restart_on_the_same_data_dir() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = start(testing::settings(dir.path())).await;
    let mut client = server.client();
    let request = pb::CreateProductRequest {
        request_id: "req-1".into(),
        ..product("Pan", "kitchen", "")
    };
    let pan = create(&mut client, &server.admin(), request.clone()).await;
    let nats = server.stop().await;

    let server = start_with(testing::settings(dir.path()), nats).await;
    let mut client = server.client();
    assert_eq!(
        get(&mut client, &pan.product_id)
            .await
            .expect("get after restart"),
        pan
    );
    assert_eq!(names(&mut client, "", "").await, ["Pan"]);
    let repeat = create(&mut client, &server.admin(), request).await;
    assert_eq!(
        repeat.product_id, pan.product_id,
        "request ids are remembered across restarts"
    );
    expect_published(&server.nats, CREATED, 1).await;
    server.stop().await;
}

#[tokio::test]
async fn create_get_list_and_update_work_on_postgres() {
    let Some(url) = testing::postgres_database("catalog").await else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let mut settings = testing::settings(dir.path());
    settings.catalog.database_url = Some(url.into());
    let server = start(settings).await;
    let mut client = server.client();
    let admin = server.admin();

    create_shop(&mut client, &admin).await;
    let request = pb::CreateProductRequest {
        request_id: "req-1".into(),
        ..product("Kettle", "kitchen", "")
    };
    let kettle = create(&mut client, &admin, request.clone()).await;
    assert_eq!(
        create(&mut client, &admin, request).await,
        kettle,
        "idempotent on PostgreSQL"
    );
    assert_eq!(
        get(&mut client, &kettle.product_id).await.expect("get"),
        kettle
    );
    // With a pool of connections the losers of the insert race really hit the unique index.
    let winner = concurrent_repeats_create_one_product(&server, "req-2").await;
    let batch = client
        .batch_get_products(pb::BatchGetProductsRequest {
            product_ids: vec![winner, "missing".into()],
        })
        .await
        .expect("batch get")
        .into_inner();
    assert_eq!(
        (batch.products.len(), batch.not_found_ids.as_slice()),
        (1, ["missing".to_owned()].as_slice())
    );

    let kitchen = names(&mut client, "kitchen", "").await;
    assert_eq!(kitchen.len(), 5, "{kitchen:?}");
    assert_eq!(
        kitchen[0].as_str().get(..6),
        Some("Kettle"),
        "the newest first: {kitchen:?}"
    );
    assert_eq!(
        &kitchen[2..],
        ["Pan_Handle Cover", "Cast Iron Pan", "Chef Knife"]
    );
    assert_eq!(names(&mut client, "", "searing").await, ["Cast Iron Pan"]);
    assert_eq!(names(&mut client, "", "%").await, ["100% Cotton Towel"]);

    let update = pb::UpdateProductRequest {
        product_id: kettle.product_id.clone(),
        active: Some(false),
        ..Default::default()
    };
    client
        .update_product(bearer(update, &admin))
        .await
        .expect("update");
    assert_eq!(
        names(&mut client, "kitchen", "").await.len(),
        4,
        "a deactivated product is not listed"
    );
    // Six in the shop, the kettle, and one for the racing repeats; a deactivation.
    expect_published(&server.nats, CREATED, 8).await;
    expect_published(&server.nats, UPDATED, 1).await;
    let deactivated: pb::ProductUpdated = last_event(&server.nats, UPDATED).await;
    assert!(!deactivated.product.expect("product").active);
    assert_eq!(pending(&server.settings).await, 0, "the outbox drained");
    server.stop().await;
}

async fn update(
    server: &Running,
    request: pb::UpdateProductRequest,
) -> Result<pb::Product, Status> {
    Ok(server
        .client()
        .update_product(bearer(request, &server.admin()))
        .await?
        .into_inner()
        .product
        .expect("product"))
}

#[tokio::test]
async fn creating_and_updating_products_publishes_their_events() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = start(testing::settings(dir.path())).await;
    let mut client = server.client();
    let admin = server.admin();
    let nats = &server.nats;

    let request = pb::CreateProductRequest {
        request_id: "req-1".into(),
        ..product("Pan", "kitchen", "Heavy.")
    };
    let pan = create(&mut client, &admin, request.clone()).await;
    expect_published(nats, CREATED, 1).await;
    let created: pb::ProductCreated = last_event(nats, CREATED).await;
    assert_eq!(created.product.as_ref(), Some(&pan));
    assert_eq!(created.occur_time, pan.create_time);

    // A replayed create answers with the product and publishes nothing.
    assert_eq!(create(&mut client, &admin, request).await, pan);
    expect_published(nats, CREATED, 1).await;

    let id = pan.product_id.clone();
    let renamed = update(
        &server,
        pb::UpdateProductRequest {
            product_id: id.clone(),
            name: Some("Big pan".into()),
            ..Default::default()
        },
    )
    .await
    .expect("rename");
    expect_published(nats, UPDATED, 1).await;
    let updated: pb::ProductUpdated = last_event(nats, UPDATED).await;
    assert_eq!(updated.product.as_ref(), Some(&renamed));
    assert_eq!(updated.occur_time, renamed.update_time);
    assert_eq!(
        published(nats, PRICE_CHANGED).await,
        0,
        "the price did not change"
    );

    let repriced = update(
        &server,
        pb::UpdateProductRequest {
            product_id: id.clone(),
            price: price(2500, "USD"),
            ..Default::default()
        },
    )
    .await
    .expect("reprice");
    expect_published(nats, PRICE_CHANGED, 1).await;
    let changed: pb::ProductPriceChanged = last_event(nats, PRICE_CHANGED).await;
    assert_eq!(
        changed,
        pb::ProductPriceChanged {
            product_id: id.clone(),
            previous_price: price(1999, "EUR"),
            price: price(2500, "USD"),
            occur_time: repriced.update_time,
        }
    );
    expect_published(nats, UPDATED, 1).await;

    // Both at once: both events; deactivating is an update too.
    let both = update(
        &server,
        pb::UpdateProductRequest {
            product_id: id.clone(),
            active: Some(false),
            price: price(3000, "USD"),
            ..Default::default()
        },
    )
    .await
    .expect("update both");
    expect_published(nats, UPDATED, 2).await;
    expect_published(nats, PRICE_CHANGED, 2).await;
    let updated: pb::ProductUpdated = last_event(nats, UPDATED).await;
    assert_eq!(updated.product, Some(both.clone()));
    let changed: pb::ProductPriceChanged = last_event(nats, PRICE_CHANGED).await;
    assert_eq!(changed.previous_price, price(2500, "USD"));

    // Setting what is already stored changes nothing an event reports.
    update(
        &server,
        pb::UpdateProductRequest {
            product_id: id.clone(),
            name: Some("Big pan".into()),
            price: price(3000, "USD"),
            ..Default::default()
        },
    )
    .await
    .expect("same values");
    // Rejected and failed updates publish nothing either.
    let invalid = pb::UpdateProductRequest {
        product_id: id.clone(),
        name: Some(String::new()),
        ..Default::default()
    };
    assert_eq!(
        update(&server, invalid).await.unwrap_err().code(),
        Code::InvalidArgument
    );
    let missing = pb::UpdateProductRequest {
        product_id: "0190a0a0-0000-7000-8000-000000000000".into(),
        name: Some("Ghost".into()),
        ..Default::default()
    };
    assert_eq!(
        update(&server, missing).await.unwrap_err().code(),
        Code::NotFound
    );
    expect_published(nats, UPDATED, 2).await;
    expect_published(nats, PRICE_CHANGED, 2).await;
    expect_published(nats, CREATED, 1).await;
    assert_eq!(pending(&server.settings).await, 0);
    server.stop().await;
}

#[tokio::test]
async fn changes_made_while_nats_is_down_are_published_when_it_returns() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut server = start(testing::settings(dir.path())).await;
    let mut client = server.client();
    let admin = server.admin();
    create(&mut client, &admin, product("Before", "kitchen", "")).await;
    expect_published(&server.nats, CREATED, 1).await;

    server.nats.stop();
    let kettle = create(&mut client, &admin, product("Kettle", "kitchen", "")).await;
    update(
        &server,
        pb::UpdateProductRequest {
            product_id: kettle.product_id.clone(),
            price: price(4200, "EUR"),
            ..Default::default()
        },
    )
    .await
    .expect("reprice while NATS is down");
    assert_eq!(
        pending(&server.settings).await,
        2,
        "committed with the changes, waiting in the outbox"
    );

    server.nats.restart().await;
    eventually("the outbox drained", async || {
        pending(&server.settings).await == 0
    })
    .await;
    expect_published(&server.nats, CREATED, 2).await;
    expect_published(&server.nats, PRICE_CHANGED, 1).await;
    let created: pb::ProductCreated = last_event(&server.nats, CREATED).await;
    assert_eq!(created.product, Some(kettle));
    let changed: pb::ProductPriceChanged = last_event(&server.nats, PRICE_CHANGED).await;
    assert_eq!(changed.price, price(4200, "EUR"));
    server.stop().await;
}

#[tokio::test]
async fn the_service_starts_and_serves_while_nats_is_down() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut nats = NatsServer::start().await;
    nats.stop();
    let mut server = start_with(testing::settings(dir.path()), nats).await;
    let mut client = server.client();
    let pan = create(&mut client, &server.admin(), product("Pan", "kitchen", "")).await;
    assert_eq!(get(&mut client, &pan.product_id).await.expect("get"), pan);
    assert_eq!(pending(&server.settings).await, 1, "waiting in the outbox");

    server.nats.restart().await;
    eventually("the outbox drained", async || {
        pending(&server.settings).await == 0
    })
    .await;
    expect_published(&server.nats, CREATED, 1).await;
    server.stop().await;
}
