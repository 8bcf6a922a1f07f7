//! HTTPS at the edge: with `gateway.tls_cert_path`/`tls_key_path` set, a client trusting the
//! CA negotiates h2 through ALPN and gets `/healthz`; a plaintext request to that port gets
//! no HTTP answer.
#![allow(clippy::unwrap_used)]

mod common;

use std::{path::Path, sync::Arc, time::Duration};

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Empty;
use hyper_util::rt::{TokioExecutor, TokioIo};
use polyshop_platform::testing::eventually_some;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
};
use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::{CertificateDer, ServerName, pem::PemObject};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};
use tokio_rustls::{TlsConnector, client::TlsStream};

/// A CA and a certificate for 127.0.0.1 signed by it, written into `dir`; returns the CA (PEM).
fn write_certificate(dir: &Path) -> String {
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, "test CA");
    let ca_key = KeyPair::generate().unwrap();
    let ca_pem = ca.self_signed(&ca_key).unwrap().pem();
    let issuer = Issuer::new(ca, ca_key);
    let mut server = CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let key = KeyPair::generate().unwrap();
    let cert = server.signed_by(&key, &issuer).unwrap();
    std::fs::write(dir.join("cert.pem"), cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), key.serialize_pem()).unwrap();
    ca_pem
}

/// A TLS connection to `system`'s edge offering only `h2`, trusting only `ca`.
async fn connect(system: &common::System, ca: &str) -> std::io::Result<TlsStream<TcpStream>> {
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca.as_bytes()).unwrap())
        .unwrap();
    let mut config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let tcp = TcpStream::connect(system.gateway).await?;
    let name = ServerName::IpAddress(system.gateway.ip().into());
    TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
}

#[tokio::test]
async fn the_edge_serves_h2_over_tls_and_refuses_plaintext() {
    let dir = tempfile::tempdir().unwrap();
    let ca = write_certificate(dir.path());
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let system = common::start(|s| {
        s.gateway.tls_cert_path = Some(cert);
        s.gateway.tls_key_path = Some(key);
    })
    .await;

    // The edge starts in the background: retry until the handshake succeeds.
    let tls = eventually_some(
        "a TLS handshake with the edge",
        Duration::from_secs(20),
        async || connect(&system, &ca).await.ok(),
    )
    .await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .unwrap();
    tokio::spawn(connection);
    let request = Request::get(format!("https://{}/healthz", system.gateway))
        .body(Empty::<Bytes>::new())
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.version(), http::Version::HTTP_2);

    // Plaintext HTTP/1.1 to the TLS port: the handshake fails and no HTTP answer comes back.
    let mut plain = TcpStream::connect(system.gateway).await.unwrap();
    plain
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), plain.read_to_end(&mut answer)).await;
    assert!(read.is_ok(), "the edge should close a plaintext connection");
    assert!(
        !answer.starts_with(b"HTTP/"),
        "plaintext got an HTTP answer: {:?}",
        String::from_utf8_lossy(&answer)
    );

    system.stop().await;
}

#[tokio::test]
async fn half_a_certificate_pair_or_a_bad_file_fails_the_start() {
    let dir = tempfile::tempdir().unwrap();
    write_certificate(dir.path());
    let start = async |cert: Option<&str>, key: Option<&str>| {
        let mut settings = polyshop_platform::testing::settings(dir.path());
        settings.gateway.tls_cert_path = cert.map(|c| dir.path().join(c));
        settings.gateway.tls_key_path = key.map(|k| dir.path().join(k));
        let (listener, _) = polyshop_platform::testing::listener().await;
        polyshop_gateway::serve(settings, listener, std::future::ready(()))
            .await
            .unwrap_err()
            .to_string()
    };
    let half = start(Some("cert.pem"), None).await;
    assert!(half.contains("set together"), "{half}");
    let swapped = start(Some("key.pem"), Some("cert.pem")).await;
    assert!(swapped.contains("tls_cert_path"), "{swapped}");
}

/// `polyshop up`'s readiness check of a TLS edge: gRPC health over TLS, trusting exactly the
/// edge's certificate file (no CA needed); another certificate is refused.
#[tokio::test]
async fn a_client_pinned_to_the_edges_certificate_checks_its_health() {
    let dir = tempfile::tempdir().unwrap();
    write_certificate(dir.path());
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let system = common::start(|s| {
        s.gateway.tls_cert_path = Some(cert.clone());
        s.gateway.tls_key_path = Some(key);
    })
    .await;
    let url = polyshop_gateway::edge_url(system.gateway, true);
    assert!(url.starts_with("https://"), "{url}");
    let channel = eventually_some(
        "a pinned TLS connection to the edge",
        Duration::from_secs(20),
        async || {
            polyshop_gateway::tls::pinned_channel(&url, &cert)
                .await
                .ok()
        },
    )
    .await;
    let status = tonic_health::pb::health_client::HealthClient::new(channel)
        .check(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .status;
    assert_eq!(status, 1, "SERVING");

    // A certificate that is not the edge's, even from the same kind of CA, is not trusted.
    let other = tempfile::tempdir().unwrap();
    write_certificate(other.path());
    let refused = polyshop_gateway::tls::pinned_channel(&url, &other.path().join("cert.pem")).await;
    assert!(
        refused.is_err(),
        "a pinned client accepted another certificate"
    );
    system.stop().await;
}
