//! A Python client generated from proto/ (grpcio-tools in the project venv) runs
//! register → login → browse → reserve against a running system, shows one request that breaks a
//! `buf.validate` rule caught by protovalidate from the contract and refused by the user service
//! (INVALID_ARGUMENT, a BadRequest naming `email`), then asks the edge to count stock of a
//! product the catalog never had (404, PRODUCT_NOT_FOUND).

use tokio::process::Command;

use crate::harness::{System, repo_root};

#[tokio::test]
async fn a_generated_python_client_registers_logs_in_browses_and_reserves() {
    let python = repo_root().join(".tools/venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run `just tools` (or `just test`, which does) to provision the Python client deps",
        python.display()
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let system = System::up(dir.path(), System::environment(dir.path())).await;
    let service_token = system
        .polyshop(&[
            "admin",
            "service-token",
            "--from",
            "polyshop-order",
            "--to",
            "polyshop-inventory",
        ])
        .await;
    let out = Command::new(&python)
        .arg(repo_root().join("tests/python/flow.py"))
        .env("POLYSHOP_PROTO_DIR", repo_root().join("proto"))
        .env("USER_ADDR", system.env["POLYSHOP_USER_LISTEN"].clone())
        .env(
            "CATALOG_ADDR",
            system.env["POLYSHOP_CATALOG_LISTEN"].clone(),
        )
        .env(
            "INVENTORY_ADDR",
            system.env["POLYSHOP_INVENTORY_LISTEN"].clone(),
        )
        .env("SERVICE_TOKEN", service_token)
        .env(
            "GATEWAY_ADDR",
            system.env["POLYSHOP_GATEWAY_LISTEN"].clone(),
        )
        .env("ADMIN_PASSWORD", system.admin_password())
        .output()
        .await
        .expect("run python");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "python flow failed:\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("register → login → browse → reserve: ok"),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "contract rule caught by protovalidate and by the server (BadRequest email): ok"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains("PUT /v1/stock/<unknown> → 404 PRODUCT_NOT_FOUND: ok"),
        "{stdout}"
    );
    assert!(system.stop().await);
}
