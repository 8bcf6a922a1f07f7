//! `polyshop load` against a whole system with the edge's rate limits lifted: the report's
//! three files are written and parse, every order it says it created is in the system, the
//! HTML carries its two charts, and headless Chromium renders it to a screenshot.

use std::time::Duration;

use polyshop::order::v1::{ListOrdersRequest, order_service_client::OrderServiceClient};
use serde_json::Value;

use crate::harness::System;

/// Every order in the system, counted page by page through the edge as admin.
async fn orders_in_system(edge: &str, admin_token: &str) -> u64 {
    let mut orders = OrderServiceClient::connect(edge.to_owned())
        .await
        .expect("connect to the edge");
    let (mut count, mut page_token) = (0, String::new());
    loop {
        let mut request = tonic::Request::new(ListOrdersRequest {
            page_size: 100,
            page_token: page_token.clone(),
            ..Default::default()
        });
        let bearer = format!("Bearer {admin_token}").parse().expect("header");
        request.metadata_mut().insert("authorization", bearer);
        let page = orders
            .list_orders(request)
            .await
            .expect("list orders")
            .into_inner();
        count += page.orders.len() as u64;
        if page.next_page_token.is_empty() {
            return count;
        }
        page_token = page.next_page_token;
    }
}

/// Renders `html` with headless Chromium into `png`; says so loudly when it cannot.
async fn screenshot(html: &std::path::Path, png: &std::path::Path) {
    let chromium = std::path::Path::new("/usr/bin/chromium");
    if !chromium.exists() {
        println!("load report: chromium not found: the HTML report was NOT rendered");
        return;
    }
    let out = tokio::process::Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            &format!("--screenshot={}", png.display()),
            "--window-size=1280,2000",
            &format!("file://{}", html.display()),
        ])
        .output()
        .await
        .expect("run chromium");
    let size = std::fs::metadata(png).map(|m| m.len()).unwrap_or(0);
    assert!(
        size > 0,
        "chromium wrote no screenshot: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    println!(
        "load report: rendered by chromium to {} ({size} bytes)",
        png.display()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_load_run_reports_every_order_it_created_and_renders_its_charts() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut env = System::environment(dir.path());
    // One client sending a lot, as gateway/scripts/with-system.sh sets it up.
    for (key, value) in [
        ("POLYSHOP_GATEWAY_RATE_PER_SEC", "1000000"),
        ("POLYSHOP_GATEWAY_RATE_BURST", "1000000"),
        ("POLYSHOP_GATEWAY_AUTH_RATE_PER_SEC", "1000000"),
        ("POLYSHOP_GATEWAY_AUTH_RATE_BURST", "1000000"),
        ("POLYSHOP_GATEWAY_MAX_CONCURRENT_PER_IP", "0"),
        // The login journey logs the same few shoppers in again and again.
        ("POLYSHOP_GATEWAY_ACCOUNT_RATE_BURST", "0"),
    ] {
        env.insert(key.into(), value.into());
    }
    let system = System::up(dir.path(), env).await;
    let edge = system.url("GATEWAY");
    let report_dir = dir.path().join("report");
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_polyshop"))
        .args(["load", "--url", &edge, "--rate", "20", "--duration", "5s"])
        .args(["--ramp-up", "1s", "--accounts", "5", "--report"])
        .arg(&report_dir)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(120), out)
        .await
        .expect("the load run stops by itself")
        .expect("run polyshop load");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("polyshop load: {stdout}\n{stderr}");
    assert!(out.status.success(), "polyshop load failed");

    let json = std::fs::read_to_string(report_dir.join("report.json")).expect("report.json");
    let doc: Value = serde_json::from_str(&json).expect("report.json parses");
    let totals = &doc["totals"];
    assert!(totals["requests"].as_u64() > Some(50), "{totals}");
    let created = totals["orders_created"].as_u64().expect("orders_created");
    assert!(created > 0, "no order was created: {totals}");
    let admin = system.login("admin", &system.admin_password()).await;
    assert_eq!(created, orders_in_system(&edge, &admin).await);

    let md = std::fs::read_to_string(report_dir.join("report.md")).expect("report.md");
    assert!(
        md.starts_with("# Load report") && md.contains("| checkout |"),
        "{md}"
    );
    let html = std::fs::read_to_string(report_dir.join("report.html")).expect("report.html");
    assert!(html.starts_with("<!doctype html>") && html.trim_end().ends_with("</html>"));
    assert_eq!(
        html.matches("<svg").count(),
        2,
        "throughput and latency charts"
    );
    assert_eq!(html.matches("</svg>").count(), 2);
    assert!(!html.contains("<script"), "the report needs no JavaScript");

    // Kept after the test under the target dir, so the rendering can be looked at.
    let kept = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("load-report");
    std::fs::create_dir_all(&kept).expect("screenshot dir");
    std::fs::copy(report_dir.join("report.html"), kept.join("report.html")).expect("copy html");
    screenshot(&kept.join("report.html"), &kept.join("report.png")).await;
    assert!(system.stop().await, "polyshop up exits cleanly");
}
