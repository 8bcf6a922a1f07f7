//! Where each instance `polyshop up --replicas N` starts listens, and which database each
//! context uses: every instance of a context shares the context's one database (its SQLite
//! file under the data dir, or `<prefix><service>` on the `--postgres` server).

use std::net::SocketAddr;

use anyhow::Context;
use polyshop_platform::config::Settings;
pub use polyshop_platform::ports::FreePorts;
use sea_orm::ConnectionTrait;

use crate::services::Service;

/// One process of a service.
#[derive(Debug, Clone)]
pub struct Instance {
    /// Which service.
    pub service: Service,
    /// 0 for the first; the first keeps the configured address.
    pub index: usize,
    /// The URL it serves on.
    pub url: String,
    /// What its environment adds: its listen address and URL.
    pub env: Vec<(String, String)>,
}

impl Instance {
    /// How logs name it: `catalog`, then `catalog#2`, …
    pub fn name(&self) -> String {
        if self.index == 0 {
            self.service.as_str().to_owned()
        } else {
            format!("{}#{}", self.service.as_str(), self.index + 1)
        }
    }
}

/// The `replicas` instances of `service`. The first keeps the configured address, so the
/// configured URLs other processes dial still reach an instance; the others get free ports on
/// the same interface.
///
/// # Errors
/// If no free port is found.
pub fn plan(
    service: Service,
    settings: &Settings,
    replicas: usize,
    ports: &mut FreePorts,
) -> anyhow::Result<Vec<Instance>> {
    let configured = service.listen(settings);
    let prefix = format!("POLYSHOP_{}", service.as_str().to_ascii_uppercase());
    let mut instances = vec![Instance {
        service,
        index: 0,
        url: service.url(settings),
        env: Vec::new(),
    }];
    for index in 1..replicas {
        let listen = SocketAddr::new(configured.ip(), ports.pick()?);
        let url = if listen.ip().is_unspecified() {
            format!("http://127.0.0.1:{}", listen.port())
        } else {
            format!("http://{listen}")
        };
        // Over TLS as the first instance is (the edge with its certificate, services with
        // TLS between them).
        let url = match service.dial(settings) {
            crate::services::Dial::Plain => url,
            _ => polyshop_platform::tls::https(&url),
        };
        let mut env = vec![(format!("{prefix}_LISTEN"), listen.to_string())];
        // The edge has no `url` key (nobody dials it through configuration).
        if service != Service::Gateway {
            env.push((format!("{prefix}_URL"), url.clone()));
        }
        instances.push(Instance {
            service,
            index,
            url,
            env,
        });
    }
    Ok(instances)
}

/// A database name prefix: lower-case letters, digits and `_`, so names need no quoting.
///
/// # Errors
/// Any other character, or a prefix longer than 40 characters (names stop at 63).
pub fn database_prefix(prefix: &str) -> Result<String, String> {
    let valid = !prefix.is_empty()
        && prefix.len() <= 40
        && prefix.starts_with(|c: char| c.is_ascii_lowercase())
        && prefix
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if valid {
        Ok(prefix.to_owned())
    } else {
        Err("a lower-case letter, then lower-case letters, digits and _ (at most 40)".into())
    }
}

/// The URL of database `name` on the server of `server_url` (its path replaced, its query kept).
pub fn database_url(server_url: &str, name: &str) -> String {
    let (base, query) = server_url
        .split_once('?')
        .map_or((server_url, None), |(b, q)| (b, Some(q)));
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let base = match base[authority_start..].find('/') {
        Some(slash) => &base[..authority_start + slash],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{name}?{q}"),
        None => format!("{base}/{name}"),
    }
}

/// Creates database `<prefix><service>` for every context on the PostgreSQL server at
/// `server_url` unless it exists, and returns each context's URL.
///
/// # Errors
/// If the server cannot be reached or refuses to create a database.
pub async fn postgres_databases(
    server_url: &str,
    prefix: &str,
) -> anyhow::Result<Vec<(Service, String)>> {
    let admin = polyshop_platform::db::connect_url(server_url, "polyshop-up").await?;
    let backend = admin.get_database_backend();
    let exists = async |name: &str| -> anyhow::Result<bool> {
        let statement = sea_orm::Statement::from_sql_and_values(
            backend,
            "SELECT 1 FROM pg_database WHERE datname = $1",
            [name.into()],
        );
        Ok(admin.query_one_raw(statement).await?.is_some())
    };
    let mut urls = Vec::new();
    for service in Service::ALL {
        if service == Service::Gateway {
            continue;
        }
        let name = format!("{prefix}{}", service.as_str());
        if !exists(&name).await? {
            let created = admin
                .execute_unprepared(&format!("CREATE DATABASE {name}"))
                .await;
            // Another `up` may have created it meanwhile; only a database still missing fails.
            if let Err(e) = created
                && !exists(&name).await?
            {
                return Err(e).with_context(|| format!("cannot create database {name}"));
            }
        }
        urls.push((service, database_url(server_url, &name)));
    }
    Ok(urls)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn a_database_url_replaces_the_servers_database_and_keeps_the_query() {
        for (server, expected) in [
            (
                "postgres://postgres@127.0.0.1:5432/postgres",
                "postgres://postgres@127.0.0.1:5432/polyshop_order",
            ),
            (
                "postgres://u:p@db:5432",
                "postgres://u:p@db:5432/polyshop_order",
            ),
            (
                "postgres://db/postgres?sslmode=require",
                "postgres://db/polyshop_order?sslmode=require",
            ),
        ] {
            assert_eq!(database_url(server, "polyshop_order"), expected);
        }
    }

    #[test]
    fn database_prefixes_need_no_quoting() {
        assert!(database_prefix("polyshop_").is_ok());
        assert!(database_prefix("polyshop_test_019a2b_").is_ok());
        for bad in [
            "",
            "Polyshop",
            "1shop",
            "shop-",
            "shop;drop",
            &"a".repeat(41),
        ] {
            assert!(database_prefix(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_first_instance_keeps_the_configured_address_and_the_others_get_their_own() {
        let settings = Settings::default();
        let mut ports = FreePorts::default();
        let instances = plan(Service::Catalog, &settings, 3, &mut ports).expect("plan");
        assert_eq!(instances.len(), 3);
        assert_eq!(instances[0].url, settings.catalog.url());
        assert!(instances[0].env.is_empty());
        assert_eq!(instances[2].name(), "catalog#3");
        let urls: HashSet<_> = instances.iter().map(|i| i.url.clone()).collect();
        assert_eq!(urls.len(), 3, "{instances:?}");
        let env: Vec<_> = instances[1].env.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(env, ["POLYSHOP_CATALOG_LISTEN", "POLYSHOP_CATALOG_URL"]);

        let edges = plan(Service::Gateway, &settings, 2, &mut ports).expect("plan");
        let env: Vec<_> = edges[1].env.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(env, ["POLYSHOP_GATEWAY_LISTEN"]);
    }
}
