//! `polyshop admin`: operator tasks.

use clap::Subcommand;
use polyshop_platform::{
    auth,
    config::{self, Settings},
    events::{self, dlq},
    flags,
};

/// Operator commands.
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Print a service token signed with that service's own key (under the data dir), e.g.
    /// for grpcurl calls to INTERNAL methods; only methods whose contract lists the caller
    /// accept it.
    #[command(after_help = "\
Examples:
  polyshop admin service-token --from polyshop-order --to polyshop-inventory
  grpcurl -plaintext -H \"authorization: Bearer $(polyshop admin service-token --from polyshop-order --to polyshop-inventory)\" 127.0.0.1:50053 list")]
    ServiceToken {
        /// The calling service (token issuer), e.g. polyshop-order.
        #[arg(long)]
        from: String,
        /// The called service (token audience), e.g. polyshop-inventory.
        #[arg(long)]
        to: String,
    },
    /// Inspect or replay the dead-letter stream.
    #[command(
        subcommand,
        after_help = "\
Examples:
  polyshop admin dlq list
  polyshop admin dlq redrive --sequence 42"
    )]
    Dlq(DlqCommand),
    /// Without a subcommand: print the effective configuration (defaults, polyshop.toml,
    /// POLYSHOP_* merged) as JSON, secrets and the passwords in URLs shown as `<redacted>`; a
    /// bad key or value fails before this runs. With one: read or change the runtime settings
    /// in NATS KV (`<environment>.<service>.<setting>`), which running processes apply without
    /// a restart.
    #[command(after_help = "\
Examples:
  polyshop admin config
  POLYSHOP_DATA_DIR=/tmp/shop polyshop admin config
  polyshop admin config get gateway
  polyshop admin config set gateway rate_burst 20
  polyshop admin config history gateway rate_burst
  polyshop admin config rollback gateway rate_burst")]
    Config {
        /// What to do with the runtime settings.
        #[command(subcommand)]
        command: Option<ConfigCommand>,
    },
    /// Create an Ed25519 signing key (PKCS#8 PEM, mode 0600) at PATH, for
    /// `auth.signing_key_path` / `auth.service_key_path`; an existing key is kept.
    #[command(after_help = "\
Examples:
  polyshop admin gen-key /etc/polyshop/signing.pem
  POLYSHOP_AUTH_SIGNING_KEY_PATH=/etc/polyshop/signing.pem polyshop up")]
    GenKey {
        /// Where to write it.
        path: std::path::PathBuf,
    },
    /// Rotate a service's token key: a new key replaces the old one in its key file and is
    /// published to the trust directory; the old key keeps verifying for
    /// `auth.service_key_grace_secs`, then stops. Running services pick both up within
    /// seconds, without a restart.
    #[command(after_help = "\
Examples:
  polyshop admin rotate-service-key polyshop-payment
  polyshop admin rotate-service-key polyshop-order --grace-secs 600")]
    RotateServiceKey {
        /// The service, e.g. polyshop-order.
        service: String,
        /// How long the old key keeps verifying; default `auth.service_key_grace_secs`.
        #[arg(long)]
        grace_secs: Option<u64>,
    },
    /// Print the trust entry (public key bound to its issuer, JSON) of a service's key file,
    /// for a trust directory the services cannot write (a Kubernetes ConfigMap):
    /// `<service>.<kid>.json`.
    #[command(after_help = "\
Examples:
  polyshop admin gen-key order.pem
  polyshop admin trust-entry polyshop-order order.pem > polyshop-order.json")]
    TrustEntry {
        /// The service the key belongs to, e.g. polyshop-order.
        service: String,
        /// Its PKCS#8 PEM key file.
        path: std::path::PathBuf,
    },
    /// Print the `authorization` block of a NATS config for a broker you run yourself (as
    /// `deploy/k8s/base/nats.conf` has it): every Polyshop identity with its permissions, each
    /// password read from the node's environment (`NATS_PASSWORD_<IDENTITY>`).
    #[command(after_help = "\
Examples:
  polyshop admin nats-authorization >> nats.conf")]
    NatsAuthorization,
    /// Write a throw-away development CA (`ca.pem`) and a certificate signed by it
    /// (`cert.pem`, `key.pem` mode 0600) into DIR, for the edge (`gateway.tls_cert_path` /
    /// `gateway.tls_key_path`) and for TLS between services (`tls.ca_path`, `tls.cert_path`,
    /// `tls.key_path`: the certificate is for server and client authentication). The CA's
    /// key is not kept; existing files are not overwritten.
    #[command(after_help = "\
Examples:
  polyshop admin gen-cert /tmp/shop-tls
  polyshop admin gen-cert /tmp/shop-tls --host shop.test --host 10.0.0.5
  POLYSHOP_GATEWAY_TLS_CERT_PATH=/tmp/shop-tls/cert.pem POLYSHOP_GATEWAY_TLS_KEY_PATH=/tmp/shop-tls/key.pem polyshop up
  curl --cacert /tmp/shop-tls/ca.pem https://localhost:8080/healthz
  POLYSHOP_TLS_CA_PATH=/tmp/shop-tls/ca.pem POLYSHOP_TLS_CERT_PATH=/tmp/shop-tls/cert.pem POLYSHOP_TLS_KEY_PATH=/tmp/shop-tls/key.pem polyshop up")]
    GenCert {
        /// The directory to write into (created if missing).
        dir: std::path::PathBuf,
        /// A DNS name or IP address the certificate is valid for; repeat for more. Default:
        /// localhost and 127.0.0.1.
        #[arg(long = "host")]
        hosts: Vec<String>,
    },
    /// The edge's GraphQL schema (`/graphql`) in SDL, as built from the contracts: RPCs with
    /// no side effects under Query, the others under Mutation, relations across contexts as
    /// fields. `gateway/tests/graphql_schema.snap` holds it; a test fails when they differ.
    #[command(after_help = "\
Examples:
  polyshop admin graphql-schema > schema.graphql
  polyshop admin graphql-schema > gateway/tests/graphql_schema.snap   # after a contract change")]
    GraphqlSchema,
    /// The governance status from the edge (`GET /v1/admin/status`) as tables: every
    /// instance with its health and uptime, breakers with their counts, dead letters, outbox
    /// backlog, consumer lag, sagas, flags, config versions, the dependency graph and calls per
    /// operation. Logs in as the admin (password from config or the data dir) unless
    /// POLYSHOP_ADMIN_TOKEN holds a token.
    #[command(after_help = "\
Examples:
  polyshop admin status
  POLYSHOP_ADMIN_TOKEN=$TOKEN polyshop admin status")]
    Status,
    /// Show or change feature flags (runtime overrides in NATS KV reach every process).
    #[command(
        subcommand,
        after_help = "\
Examples:
  polyshop admin flags list
  polyshop admin flags set notification_email off
  polyshop admin flags clear notification_email"
    )]
    Flags(FlagsCommand),
    /// List the service instances in the registry (discovery mode `nats`): service, instance,
    /// URL and age.
    #[command(after_help = "\
Examples:
  POLYSHOP_DISCOVERY_MODE=nats polyshop up     (in one terminal)
  POLYSHOP_DISCOVERY_MODE=nats polyshop admin services")]
    Services,
    /// Orders that need a person.
    #[command(
        subcommand,
        after_help = "\
Examples:
  polyshop admin orders stuck"
    )]
    Orders(OrdersCommand),
    /// Rebuild a read model from its history.
    #[command(after_help = "\
Examples:
  polyshop admin rebuild-projection orders")]
    RebuildProjection {
        /// Which projection: `orders`.
        #[arg(value_parser = ["orders"])]
        name: String,
    },
}

/// Order commands.
#[derive(Debug, Subcommand)]
pub enum OrdersCommand {
    /// Orders flagged for reconciliation: a refund or restock kept failing past the saga
    /// horizon (the saga keeps retrying). Order id, customer, step, since when, and why.
    #[command(after_help = "\
Examples:
  polyshop admin orders stuck")]
    Stuck,
}

/// Runtime setting commands (environment: `environment`, POLYSHOP_ENVIRONMENT).
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// A service's runtime settings (or one of them): the value in force from NATS KV with its
    /// revision, or `-` when the configured value applies.
    #[command(after_help = "\
Examples:
  polyshop admin config get gateway
  polyshop admin config get order log")]
    Get {
        /// The service: a context (user, catalog, …) or gateway.
        service: String,
        /// One setting; all of the service's when omitted.
        setting: Option<String>,
    },
    /// Set a runtime setting of a service: checked here first (a bad value is refused with
    /// the reason and nothing is written), then applied by every instance within moments.
    #[command(after_help = "\
Examples:
  polyshop admin config set gateway rate_per_sec 20
  polyshop admin config set gateway request_timeout_ms 3000
  polyshop admin config set order log warn,polyshop_order=debug")]
    Set {
        /// The service.
        service: String,
        /// The setting.
        setting: String,
        /// Its new value.
        value: String,
    },
    /// Every revision of a setting the bucket keeps (up to 64): revision, time, value.
    #[command(after_help = "\
Examples:
  polyshop admin config history gateway rate_burst")]
    History {
        /// The service.
        service: String,
        /// The setting.
        setting: String,
    },
    /// Put an earlier revision's value again (a new revision): the one before the current
    /// one, or `--revision N`; with no earlier value, back to the configured one.
    #[command(after_help = "\
Examples:
  polyshop admin config rollback gateway rate_burst
  polyshop admin config rollback gateway rate_burst --revision 12")]
    Rollback {
        /// The service.
        service: String,
        /// The setting.
        setting: String,
        /// The revision whose value to put again (see `history`).
        #[arg(long)]
        revision: Option<u64>,
    },
    /// Delete a runtime setting: back to each process's configured value.
    #[command(after_help = "\
Examples:
  polyshop admin config clear gateway rate_burst")]
    Clear {
        /// The service.
        service: String,
        /// The setting.
        setting: String,
    },
}

/// Runs a runtime setting command as the admin identity.
async fn runtime_config(settings: &Settings, command: ConfigCommand) -> anyhow::Result<()> {
    use polyshop_platform::runtime_config::{self as rc, RolledBack};
    let env = settings.environment.as_str();
    let fail = |e: String| anyhow::anyhow!("{e}");
    // Refused before connecting: a bad name or value needs no broker to say so.
    match &command {
        ConfigCommand::Get {
            service,
            setting: None,
        } => {
            rc::spec_for(service, "log").map_err(fail)?;
        }
        ConfigCommand::Get {
            service,
            setting: Some(setting),
        }
        | ConfigCommand::History { service, setting }
        | ConfigCommand::Rollback {
            service, setting, ..
        }
        | ConfigCommand::Clear { service, setting } => {
            rc::spec_for(service, setting).map_err(fail)?;
        }
        ConfigCommand::Set {
            service,
            setting,
            value,
        } => {
            rc::validate(service, setting, value)
                .map_err(|why| anyhow::anyhow!("refused: {why}; nothing was changed"))?;
        }
    }
    let client = events::identity::connect_as(settings, "polyshop-admin").await?;
    let js = async_nats::jetstream::new(client);
    match command {
        ConfigCommand::Get { service, setting } => {
            let names: Vec<&str> = match &setting {
                Some(s) => vec![s.as_str()],
                None => rc::settings_of(&service).map(|s| s.name).collect(),
            };
            for name in names {
                let shown = match rc::get(&js, env, &service, name).await.map_err(fail)? {
                    Some((value, revision)) => format!("{value}\trevision {revision}"),
                    None => "-\t(configured value)".to_owned(),
                };
                println!("{}\t{shown}", rc::key(env, &service, name));
            }
        }
        ConfigCommand::Set {
            service,
            setting,
            value,
        } => {
            let revision = rc::set(&js, env, &service, &setting, &value)
                .await
                .map_err(fail)?;
            println!(
                "{} = {} (revision {revision})",
                rc::key(env, &service, &setting),
                value.trim()
            );
        }
        ConfigCommand::History { service, setting } => {
            let revisions = rc::history(&js, env, &service, &setting)
                .await
                .map_err(fail)?;
            if revisions.is_empty() {
                println!(
                    "{}: never set (the configured value applies)",
                    rc::key(env, &service, &setting)
                );
            }
            for r in revisions {
                println!(
                    "{}\t{}\t{}",
                    r.revision,
                    r.time,
                    r.value.as_deref().unwrap_or("(cleared: configured value)")
                );
            }
        }
        ConfigCommand::Rollback {
            service,
            setting,
            revision,
        } => {
            let key = rc::key(env, &service, &setting);
            match rc::rollback(&js, env, &service, &setting, revision)
                .await
                .map_err(fail)?
            {
                RolledBack::Value {
                    value,
                    from,
                    revision,
                } => {
                    println!("{key} = {value} (revision {revision}, the value of revision {from})")
                }
                RolledBack::Configured => {
                    println!("{key} cleared: no earlier value, the configured value applies");
                }
            }
        }
        ConfigCommand::Clear { service, setting } => {
            rc::clear(&js, env, &service, &setting)
                .await
                .map_err(fail)?;
            println!(
                "{} cleared: the configured value applies",
                rc::key(env, &service, &setting)
            );
        }
    }
    Ok(())
}

/// Feature flag commands.
#[derive(Debug, Subcommand)]
pub enum FlagsCommand {
    /// Every flag: its value here (config), the runtime override if any, and what it does.
    #[command(after_help = "\
Examples:
  polyshop admin flags list")]
    List,
    /// Override a flag everywhere: `on` or `off`.
    #[command(after_help = "\
Examples:
  polyshop admin flags set notification_email off
  polyshop admin flags set order_replica_fallback on")]
    Set {
        /// The flag.
        name: String,
        /// `on` or `off`.
        value: String,
    },
    /// Drop a flag's override: back to each process's configured value.
    #[command(after_help = "\
Examples:
  polyshop admin flags clear notification_email")]
    Clear {
        /// The flag.
        name: String,
    },
}

/// Dead-letter commands.
#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// List dead letters: sequence, event id, subject, consumer and reason.
    #[command(after_help = "\
Examples:
  polyshop admin dlq list")]
    List,
    /// Republish dead letters on their original subjects (all, or one by sequence).
    #[command(after_help = "\
Examples:
  polyshop admin dlq redrive                 every dead letter
  polyshop admin dlq redrive --sequence 42   only sequence 42 (from `dlq list`)")]
    Redrive {
        /// Only this DLQ sequence.
        #[arg(long)]
        sequence: Option<u64>,
    },
}

/// Redacts the password of every URL in `value`: the typed secrets are redacted by the
/// settings themselves, but a URL such as `nats.url` or `otlp_endpoint` may carry credentials
/// too.
fn redact_urls(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::String(s) if s.contains("://") => *s = config::redact_url(s),
        serde_json::Value::Array(items) => items.iter_mut().for_each(redact_urls),
        serde_json::Value::Object(fields) => fields.values_mut().for_each(redact_urls),
        _ => {}
    }
}

/// Runs an admin command.
///
/// # Errors
/// If the key, broker or database cannot be reached.
pub async fn run(command: AdminCommand, settings: Settings) -> anyhow::Result<()> {
    match command {
        AdminCommand::ServiceToken { from, to } => {
            if !from.starts_with("polyshop-") || !to.starts_with("polyshop-") {
                anyhow::bail!("service names start with polyshop-, e.g. --to polyshop-inventory");
            }
            let tokens = auth::service_tokens(&settings, &from)?;
            println!("{}", tokens.token_for(&to)?);
        }
        AdminCommand::Dlq(command) => {
            let client = events::identity::connect_as(&settings, "polyshop-admin").await?;
            let js = async_nats::jetstream::new(client);
            match command {
                DlqCommand::List => {
                    let letters = dlq::list(&js).await.map_err(|e| anyhow::anyhow!("{e}"))?;
                    if letters.is_empty() {
                        println!("the dead-letter stream is empty");
                    }
                    for l in letters {
                        println!(
                            "{}\t{}\t{}\t{}\t{}",
                            l.sequence, l.event_id, l.subject, l.consumer, l.reason
                        );
                    }
                }
                DlqCommand::Redrive { sequence } => {
                    let n = dlq::redrive(&js, sequence)
                        .await
                        .map_err(|e| anyhow::anyhow!("{e}"))?;
                    println!("redrove {n} dead letter(s)");
                }
            }
        }
        AdminCommand::Config {
            command: Some(command),
        } => runtime_config(&settings, command).await?,
        AdminCommand::Config { command: None } => {
            let mut shown = serde_json::to_value(&settings)?;
            redact_urls(&mut shown);
            println!("{}", serde_json::to_string_pretty(&shown)?);
        }
        AdminCommand::RotateServiceKey {
            service,
            grace_secs,
        } => {
            let grace = grace_secs.unwrap_or(settings.auth.service_key_grace_secs);
            let (old, new) = auth::service_keys::rotate(
                &auth::service_key_path(&settings, &service),
                &auth::service_trust_dir(&settings),
                &service,
                std::time::Duration::from_secs(grace),
            )?;
            println!("{service}: key {new} in force; key {old} verifies for {grace} s more");
        }
        AdminCommand::NatsAuthorization => {
            print!("{}", crate::nats_users::kubernetes_authorization());
        }
        AdminCommand::TrustEntry { service, path } => {
            let key = auth::keys::load_or_generate(&path)?;
            let entry = auth::service_keys::TrustEntry::of(&key, &service);
            println!("{}", serde_json::to_string_pretty(&entry)?);
        }
        AdminCommand::GenKey { path } => {
            let key = auth::keys::load_or_generate(&path)?;
            println!("{}: key {}", path.display(), key.kid);
        }
        AdminCommand::GenCert { dir, hosts } => {
            let hosts = if hosts.is_empty() {
                vec!["localhost".to_owned(), "127.0.0.1".to_owned()]
            } else {
                hosts
            };
            gen_cert(&dir, &hosts)?;
            println!(
                "{}: ca.pem, cert.pem and key.pem for {}",
                dir.display(),
                hosts.join(", ")
            );
        }
        AdminCommand::Status => crate::admin_status::run(&settings).await?,
        AdminCommand::GraphqlSchema => {
            print!(
                "{}",
                polyshop_gateway::graphql::sdl().map_err(anyhow::Error::msg)?
            );
        }
        AdminCommand::Flags(command) => {
            let client = events::identity::connect_as(&settings, "polyshop-admin").await?;
            let js = async_nats::jetstream::new(client);
            let fail = |e: String| anyhow::anyhow!("{e}");
            match command {
                FlagsCommand::List => {
                    let overrides = flags::overrides(&js).await.map_err(fail)?;
                    let configured = flags::Flags::new(&settings.flags);
                    for f in flags::KNOWN {
                        let over = overrides
                            .get(f.name)
                            .map_or("-", |v| if *v { "on" } else { "off" });
                        let here = if configured.enabled(f.name) {
                            "on"
                        } else {
                            "off"
                        };
                        println!(
                            "{}\tconfig {here}\toverride {over}\t{}",
                            f.name, f.description
                        );
                    }
                }
                FlagsCommand::Set { name, value } => {
                    let v = flags::parse(&value)
                        .ok_or_else(|| anyhow::anyhow!("{value}: say on or off"))?;
                    flags::set(&js, &name, Some(v)).await.map_err(fail)?;
                    println!("{name} is {value} everywhere");
                }
                FlagsCommand::Clear { name } => {
                    flags::set(&js, &name, None).await.map_err(fail)?;
                    println!("{name} is back to its configured value");
                }
            }
        }
        AdminCommand::Services => {
            let client = events::identity::connect_as(&settings, "polyshop-admin").await?;
            let js = async_nats::jetstream::new(client);
            let store = polyshop_platform::discovery::bucket(
                &js,
                &settings.discovery,
                settings.nats.replicas,
            )
            .await?;
            let instances = polyshop_platform::discovery::instances(&store).await?;
            if instances.is_empty() {
                println!("no instances registered (is discovery.mode = \"nats\"?)");
            }
            let now = polyshop_platform::now_millis();
            for i in instances {
                let age = (now - i.started_at).max(0) / 1000;
                let health = if i.healthy { "healthy" } else { "draining" };
                println!(
                    "{}\t{}\t{}\tup {age}s\tversion {}\tzone {}\tweight {}\t{health}\ttags {}",
                    i.service,
                    i.instance,
                    i.url,
                    if i.version.is_empty() {
                        "-"
                    } else {
                        &i.version
                    },
                    if i.zone.is_empty() { "-" } else { &i.zone },
                    i.weight,
                    if i.tags.is_empty() {
                        "-".to_owned()
                    } else {
                        i.tags.join(",")
                    },
                );
            }
        }
        AdminCommand::Orders(OrdersCommand::Stuck) => {
            let stuck = polyshop_order::stuck_orders(&settings).await?;
            if stuck.is_empty() {
                println!("no stuck orders");
            }
            for s in stuck {
                println!(
                    "{}\tuser {}\tstep {}\tlast tried {}\t{}",
                    s.order_id,
                    s.user_id,
                    s.step,
                    polyshop_platform::timestamp(s.updated_at),
                    s.why
                );
            }
        }
        AdminCommand::RebuildProjection { .. } => {
            let n = polyshop_order::rebuild_projection(&settings).await?;
            println!("rebuilt the orders projection: {n} orders");
        }
    }
    Ok(())
}

/// Writes `ca.pem`, `cert.pem` and `key.pem` (0600) into `dir`: a fresh CA whose key is
/// dropped, and a server certificate for `hosts` (DNS names or IP addresses) signed by it.
fn gen_cert(dir: &std::path::Path, hosts: &[String]) -> anyhow::Result<()> {
    use std::io::Write as _;

    use anyhow::Context as _;
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
        KeyPair, KeyUsagePurpose,
    };

    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.distinguished_name
        .push(DnType::CommonName, "Polyshop development CA");
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_key = KeyPair::generate()?;
    let ca_pem = ca.self_signed(&ca_key)?.pem();
    let issuer = Issuer::new(ca, ca_key);

    let mut server = CertificateParams::new(hosts.to_vec())
        .with_context(|| format!("not a DNS name or IP address in {hosts:?}"))?;
    server.distinguished_name.push(
        DnType::CommonName,
        hosts.first().map_or("polyshop", String::as_str),
    );
    server.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    // Client authentication too: one certificate serves a service's port and its calls to
    // the others (TLS between services).
    server.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let key = KeyPair::generate()?;
    let cert_pem = server.signed_by(&key, &issuer)?.pem();

    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    for (name, contents, mode) in [
        ("ca.pem", ca_pem, 0o644),
        ("cert.pem", cert_pem, 0o644),
        ("key.pem", key.serialize_pem(), 0o600),
    ] {
        let path = dir.join(name);
        let mut options = std::fs::OpenOptions::new();
        // Created with its mode: the key is never readable by others, not even briefly.
        options.write(true).create_new(true);
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, mode);
        options
            .open(&path)
            .and_then(|mut file| file.write_all(contents.as_bytes()))
            .with_context(|| format!("writing {} (an existing file is kept)", path.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gen_cert_writes_a_ca_and_a_private_server_key() {
        use std::os::unix::fs::PermissionsExt as _;

        let dir = tempfile::tempdir().expect("tempdir");
        let out = dir.path().join("tls");
        gen_cert(&out, &["localhost".into(), "127.0.0.1".into()]).expect("gen-cert");
        let mode = |name: &str| {
            std::fs::metadata(out.join(name))
                .expect(name)
                .permissions()
                .mode()
                & 0o777
        };
        assert_eq!(mode("key.pem"), 0o600);
        assert!(!out.join("ca-key.pem").exists());
        for name in ["ca.pem", "cert.pem"] {
            let pem = std::fs::read_to_string(out.join(name)).expect(name);
            assert!(
                pem.starts_with("-----BEGIN CERTIFICATE-----"),
                "{name}: {pem}"
            );
        }
        let key = std::fs::read_to_string(out.join("key.pem")).expect("key");
        assert!(key.contains("PRIVATE KEY"), "{key}");
        // A second run keeps what is there.
        assert!(gen_cert(&out, &["localhost".into()]).is_err());
        assert_eq!(
            std::fs::read_to_string(out.join("key.pem")).expect("key"),
            key
        );
    }

    #[test]
    fn every_url_in_the_printed_config_loses_its_password() {
        let mut value = serde_json::json!({
            "nats": {"url": "nats://svc:s3cret@nats:4222"},
            "discovery": {"endpoints": {"user": ["http://a:s3cret@u:1"]}},
            "log": "info",
        });
        redact_urls(&mut value);
        let shown = value.to_string();
        assert!(!shown.contains("s3cret"), "{shown}");
        assert_eq!(value["nats"]["url"], "nats://svc:<redacted>@nats:4222");
        assert_eq!(value["log"], "info");
    }
}
