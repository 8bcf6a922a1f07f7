//! The one way the inventory test suites start a server: `serve_with_auth` on 127.0.0.1:0
//! with a fresh data dir (or the given settings) and a nats-server of its own, trusting a test
//! token issuer; plus a publisher of catalog events, and [`catalog_product`] for the stock
//! row a product's `product.created` gives it (SetStock counts only such products). What the
//! server published is read with `polyshop_platform::testing`'s stream helpers.

#![allow(dead_code, reason = "each test binary uses a different part")]

use std::{net::SocketAddr, time::Duration};

use polyshop::{
    catalog::v1 as catalog,
    inventory::v1::{self as pb, inventory_service_client::InventoryServiceClient},
};
use polyshop_inventory::{SERVICE_NAME, store};
use polyshop_platform::{
    config::Settings,
    db,
    events::{HEADER_ID, HEADER_TYPE, outbox},
    shutdown,
    testing::{self, NatsServer, TestTokens, bearer, eventually, jetstream},
};
use prost::{Message, Name};
use sea_orm::TransactionTrait;
use tonic::transport::Channel;

/// The caller every internal method expects.
pub const ORDER_SERVICE: &str = "polyshop-order";
pub const ADJUSTED: &str = "polyshop.inventory.stock.adjusted";
pub const RESERVED: &str = "polyshop.inventory.stock.reserved";
pub const CONFIRMED: &str = "polyshop.inventory.stock.confirmed";
pub const RELEASED: &str = "polyshop.inventory.stock.released";

/// A running inventory server with the nats-server it uses, and tokens for every kind of
/// caller. The nats-server stops with it.
pub struct Running {
    pub addr: SocketAddr,
    pub tokens: TestTokens,
    /// The settings it runs with (its data dir, database and NATS URL).
    pub settings: Settings,
    pub nats: NatsServer,
    stop: shutdown::Trigger,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    pub fn client(&self) -> InventoryServiceClient<Channel> {
        InventoryServiceClient::new(testing::channel(self.addr))
    }

    pub fn admin(&self) -> String {
        self.tokens.admin("admin-1")
    }

    pub fn customer(&self) -> String {
        self.tokens.customer("customer-1")
    }

    pub fn service(&self) -> String {
        self.tokens.service(ORDER_SERVICE, SERVICE_NAME)
    }

    /// Stops the server and hands back its nats-server, still running.
    pub async fn stop(self) -> NatsServer {
        self.stop.fire();
        let _ = tokio::time::timeout(Duration::from_secs(10), self.task).await;
        self.nats
    }

    /// A second connection to the server's database.
    pub async fn database(&self) -> sea_orm::DatabaseConnection {
        let s = &self.settings;
        db::connect(&s.data_dir, "inventory", &s.inventory.service())
            .await
            .expect("connect")
    }

    /// Outbox rows the server has not published yet.
    pub async fn pending(&self) -> u64 {
        outbox::pending(&self.database().await)
            .await
            .expect("pending")
    }
}

/// Starts the service with `settings` and a nats-server of its own.
pub async fn start(settings: Settings) -> Running {
    start_with(settings, NatsServer::start().await).await
}

/// Starts the service with `settings`, using `nats`, and waits until it answers.
pub async fn start_with(mut settings: Settings, nats: NatsServer) -> Running {
    settings.nats.url = Some(nats.url());
    let tokens = TestTokens::new(&settings);
    let auth = tokens.authenticator(SERVICE_NAME);
    let (listener, addr) = testing::listener().await;
    let (stop, stopped) = shutdown::channel();
    let served = settings.clone();
    let task = tokio::spawn(async move {
        polyshop_inventory::serve_with_auth(served, listener, auth, stopped.wait())
            .await
            .expect("inventory service runs");
    });
    // The server answers once migrations ran; wait for that.
    let mut client = InventoryServiceClient::new(testing::channel(addr));
    eventually("the inventory server answers", async || {
        client
            .get_stock(pb::GetStockRequest {
                product_id: "ping".into(),
            })
            .await
            .is_ok()
    })
    .await;
    Running {
        addr,
        tokens,
        settings,
        nats,
        stop,
        task,
    }
}

/// Gives `product_id` the stock row at 0 its `product.created` would, straight in the
/// server's database (as the consumer does, so NATS need not be up): a product the catalog
/// created, as far as inventory can tell. A product that has a row keeps it.
pub async fn catalog_product(server: &Running, product_id: &str) {
    let db = server.database().await;
    // Retried: on SQLite this second connection may lose a write race with the server's.
    eventually(&format!("a stock row for {product_id}"), async || {
        let Ok(txn) = db.begin().await else {
            return false;
        };
        let now = polyshop_platform::now_millis();
        store::ensure_stock(&txn, product_id, now).await.is_ok() && txn.commit().await.is_ok()
    })
    .await;
}

/// Counts `on_hand` units of `product_id` as an admin, after making it a catalog product
/// ([`catalog_product`]).
pub async fn set_stock(server: &Running, product_id: &str, on_hand: i32) -> pb::StockLevel {
    catalog_product(server, product_id).await;
    server
        .client()
        .set_stock(bearer(
            pb::SetStockRequest {
                product_id: product_id.into(),
                quantity_on_hand: on_hand,
            },
            &server.admin(),
        ))
        .await
        .expect("set stock")
        .into_inner()
        .stock
        .expect("stock")
}

pub async fn get_stock(server: &Running, product_id: &str) -> pb::StockLevel {
    server
        .client()
        .get_stock(pb::GetStockRequest {
            product_id: product_id.into(),
        })
        .await
        .expect("get stock")
        .into_inner()
        .stock
        .expect("stock")
}

/// (on hand, reserved, available) of a product.
pub async fn levels(server: &Running, product_id: &str) -> (i32, i32, i32) {
    let s = get_stock(server, product_id).await;
    (
        s.quantity_on_hand,
        s.quantity_reserved,
        s.quantity_available,
    )
}

pub fn items(list: &[(&str, i32)]) -> Vec<pb::ReservationItem> {
    list.iter()
        .map(|(p, q)| pb::ReservationItem {
            product_id: (*p).into(),
            quantity: *q,
        })
        .collect()
}

/// ReserveStock as the order service.
pub async fn reserve(
    client: &mut InventoryServiceClient<Channel>,
    token: &str,
    reservation_id: &str,
    list: &[(&str, i32)],
) -> Result<pb::Reservation, tonic::Status> {
    let request = pb::ReserveStockRequest {
        reservation_id: reservation_id.into(),
        items: items(list),
    };
    Ok(client
        .reserve_stock(bearer(request, token))
        .await?
        .into_inner()
        .reservation
        .expect("reservation"))
}

/// Publishes `product.created` for `product_id` as the catalog's relay does (event id as
/// `Nats-Msg-Id`, plus the id and type headers), once the catalog stream exists; returns the
/// event id.
pub async fn publish_product_created(nats: &NatsServer, product_id: &str) -> String {
    let js = jetstream(nats).await;
    eventually("the catalog stream exists", async || {
        js.get_stream("POLYSHOP_CATALOG").await.is_ok()
    })
    .await;
    let event = catalog::ProductCreated {
        product: Some(catalog::Product {
            product_id: product_id.into(),
            name: "Kettle".into(),
            category: "kitchen".into(),
            active: true,
            ..Default::default()
        }),
        occur_time: Some(polyshop_platform::timestamp(polyshop_platform::now_millis())),
    };
    let id = polyshop_platform::new_id();
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Nats-Msg-Id", id.as_str());
    headers.insert(HEADER_ID, id.as_str());
    headers.insert(HEADER_TYPE, catalog::ProductCreated::full_name().as_str());
    js.publish_with_headers(
        "polyshop.catalog.product.created",
        headers,
        event.encode_to_vec().into(),
    )
    .await
    .expect("publish")
    .await
    .expect("ack");
    id
}
