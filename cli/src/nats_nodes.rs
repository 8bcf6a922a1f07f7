//! The nats-server children of `polyshop up`: one node (store under `<data>/nats`), or a
//! JetStream cluster of 3 or 5 nodes on this machine (cluster `polyshop`, each node with its
//! own store under `<data>/nats-cluster/n<i>`, its own client and route ports, and routes to
//! every other node). Node 1 listens on `nats.embedded_port`, so `polyshop admin` reaches the
//! cluster without more configuration; the other ports are picked free at start. Every node
//! gets the same users and permissions ([`crate::nats_users`]), and the routes authenticate
//! with a user of their own.

use std::{path::Path, time::Duration};

use anyhow::{Context, bail};
use polyshop_platform::{
    auth,
    config::Settings,
    discovery,
    events::{identity, streams},
    flags,
};

use crate::{
    instances::FreePorts,
    nats_server::NatsServer,
    nats_users::NatsUsers,
    supervise::{Group, READY_TIMEOUT, Spec},
};

/// A started node.
#[derive(Debug)]
pub struct Node {
    /// Its client URL.
    pub url: String,
    /// Where its store, config and log are.
    pub dir: std::path::PathBuf,
    /// Its supervisor.
    pub group: Group,
}

/// Starts `count` nodes (1, or a cluster of 3 or 5), each admitting only `users`, and waits
/// until each accepts connections.
///
/// # Errors
/// If a node's files cannot be written or it does not listen within [`READY_TIMEOUT`].
pub async fn start(
    server: &NatsServer,
    data: &Path,
    settings: &Settings,
    count: usize,
    ports: &mut FreePorts,
    users: &NatsUsers,
) -> anyhow::Result<Vec<Node>> {
    let client_ports: Vec<u16> = (0..count)
        .map(|i| {
            if i == 0 {
                Ok(settings.nats.embedded_port)
            } else {
                Ok(ports.pick()?)
            }
        })
        .collect::<anyhow::Result<_>>()?;
    let route_ports: Vec<u16> = if count > 1 {
        (0..count)
            .map(|_| ports.pick())
            .collect::<std::io::Result<_>>()?
    } else {
        Vec::new()
    };
    let routes = route_ports
        .iter()
        .map(|p| format!("\"nats-route://{}127.0.0.1:{p}\"", users.route_userinfo()))
        .collect::<Vec<_>>()
        .join(", ");

    let exe = std::env::current_exe().context("cannot find the polyshop binary")?;
    let program = server
        .path
        .to_str()
        .with_context(|| format!("{} is not a UTF-8 path", server.path.display()))?;
    let mut nodes = Vec::new();
    for (i, port) in client_ports.iter().enumerate() {
        // A single node keeps the store it always had, so existing data dirs still work.
        let (name, dir) = if count == 1 {
            ("polyshop-embedded".to_owned(), data.join("nats"))
        } else {
            let n = i + 1;
            (
                format!("polyshop-n{n}"),
                data.join("nats-cluster").join(format!("n{n}")),
            )
        };
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        // `sync_interval: always` fsyncs every JetStream write: with the default, acknowledged
        // messages can be lost on power failure.
        let mut config = format!(
            "listen: \"127.0.0.1:{port}\"\nserver_name: \"{name}\"\nlog_file: \"{}\"\njetstream {{\n  store_dir: \"{}\"\n  sync_interval: always\n}}\n",
            dir.join("nats-server.log").display(),
            dir.display()
        );
        config.push_str(&users.authorization());
        if let Some(route_port) = route_ports.get(i) {
            // Every node lists every route, its own included (nats-server skips that one), so
            // any node that comes back finds the others.
            config.push_str(&format!(
                "cluster {{\n  name: \"polyshop\"\n  listen: \"127.0.0.1:{route_port}\"\n{}  routes: [{routes}]\n}}\n",
                users.route_authorization()
            ));
        }
        // Owner-only: it holds every identity's password.
        let conf = dir.join("nats.conf");
        auth::keys::write_secret_file(&conf, config.as_bytes())
            .with_context(|| format!("cannot write {}", conf.display()))?;
        let label = if count == 1 {
            "nats-server".to_owned()
        } else {
            format!("nats-server n{}", i + 1)
        };
        let mut group = Group::new(label.clone());
        // Through `polyshop exec-supervised`, so the broker stops if `up` is killed.
        group.spawn(Spec {
            name: label,
            program: exe.clone(),
            args: vec![
                "exec-supervised".into(),
                program.into(),
                "-c".into(),
                conf.display().to_string(),
            ],
            env: nats_env(settings.worker_threads),
        });
        nodes.push(Node {
            url: format!("nats://127.0.0.1:{port}"),
            dir,
            group,
        });
    }
    for (node, port) in nodes.iter().zip(&client_ports) {
        let deadline = tokio::time::Instant::now() + READY_TIMEOUT;
        while tokio::net::TcpStream::connect(("127.0.0.1", *port))
            .await
            .is_err()
        {
            if tokio::time::Instant::now() > deadline {
                bail!(
                    "nats-server {} ({}) did not start on port {port} within {READY_TIMEOUT:?}: see {}",
                    server.version,
                    server.path.display(),
                    node.dir.join("nats-server.log").display()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Ok(nodes)
}

/// Creates (or scales) every stream and the flags bucket at `replicas` copies before any
/// service starts: a service only keeps the count it finds, so on a cluster nothing is ever
/// created at one replica; and the registry bucket, which a service's NATS identity may
/// create but never update. Retries while a cluster elects its leaders. Connects as
/// `credentials` (the admin identity).
///
/// # Errors
/// If JetStream does not accept them within [`READY_TIMEOUT`].
pub async fn prepare_streams(
    nats_url: &str,
    replicas: usize,
    settings: &Settings,
    credentials: &identity::Credentials,
) -> anyhow::Result<()> {
    let client = identity::connect(nats_url, "polyshop-up", credentials).await?;
    let js = async_nats::jetstream::new(client);
    let deadline = tokio::time::Instant::now() + READY_TIMEOUT;
    loop {
        let result = async {
            streams::ensure_replicated(&js, replicas)
                .await
                .map_err(|e| e.to_string())?;
            flags::bucket_replicated(&js, replicas).await.map(drop)?;
            discovery::bucket(&js, &settings.discovery, replicas)
                .await
                .map(drop)
                .map_err(|e| e.to_string())
        }
        .await;
        match result {
            Ok(()) => return Ok(()),
            Err(e) if tokio::time::Instant::now() > deadline => {
                bail!(
                    "JetStream at {nats_url} did not accept streams with {replicas} replica(s): {e}"
                )
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
}

/// The broker's environment: Go's scheduler gets the same share of the cores as a service
/// (`GOMAXPROCS`, unless set already). With a P per core it keeps waking spare threads to
/// look for work; on 2 cores one P gave `bench-orders` 5-7% more orders/s and the broker
/// 5-9% less CPU per order.
fn nats_env(worker_threads: usize) -> Vec<(String, String)> {
    if std::env::var_os("GOMAXPROCS").is_some() {
        return Vec::new();
    }
    vec![(
        "GOMAXPROCS".to_owned(),
        crate::up::child_worker_threads(worker_threads).to_string(),
    )]
}
