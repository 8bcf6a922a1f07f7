//! Every process serves Prometheus metrics on its own port: calls by method and status at each
//! service, requests by RPC and HTTP status at the edge.

use polyshop::user::v1::{RegisterRequest, user_service_client::UserServiceClient};

use crate::harness::System;

/// `GET <url>/metrics` over HTTP/1.1 with curl: (HTTP status, content type, body).
async fn scrape(url: &str) -> (String, String, String) {
    let out = tokio::process::Command::new("curl")
        .args([
            "-s",
            "--http1.1",
            "-w",
            "\n%{http_code} %{content_type}",
            &format!("{url}/metrics"),
        ])
        .output()
        .await
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, meta) = text.rsplit_once('\n').expect("curl's trailer");
    let (code, content_type) = meta.split_once(' ').unwrap_or((meta, ""));
    (code.to_owned(), content_type.to_owned(), body.to_owned())
}

#[tokio::test]
async fn services_and_the_edge_serve_prometheus_metrics() {
    let dir = tempfile::tempdir().expect("tempdir");
    let env = System::environment(dir.path());
    let system = System::up(dir.path(), env).await;
    system.signup("metered").await;
    let err = UserServiceClient::connect(system.url("USER"))
        .await
        .expect("connect")
        .register(RegisterRequest {
            username: "metered".into(),
            email: "bad".into(),
            password: crate::harness::PASSWORD.into(),
            display_name: String::new(),
        })
        .await
        .expect_err("bad email");
    assert_eq!(err.code(), tonic::Code::InvalidArgument);

    let (code, content_type, body) = scrape(&system.url("USER")).await;
    assert_eq!(code, "200", "{body}");
    assert!(
        content_type.starts_with("application/openmetrics-text; version=1.0.0"),
        "{content_type}"
    );
    for line in [
        "# TYPE polyshop_rpc_requests counter",
        r#"polyshop_rpc_requests_total{service="user",method="/polyshop.user.v1.UserService/Register",code="Ok"} 1"#,
        r#"polyshop_rpc_requests_total{service="user",method="/polyshop.user.v1.UserService/Register",code="InvalidArgument"} 1"#,
        r#"polyshop_rpc_duration_seconds_count{service="user",method="/polyshop.user.v1.UserService/Register"} 2"#,
    ] {
        assert!(body.lines().any(|l| l == line), "{line} in\n{body}");
    }

    let edge = system.url("GATEWAY");
    let products = tokio::process::Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            &format!("{edge}/v1/products?pageSize=1"),
        ])
        .status()
        .await
        .expect("curl");
    assert!(products.success());
    let (code, _, body) = scrape(&edge).await;
    assert_eq!(code, "200", "{body}");
    let listed = r#"polyshop_edge_requests_total{protocol="json",rpc="/polyshop.catalog.v1.CatalogService/ListProducts",status="200"}"#;
    assert!(
        body.lines().any(|l| l.starts_with(listed)),
        "{listed} in\n{body}"
    );
    assert!(system.stop().await);
}
