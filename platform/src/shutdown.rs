//! The shutdown signal: SIGTERM or SIGINT, or a trigger that tests and `polyshop up` hold.

use tokio::sync::watch;

/// Resolves on SIGTERM or Ctrl-C (SIGINT).
///
/// The handlers are installed when this is called, not when the future is first polled: a
/// server polls its shutdown future only from its accept loop, and a SIGTERM that came
/// before that (while the database opened, or between two accepted connections) would
/// otherwise kill the process without draining.
pub fn signal() -> impl Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{Signal, SignalKind, signal};
        let listen = |kind: SignalKind, name: &str| {
            signal(kind)
                .inspect_err(|e| tracing::warn!(error = %e, "cannot listen for {name}"))
                .ok()
        };
        async fn received(signal: Option<Signal>) {
            match signal {
                Some(mut signal) => {
                    signal.recv().await;
                }
                None => std::future::pending().await,
            }
        }
        let term = received(listen(SignalKind::terminate(), "SIGTERM"));
        let int = received(listen(SignalKind::interrupt(), "ctrl-c"));
        async move {
            tokio::select! {
                () = term => tracing::info!("SIGTERM received, shutting down"),
                () = int => tracing::info!("ctrl-c received, shutting down"),
            }
        }
    }
    #[cfg(not(unix))]
    async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::warn!(error = %e, "cannot listen for ctrl-c");
            std::future::pending::<()>().await;
        }
        tracing::info!("ctrl-c received, shutting down");
    }
}

/// A shutdown that many tasks can wait on and anyone holding the [`Trigger`] can fire.
#[derive(Debug, Clone)]
pub struct Shutdown(watch::Receiver<bool>);

/// Fires a [`Shutdown`].
#[derive(Debug)]
pub struct Trigger(watch::Sender<bool>);

/// A new, unfired shutdown.
pub fn channel() -> (Trigger, Shutdown) {
    let (tx, rx) = watch::channel(false);
    (Trigger(tx), Shutdown(rx))
}

impl Trigger {
    /// Fires the shutdown; waiting tasks wake.
    pub fn fire(&self) {
        let _ = self.0.send(true);
    }
}

impl Shutdown {
    /// Resolves once fired (or once the trigger is dropped).
    pub async fn wait(mut self) {
        let _ = self.0.wait_for(|fired| *fired).await;
    }

    /// Whether it has fired.
    pub fn is_fired(&self) -> bool {
        *self.0.borrow()
    }
}
