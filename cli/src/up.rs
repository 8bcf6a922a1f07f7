//! `polyshop up`: the whole system on one machine. Finds nats-server (>= 2.11, see
//! [`crate::nats_server`]) before anything else, starts it as a child with JetStream (store
//! under the data dir, every write synced) — or a cluster of 3 or 5 nodes with
//! `--nats-cluster` ([`crate::nats_nodes`]) — then `--replicas` instances of every service
//! (`polyshop serve <service>` children, each on its own port, see [`crate::instances`]),
//! waiting for each to report SERVING. A fresh data dir gets an admin account and demo data.
//! Its own nats-server admits only the identities of [`crate::nats_users`]: each child gets
//! its user and password through `POLYSHOP_NATS_USER` / `POLYSHOP_NATS_PASSWORD`.
//! On SIGTERM / Ctrl-C the services stop in reverse start order, the NATS nodes last; a child
//! that crashes is restarted with backoff ([`crate::supervise`]).

use std::{path::Path, time::Duration};

use anyhow::{Context, bail};
use polyshop_platform::{
    auth,
    config::{ExposeSecret, Settings},
    events::identity,
    shutdown,
};

use crate::{
    demo,
    instances::{self, FreePorts, Instance},
    nats_nodes,
    nats_server::{self, NatsServer},
    nats_users::NatsUsers,
    services::Service,
    supervise::{self, Group, Spec},
};

/// Options of `polyshop up`.
#[derive(Debug, clap::Args)]
pub struct UpArgs {
    /// Do not create demo products and stock on a fresh data dir.
    #[arg(long)]
    pub no_demo: bool,
    /// Instances of every service (each context and the edge), each on its own port; the
    /// first keeps the configured port. With more than one, the contexts' instances register
    /// in the NATS registry (discovery mode nats) and callers balance over them. All instances of a
    /// context share its one database: its SQLite file (WAL, several processes on one host),
    /// or its PostgreSQL database with --postgres.
    #[arg(long, default_value_t = 1, value_name = "N",
          value_parser = clap::value_parser!(u16).range(1..=16))]
    pub replicas: u16,
    /// nats-server nodes: 1, or 3 or 5 for a JetStream cluster on this machine whose streams
    /// and buckets keep a copy on every node (it survives losing a minority of them).
    #[arg(long, default_value = "1", value_name = "NODES",
          value_parser = node_count)]
    pub nats_cluster: usize,
    /// A PostgreSQL server (e.g. postgres://postgres@127.0.0.1:5432/postgres): every context
    /// gets its own database on it, `<prefix><service>`, created if absent. Without it, SQLite
    /// files under the data dir.
    #[arg(long, value_name = "URL")]
    pub postgres: Option<String>,
    /// Prefix of the --postgres database names.
    #[arg(long, default_value = "polyshop_", value_name = "PREFIX", requires = "postgres",
          value_parser = instances::database_prefix)]
    pub database_prefix: String,
}

/// `--nats-cluster`: an odd number of nodes, so a majority survives losing one (or two).
fn node_count(value: &str) -> Result<usize, String> {
    match value.parse() {
        Ok(n @ (1 | 3 | 5)) => Ok(n),
        _ => Err("1, 3 or 5".into()),
    }
}

const INITIALIZED: &str = ".polyshop-initialized";
const CREDENTIALS: &str = "admin-credentials.txt";

/// Runs everything until a signal.
///
/// # Errors
/// If a child cannot be started or does not become ready.
pub async fn run(args: UpArgs, settings: Settings) -> anyhow::Result<()> {
    // Before anything starts: a SIGTERM or Ctrl-C from then on is ours to handle, not the
    // default action's (which killed `up` mid-start, its children with it, exit by signal).
    let stop = shutdown::signal();
    tokio::pin!(stop);
    let patience = Duration::from_secs(settings.shutdown_grace_secs + 10);
    let groups = tokio::select! {
        started = start(args, settings) => started?,
        () = &mut stop => {
            // Whatever had started goes with this process (its children die with it).
            println!("polyshop: stopped while starting");
            return Ok(());
        }
    };
    stop.await;
    println!("polyshop: stopping");
    supervise::stop_all(groups, patience).await;
    Ok(())
}

/// Starts NATS, every service and edge, waits until they serve, and prints where they are.
async fn start(args: UpArgs, mut settings: Settings) -> anyhow::Result<Vec<Group>> {
    let cluster = args.nats_cluster;
    if cluster > 1 && settings.nats.url.is_some() {
        bail!("--nats-cluster starts its own nodes: unset POLYSHOP_NATS_URL (nats.url)");
    }
    // First, before anything is written or started: a missing or old nats-server fails here
    // at once instead of being restarted in a loop.
    let nats_server = match &settings.nats.url {
        Some(_) => None,
        None => Some(nats_server::find().await?),
    };
    if nats_server.is_some() && settings.nats.credentials_file.is_some() {
        bail!(
            "nats.credentials_file is for an external NATS (nats.url): `up` gives its own \
             nats-server generated users"
        );
    }
    let nats_replicas = if cluster > 1 {
        cluster
    } else {
        settings.nats.replicas
    };
    if nats_server.is_some() && nats_replicas > cluster {
        bail!(
            "nats.replicas = {nats_replicas} needs as many servers: add --nats-cluster 3, or set \
             POLYSHOP_NATS_URL to a cluster"
        );
    }
    // TLS between services: checked before anything starts, and used by `up`'s own calls
    // (readiness, demo data) to the children.
    polyshop_platform::tls::install(&settings.tls)?;
    create_data_dir(&settings.data_dir)
        .with_context(|| format!("cannot create data dir {}", settings.data_dir.display()))?;
    settings.data_dir = std::fs::canonicalize(&settings.data_dir)?;
    let data = settings.data_dir.clone();
    let fresh = !data.join(INITIALIZED).exists();
    // The NATS identities of our own broker; an external one (nats.url) authenticates the
    // children with whatever the settings (inherited through the environment) give them.
    let nats_users = match &nats_server {
        Some(_) => Some(NatsUsers::load_or_generate(&data)?),
        None => None,
    };

    let admin_password = admin_password(&settings, &data)?;
    let databases = match &args.postgres {
        Some(server) => instances::postgres_databases(server, &args.database_prefix).await?,
        None => Vec::new(),
    };
    let mut ports = FreePorts::new(
        Service::ALL
            .iter()
            .map(|s| s.listen(&settings).port())
            .chain([settings.nats.embedded_port]),
    );

    // Started first, stopped last: NATS carries the outboxes the services drain on the way out.
    let mut groups: Vec<Group> = Vec::new();
    let nats_url = match &nats_server {
        None => settings.nats_url(),
        Some(server) => {
            let users = nats_users
                .as_ref()
                .context("users of the own nats-server")?;
            let nodes =
                nats_nodes::start(server, &data, &settings, cluster, &mut ports, users).await?;
            let urls: Vec<String> = nodes.iter().map(|n| n.url.clone()).collect();
            groups.extend(nodes.into_iter().map(|n| n.group));
            urls.join(",")
        }
    };
    if nats_server.is_some() || nats_replicas > 1 {
        let admin = match &nats_users {
            Some(_) => identity::Credentials::generated(&data, identity::ADMIN)
                .context("the admin identity's password")?,
            None => {
                identity::Credentials::of(&settings, identity::ADMIN).map_err(anyhow::Error::msg)?
            }
        };
        nats_nodes::prepare_streams(&nats_url, nats_replicas, &settings, &admin).await?;
        // The runtime settings bucket, which the services only watch (decision 0021).
        let client = identity::connect(&nats_url, "polyshop-up", &admin).await?;
        polyshop_platform::runtime_config::bucket_replicated(
            &async_nats::jetstream::new(client),
            nats_replicas,
        )
        .await
        .map_err(anyhow::Error::msg)?;
    }

    let exe = std::env::current_exe().context("cannot find the polyshop binary")?;
    let base_env = child_env(
        &settings,
        &data,
        &nats_url,
        nats_replicas,
        args.replicas > 1,
    );
    // Every context's first instance starts at once (they find each other through the
    // registry, whenever each arrives), then the other instances: a first instance migrates
    // its context's shared database before another opens it. Started one after another, the
    // seven took 3.5 s to ready on two cores; at once, see docs/performance.md.
    let mut started: Vec<Instance> = Vec::new();
    let mut replicas = Vec::new();
    for service in Service::ALL {
        let planned = instances::plan(service, &settings, usize::from(args.replicas), &mut ports)?;
        let mut group = Group::new(service.as_str());
        let mut specs = planned.iter().map(|instance| {
            let mut env = base_env.clone();
            env.extend(instance.env.iter().cloned());
            if let Some(users) = &nats_users {
                env.extend(users.env_of(service));
            }
            if let Some((_, url)) = databases.iter().find(|(s, _)| *s == service) {
                let key = format!("POLYSHOP_{}_DATABASE_URL", service.as_str().to_uppercase());
                env.push((key, url.clone()));
            }
            if service == Service::User {
                env.push((
                    "POLYSHOP_USER_ADMIN_PASSWORD".into(),
                    admin_password.clone(),
                ));
            }
            Spec {
                name: instance.name(),
                program: exe.clone(),
                args: vec![
                    "serve".into(),
                    service.as_str().into(),
                    "--supervised".into(),
                ],
                env,
            }
        });
        if let Some(first) = specs.next() {
            group.spawn(first);
        }
        replicas.push((group, specs.collect::<Vec<_>>()));
        started.extend(planned);
    }
    wait_serving(started.iter().filter(|i| i.index == 0), &settings).await?;
    for (group, specs) in &mut replicas {
        for spec in specs.drain(..) {
            group.spawn(spec);
        }
    }
    wait_serving(started.iter().filter(|i| i.index > 0), &settings).await?;
    groups.extend(replicas.into_iter().map(|(group, _)| group));

    if fresh {
        if !args.no_demo {
            demo::seed(&settings, &settings.user.admin_username, &admin_password).await?;
        }
        std::fs::write(data.join(INITIALIZED), b"")?;
    }
    print_endpoints(&settings, &started, &nats_url, nats_server.as_ref(), &data);
    if nats_replicas > 1 {
        println!(
            "  {:<13} {nats_replicas} copies of every stream and bucket",
            "replicas"
        );
    }
    match &args.postgres {
        Some(_) => println!(
            "  {:<13} PostgreSQL, one database per service: {}<service>",
            "storage", args.database_prefix
        ),
        None => println!(
            "  {:<13} SQLite, one file per service under {} (shared by its instances)",
            "storage",
            data.display()
        ),
    }
    let edges: Vec<&str> = started
        .iter()
        .filter(|i| i.service == Service::Gateway)
        .map(|i| i.url.as_str())
        .collect();
    println!("Edges: {}", edges.join(" "));
    if fresh {
        println!(
            "Admin account (new data dir): {} / {admin_password}",
            settings.user.admin_username
        );
    }
    println!("Stop with Ctrl-C.");
    Ok(groups)
}

/// What every service child's environment adds.
/// Waits until every one of `instances` serves.
async fn wait_serving<'a>(
    instances: impl Iterator<Item = &'a Instance>,
    settings: &Settings,
) -> anyhow::Result<()> {
    for instance in instances {
        supervise::wait_serving(
            &instance.name(),
            instance.service.grpc_name(),
            &instance.url,
            &instance.service.dial(settings),
        )
        .await?;
    }
    Ok(())
}

fn child_env(
    settings: &Settings,
    data: &Path,
    nats_url: &str,
    nats_replicas: usize,
    registry: bool,
) -> Vec<(String, String)> {
    let mut env = vec![
        ("POLYSHOP_DATA_DIR".to_owned(), data.display().to_string()),
        ("POLYSHOP_NATS_URL".to_owned(), nats_url.to_owned()),
        (
            "POLYSHOP_NATS_REPLICAS".to_owned(),
            nats_replicas.to_string(),
        ),
        (
            "POLYSHOP_WORKER_THREADS".to_owned(),
            child_worker_threads(settings.worker_threads).to_string(),
        ),
    ];
    // Instances beyond the configured URLs are found only through the registry.
    if registry {
        env.push(("POLYSHOP_DISCOVERY_MODE".to_owned(), "nats".to_owned()));
    }
    for (name, value) in ALLOCATOR_DEFAULTS {
        if std::env::var_os(name).is_none() {
            env.push((name.to_owned(), value.to_owned()));
        }
    }
    env
}

/// mimalloc's options for every process `up` starts, itself included, unless the caller tuned
/// mimalloc: give freed memory back after a second and commit arenas lazily, so a process's
/// RSS follows its live heap. Purging at once (delay 0) re-faulted the same pages on every
/// request: the edge did 17-23% fewer req/s for 4 MiB less RSS.
const ALLOCATOR_DEFAULTS: [(&str, &str); 2] = [
    ("MIMALLOC_PURGE_DELAY", "1000"),
    ("MIMALLOC_ARENA_EAGER_COMMIT", "0"),
];

/// Starts this `polyshop up` again, in place (same pid, arguments and streams), with
/// [`ALLOCATOR_DEFAULTS`] in its environment, when any of them is missing. mimalloc reads its
/// options from the environment at its first allocation, before `main`, so the supervisor
/// can only give them to itself this way: with eagerly committed arenas it held 25 MiB of
/// anonymous memory at idle, 8 MiB without (docs/performance.md). Returns only if the
/// restart failed (then `up` goes on with the allocator as it is).
pub fn restart_with_allocator_defaults() -> Option<std::io::Error> {
    use std::os::unix::process::CommandExt;
    let missing: Vec<_> = ALLOCATOR_DEFAULTS
        .into_iter()
        .filter(|(name, _)| std::env::var_os(name).is_none())
        .collect();
    if missing.is_empty() {
        return None;
    }
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => return Some(e),
    };
    Some(
        std::process::Command::new(exe)
            .args(std::env::args_os().skip(1))
            .envs(missing)
            .exec(),
    )
}

/// Creates the data dir owner-only (0700), and makes an existing one so: it holds the admin
/// credentials, signing keys and the SQLite files with password hashes.
fn create_data_dir(dir: &Path) -> std::io::Result<()> {
    auth::keys::create_private_dir(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// The admin password: from config, from the credentials file, or new on a fresh data dir.
fn admin_password(settings: &Settings, data: &Path) -> anyhow::Result<String> {
    if let Some(p) = &settings.user.admin_password {
        return Ok(p.expose_secret().to_owned());
    }
    let file = data.join(CREDENTIALS);
    if let Ok(text) = std::fs::read_to_string(&file)
        && let Some(p) = text.lines().find_map(|l| l.strip_prefix("password: "))
    {
        return Ok(p.to_owned());
    }
    use rand::Rng;
    let password: String = rand::thread_rng()
        .sample_iter(&rand::distributions::Alphanumeric)
        .take(24)
        .map(char::from)
        .collect();
    let text = format!(
        "username: {}\npassword: {password}\n",
        settings.user.admin_username
    );
    auth::keys::write_secret_file(&file, text.as_bytes())
        .with_context(|| format!("cannot write {}", file.display()))?;
    Ok(password)
}

fn print_endpoints(
    settings: &Settings,
    started: &[Instance],
    nats_url: &str,
    nats_server: Option<&NatsServer>,
    data: &Path,
) {
    println!();
    println!("Polyshop is up. Data dir: {}", data.display());
    for instance in started {
        let grpc_name = if instance.index == 0 {
            instance.service.grpc_name()
        } else {
            ""
        };
        println!("  {:<13} {:<26} {grpc_name}", instance.name(), instance.url);
    }
    for (i, url) in nats_url.split(',').enumerate() {
        let name = if i == 0 { "nats" } else { "" };
        println!("  {name:<13} {url}");
    }
    if let Some(server) = nats_server {
        println!(
            "  {:<13} {} (version {}), JetStream under {}",
            "nats-server",
            server.path.display(),
            server.version,
            data.display()
        );
    }
    println!(
        "  {:<13} username {}, password in {}",
        "admin",
        settings.user.admin_username,
        data.join(CREDENTIALS).display()
    );
    println!();
    println!("Try:");
    let curl = curl(settings);
    println!("  {curl} {}/v1/products?pageSize=3", service_url(settings));
    println!(
        "  {curl} {}/openapi.json | head -c 300",
        service_url(settings)
    );
    let grpcurl = grpcurl(settings);
    println!(
        "  {grpcurl} {} list",
        strip(&Service::Catalog.url(settings))
    );
    println!(
        "  {grpcurl} -d '{{\"page_size\": 3}}' {} polyshop.catalog.v1.CatalogService/ListProducts",
        strip(&Service::Catalog.url(settings))
    );
}

/// `curl -s`, trusting the CA of the edge's certificate when it serves HTTPS (`ca.pem`
/// beside it, as `admin gen-cert` writes).
fn curl(settings: &Settings) -> String {
    match &settings.gateway.tls_cert_path {
        None => "curl -s".to_owned(),
        Some(cert) => {
            let ca = cert.with_file_name("ca.pem");
            let ca = if ca.exists() {
                ca.display().to_string()
            } else {
                format!("<the CA of {}>", cert.display())
            };
            format!("curl -s --cacert {ca}")
        }
    }
}

/// `grpcurl` with the flags a service's port needs: plaintext, or the CA and client
/// certificate of TLS between services.
fn grpcurl(settings: &Settings) -> String {
    let tls = &settings.tls;
    match (&tls.ca_path, &tls.cert_path, &tls.key_path) {
        (Some(ca), Some(cert), Some(key)) => format!(
            "grpcurl -cacert {} -cert {} -key {}",
            ca.display(),
            cert.display(),
            key.display()
        ),
        _ => "grpcurl -plaintext".to_owned(),
    }
}

fn service_url(settings: &Settings) -> String {
    Service::Gateway.url(settings)
}

fn strip(url: &str) -> &str {
    url.trim_start_matches("http://")
        .trim_start_matches("https://")
}

/// Worker threads for each child: the configured number, else a share of the cores. Seven
/// processes with a thread per core each would spend their time handing work between threads
/// (on 2 cores, one worker per process gave the edge 15% more throughput and half the p99).
pub fn child_worker_threads(configured: usize) -> usize {
    if configured > 0 {
        return configured;
    }
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    (cores / 4).max(1)
}
