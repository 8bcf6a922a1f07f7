//! The one way the inventory test suites start a server: `serve_with_auth` on 127.0.0.1:0
//! with a fresh data dir (or the given settings), trusting a test token issuer.

#![allow(dead_code, reason = "each test binary uses a different part")]

use std::{net::SocketAddr, time::Duration};

use polyshop::inventory::v1::{self as pb, inventory_service_client::InventoryServiceClient};
use polyshop_inventory::SERVICE_NAME;
use polyshop_platform::{
    config::Settings,
    shutdown,
    testing::{self, TestTokens, bearer},
};
use tonic::transport::Channel;

/// The caller every internal method expects.
pub const ORDER_SERVICE: &str = "polyshop-order";

/// A running inventory server and tokens for every kind of caller.
pub struct Running {
    pub addr: SocketAddr,
    pub tokens: TestTokens,
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

    pub async fn stop(self) {
        self.stop.fire();
        let _ = tokio::time::timeout(Duration::from_secs(10), self.task).await;
    }
}

/// Starts the service with `settings` and waits until it answers.
pub async fn start(settings: Settings) -> Running {
    let tokens = TestTokens::new(&settings);
    let auth = tokens.authenticator(SERVICE_NAME);
    let (listener, addr) = testing::listener().await;
    let (stop, stopped) = shutdown::channel();
    let task = tokio::spawn(async move {
        polyshop_inventory::serve_with_auth(settings, listener, auth, stopped.wait())
            .await
            .expect("inventory service runs");
    });
    // The server answers once migrations ran; wait for that.
    let mut client = InventoryServiceClient::new(testing::channel(addr));
    for _ in 0..100 {
        if client
            .get_stock(pb::GetStockRequest {
                product_id: "ping".into(),
            })
            .await
            .is_ok()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Running {
        addr,
        tokens,
        stop,
        task,
    }
}

pub async fn set_stock(server: &Running, product_id: &str, on_hand: i32) -> pb::StockLevel {
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
