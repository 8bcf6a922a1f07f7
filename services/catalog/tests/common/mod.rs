//! A catalog server for the black-box tests: a real server on 127.0.0.1:0 with the settings a
//! test gives (a fresh SQLite file, or PostgreSQL) and a nats-server of its own, both versions
//! of the contract served; tokens from a test issuer its authenticator trusts.
#![allow(dead_code)]

use std::{net::SocketAddr, time::Duration};

use polyshop::catalog::{
    v1::{self as pb, catalog_service_client::CatalogServiceClient},
    v2::catalog_service_client::CatalogServiceClient as V2Client,
};
use polyshop_platform::{
    config::Settings,
    shutdown,
    testing::{self, NatsServer, TestTokens, eventually},
};
use tonic::transport::Channel;

/// A running catalog server with the nats-server it publishes to; both stop with it.
pub struct Running {
    pub addr: SocketAddr,
    pub tokens: TestTokens,
    pub settings: Settings,
    pub nats: NatsServer,
    stop: shutdown::Trigger,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    /// A client of version 1.
    pub fn client(&self) -> CatalogServiceClient<Channel> {
        CatalogServiceClient::new(testing::channel(self.addr))
    }

    /// A client of version 2.
    pub fn v2(&self) -> V2Client<Channel> {
        V2Client::new(testing::channel(self.addr))
    }

    /// An admin's token.
    pub fn admin(&self) -> String {
        self.tokens.admin("admin-1")
    }

    /// Stops the server and hands back its nats-server, still running.
    pub async fn stop(self) -> NatsServer {
        self.stop.fire();
        let _ = tokio::time::timeout(Duration::from_secs(10), self.task).await;
        self.nats
    }
}

/// Starts the service with `settings` and a nats-server of its own.
pub async fn start(settings: Settings) -> Running {
    start_with(settings, NatsServer::start().await).await
}

/// Starts the service with `settings`, publishing to `nats`, and waits until it answers.
pub async fn start_with(mut settings: Settings, nats: NatsServer) -> Running {
    settings.nats.url = Some(nats.url());
    let tokens = TestTokens::new(&settings);
    let auth = tokens.authenticator(polyshop_catalog::SERVICE_NAME);
    let (listener, addr) = testing::listener().await;
    let (stop, stopped) = shutdown::channel();
    let served = settings.clone();
    let task = tokio::spawn(async move {
        polyshop_catalog::serve_with_auth(served, listener, auth, stopped.wait())
            .await
            .expect("catalog service runs");
    });
    // The server answers once migrations ran; wait for that.
    let mut client = CatalogServiceClient::new(testing::channel(addr));
    eventually("the catalog server answers", async || {
        client
            .list_products(pb::ListProductsRequest::default())
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
