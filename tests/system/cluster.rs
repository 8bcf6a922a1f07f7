//! A cluster on one machine: `polyshop up --replicas 2 --nats-cluster 3` (on PostgreSQL when
//! POLYSHOP_TEST_POSTGRES_URL is set). Two instances of every context register, two edges
//! serve, every stream keeps three copies, orders through either edge are CONFIRMED, and
//! with one NATS node killed over and over the rest keep quorum and orders still confirm.

use std::{
    collections::{HashMap, HashSet},
    process::Stdio,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::Duration,
};

use nix::sys::signal;
use polyshop::order::v1::{Order, OrderStatus, order_service_client::OrderServiceClient};
use polyshop_platform::{
    events::streams,
    testing::{announce, bearer, eventually_some},
};
use sea_orm::ConnectionTrait;
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::Command,
};

use crate::harness::{System, children_of, order_request};

/// What `up` printed about itself once it was ready.
pub(crate) struct Started {
    pub(crate) system: System,
    pub(crate) edges: Vec<String>,
    pub(crate) nats: Vec<String>,
}

/// Runs `polyshop up <args>` and reads its start-up report up to "Stop with Ctrl-C.".
pub(crate) async fn up(
    dir: &std::path::Path,
    env: HashMap<String, String>,
    args: &[String],
) -> Started {
    let mut child = Command::new(env!("CARGO_BIN_EXE_polyshop"))
        .arg("up")
        .args(args)
        .envs(&env)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .expect("start polyshop up");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let system = System {
        child,
        env,
        data_dir: dir.to_owned(),
    };
    let (mut edges, mut nats, mut in_nats) = (Vec::new(), Vec::new(), false);
    // Seventeen processes on a small machine: give them time.
    let ready = tokio::time::timeout(Duration::from_secs(300), async {
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(urls) = line.strip_prefix("Edges: ") {
                edges = urls.split_whitespace().map(str::to_owned).collect();
            }
            // "  nats          nats://…", then one URL per line for the other nodes.
            let words: Vec<&str> = line.split_whitespace().collect();
            in_nats = match words.as_slice() {
                ["nats", url] => {
                    nats.push((*url).to_owned());
                    true
                }
                [url] if in_nats && url.starts_with("nats://") => {
                    nats.push((*url).to_owned());
                    true
                }
                _ => false,
            };
            if line == "Stop with Ctrl-C." {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(ready, Ok(true), "polyshop up did not report ready");
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Started {
        system,
        edges,
        nats,
    }
}

/// Places an order through `edge` under `key` and replays the key until it settles.
pub(crate) async fn confirmed_through(edge: &str, token: &str, product: &str, key: &str) -> Order {
    eventually_some(
        &format!("order {key} through {edge} to settle"),
        Duration::from_secs(90),
        async || {
            let mut orders = OrderServiceClient::connect(edge.to_owned()).await.ok()?;
            let order = orders
                .create_order(bearer(order_request(key, product, 1), token))
                .await
                .ok()?
                .into_inner()
                .order?;
            (order.status != OrderStatus::Pending as i32).then_some(order)
        },
    )
    .await
}

/// Fresh database names per run: `drop_stale_databases` in the platform's test helpers reads
/// the hex milliseconds after `polyshop_test_` and clears what a failed run left behind.
pub(crate) fn database_prefix() -> String {
    format!(
        "polyshop_test_{:012x}{:x}_",
        polyshop_platform::now_millis(),
        std::process::id()
    )
}

#[tokio::test]
async fn a_cluster_on_one_machine_confirms_orders_through_every_edge_and_survives_a_lost_nats_node()
{
    let _one_cluster = ONE_CLUSTER_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut env = System::environment(dir.path());
    env.insert("POLYSHOP_ORDER_SAGA_RETRY_MAX_MS".into(), "1000".into());
    let (args, postgres, prefix) = cluster_args("cluster");
    let Started {
        system,
        edges,
        nats,
    } = up(dir.path(), env, &args).await;
    assert_eq!(edges.len(), 2, "two edges: {edges:?}");
    assert_ne!(edges[0], edges[1]);
    assert_eq!(nats.len(), 3, "three NATS nodes: {nats:?}");

    // Every context registers both of its instances.
    let mut listed = String::new();
    let registered = polyshop_platform::testing::poll_until(Duration::from_secs(30), async || {
        listed = system.polyshop(&["admin", "services"]).await;
        streams::contexts()
            .chain(["gateway"])
            .all(|context| {
                let urls: HashSet<&str> = listed
                    .lines()
                    .filter(|l| l.starts_with(&format!("{context}\t")))
                    .filter_map(|l| l.split('\t').nth(2))
                    .collect();
                urls.len() == 2
            })
            .then_some(())
    })
    .await;
    assert!(
        registered.is_some(),
        "two instances per context and two edges: {listed}"
    );

    // Every stream and the flags bucket keep a copy on each node.
    let client = system
        .nats_options("admin")
        .connect(nats.clone())
        .await
        .expect("connect nats");
    let js = async_nats::jetstream::new(client);
    let names = streams::contexts().map(streams::stream_name).chain([
        streams::DLQ_STREAM.to_owned(),
        format!("KV_{}", polyshop_platform::flags::BUCKET),
        format!("KV_{}", polyshop_platform::discovery::BUCKET),
    ]);
    for name in names {
        let mut stream = js.get_stream(&name).await.expect("stream");
        let info = stream.info().await.expect("info");
        assert_eq!(info.config.num_replicas, 3, "{name}");
    }

    let token = system.signup("cluster").await;
    let product = system.first_product().await.product_id;
    for (i, edge) in edges.iter().enumerate() {
        let order = confirmed_through(edge, &token, &product, &format!("edge-{i}")).await;
        assert_eq!(
            order.status,
            OrderStatus::Confirmed as i32,
            "{edge}: {order:?}"
        );
    }

    // Lose one node (not the first: `polyshop admin` dials it), and keep it down: `up` restarts
    // it with backoff, so kill it again whenever it is back. A stream still held on one
    // replica (something not yet replicated) must not live on it.
    let mut single: HashSet<String> = HashSet::new();
    let mut listing = js.streams();
    while let Some(info) = futures::StreamExt::next(&mut listing).await {
        let info = info.expect("stream info");
        if info.config.num_replicas <= 1
            && let Some(leader) = info.cluster.and_then(|c| c.leader)
        {
            single.insert(leader);
        }
    }
    let victim = ["n2", "n3"]
        .into_iter()
        .find(|n| !single.contains(&format!("polyshop-{n}")))
        .expect("a node without unreplicated streams");
    let conf = format!("nats-cluster/{victim}/nats.conf");
    let (stop_killing, kills) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicUsize::new(0)),
    );
    let killer = {
        let (stop_killing, kills) = (stop_killing.clone(), kills.clone());
        let up_pid = system.child.id().expect("up runs");
        tokio::spawn(async move {
            while !stop_killing.load(Ordering::Relaxed) {
                for (pid, cmdline) in children_of(up_pid) {
                    if cmdline.contains("nats-server") && cmdline.contains(&conf) {
                        let _ = signal::kill(pid, signal::Signal::SIGKILL);
                        kills.fetch_add(1, Ordering::Relaxed);
                    }
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    eventually_some(
        "the node to be killed",
        Duration::from_secs(10),
        async || (kills.load(Ordering::Relaxed) > 0).then_some(()),
    )
    .await;
    let order = confirmed_through(&edges[0], &token, &product, "after-node-loss").await;
    assert_eq!(order.status, OrderStatus::Confirmed as i32, "{order:?}");
    stop_killing.store(true, Ordering::Relaxed);
    killer.await.expect("killer");

    // Every child exits with `up`.
    let running = children_of(system.child.id().expect("up runs"));
    assert!(
        running.len() >= 16,
        "14 services and 2 or 3 nodes: {running:?}"
    );
    assert!(system.stop().await, "up exits 0");
    eventually_some("every child to exit", Duration::from_secs(10), async || {
        running
            .iter()
            .all(|(pid, _)| !std::path::Path::new(&format!("/proc/{pid}")).exists())
            .then_some(())
    })
    .await;

    if let Some(server) = postgres {
        drop_databases(&server, &prefix).await;
    }
}

/// Held by each test that starts a cluster: two clusters at once are over thirty processes on
/// a small machine, and each `up` picks its instances' ports itself, so two could pick the
/// same free port.
pub(crate) static ONE_CLUSTER_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// `up`'s arguments for two instances of everything on a three-node NATS cluster, on
/// PostgreSQL (fresh databases under the returned prefix) when the test server is set; says
/// which backend `test` covers.
pub(crate) fn cluster_args(test: &str) -> (Vec<String>, Option<String>, String) {
    let mut args: Vec<String> = ["--replicas", "2", "--nats-cluster", "3"]
        .map(String::from)
        .to_vec();
    let postgres = std::env::var("POLYSHOP_TEST_POSTGRES_URL").ok();
    let prefix = database_prefix();
    match &postgres {
        Some(server) => {
            announce(&format!("{test}: PostgreSQL backend covered"));
            args.extend(["--postgres".into(), server.clone()]);
            args.extend(["--database-prefix".into(), prefix.clone()]);
        }
        None => announce(&format!(
            "{test}: PostgreSQL backend NOT covered (POLYSHOP_TEST_POSTGRES_URL is not set); SQLite shared by the instances"
        )),
    }
    (args, postgres, prefix)
}

/// Drops the databases `up --database-prefix prefix` created on `server`.
pub(crate) async fn drop_databases(server: &str, prefix: &str) {
    let admin = polyshop_platform::db::connect_url(server, "cluster-test")
        .await
        .expect("connect PostgreSQL");
    for context in streams::contexts() {
        let _ = admin
            .execute_unprepared(&format!(
                "DROP DATABASE IF EXISTS {prefix}{context} WITH (FORCE)"
            ))
            .await;
    }
}
