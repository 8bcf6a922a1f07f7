//! The catalog bounded context: products, their prices and categories. Admins create and
//! change products; anyone reads and lists them, and the order service prices orders from
//! them (inactive products stay readable by id, but are not listed).
//!
//! Layers: [`grpc`] → [`app`] → [`domain`], with [`store`] implementing the repository.

pub mod app;
pub mod domain;
pub mod grpc;
pub mod store;

use std::{future::Future, sync::Arc, time::Duration};

use polyshop::catalog::v1::catalog_service_server::CatalogServiceServer;
use polyshop_platform::{
    auth::Authenticator,
    config::Settings,
    db,
    server::{self, ServerSpec, StartError},
};
use tokio::net::TcpListener;

use crate::store::SeaCatalogRepository;

/// The name this service verifies service tokens as.
pub const SERVICE_NAME: &str = "polyshop-catalog";

/// Serves the catalog service on `listener` until `shutdown` resolves, verifying user tokens
/// through the user service's JWKS.
///
/// # Errors
/// [`StartError`] if the keys, database or server fail.
pub async fn serve(
    settings: Settings,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StartError> {
    let auth = Authenticator::for_service(&settings, SERVICE_NAME)?;
    serve_with_auth(settings, listener, Arc::new(auth), shutdown).await
}

/// Opens the database, runs migrations, and serves the catalog service on `listener` with
/// `auth` until `shutdown` resolves. Tests pass an authenticator that trusts their tokens.
///
/// # Errors
/// [`StartError`] if the database or server fail.
pub async fn serve_with_auth(
    settings: Settings,
    listener: TcpListener,
    auth: Arc<Authenticator>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StartError> {
    let conn = db::connect(&settings.data_dir, "catalog", &settings.catalog).await?;
    db::migrate(&conn, store::MIGRATIONS).await?;
    let repo = Arc::new(SeaCatalogRepository::new(conn.clone()));
    let routes =
        tonic::service::Routes::new(CatalogServiceServer::new(grpc::CatalogGrpc::new(repo)));
    server::serve(
        listener,
        ServerSpec {
            name: "catalog",
            grpc_services: vec!["polyshop.catalog.v1.CatalogService"],
            routes,
            db: conn,
            auth,
            grace: Duration::from_secs(settings.shutdown_grace_secs),
        },
        shutdown,
    )
    .await?;
    Ok(())
}
