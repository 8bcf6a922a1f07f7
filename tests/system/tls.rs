//! `polyshop up` with HTTPS at the edge and TLS between services, from one `admin gen-cert`
//! directory: `up` checks every child's readiness over TLS (the edge trusting exactly its
//! certificate, the services with the CA and a client certificate), seeds the demo over
//! mutual TLS, and the edge reaches the services over it. A client without a certificate
//! gets nothing from a service.

use std::path::Path;

use polyshop::catalog::v1::{ListProductsRequest, catalog_service_client::CatalogServiceClient};
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

use crate::harness::System;

async fn health(endpoint: Endpoint) -> Result<(), String> {
    let channel = endpoint.connect().await.map_err(|e| format!("{e:?}"))?;
    HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .map(drop)
        .map_err(|e| e.to_string())
}

fn read(dir: &Path, name: &str) -> Vec<u8> {
    std::fs::read(dir.join(name)).expect(name)
}

#[tokio::test]
async fn up_serves_https_at_the_edge_and_mutual_tls_between_services() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (data, pki) = (dir.path().join("shop"), dir.path().join("pki"));
    let made = tokio::process::Command::new(env!("CARGO_BIN_EXE_polyshop"))
        .args(["admin", "gen-cert"])
        .arg(&pki)
        .status()
        .await
        .expect("run gen-cert");
    assert!(made.success(), "polyshop admin gen-cert failed");
    let file = |name: &str| pki.join(name).display().to_string();
    let mut env = System::environment(&data);
    for (key, name) in [
        ("POLYSHOP_GATEWAY_TLS_CERT_PATH", "cert.pem"),
        ("POLYSHOP_GATEWAY_TLS_KEY_PATH", "key.pem"),
        ("POLYSHOP_TLS_CA_PATH", "ca.pem"),
        ("POLYSHOP_TLS_CERT_PATH", "cert.pem"),
        ("POLYSHOP_TLS_KEY_PATH", "key.pem"),
    ] {
        env.insert(key.into(), file(name));
    }
    // Ready means every child answered its health check over TLS, and the demo catalog was
    // seeded over mutual TLS.
    let system = System::up(&data, env).await;

    // The edge over HTTPS (trusting its certificate), and through it the catalog over mTLS.
    let edge = system.url("GATEWAY").replace("http://", "https://");
    let channel = polyshop_gateway::tls::pinned_channel(&edge, &pki.join("cert.pem"))
        .await
        .expect("a TLS connection to the edge");
    let products = CatalogServiceClient::new(channel)
        .list_products(ListProductsRequest {
            page_size: 5,
            ..Default::default()
        })
        .await
        .expect("ListProducts through the edge")
        .into_inner()
        .products;
    assert!(!products.is_empty(), "the demo catalog, seeded over mTLS");

    // The catalog's own port: served with a certificate from the CA, else refused.
    let catalog = system.url("CATALOG").replace("http://", "https://");
    let ca = Certificate::from_pem(read(&pki, "ca.pem"));
    let endpoint = || Endpoint::from_shared(catalog.clone()).expect("url");
    let trusted = ClientTlsConfig::new()
        .ca_certificate(ca.clone())
        .identity(Identity::from_pem(
            read(&pki, "cert.pem"),
            read(&pki, "key.pem"),
        ));
    health(endpoint().tls_config(trusted).expect("tls"))
        .await
        .expect("a client with a certificate from the CA is served");
    let anonymous = ClientTlsConfig::new().ca_certificate(ca);
    assert!(
        health(endpoint().tls_config(anonymous).expect("tls"))
            .await
            .is_err(),
        "a client without a certificate was served"
    );
    assert!(
        health(Endpoint::from_shared(system.url("CATALOG")).expect("url"))
            .await
            .is_err(),
        "a plaintext client was served"
    );
    assert!(system.stop().await, "up exits 0");
}
