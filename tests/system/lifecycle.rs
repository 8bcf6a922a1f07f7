//! Start, stop and restart: data survives, SIGTERM drains and exits 0 after NOT_SERVING.

use std::{collections::HashMap, process::Stdio, time::Duration};

use polyshop::{
    catalog::v1::{ListProductsRequest, catalog_service_client::CatalogServiceClient},
    user::v1::{LoginRequest, RegisterRequest, user_service_client::UserServiceClient},
};
use polyshop_platform::testing::eventually_some;
use tokio::process::{Child, Command};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

use crate::harness::{System, sigterm};

async fn product_count(url: String) -> usize {
    let mut catalog = CatalogServiceClient::connect(url)
        .await
        .expect("connect catalog");
    catalog
        .list_products(ListProductsRequest {
            page_size: 100,
            ..Default::default()
        })
        .await
        .expect("list")
        .into_inner()
        .products
        .len()
}

/// `polyshop serve catalog` alone, on the ports and data dir of `env`.
fn serve_catalog(env: &HashMap<String, String>) -> Child {
    Command::new(env!("CARGO_BIN_EXE_polyshop"))
        .args(["serve", "catalog"])
        .envs(env)
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start catalog")
}

/// `grpcurl list` against a service: what its reflection advertises.
async fn grpcurl_list(url: &str) -> Vec<String> {
    let grpcurl = crate::harness::repo_root().join(".tools/bin/grpcurl");
    assert!(
        grpcurl.exists(),
        "{} is missing: run `just tools`",
        grpcurl.display()
    );
    let addr = url.trim_start_matches("http://");
    let out = Command::new(grpcurl)
        .args(["-plaintext", addr, "list"])
        .output()
        .await
        .expect("run grpcurl");
    assert!(
        out.status.success(),
        "grpcurl list {addr}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn a_restart_on_the_same_data_dir_keeps_everything() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A data dir `up` creates itself, to see it made owner-only.
    let data = dir.path().join("shop");
    let env = System::environment(&data);
    let system = System::up(&data, env.clone()).await;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &std::path::Path| {
            std::fs::metadata(p).expect("metadata").permissions().mode() & 0o777
        };
        assert_eq!(mode(&data), 0o700, "the data dir is owner-only");
        assert_eq!(mode(&data.join("admin-credentials.txt")), 0o600);
        assert_eq!(mode(&data.join("keys")), 0o700);
    }
    for (name, service) in [
        ("USER", "polyshop.user.v1.UserService"),
        ("CATALOG", "polyshop.catalog.v1.CatalogService"),
        ("INVENTORY", "polyshop.inventory.v1.InventoryService"),
        ("ORDER", "polyshop.order.v1.OrderService"),
        ("PAYMENT", "polyshop.payment.v1.PaymentService"),
        (
            "NOTIFICATION",
            "polyshop.notification.v1.NotificationService",
        ),
    ] {
        let listed = grpcurl_list(&system.url(name)).await;
        for expected in [
            service,
            "grpc.health.v1.Health",
            "grpc.reflection.v1.ServerReflection",
            "grpc.reflection.v1alpha.ServerReflection",
        ] {
            assert!(
                listed.iter().any(|l| l == expected),
                "{name} lists {expected}: {listed:?}"
            );
        }
    }
    let demo_products = product_count(system.url("CATALOG")).await;
    assert!(
        demo_products >= 5,
        "a fresh data dir gets demo products, got {demo_products}"
    );
    let mut users = UserServiceClient::connect(system.url("USER"))
        .await
        .expect("connect");
    users
        .register(RegisterRequest {
            username: "persistent".into(),
            email: "persistent@example.com".into(),
            password: "correct horse battery".into(),
            display_name: String::new(),
        })
        .await
        .expect("register");
    assert!(system.stop().await, "polyshop up exits 0 on SIGTERM");

    let system = System::up(&data, env).await;
    assert_eq!(
        product_count(system.url("CATALOG")).await,
        demo_products,
        "no duplicate demo data"
    );
    let mut users = UserServiceClient::connect(system.url("USER"))
        .await
        .expect("connect");
    users
        .login(LoginRequest {
            login: "persistent".into(),
            password: "correct horse battery".into(),
        })
        .await
        .expect("the user registered before the restart can log in");
    let admin = system.admin_password();
    users
        .login(LoginRequest {
            login: "admin".into(),
            password: admin,
        })
        .await
        .expect("the admin can log in with the saved credentials");
    assert!(system.stop().await);
}

#[tokio::test]
async fn sigterm_turns_health_not_serving_then_exits_zero() {
    let dir = tempfile::tempdir().expect("tempdir");
    let env = System::environment(dir.path());
    let url = format!("http://{}", env["POLYSHOP_CATALOG_LISTEN"]);
    let mut child = serve_catalog(&env);

    let mut health = eventually_some(
        "catalog to report SERVING",
        Duration::from_secs(60),
        async || {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("polyshop serve catalog exited early with {status}");
            }
            let channel = tonic::transport::Endpoint::from_shared(url.clone())
                .expect("uri")
                .connect()
                .await
                .ok()?;
            let mut client = HealthClient::new(channel);
            let serving = client
                .check(HealthCheckRequest {
                    service: "polyshop.catalog.v1.CatalogService".into(),
                })
                .await
                .is_ok_and(|r| r.into_inner().status == ServingStatus::Serving as i32);
            serving.then_some(client)
        },
    )
    .await;
    let mut watch = health
        .watch(HealthCheckRequest {
            service: "polyshop.catalog.v1.CatalogService".into(),
        })
        .await
        .expect("watch")
        .into_inner();
    let first = watch
        .message()
        .await
        .expect("stream")
        .expect("first status");
    assert_eq!(first.status, ServingStatus::Serving as i32);

    sigterm(&child);
    let next = tokio::time::timeout(Duration::from_secs(10), watch.message())
        .await
        .expect("a status change arrives")
        .expect("stream")
        .expect("status");
    assert_eq!(
        next.status,
        ServingStatus::NotServing as i32,
        "health goes NOT_SERVING on SIGTERM"
    );
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("exits after draining")
        .expect("wait");
    assert_eq!(status.code(), Some(0), "a SIGTERM-ed service exits 0");
}

/// A SIGTERM that arrives while a service is still starting (its port open, its database
/// still opening) is a graceful stop too: exit 0, not death by the signal.
#[tokio::test]
async fn sigterm_while_starting_exits_zero() {
    let dir = tempfile::tempdir().expect("tempdir");
    let env = System::environment(dir.path());
    let addr = env["POLYSHOP_CATALOG_LISTEN"].clone();
    let mut child = serve_catalog(&env);
    // The port opens before the database and the broker connection: signal at once.
    eventually_some(
        "the catalog's port to open",
        Duration::from_secs(60),
        async || {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("polyshop serve catalog exited early with {status}");
            }
            tokio::net::TcpStream::connect(&addr).await.ok()
        },
    )
    .await;
    sigterm(&child);
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("exits")
        .expect("wait");
    assert_eq!(
        status.code(),
        Some(0),
        "exit 0, not killed by SIGTERM: {status}"
    );
}

/// `up` gives itself the allocator options it gives its children (it starts again, in place,
/// with them in its environment): with mimalloc's eagerly committed arenas it held 25 MiB
/// more at idle.
#[tokio::test]
async fn up_runs_with_the_allocator_options_it_gives_its_children() {
    let dir = tempfile::tempdir().expect("tempdir");
    let env = System::environment(dir.path());
    let system = System::up(dir.path(), env).await;
    let pid = system.child.id().expect("running");
    let environ = std::fs::read(format!("/proc/{pid}/environ")).expect("read environ");
    let allocator: Vec<String> = environ
        .split(|b| *b == 0)
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .filter(|v| v.starts_with("MIMALLOC_"))
        .collect();
    for (name, default) in [
        ("MIMALLOC_PURGE_DELAY", "1000"),
        ("MIMALLOC_ARENA_EAGER_COMMIT", "0"),
    ] {
        // Whatever the caller set wins; otherwise `up`'s default.
        let expected = std::env::var(name).unwrap_or_else(|_| default.to_owned());
        assert!(
            allocator.contains(&format!("{name}={expected}")),
            "{name}={expected} in up's environment: {allocator:?}"
        );
    }
    assert_eq!(
        std::fs::canonicalize(format!("/proc/{pid}/exe")).expect("exe"),
        std::fs::canonicalize(env!("CARGO_BIN_EXE_polyshop")).expect("binary"),
        "the same binary, the same process"
    );
    assert!(system.stop().await, "stops cleanly");
}
