//! Demo data for a fresh `polyshop up`: a small catalog with stock, created through the
//! public APIs as the admin (idempotent by request id, so a re-run changes nothing).

use anyhow::Context;
use polyshop::{
    api::v1::Money,
    catalog::v1::{CreateProductRequest, catalog_service_client::CatalogServiceClient},
    inventory::v1::{SetStockRequest, inventory_service_client::InventoryServiceClient},
    user::v1::{LoginRequest, user_service_client::UserServiceClient},
};
use polyshop_platform::config::Settings;
use tokio::time::{Duration, Instant};
use tonic::{Code, Request, transport::Channel};

/// (slug, name, category, price in cents, stock)
const PRODUCTS: [(&str, &str, &str, i64, i32); 9] = [
    ("espresso-cups", "Espresso Cup Set", "kitchen", 2400, 40),
    ("pour-over-kettle", "Pour-Over Kettle", "kitchen", 4900, 25),
    ("chefs-knife", "Chef's Knife", "kitchen", 8900, 15),
    ("linen-apron", "Linen Apron", "kitchen", 2900, 60),
    ("trail-shoes", "Trail Running Shoes", "outdoor", 12900, 20),
    ("insulated-bottle", "Insulated Bottle", "outdoor", 3200, 100),
    ("headlamp", "Headlamp", "outdoor", 2700, 50),
    (
        "mech-keyboard",
        "Mechanical Keyboard",
        "electronics",
        11900,
        10,
    ),
    ("usb-c-hub", "USB-C Hub", "electronics", 4500, 75),
];

fn authed<T>(message: T, token: &str) -> anyhow::Result<Request<T>> {
    let mut request = Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse()?);
    Ok(request)
}

/// How long a new product may take to reach inventory (its `product.created` event).
const KNOWN_WITHIN: Duration = Duration::from_secs(30);

/// SetStock once inventory knows the product: it learns of a new one from `product.created`,
/// a moment after CreateProduct, and answers NOT_FOUND until then.
async fn set_stock_when_known(
    inventory: &mut InventoryServiceClient<Channel>,
    count: SetStockRequest,
    token: &str,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + KNOWN_WITHIN;
    loop {
        match inventory.set_stock(authed(count.clone(), token)?).await {
            Err(e) if e.code() == Code::NotFound && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            answer => return answer.map(drop).map_err(Into::into),
        }
    }
}

/// Creates the demo catalog and stock as `admin`.
///
/// # Errors
/// If a service refuses.
pub async fn seed(settings: &Settings, admin: &str, password: &str) -> anyhow::Result<()> {
    // Over TLS when services have it (`up` installed this process's identity).
    let channel = |url: String| async move {
        anyhow::Ok(polyshop_platform::tls::endpoint(&url)?.connect().await?)
    };
    let mut users = UserServiceClient::new(channel(settings.user.url()).await?);
    let token = users
        .login(LoginRequest {
            login: admin.into(),
            password: password.into(),
        })
        .await
        .context("admin login for demo data")?
        .into_inner()
        .access_token;
    let mut catalog = CatalogServiceClient::new(channel(settings.catalog.url()).await?);
    let mut inventory =
        InventoryServiceClient::new(channel(settings.inventory.service().url()).await?);
    for (slug, name, category, cents, stock) in PRODUCTS {
        let product = catalog
            .create_product(authed(
                CreateProductRequest {
                    request_id: format!("demo-{slug}"),
                    name: name.into(),
                    description: format!("{name}: part of the Polyshop demo catalog."),
                    category: category.into(),
                    price: Some(Money {
                        amount_minor: cents,
                        currency_code: "USD".into(),
                    }),
                    active: true,
                },
                &token,
            )?)
            .await
            .with_context(|| format!("create demo product {name}"))?
            .into_inner()
            .product
            .context("no product returned")?;
        let count = SetStockRequest {
            product_id: product.product_id,
            quantity_on_hand: stock,
        };
        set_stock_when_known(&mut inventory, count, &token)
            .await
            .with_context(|| format!("stock demo product {name}"))?;
    }
    println!(
        "polyshop: created {} demo products with stock",
        PRODUCTS.len()
    );
    Ok(())
}
