//! `dns` mode: a context's instances are the A/AAAA records of its URL's host, re-resolved
//! every poll interval, each on the URL's port. A Kubernetes headless Service answers with
//! one record per ready pod, so scaling and pod restarts reach callers within a poll. A
//! failed lookup keeps the last answer.

use std::{net::IpAddr, sync::Arc, time::Duration};

use hickory_resolver::{
    TokioResolver,
    config::{ConnectionConfig, NameServerConfig, ResolverConfig},
    net::runtime::TokioRuntimeProvider,
};

use super::{Instance, Members};
use crate::{config::DiscoverySettings, shutdown::Shutdown};

/// Follows the records of `url`'s host for `service`. A host that is an address, or a URL
/// that does not parse, is one fixed instance.
pub(super) fn resolve(
    settings: &DiscoverySettings,
    service: &str,
    url: &str,
    stopped: Shutdown,
) -> Members {
    let fixed = vec![Instance::new(service, url, url.to_owned())];
    let Some((scheme, host, port)) = parts(url) else {
        return tokio::sync::watch::channel(Arc::new(fixed)).1;
    };
    if host.parse::<IpAddr>().is_ok() {
        return tokio::sync::watch::channel(Arc::new(fixed)).1;
    }
    let resolver = match resolver(settings) {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(%service, error = %e, "no DNS resolver; using the URL as it is");
            return tokio::sync::watch::channel(Arc::new(fixed)).1;
        }
    };
    let (feed, members) = tokio::sync::watch::channel(Arc::new(fixed));
    let every = Duration::from_millis(settings.poll_ms);
    let service = service.to_owned();
    tokio::spawn(async move {
        loop {
            match resolver.lookup_ip(host.as_str()).await {
                Ok(found) => {
                    let mut listed: Vec<Instance> = found
                        .iter()
                        .map(|ip| {
                            let address = match ip {
                                IpAddr::V4(v4) => format!("{v4}:{port}"),
                                IpAddr::V6(v6) => format!("[{v6}]:{port}"),
                            };
                            Instance::new(&service, &address, format!("{scheme}://{address}"))
                        })
                        .collect();
                    listed.sort_by(|a, b| a.url.cmp(&b.url));
                    listed.dedup_by(|a, b| a.url == b.url);
                    if !listed.is_empty() {
                        feed.send_if_modified(|current| {
                            let changed = **current != listed;
                            if changed {
                                tracing::info!(%service, instances = listed.len(), "DNS answer changed");
                                *current = Arc::new(listed);
                            }
                            changed
                        });
                    }
                }
                Err(e) => {
                    tracing::warn!(%service, %host, error = %e, "DNS lookup failed; keeping the last answer")
                }
            }
            tokio::select! {
                () = tokio::time::sleep(every) => {}
                () = stopped.clone().wait() => return,
                () = feed.closed() => return,
            }
        }
    });
    members
}

/// `(scheme, host, port)` of a URL, the port defaulted by scheme.
fn parts(url: &str) -> Option<(String, String, u16)> {
    let uri: http::Uri = url.parse().ok()?;
    let scheme = uri.scheme_str()?.to_owned();
    let host = uri.host()?.trim_matches(['[', ']']).to_owned();
    let port = uri
        .port_u16()
        .unwrap_or(if scheme == "https" { 443 } else { 80 });
    Some((scheme, host, port))
}

/// The configured nameserver, else the system's; no answer cache beyond one poll, so a
/// changed record is seen at the next poll whatever its TTL.
fn resolver(settings: &DiscoverySettings) -> Result<TokioResolver, String> {
    let mut builder = match settings.dns_server().map_err(|e| e.to_string())? {
        Some(server) => {
            let mut udp = ConnectionConfig::udp();
            udp.port = server.port();
            let mut tcp = ConnectionConfig::tcp();
            tcp.port = server.port();
            let ns = NameServerConfig::new(server.ip(), true, vec![udp, tcp]);
            TokioResolver::builder_with_config(
                ResolverConfig::from_name_servers(vec![ns]),
                TokioRuntimeProvider::default(),
            )
        }
        None => TokioResolver::builder_tokio().map_err(|e| e.to_string())?,
    };
    let options = builder.options_mut();
    options.positive_max_ttl = Some(Duration::from_millis(settings.poll_ms));
    options.negative_max_ttl = Some(Duration::from_millis(settings.poll_ms));
    options.timeout = Duration::from_secs(2);
    builder.build().map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_splits_into_scheme_host_and_port() {
        assert_eq!(
            parts("http://catalog-headless.polyshop.svc:50052"),
            Some(("http".into(), "catalog-headless.polyshop.svc".into(), 50052))
        );
        assert_eq!(
            parts("https://catalog"),
            Some(("https".into(), "catalog".into(), 443))
        );
        assert_eq!(parts("not a url"), None);
    }
}
