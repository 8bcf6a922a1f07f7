//! TLS between services (`tls.*`): the user, catalog and inventory services and the edge of
//! the test system, in this process, with one certificate from one CA. The edge calls the
//! catalog, and the catalog fetches the user service's token keys, over mutual TLS; a client
//! without a certificate from the CA gets nothing from a service.
//!
//! A process has one TLS identity ([`polyshop_platform::tls::install`]), so this file is its
//! own test binary and installs it once.
#![allow(clippy::unwrap_used)]

mod common;

use std::{path::Path, time::Duration};

use http::StatusCode;
use polyshop_platform::config::TlsSettings;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
};
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

/// A CA (`<name>-ca.pem`) and a server-and-client certificate for 127.0.0.1 and localhost
/// signed by it (`<name>.pem`, `<name>-key.pem`) in `dir`.
fn write_pki(dir: &Path, name: &str) -> TlsSettings {
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, format!("{name} CA"));
    let ca_key = KeyPair::generate().unwrap();
    let ca_pem = ca.self_signed(&ca_key).unwrap().pem();
    let issuer = Issuer::new(ca, ca_key);
    let mut leaf =
        CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).unwrap();
    leaf.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let key = KeyPair::generate().unwrap();
    let cert = leaf.signed_by(&key, &issuer).unwrap();
    let path = |file: String| dir.join(file);
    std::fs::write(path(format!("{name}-ca.pem")), ca_pem).unwrap();
    std::fs::write(path(format!("{name}.pem")), cert.pem()).unwrap();
    std::fs::write(path(format!("{name}-key.pem")), key.serialize_pem()).unwrap();
    TlsSettings {
        ca_path: Some(path(format!("{name}-ca.pem"))),
        cert_path: Some(path(format!("{name}.pem"))),
        key_path: Some(path(format!("{name}-key.pem"))),
        require_client_cert: true,
    }
}

/// Whether gRPC health at `endpoint` answers (within a few seconds).
async fn health_answers(endpoint: Endpoint) -> Result<(), String> {
    let call = async {
        let channel = endpoint
            .connect_timeout(Duration::from_secs(2))
            .connect()
            .await
            .map_err(|e| format!("connect: {e:?}"))?;
        HealthClient::new(channel)
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await
            .map(drop)
            .map_err(|e| format!("call: {e}"))
    };
    tokio::time::timeout(Duration::from_secs(5), call)
        .await
        .map_err(|_| "timed out".to_owned())?
}

fn pem(path: &Option<std::path::PathBuf>) -> Vec<u8> {
    std::fs::read(path.as_ref().unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_talk_over_mutual_tls_and_refuse_clients_without_a_certificate() {
    let pki = tempfile::tempdir().unwrap();
    let tls = write_pki(pki.path(), "shop");
    let rogue = write_pki(pki.path(), "rogue");
    polyshop_platform::tls::install(&tls).unwrap();
    // The services' servers and channels, the edge's upstream channels and the JWKS fetch
    // all take the installed identity; the edge checks the settings match it.
    let system = common::start(|s| s.tls = tls.clone()).await;

    // Through the edge: the catalog over mTLS.
    let listed = system.get("/v1/products?pageSize=1", None).await;
    assert_eq!(listed.status, StatusCode::OK, "{:?}", listed.body);
    // An admin call: the user service (login) over mTLS, and the catalog verifying the
    // token with keys it fetched from the user service over mTLS.
    let admin = system.admin_token().await;
    let product = system.create_product(&admin, "Teapot", 1200).await;
    let read = system.get(&format!("/v1/products/{product}"), None).await;
    assert_eq!(read.status, StatusCode::OK, "{:?}", read.body);

    let catalog = system
        .settings
        .catalog
        .url
        .clone()
        .unwrap()
        .replace("http://", "https://");
    let ca = Certificate::from_pem(pem(&tls.ca_path));
    let endpoint = || Endpoint::from_shared(catalog.clone()).unwrap();

    // With a certificate from the CA: served.
    let trusted = ClientTlsConfig::new()
        .ca_certificate(ca.clone())
        .identity(Identity::from_pem(pem(&tls.cert_path), pem(&tls.key_path)));
    health_answers(endpoint().tls_config(trusted).unwrap())
        .await
        .expect("a client with the CA's certificate is served");

    // Plaintext: refused.
    let plain = system.settings.catalog.url.clone().unwrap();
    let refused = health_answers(Endpoint::from_shared(plain).unwrap()).await;
    assert!(refused.is_err(), "a plaintext client was served");

    // TLS without a client certificate: refused.
    let anonymous = ClientTlsConfig::new().ca_certificate(ca.clone());
    let refused = health_answers(endpoint().tls_config(anonymous).unwrap()).await;
    assert!(
        refused.is_err(),
        "a client without a certificate was served"
    );

    // A certificate from another CA: refused.
    let other = ClientTlsConfig::new()
        .ca_certificate(ca)
        .identity(Identity::from_pem(
            pem(&rogue.cert_path),
            pem(&rogue.key_path),
        ));
    let refused = health_answers(endpoint().tls_config(other).unwrap()).await;
    assert!(
        refused.is_err(),
        "a client with another CA's certificate was served"
    );

    // Another process identity cannot be installed beside this one.
    assert!(polyshop_platform::tls::install(&rogue).is_err());
    system.stop().await;
}
