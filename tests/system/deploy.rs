//! deploy/ stays applicable and runnable. Each Kubernetes overlay renders with the pinned
//! `kubectl kustomize` and every object it yields is valid for the Kubernetes version below
//! (kubernetes-validate, offline, strict); `tests/python/deploy_manifests.py` checks what the
//! objects say (every process has its Deployment, Service, headless Service, HPA, budget and
//! probes, Secrets reach only their readers, the NetworkPolicies allow exactly the calls the
//! code makes, NATS is a three-node JetStream cluster) and the compose file; and the
//! environment each process gets is a configuration `polyshop` accepts, listening where its
//! Service points and finding its peers, NATS and the keys where the manifests put them.

use std::{collections::HashMap, path::PathBuf};

use tokio::process::Command;

use crate::harness::repo_root;

/// The oldest Kubernetes the manifests promise to work on (gRPC probes, policy/v1,
/// autoscaling/v2 and `matchLabelKeys` in topology spread constraints are all there).
const KUBERNETES_VERSION: &str = "1.30.0";

const OVERLAYS: [&str; 2] = ["dev", "prod"];

const PORTS: [(&str, u16); 7] = [
    ("user", 50051),
    ("catalog", 50052),
    ("inventory", 50053),
    ("order", 50054),
    ("payment", 50055),
    ("notification", 50056),
    ("gateway", 8080),
];

/// A tool `just tools` provisions: its path, or a failure that says how to get it. Never a
/// skip: a check that silently does not run is how broken manifests reach a cluster.
fn provisioned(relative: &str) -> PathBuf {
    let path = repo_root().join(relative);
    assert!(
        path.exists(),
        "{} is missing: run `just tools`, which installs kubectl, kubernetes-validate and \
         the Python test dependencies into .tools/",
        path.display()
    );
    path
}

#[tokio::test]
async fn every_overlay_renders_and_each_object_is_valid_for_the_oldest_supported_kubernetes() {
    let kubectl = provisioned(".tools/bin/kubectl");
    let validate = provisioned(".tools/bin/kubernetes-validate");
    for overlay in OVERLAYS {
        let dir = repo_root().join("deploy/k8s/overlays").join(overlay);
        let rendered = Command::new(&kubectl)
            .arg("kustomize")
            .arg(&dir)
            .output()
            .await
            .expect("run kubectl kustomize");
        assert!(
            rendered.status.success(),
            "`kubectl kustomize {}` failed: {}",
            dir.display(),
            String::from_utf8_lossy(&rendered.stderr)
        );
        let manifest = tempfile::Builder::new()
            .prefix(&format!("polyshop-{overlay}-"))
            .suffix(".yaml")
            .tempfile()
            .expect("tempfile");
        std::fs::write(manifest.path(), &rendered.stdout).expect("write the rendered overlay");
        let objects = String::from_utf8_lossy(&rendered.stdout)
            .lines()
            .filter(|l| l.starts_with("kind: "))
            .count();
        assert!(objects > 50, "{overlay} rendered only {objects} objects");

        let checked = Command::new(&validate)
            .args([
                "--strict",
                "--quiet",
                "--kubernetes-version",
                KUBERNETES_VERSION,
            ])
            .arg(manifest.path())
            .output()
            .await
            .expect("run kubernetes-validate");
        assert!(
            checked.status.success(),
            "deploy/k8s/overlays/{overlay} is not valid for Kubernetes {KUBERNETES_VERSION}:\n{}{}",
            String::from_utf8_lossy(&checked.stdout),
            String::from_utf8_lossy(&checked.stderr)
        );
    }
}

#[tokio::test]
async fn every_manifest_gives_its_process_a_configuration_polyshop_accepts() {
    let python = provisioned(".tools/venv/bin/python");
    let kubectl = provisioned(".tools/bin/kubectl");
    let out = Command::new(&python)
        .arg(repo_root().join("tests/python/deploy_manifests.py"))
        .arg(&kubectl)
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
    assert_eq!(
        workloads.len(),
        PORTS.len() * (OVERLAYS.len() + 1),
        "{:?}",
        workloads.keys()
    );

    for (workload, env) in &workloads {
        let (origin, process) = workload.split_once('/').expect("origin/process");
        let settings = effective_config(workload, env).await;
        let listen = settings[process]["listen"].as_str().unwrap_or_default();
        assert!(
            listen.starts_with("0.0.0.0:"),
            "{workload} listens on {listen}"
        );
        assert_eq!(settings["discovery"]["mode"], "dns", "{workload}");
        if origin.starts_with("k8s") {
            // Each process is its own NATS identity (decision 0016), password from a Secret.
            assert_eq!(
                settings["nats"]["user"].as_str(),
                Some(process),
                "{workload}: its own NATS identity"
            );
        }
        let signing_key = (process == "user").then_some("/keys/user-ed25519.pem");
        assert_eq!(
            settings["auth"]["signing_key_path"].as_str(),
            signing_key,
            "{workload}"
        );
        if process == "gateway" {
            // The edge verifies user tokens through the JWKS and never mints service tokens.
            assert!(settings["auth"]["service_key_path"].is_null(), "{workload}");
            // On Kubernetes its pods share rate limits over NATS; compose runs one edge.
            let nats = settings["nats"]["url"].as_str();
            if origin.starts_with("k8s") {
                assert!(nats.is_some_and(|u| u.starts_with("nats://")), "{workload}");
            } else {
                assert!(nats.is_none(), "{workload}");
            }
        } else {
            let own_key = if origin == "compose" {
                format!("/keys/services/polyshop-{process}.pem")
            } else {
                "/keys/service-ed25519.pem".to_owned()
            };
            assert_eq!(
                settings["auth"]["service_key_path"].as_str(),
                Some(own_key.as_str()),
                "{workload}: its own key"
            );
            assert!(
                settings["auth"]["service_trust_dir"].is_string(),
                "{workload}: a trust dir"
            );
            assert!(
                settings["nats"]["url"]
                    .as_str()
                    .is_some_and(|u| u.starts_with("nats://")),
                "{workload}: {}",
                settings["nats"]
            );
            assert_eq!(settings["nats"]["replicas"], 3, "{workload}");
            let db = settings[process]["database_url"]
                .as_str()
                .unwrap_or_default();
            assert!(
                db.starts_with("postgres://"),
                "{workload} uses PostgreSQL: {db}"
            );
        }
        for (peer, port) in PORTS.iter().filter(|(p, _)| *p != "gateway") {
            let url = settings[peer]["url"].as_str().unwrap_or_default();
            let want = if origin == "compose" {
                format!("http://{peer}:{port}")
            } else {
                format!("http://{peer}-headless.polyshop.svc.cluster.local:{port}")
            };
            assert_eq!(url, want, "{workload}: {peer}");
        }
    }
}

/// `polyshop admin config` run with exactly `env`: the effective settings as JSON, or a
/// failure naming the workload whose environment polyshop rejects.
async fn effective_config(workload: &str, env: &HashMap<String, String>) -> serde_json::Value {
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
    serde_json::from_slice(&config.stdout).expect("config json")
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
