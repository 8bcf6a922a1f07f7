//! deploy/ stays runnable: every process has a Kubernetes Deployment and Service and a compose
//! service (checked by `tests/python/deploy_manifests.py`), and the environment each one gets
//! is a configuration `polyshop` accepts, listening where its Service points and finding its
//! peers, NATS and the keys where the manifests put them.

use std::collections::HashMap;

use tokio::process::Command;

use crate::harness::repo_root;

#[tokio::test]
async fn every_manifest_gives_its_process_a_configuration_polyshop_accepts() {
    let python = repo_root().join(".tools/venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run `just tools`",
        python.display()
    );
    let out = Command::new(&python)
        .arg(repo_root().join("tests/python/deploy_manifests.py"))
        .output()
        .await
        .expect("run the manifest check");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let workloads: HashMap<String, HashMap<String, String>> =
        serde_json::from_slice(&out.stdout).expect("manifest envs");
    assert_eq!(workloads.len(), 14, "{:?}", workloads.keys());

    for (workload, env) in &workloads {
        let process = workload.rsplit('/').next().expect("name");
        let dir = tempfile::tempdir().expect("tempdir");
        let config = Command::new(env!("CARGO_BIN_EXE_polyshop"))
            .args(["admin", "config"])
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("POLYSHOP_CONFIG", dir.path().join("none.toml"))
            .envs(env)
            .current_dir(dir.path())
            .output()
            .await
            .expect("run polyshop admin config");
        assert!(
            config.status.success(),
            "{workload}: {}",
            String::from_utf8_lossy(&config.stderr)
        );
        let settings: serde_json::Value =
            serde_json::from_slice(&config.stdout).expect("config json");
        let listen = settings[process]["listen"].as_str().unwrap_or_default();
        assert!(
            listen.starts_with("0.0.0.0:"),
            "{workload} listens on {listen}"
        );
        assert_eq!(settings["discovery"]["mode"], "nats", "{workload}");
        assert!(
            settings["nats"]["url"]
                .as_str()
                .is_some_and(|u| u.starts_with("nats://")),
            "{workload}: {}",
            settings["nats"]
        );
        assert_eq!(
            settings["auth"]["service_key_path"], "/keys/service-ed25519.pem",
            "{workload}"
        );
        if process != "gateway" {
            let db = settings[process]["database_url"]
                .as_str()
                .unwrap_or_default();
            assert!(
                db.starts_with("postgres://"),
                "{workload} uses PostgreSQL: {db}"
            );
        }
        for peer in [
            "user",
            "catalog",
            "inventory",
            "order",
            "payment",
            "notification",
        ] {
            let url = settings[peer]["url"].as_str().unwrap_or_default();
            assert!(
                url.starts_with(&format!("http://{peer}")),
                "{workload}: {peer} at {url}"
            );
        }
    }
}

/// The container image's build step, exactly as `deploy/Dockerfile` writes it, run here: a
/// build line that cargo refuses (it once named a binary the workspace root does not have)
/// fails CI instead of the first `docker build`.
#[tokio::test]
async fn the_dockerfiles_cargo_build_line_builds_the_binary_the_image_copies() {
    let dockerfile =
        std::fs::read_to_string(repo_root().join("deploy/Dockerfile")).expect("Dockerfile");
    let line = dockerfile
        .lines()
        .find_map(|l| l.trim().strip_prefix("RUN cargo "))
        .expect("a RUN cargo line");
    let copied = dockerfile
        .lines()
        .find_map(|l| l.trim().strip_prefix("COPY --from=build /src/target/"))
        .and_then(|rest| rest.split_whitespace().next())
        .expect("the COPY of the built binary")
        .to_owned();
    let out = Command::new(env!("CARGO"))
        .args(line.split_whitespace())
        .current_dir(repo_root())
        .output()
        .await
        .expect("run cargo");
    assert!(
        out.status.success(),
        "`cargo {line}` failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| repo_root().join("target"), std::path::PathBuf::from);
    assert!(
        target.join(&copied).is_file(),
        "the image copies target/{copied}, which `cargo {line}` did not produce"
    );
}
