//! `polyshop up`'s children: each runs under a task that restarts it with backoff when it
//! crashes and SIGTERMs it when its group is told to stop. Groups stop one after another, in
//! the reverse of their start order.

use std::{path::PathBuf, process::Stdio, time::Duration};

use anyhow::bail;
use polyshop_platform::shutdown;
use tokio::{process::Command, task::JoinHandle};

/// How long a child may take to report SERVING (or a broker to accept connections).
pub const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// Children that start together and stop together: every instance of one service, or one
/// nats-server node.
#[derive(Debug)]
pub struct Group {
    name: String,
    stop: shutdown::Trigger,
    stopped: shutdown::Shutdown,
    children: Vec<(String, JoinHandle<()>)>,
}

/// One child to run: a program, its arguments and what it adds to the environment.
#[derive(Debug, Clone)]
pub struct Spec {
    /// How logs name it: `catalog`, `catalog#2`, `nats-server n1`.
    pub name: String,
    /// The executable.
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<String>,
    /// Added to the inherited environment.
    pub env: Vec<(String, String)>,
}

impl Group {
    /// An empty group named `name`.
    pub fn new(name: impl Into<String>) -> Self {
        let (stop, stopped) = shutdown::channel();
        Self {
            name: name.into(),
            stop,
            stopped,
            children: Vec::new(),
        }
    }

    /// Starts `spec` under supervision in this group.
    pub fn spawn(&mut self, spec: Spec) {
        let name = spec.name.clone();
        self.children
            .push((name, supervise(spec, self.stopped.clone())));
    }

    /// SIGTERMs every child of the group and waits (at most `patience` each) until they exit.
    pub async fn stop(self, patience: Duration) {
        self.stop.fire();
        for (name, handle) in self.children {
            if tokio::time::timeout(patience, handle).await.is_err() {
                eprintln!("polyshop: {name} ({}) did not stop in time", self.name);
            }
        }
    }
}

/// Stops `groups` last first: the edges before the services they call, the services before
/// the brokers that carry their outboxes.
pub async fn stop_all(groups: Vec<Group>, patience: Duration) {
    for group in groups.into_iter().rev() {
        group.stop(patience).await;
    }
}

/// Runs a child until `stopped`, then SIGTERMs it; restarts it with backoff if it crashes.
fn supervise(spec: Spec, stopped: shutdown::Shutdown) -> JoinHandle<()> {
    let Spec {
        name,
        program,
        args,
        env,
    } = spec;
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

/// Waits until the gRPC health service at `url`, reached as `dial` says (over TLS for a TLS
/// edge or TLS between services), reports `grpc_name` SERVING.
///
/// # Errors
/// If it does not within [`READY_TIMEOUT`].
pub async fn wait_serving(
    name: &str,
    grpc_name: &str,
    url: &str,
    dial: &crate::services::Dial,
) -> anyhow::Result<()> {
    use tonic_health::pb::{
        HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
    };
    let deadline = tokio::time::Instant::now() + READY_TIMEOUT;
    let mut last_error = None;
    loop {
        let serving = async {
            let channel = dial.channel(url).await?;
            let status = HealthClient::new(channel)
                .check(HealthCheckRequest {
                    service: grpc_name.into(),
                })
                .await?
                .into_inner()
                .status;
            anyhow::Ok(status == ServingStatus::Serving as i32)
        }
        .await
        .unwrap_or_else(|e| {
            last_error = Some(format!("{e:#}"));
            false
        });
        if serving {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            match last_error {
                Some(e) => bail!("{name} did not become ready at {url}: {e}"),
                None => bail!("{name} did not become ready at {url}"),
            }
        }
        // Short: `up` waits on this for every context, and a start is a few hundred ms.
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}
