//! `polyshop up`: the whole system on one machine. Finds nats-server (>= 2.11, see
//! [`crate::nats_server`]) before anything else, starts it as a child with JetStream (store
//! under the data dir, every write synced), then one `polyshop serve <service>` child
//! per service, each on its own port, waiting for each to report SERVING. A fresh data dir
//! gets an admin account and demo data. On SIGTERM / Ctrl-C the children get SIGTERM in
//! reverse order; a child that crashes is restarted with backoff.

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use anyhow::{Context, bail};
use polyshop_platform::{auth, config::Settings, shutdown};
use tokio::{process::Command, task::JoinHandle};

use crate::{
    demo,
    nats_server::{self, NatsServer},
    services::Service,
};

/// Options of `polyshop up`.
#[derive(Debug, clap::Args)]
pub struct UpArgs {
    /// Do not create demo products and stock on a fresh data dir.
    #[arg(long)]
    pub no_demo: bool,
}

const INITIALIZED: &str = ".polyshop-initialized";
const CREDENTIALS: &str = "admin-credentials.txt";
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs everything until a signal.
///
/// # Errors
/// If a child cannot be started or does not become ready.
pub async fn run(args: UpArgs, mut settings: Settings) -> anyhow::Result<()> {
    // First, before anything is written or started: a missing or old nats-server fails here
    // at once instead of being restarted in a loop.
    let nats_server = match &settings.nats.url {
        Some(_) => None,
        None => Some(nats_server::find().await?),
    };
    std::fs::create_dir_all(&settings.data_dir)
        .with_context(|| format!("cannot create data dir {}", settings.data_dir.display()))?;
    settings.data_dir = std::fs::canonicalize(&settings.data_dir)?;
    let data = settings.data_dir.clone();
    let fresh = !data.join(INITIALIZED).exists();

    // Generate the shared service key before the children race to.
    auth::service_tokens(&settings, "polyshop-cli")?;
    let admin_password = admin_password(&settings, &data)?;

    let (stop, stopped) = shutdown::channel();
    // NATS has its own trigger: it stops only after every service has drained its outbox.
    let (stop_nats, nats_stopped) = shutdown::channel();
    let mut children: Vec<(String, JoinHandle<()>)> = Vec::new();

    let (nats_url, nats) = match &nats_server {
        None => (settings.nats_url(), None),
        Some(server) => {
            let (url, handle) = start_nats(server, &data, &settings, nats_stopped).await?;
            (url, Some(handle))
        }
    };

    let exe = std::env::current_exe().context("cannot find the polyshop binary")?;
    for service in Service::ALL {
        let mut env = vec![
            ("POLYSHOP_DATA_DIR".to_owned(), data.display().to_string()),
            ("POLYSHOP_NATS_URL".to_owned(), nats_url.clone()),
            (
                "POLYSHOP_WORKER_THREADS".to_owned(),
                child_worker_threads(settings.worker_threads).to_string(),
            ),
        ];
        // mimalloc: give freed memory back after a second and commit arenas lazily, so a
        // child's RSS follows its live heap (unless the caller tuned mimalloc itself). Purging
        // at once (delay 0) re-faulted the same pages on every request: the edge did 17-23%
        // fewer req/s for 4 MiB less RSS.
        for (name, value) in [
            ("MIMALLOC_PURGE_DELAY", "1000"),
            ("MIMALLOC_ARENA_EAGER_COMMIT", "0"),
        ] {
            if std::env::var_os(name).is_none() {
                env.push((name.to_owned(), value.to_owned()));
            }
        }
        if service == Service::User {
            env.push((
                "POLYSHOP_USER_ADMIN_PASSWORD".into(),
                admin_password.clone(),
            ));
        }
        let handle = supervise(
            service.as_str().to_owned(),
            exe.clone(),
            vec![
                "serve".into(),
                service.as_str().into(),
                "--supervised".into(),
            ],
            env,
            stopped.clone(),
        );
        children.push((service.as_str().into(), handle));
        wait_serving(service, &settings).await?;
    }

    if fresh {
        if !args.no_demo {
            demo::seed(&settings, &settings.user.admin_username, &admin_password).await?;
        }
        std::fs::write(data.join(INITIALIZED), b"")?;
    }
    print_endpoints(&settings, &nats_url, nats_server.as_ref(), &data);
    if fresh {
        println!(
            "Admin account (new data dir): {} / {admin_password}",
            settings.user.admin_username
        );
    }

    shutdown::signal().await;
    println!("polyshop: stopping");
    stop.fire();
    let patience = Duration::from_secs(settings.shutdown_grace_secs + 10);
    for (name, handle) in children.into_iter().rev() {
        if tokio::time::timeout(patience, handle).await.is_err() {
            eprintln!("polyshop: {name} did not stop in time");
        }
    }
    stop_nats.fire();
    if let Some(handle) = nats
        && tokio::time::timeout(patience, handle).await.is_err()
    {
        eprintln!("polyshop: nats-server did not stop in time");
    }
    Ok(())
}

/// The admin password: from config, from the credentials file, or new on a fresh data dir.
fn admin_password(settings: &Settings, data: &Path) -> anyhow::Result<String> {
    if let Some(p) = &settings.user.admin_password {
        return Ok(p.clone());
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
    std::fs::write(&file, text).with_context(|| format!("cannot write {}", file.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(password)
}

async fn start_nats(
    server: &NatsServer,
    data: &Path,
    settings: &Settings,
    stopped: shutdown::Shutdown,
) -> anyhow::Result<(String, JoinHandle<()>)> {
    let port = settings.nats.embedded_port;
    let dir = data.join("nats");
    std::fs::create_dir_all(&dir)?;
    // `sync_interval: always` fsyncs every JetStream write: with the default, acknowledged
    // messages can be lost on power failure.
    let config = format!(
        "listen: \"127.0.0.1:{port}\"\nserver_name: \"polyshop-embedded\"\nlog_file: \"{}\"\njetstream {{\n  store_dir: \"{}\"\n  sync_interval: always\n}}\n",
        dir.join("nats-server.log").display(),
        dir.display()
    );
    let conf = dir.join("nats.conf");
    std::fs::write(&conf, config)?;
    // Through `polyshop exec-supervised`, so the broker stops if `up` is killed.
    let exe = std::env::current_exe().context("cannot find the polyshop binary")?;
    let program = server
        .path
        .to_str()
        .with_context(|| format!("{} is not a UTF-8 path", server.path.display()))?;
    let handle = supervise(
        "nats-server".into(),
        exe,
        vec![
            "exec-supervised".into(),
            program.into(),
            "-c".into(),
            conf.display().to_string(),
        ],
        nats_env(settings.worker_threads),
        stopped,
    );
    let deadline = tokio::time::Instant::now() + READY_TIMEOUT;
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        if tokio::time::Instant::now() > deadline {
            bail!(
                "nats-server {} ({}) did not start on port {port} within {READY_TIMEOUT:?}: see {}",
                server.version,
                server.path.display(),
                dir.join("nats-server.log").display()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok((format!("nats://127.0.0.1:{port}"), handle))
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
        child_worker_threads(worker_threads).to_string(),
    )]
}

/// Runs a child until `stopped`, then SIGTERMs it; restarts it with backoff if it crashes.
fn supervise(
    name: String,
    program: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
    stopped: shutdown::Shutdown,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut backoff = Duration::from_millis(500);
        loop {
            let mut child = match Command::new(&program)
                .args(&args)
                .envs(env.iter().cloned())
                .stdin(Stdio::null())
                .kill_on_drop(true)
                .spawn()
            {
                Ok(child) => child,
                Err(e) => {
                    eprintln!("polyshop: cannot start {name} ({}): {e}", program.display());
                    return;
                }
            };
            tokio::select! {
                status = child.wait() => {
                    match status {
                        Ok(s) if s.success() => {
                            eprintln!("polyshop: {name} exited cleanly; not restarting");
                            return;
                        }
                        other => eprintln!("polyshop: {name} stopped unexpectedly ({other:?}); restarting in {backoff:?}"),
                    }
                    if stopped.is_fired() {
                        return;
                    }
                    tokio::select! {
                        () = tokio::time::sleep(backoff) => {}
                        () = stopped.clone().wait() => return,
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                }
                () = stopped.clone().wait() => {
                    terminate(&name, &mut child).await;
                    return;
                }
            }
        }
    })
}

async fn terminate(name: &str, child: &mut tokio::process::Child) {
    if let Some(pid) = child.id().and_then(|id| i32::try_from(id).ok()) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGTERM,
        );
    }
    match tokio::time::timeout(Duration::from_secs(20), child.wait()).await {
        Ok(Ok(status)) => eprintln!("polyshop: {name} stopped ({status})"),
        _ => {
            eprintln!("polyshop: {name} did not stop after SIGTERM; killing it");
            let _ = child.kill().await;
        }
    }
}

async fn wait_serving(service: Service, settings: &Settings) -> anyhow::Result<()> {
    use tonic_health::pb::{
        HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
    };
    let url = service.url(settings);
    let deadline = tokio::time::Instant::now() + READY_TIMEOUT;
    loop {
        let serving = async {
            let channel = tonic::transport::Endpoint::from_shared(url.clone())?
                .connect()
                .await?;
            let status = HealthClient::new(channel)
                .check(HealthCheckRequest {
                    service: service.grpc_name().into(),
                })
                .await?
                .into_inner()
                .status;
            anyhow::Ok(status == ServingStatus::Serving as i32)
        }
        .await
        .unwrap_or(false);
        if serving {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            bail!(
                "the {} service did not become ready at {url}",
                service.as_str()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn print_endpoints(
    settings: &Settings,
    nats_url: &str,
    nats_server: Option<&NatsServer>,
    data: &Path,
) {
    println!();
    println!("Polyshop is up. Data dir: {}", data.display());
    for service in Service::ALL {
        println!(
            "  {:<13} {:<26} {}",
            service.as_str(),
            service.url(settings),
            service.grpc_name()
        );
    }
    println!(
        "  {:<13} {nats_url:<26} JetStream store under {}/nats",
        "nats",
        data.display()
    );
    if let Some(server) = nats_server {
        println!(
            "  {:<13} {} (version {})",
            "nats-server",
            server.path.display(),
            server.version
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
    println!("  curl -s {}/v1/products?pageSize=3", service_url(settings));
    println!(
        "  curl -s {}/openapi.json | head -c 300",
        service_url(settings)
    );
    println!(
        "  grpcurl -plaintext {} list",
        strip(&settings.catalog.url())
    );
    println!(
        "  grpcurl -plaintext -d '{{\"page_size\": 3}}' {} polyshop.catalog.v1.CatalogService/ListProducts",
        strip(&settings.catalog.url())
    );
    println!("Stop with Ctrl-C.");
}

fn service_url(settings: &Settings) -> String {
    Service::Gateway.url(settings)
}

fn strip(url: &str) -> &str {
    url.trim_start_matches("http://")
}

/// Worker threads for each child: the configured number, else a share of the cores. Seven
/// processes with a thread per core each would spend their time handing work between threads
/// (on 2 cores, one worker per process gave the edge 15% more throughput and half the p99).
fn child_worker_threads(configured: usize) -> usize {
    if configured > 0 {
        return configured;
    }
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    (cores / 4).max(1)
}
