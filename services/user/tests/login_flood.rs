//! A login flood straight at the user service (issue 16, item 7): 300 concurrent Logins. Each
//! argon2id run holds 19 MiB, so unbounded hashing would grow the process by gigabytes; with
//! the hashing slots, every Login either succeeds or is refused at once with
//! RESOURCE_EXHAUSTED and a RetryInfo, no more hashes run at once than there are slots, and the
//! process grows by less than [`RSS_GROWTH_LIMIT_MIB`].
//!
//! Its own test binary, so that its RSS and its metrics are this test's alone.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use polyshop::user::v1::{self as pb, user_service_client::UserServiceClient};
use polyshop_platform::{
    metrics, shutdown,
    testing::{self, eventually},
};
use tonic::Code;
use tonic_types::StatusExt;

// The allocator of the `polyshop` binary that runs the service: RSS is measured as shipped.
// (Under glibc malloc the same flood left +407 MiB: arenas keep the 19 MiB blocks cached.)
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const LOGINS: usize = 300;
/// Connections the Logins are spread over, so no HTTP/2 stream limit queues them client-side.
const CONNECTIONS: usize = 10;
/// The bound this test states: 300 unbounded hashes would need about 5.7 GiB.
const RSS_GROWTH_LIMIT_MIB: u64 = 200;
const PASSWORD: &str = "correct horse battery";

/// This process's resident set, in KiB.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS line")
}

/// The value of the label-less gauge `name` in this process's metrics.
fn gauge(name: &str) -> Option<f64> {
    metrics::render()
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_flood_is_bounded_in_memory_and_in_concurrent_hashes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let settings = testing::settings(dir.path());
    let permits = settings.user.hash_permits();
    let (listener, addr) = testing::listener().await;
    let (stop, stopped) = shutdown::channel();
    let server = tokio::spawn(async move {
        polyshop_user::serve(settings, listener, stopped.wait())
            .await
            .expect("user service runs");
    });
    let mut client = UserServiceClient::new(testing::channel(addr));
    eventually("the user server answers", async || {
        client.get_jwks(pb::GetJwksRequest {}).await.is_ok()
    })
    .await;
    client
        .register(pb::RegisterRequest {
            username: "flood".into(),
            email: "flood@example.com".into(),
            password: PASSWORD.into(),
            display_name: String::new(),
        })
        .await
        .expect("register");
    let login = pb::LoginRequest {
        login: "flood".into(),
        password: PASSWORD.into(),
    };
    // One login first, so the baseline includes what any login leaves behind.
    client.login(login.clone()).await.expect("warm-up login");
    let before = rss_kib();

    let peak_rss = Arc::new(AtomicU64::new(before));
    let sampler = {
        let peak_rss = peak_rss.clone();
        tokio::spawn(async move {
            loop {
                peak_rss.fetch_max(rss_kib(), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
    };
    let clients: Vec<_> = (0..CONNECTIONS)
        .map(|_| UserServiceClient::new(testing::channel(addr)))
        .collect();
    let calls: Vec<_> = (0..LOGINS)
        .map(|i| {
            let mut client = clients[i % CONNECTIONS].clone();
            let login = login.clone();
            tokio::spawn(async move { client.login(login).await })
        })
        .collect();
    let (mut ok, mut exhausted) = (0, 0);
    for call in calls {
        match call.await.expect("task") {
            Ok(_) => ok += 1,
            Err(status) => {
                assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
                let retry = status.get_error_details().retry_info().cloned();
                assert!(
                    retry.is_some_and(|r| r.retry_delay.is_some()),
                    "RESOURCE_EXHAUSTED carries a RetryInfo with a delay: {status:?}"
                );
                exhausted += 1;
            }
        }
    }
    sampler.abort();
    let peak = peak_rss.load(Ordering::Relaxed).max(rss_kib());
    let growth_mib = peak.saturating_sub(before) / 1024;
    let most_at_once = gauge("polyshop_password_hashing_peak").expect("the peak gauge");
    testing::announce(&format!(
        "login flood: {LOGINS} logins, {ok} ok, {exhausted} RESOURCE_EXHAUSTED; {permits} \
         hashing slots, at most {most_at_once} hashes at once; RSS {} MiB before, peak {} MiB \
         (+{growth_mib} MiB)",
        before / 1024,
        peak / 1024
    ));

    assert!(ok > 0, "some logins get through");
    assert_eq!(ok + exhausted, LOGINS);
    #[allow(clippy::cast_precision_loss)]
    let permits_f = permits as f64;
    assert!(
        most_at_once >= 1.0 && most_at_once <= permits_f,
        "at most {permits} hashes at once, saw {most_at_once}"
    );
    assert!(
        growth_mib < RSS_GROWTH_LIMIT_MIB,
        "RSS grew by {growth_mib} MiB (limit {RSS_GROWTH_LIMIT_MIB} MiB)"
    );

    stop.fire();
    let _ = tokio::time::timeout(Duration::from_secs(10), server).await;
}
