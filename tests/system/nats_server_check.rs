//! `polyshop up` checks the nats-server it would start before starting anything: with only an
//! old one (Debian ships 2.9, which rejects the JetStream config `up` writes) or none at all,
//! it fails at once and says what to do, instead of restarting the broker for a minute.

use std::{
    path::Path,
    process::{Output, Stdio},
    time::{Duration, Instant},
};

use tokio::process::Command;

use crate::harness::System;

/// Where a Debian-like system keeps its programs; the test's own directory goes first.
const SYSTEM_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// A `nats-server` script in `dir` that reports `version` and, run for real, fails the way
/// Debian's 2.9 does on the config `up` writes.
fn fake_nats_server(dir: &Path, version: &str) {
    use std::os::unix::fs::PermissionsExt;
    let script = format!(
        "#!/bin/sh\n\
         if [ \"$1\" = --version ]; then echo 'nats-server: v{version}'; exit 0; fi\n\
         echo 'nats-server: nats.conf: unknown field \"sync_interval\"' >&2\n\
         exit 1\n"
    );
    let path = dir.join("nats-server");
    std::fs::write(&path, script).expect("write fake nats-server");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

/// Runs `polyshop up` with `path` as PATH from `cwd` (no `.tools/bin` there or above), a data
/// dir that does not exist yet, and fresh ports; returns its output and how long it took.
async fn up_with_path(path: &str, cwd: &Path, data_dir: &Path) -> (Output, Duration) {
    let mut env = System::environment(data_dir);
    env.insert("PATH".into(), path.into());
    let started = Instant::now();
    let child = Command::new(env!("CARGO_BIN_EXE_polyshop"))
        .arg("up")
        .envs(&env)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start polyshop up");
    // Generous, so that a regression shows its output rather than a timeout.
    let output = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .expect("polyshop up exits")
        .expect("wait");
    (output, started.elapsed())
}

#[tokio::test]
async fn up_refuses_an_old_nats_server_on_path_at_once_naming_both_versions() {
    let bin = tempfile::tempdir().expect("tempdir");
    fake_nats_server(bin.path(), "2.9.11");
    let cwd = tempfile::tempdir().expect("tempdir");
    let data = cwd.path().join("data");

    let path = format!("{}:{SYSTEM_PATH}", bin.path().display());
    let (output, took) = up_with_path(&path, cwd.path(), &data).await;

    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "up failed: {stderr}");
    assert!(
        took < Duration::from_secs(2),
        "up failed within 2 s, not {took:?}: {stderr}"
    );
    for expected in ["2.9.11", "2.11", "just tools", "nats-server"] {
        assert!(
            stderr.contains(expected),
            "stderr names {expected}: {stderr}"
        );
    }
    assert!(
        !stderr.contains("restarting"),
        "the old nats-server was never started: {stderr}"
    );
    assert!(!data.exists(), "nothing was written before the check");
}

#[tokio::test]
async fn up_without_any_nats_server_fails_at_once_and_points_to_just_tools() {
    let empty = tempfile::tempdir().expect("tempdir");
    let cwd = tempfile::tempdir().expect("tempdir");
    let data = cwd.path().join("data");

    let path = empty.path().display().to_string();
    let (output, took) = up_with_path(&path, cwd.path(), &data).await;

    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "up failed: {stderr}");
    assert!(
        took < Duration::from_secs(2),
        "up failed within 2 s, not {took:?}: {stderr}"
    );
    for expected in ["nats-server not found", ".tools/bin", "just tools"] {
        assert!(
            stderr.contains(expected),
            "stderr says {expected}: {stderr}"
        );
    }
    assert!(!data.exists(), "nothing was written before the check");
}
