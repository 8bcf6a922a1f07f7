//! Crash-test failpoints: `POLYSHOP_FAILPOINT=order.after_reserve=exit` makes the process exit
//! abruptly the first time it reaches that point (a marker under the data dir keeps a
//! restarted process from crashing again), so tests can kill the saga at every step.

use std::{path::PathBuf, sync::OnceLock};

static ARMED: OnceLock<Option<(String, PathBuf)>> = OnceLock::new();

/// Arms the failpoint named in `POLYSHOP_FAILPOINT`, if any; markers go under `data_dir`.
pub fn arm(data_dir: &std::path::Path) {
    let armed = std::env::var("POLYSHOP_FAILPOINT").ok().and_then(|spec| {
        let (name, action) = spec.split_once('=')?;
        (action == "exit").then(|| (name.to_owned(), data_dir.join("failpoints")))
    });
    let _ = ARMED.set(armed);
}

/// Exits the process here if this failpoint is armed and has not fired before.
pub fn hit(name: &str) {
    let Some(Some((armed, dir))) = ARMED.get() else {
        return;
    };
    if armed != name {
        return;
    }
    let marker = dir.join(name);
    if marker.exists() {
        return;
    }
    let _ = std::fs::create_dir_all(dir);
    let _ = std::fs::write(&marker, b"fired");
    tracing::error!(failpoint = name, "failpoint hit: exiting abruptly");
    std::process::exit(86);
}
