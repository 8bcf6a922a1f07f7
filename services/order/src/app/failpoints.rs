//! Failpoints for crash and fault tests, per service instance: `name=exit` ends the process
//! abruptly the first time it gets there (a marker under the data dir keeps a restarted
//! process from crashing again), `name=refuse` makes the participant call of that name answer
//! with its business refusal, `name=sleep(ms)` pauses there. Armed from `POLYSHOP_FAILPOINT`
//! (comma-separated) and `order.failpoints`.

use std::{collections::HashMap, path::PathBuf, sync::Arc, time::Duration};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Exit,
    Refuse,
    Sleep(Duration),
}

/// The armed failpoints of one service instance (none in production).
#[derive(Debug, Clone, Default)]
pub struct Failpoints {
    armed: Arc<HashMap<String, Action>>,
    markers: PathBuf,
}

impl Failpoints {
    /// Failpoints from `specs` (`name=action`); unknown actions are ignored with a warning.
    /// `exit` markers go under `data_dir`.
    pub fn new<'a>(specs: impl IntoIterator<Item = &'a str>, data_dir: &std::path::Path) -> Self {
        let mut armed = HashMap::new();
        for spec in specs {
            let Some((name, action)) = spec.trim().split_once('=') else {
                continue;
            };
            let action = match action {
                "exit" => Action::Exit,
                "refuse" => Action::Refuse,
                other => match other
                    .strip_prefix("sleep(")
                    .and_then(|s| s.strip_suffix(')'))
                    .and_then(|ms| ms.parse().ok())
                {
                    Some(ms) => Action::Sleep(Duration::from_millis(ms)),
                    None => {
                        tracing::warn!(
                            failpoint = name,
                            action = other,
                            "unknown failpoint action"
                        );
                        continue;
                    }
                },
            };
            tracing::warn!(failpoint = name, ?action, "failpoint armed");
            armed.insert(name.to_owned(), action);
        }
        Self {
            armed: Arc::new(armed),
            markers: data_dir.join("failpoints"),
        }
    }

    /// Failpoints from `POLYSHOP_FAILPOINT` and `configured`.
    pub fn armed(configured: &[String], data_dir: &std::path::Path) -> Self {
        let env = std::env::var("POLYSHOP_FAILPOINT").unwrap_or_default();
        Self::new(
            env.split(',').chain(configured.iter().map(String::as_str)),
            data_dir,
        )
    }

    /// Exits or pauses here if `name` says so.
    pub async fn hit(&self, name: &str) {
        match self.armed.get(name) {
            Some(Action::Exit) => {
                let marker = self.markers.join(name);
                if marker.exists() {
                    return;
                }
                let _ = std::fs::create_dir_all(&self.markers);
                let _ = std::fs::write(&marker, b"fired");
                tracing::error!(failpoint = name, "failpoint hit: exiting abruptly");
                std::process::exit(86);
            }
            Some(Action::Sleep(pause)) => tokio::time::sleep(*pause).await,
            Some(Action::Refuse) | None => {}
        }
    }

    /// Whether the participant call `name` is to be answered with a refusal.
    pub fn refuses(&self, name: &str) -> bool {
        self.armed.get(name) == Some(&Action::Refuse)
    }
}
