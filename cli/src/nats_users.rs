//! The NATS identities of `polyshop up` (decision 0016): one user per context service, one
//! for the edge and `admin` (the cli, `polyshop admin`, stream preparation), each with a
//! random password kept owner-only under `<data>/nats-users/`, and the per-user permissions
//! written into every node's `nats.conf`. Cluster routes get a user of their own.
//!
//! What a service may do, by subject:
//!
//! | | publish | JetStream API (requests) | subscribe |
//! |---|---|---|---|
//! | every service | `_INBOX.>`-replies, `$JS.ACK.>`, `$JS.FC.>` | account info; info of any stream; create/update of the event streams and DLQ; create of the registry and flags buckets; consumers and direct gets on the registry and flags buckets; message gets on the DLQ | `_INBOX.>` |
//! | context `<c>` | `polyshop.<c>.>` (its events), `$KV.polyshop_registry.<c>.>` (its instances) | consumers on the streams it consumes | |
//! | consumers | `polyshop.dlq.>` (dead letters) | | |
//! | gateway | `polyshop.ratelimit.admitted`, `$KV.polyshop_registry.gateway.>` | | `polyshop.ratelimit.admitted` |
//! | admin | everything | everything | everything |
//!
//! Not restricted: a service may create or update every event stream (each one ensures all of
//! them at start, with its own limits), read any stream's info, and create, read and delete
//! consumers on the streams it consumes — also another service's durable one there. What
//! no service may do: publish another context's events, write another service's registry
//! entries or any flag, delete or purge a stream or a message, update a KV bucket, create
//! another stream (a new one could capture subjects), or touch consumers of a stream it
//! does not consume.

use std::{collections::BTreeMap, fmt::Write as _, path::Path};

use anyhow::Context;
use polyshop_platform::{
    auth, discovery,
    events::{identity, streams},
    flags, runtime_config,
};
use rand::Rng;

use crate::services::Service;

/// The user of the cluster routes: not a client identity.
pub const ROUTE_USER: &str = "route";

/// Every identity's password (and the routes').
#[derive(Clone)]
pub struct NatsUsers {
    passwords: BTreeMap<String, String>,
}

impl std::fmt::Debug for NatsUsers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsUsers")
            .field("users", &self.passwords.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl NatsUsers {
    /// The passwords under `<data>/nats-users/`, generating (0600) each that is missing, so an
    /// identity keeps its password across restarts of `up`.
    ///
    /// # Errors
    /// When a file cannot be read or written.
    pub fn load_or_generate(data: &Path) -> anyhow::Result<Self> {
        let dir = data.join(identity::USERS_DIR);
        auth::keys::create_private_dir(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let names = Service::ALL
            .iter()
            .map(|s| s.as_str())
            .chain([identity::ADMIN, ROUTE_USER]);
        let mut passwords = BTreeMap::new();
        for name in names {
            let file = identity::password_file(data, name);
            let existing = std::fs::read_to_string(&file)
                .ok()
                .map(|t| t.trim().to_owned())
                .filter(|p| valid(p));
            let password = match existing {
                Some(p) => p,
                None => {
                    let p = new_password();
                    auth::keys::write_secret_file(&file, format!("{p}\n").as_bytes())
                        .with_context(|| format!("cannot write {}", file.display()))?;
                    p
                }
            };
            passwords.insert(name.to_owned(), password);
        }
        Ok(Self { passwords })
    }

    /// The password of `user`.
    pub fn password(&self, user: &str) -> Option<&str> {
        self.passwords.get(user).map(String::as_str)
    }

    /// The environment that makes a child of `up` authenticate as `service`.
    pub fn env_of(&self, service: Service) -> Vec<(String, String)> {
        let user = service.as_str();
        self.password(user)
            .map(|p| {
                vec![
                    ("POLYSHOP_NATS_USER".to_owned(), user.to_owned()),
                    ("POLYSHOP_NATS_PASSWORD".to_owned(), p.to_owned()),
                ]
            })
            .unwrap_or_default()
    }

    /// The `authorization` block of `nats.conf`: every client identity with its permissions.
    pub fn authorization(&self) -> String {
        authorization_block(
            self.passwords
                .iter()
                .filter(|(user, _)| *user != ROUTE_USER)
                .map(|(user, password)| (user.as_str(), quote(password))),
        )
    }

    /// The `authorization` line of a `cluster` block: what a route must present.
    pub fn route_authorization(&self) -> String {
        format!(
            "  authorization {{ user: {}, password: {} }}\n",
            quote(ROUTE_USER),
            quote(self.password(ROUTE_USER).unwrap_or_default())
        )
    }

    /// The user info of a route URL (`route:<password>@`).
    pub fn route_userinfo(&self) -> String {
        format!(
            "{ROUTE_USER}:{}@",
            self.password(ROUTE_USER).unwrap_or_default()
        )
    }
}

/// The `authorization` block for `(user, password expression)` pairs.
fn authorization_block<'a>(users: impl Iterator<Item = (&'a str, String)>) -> String {
    let mut conf = String::from("authorization {\n  users = [\n");
    for (user, password) in users {
        let _ = write!(conf, "    {{ user: {}, password: {password}", quote(user));
        if let Some(p) = permissions(user) {
            let _ = write!(
                conf,
                ",\n      permissions: {{\n        publish: {{ allow: {} }}\n        subscribe: {{ allow: {} }}\n      }}\n    ",
                list(&p.publish),
                list(&p.subscribe)
            );
        }
        conf.push_str(" }\n");
    }
    conf.push_str("  ]\n}\n");
    conf
}

/// The environment variable that holds `identity`'s password on a Kubernetes NATS node.
fn kubernetes_password_var(identity: &str) -> String {
    format!("NATS_PASSWORD_{}", identity.to_ascii_uppercase())
}

/// The `authorization` block of `deploy/k8s/base/nats.conf`: the same identities and
/// permissions as under `up`, each password taken from the node's environment (the Secret
/// `polyshop-nats-users`).
pub fn kubernetes_authorization() -> String {
    let mut users: Vec<&str> = Service::ALL
        .iter()
        .map(|s| s.as_str())
        .chain([identity::ADMIN])
        .collect();
    users.sort_unstable();
    authorization_block(
        users
            .into_iter()
            .map(|user| (user, format!("${}", kubernetes_password_var(user)))),
    )
}

/// A generated password: 43 alphanumerics (over 256 bits).
fn new_password() -> String {
    rand::thread_rng()
        .sample_iter(&rand::distributions::Alphanumeric)
        .take(43)
        .map(char::from)
        .collect()
}

/// A stored password `up` can use: long enough and safe to quote in `nats.conf` and a URL.
fn valid(password: &str) -> bool {
    password.len() >= 32 && password.chars().all(|c| c.is_ascii_alphanumeric())
}

fn quote(s: &str) -> String {
    format!("\"{s}\"")
}

fn list(subjects: &[String]) -> String {
    let quoted: Vec<String> = subjects.iter().map(|s| quote(s)).collect();
    format!("[{}]", quoted.join(", "))
}

/// What an identity may publish (JetStream API requests included) and subscribe to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Permissions {
    /// Publish allow list.
    pub publish: Vec<String>,
    /// Subscribe allow list.
    pub subscribe: Vec<String>,
}

/// The streams `service` runs consumers on (durable or ordered), besides the registry and
/// flags buckets every process watches.
fn consumed_streams(service: Service) -> &'static [&'static str] {
    match service {
        // Nothing: it only publishes.
        Service::User => &[],
        // The revoked-user list follows POLYSHOP_USER (platform/src/auth/revoked.rs).
        Service::Catalog | Service::Payment | Service::Gateway => &["POLYSHOP_USER"],
        // `product.created` (services/inventory/src/events.rs) and revoked users.
        Service::Inventory => &["POLYSHOP_CATALOG", "POLYSHOP_USER"],
        // Its ListOrders projection and the user replica (services/order/src/lib.rs).
        Service::Order => &["POLYSHOP_ORDER", "POLYSHOP_USER"],
        // User, order and payment events (services/notification/src/events) and revoked users.
        Service::Notification => &["POLYSHOP_USER", "POLYSHOP_ORDER", "POLYSHOP_PAYMENT"],
    }
}

/// Whether `service` runs durable consumers, which dead-letter what they cannot apply.
fn dead_letters(service: Service) -> bool {
    matches!(
        service,
        Service::Inventory | Service::Order | Service::Notification
    )
}

/// The permissions of `identity`; `None` for `admin` (everything) and unknown names.
pub fn permissions(identity: &str) -> Option<Permissions> {
    let service = Service::ALL.into_iter().find(|s| s.as_str() == identity)?;
    let registry = format!("KV_{}", discovery::BUCKET);
    let flags = format!("KV_{}", flags::BUCKET);
    let mut publish: Vec<String> = vec![
        // Acks of consumed messages and flow-control replies of ordered consumers (KV watches).
        "$JS.ACK.>".into(),
        "$JS.FC.>".into(),
        "$JS.API.INFO".into(),
        "$JS.API.STREAM.INFO.*".into(),
        "$JS.API.STREAM.NAMES".into(),
        // Opening the registry or the flags creates the bucket when absent (an existing one
        // is never updated): on Kubernetes no `up` creates them first.
        format!("$JS.API.STREAM.CREATE.{registry}"),
        format!("$JS.API.STREAM.CREATE.{flags}"),
        // Its own registry entries (puts and deletes are publishes on the key's subject).
        format!("$KV.{}.{identity}.>", discovery::BUCKET),
    ];
    // Every service ensures every event stream and the DLQ at start, with its limits.
    for stream in streams::contexts()
        .map(streams::stream_name)
        .chain([streams::DLQ_STREAM.to_owned()])
    {
        publish.push(format!("$JS.API.STREAM.CREATE.{stream}"));
        publish.push(format!("$JS.API.STREAM.UPDATE.{stream}"));
    }
    // Consumers: CREATE/INFO/DELETE/NAMES/LIST.<stream>[.…] and DURABLE.CREATE / MSG.NEXT.
    let watched = [registry.as_str(), flags.as_str()];
    for stream in consumed_streams(service).iter().chain(&watched) {
        publish.push(format!("$JS.API.CONSUMER.*.{stream}"));
        publish.push(format!("$JS.API.CONSUMER.*.{stream}.>"));
        publish.push(format!("$JS.API.CONSUMER.*.*.{stream}.>"));
    }
    // The runtime settings (decision 0021): watched only, never written or created. A KV
    // watch's consumer carries its key filter in the request body, not in the subject, so
    // the permission cannot narrow it to the identity's own keys; the values are no secret,
    // and only `admin` may write them.
    let config = format!("KV_{}", runtime_config::BUCKET);
    publish.push(format!("$JS.API.CONSUMER.*.{config}"));
    publish.push(format!("$JS.API.CONSUMER.*.{config}.>"));
    publish.push(format!("$JS.API.CONSUMER.*.*.{config}.>"));
    // Reading dead letters, for the gauges every process samples (their count and age per
    // stream); a dead letter is an event some context already published to all consumers.
    publish.push(format!("$JS.API.STREAM.MSG.GET.{}", streams::DLQ_STREAM));
    // Reading the buckets (KV get).
    for bucket in watched {
        publish.push(format!("$JS.API.DIRECT.GET.{bucket}"));
        publish.push(format!("$JS.API.DIRECT.GET.{bucket}.>"));
        publish.push(format!("$JS.API.STREAM.MSG.GET.{bucket}"));
    }
    let mut subscribe: Vec<String> = vec!["_INBOX.>".into()];
    if service == Service::Gateway {
        let gossip = polyshop_gateway::ratelimit::share::SUBJECT.to_owned();
        publish.push(gossip.clone());
        subscribe.push(gossip);
    } else {
        publish.push(format!("polyshop.{identity}.>"));
    }
    if dead_letters(service) {
        publish.push(format!("{}.>", streams::DLQ_PREFIX));
    }
    Some(Permissions { publish, subscribe })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_context_publishes_only_its_own_events_and_registry_entries() {
        let p = permissions("catalog").expect("catalog");
        assert!(p.publish.contains(&"polyshop.catalog.>".to_owned()));
        assert!(
            p.publish
                .contains(&"$KV.polyshop_registry.catalog.>".to_owned())
        );
        assert!(!p.publish.iter().any(|s| s.starts_with("polyshop.payment")
            || s.starts_with("$KV.polyshop_flags")
            || s.starts_with("$KV.polyshop_config")
            || s.contains("STREAM.CREATE.KV_polyshop_config")
            || s.contains("DIRECT.GET.KV_polyshop_config")
            || s.contains("polyshop_registry.payment")
            || s.starts_with("polyshop.dlq")
            || s == ">"
            || s.starts_with("$JS.API.>")
            || s.contains("DELETE.POLYSHOP")
            || s.contains("PURGE")
            || s.contains("UPDATE.KV_")));
        assert_eq!(p.subscribe, ["_INBOX.>"]);
        // It may watch the runtime settings (a KV watch is a consumer on the bucket).
        assert!(
            p.publish
                .contains(&"$JS.API.CONSUMER.*.KV_polyshop_config".to_owned())
        );
        assert!(permissions("admin").is_none());
        // Every context that publishes events has an identity of its own.
        for context in streams::contexts() {
            assert!(permissions(context).is_some(), "{context}");
        }
    }

    #[test]
    fn the_kubernetes_nats_conf_carries_the_same_identities_and_permissions() {
        let conf = include_str!("../../deploy/k8s/base/nats.conf");
        let block = kubernetes_authorization();
        assert!(
            conf.contains(&block),
            "deploy/k8s/base/nats.conf must contain this authorization block (the permissions \
             changed):\n{block}"
        );
    }

    #[test]
    fn nats_conf_lists_every_identity_with_its_permissions() {
        let dir = tempfile::tempdir().expect("tempdir");
        let users = NatsUsers::load_or_generate(dir.path()).expect("users");
        let again = NatsUsers::load_or_generate(dir.path()).expect("users");
        assert_eq!(users.password("admin"), again.password("admin"), "kept");
        assert_ne!(users.password("admin"), users.password("catalog"));
        let conf = users.authorization();
        for s in Service::ALL {
            assert!(
                conf.contains(&format!("user: \"{}\"", s.as_str())),
                "{conf}"
            );
        }
        assert!(conf.contains("user: \"admin\""));
        assert!(!conf.contains("user: \"route\""));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(identity::password_file(dir.path(), "admin"))
                .expect("file")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
