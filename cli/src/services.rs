//! The services this binary can run, and where each listens.

use anyhow::Context;
use clap::ValueEnum;
use polyshop_platform::{
    config::{Settings, url_of},
    contract, shutdown,
};
use tokio::net::TcpListener;

/// A service `polyshop serve` can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Service {
    /// Accounts and tokens.
    User,
    /// Products and prices.
    Catalog,
    /// Stock and reservations.
    Inventory,
    /// Charges, refunds, invoices.
    Payment,
    /// Messages to users.
    Notification,
    /// Orders and the placement saga.
    Order,
    /// The edge: JSON, grpc-web and gRPC for the outside world.
    Gateway,
}

impl Service {
    /// Every service, in start order (the user service first: the others fetch its JWKS).
    pub const ALL: [Self; 7] = [
        Self::User,
        Self::Catalog,
        Self::Inventory,
        Self::Payment,
        Self::Notification,
        Self::Order,
        Self::Gateway,
    ];

    /// Its name on the command line and in logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Catalog => "catalog",
            Self::Inventory => "inventory",
            Self::Payment => "payment",
            Self::Notification => "notification",
            Self::Order => "order",
            Self::Gateway => "gateway",
        }
    }

    /// Its full gRPC service name, from the contracts (the edge reports the storefront,
    /// which it serves itself).
    pub fn grpc_name(self) -> &'static str {
        let context = match self {
            Self::Gateway => contract::EDGE_CONTEXT,
            other => other.as_str(),
        };
        contract::contexts()
            .iter()
            .find(|c| c.name == context)
            .map_or("", |c| c.service.as_str())
    }

    /// Where it listens.
    pub fn listen(self, settings: &Settings) -> std::net::SocketAddr {
        settings
            .context(self.as_str())
            .map_or(settings.gateway.listen, |s| s.listen)
    }

    /// The URL clients dial: `https://` when it serves TLS ([`Service::dial`]).
    pub fn url(self, settings: &Settings) -> String {
        let url = settings
            .context(self.as_str())
            .map_or_else(|| url_of(settings.gateway.listen), |s| s.url());
        match self.dial(settings) {
            Dial::Plain => url,
            Dial::Service | Dial::Edge(_) => polyshop_platform::tls::https(&url),
        }
    }

    /// How a client of this process reaches it: the edge over HTTPS when it has a
    /// certificate, a service over TLS when services have one (`tls.*`).
    pub fn dial(self, settings: &Settings) -> Dial {
        match (self, &settings.gateway.tls_cert_path) {
            (Self::Gateway, Some(cert)) => Dial::Edge(cert.clone()),
            (Self::Gateway, None) => Dial::Plain,
            _ if settings.tls.cert_path.is_some() => Dial::Service,
            _ => Dial::Plain,
        }
    }
}

/// How `polyshop` reaches a process it started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dial {
    /// Plaintext h2c.
    Plain,
    /// TLS between services: the CA and client certificate of `tls.*`.
    Service,
    /// The edge over HTTPS, trusting exactly its certificate (`gateway.tls_cert_path`).
    Edge(std::path::PathBuf),
}

impl Dial {
    /// A connected gRPC channel to `url`.
    ///
    /// # Errors
    /// When the URL is malformed, or the connection or TLS handshake fails.
    pub async fn channel(&self, url: &str) -> anyhow::Result<tonic::transport::Channel> {
        Ok(match self {
            Self::Plain => {
                tonic::transport::Endpoint::from_shared(url.to_owned())?
                    .connect()
                    .await?
            }
            Self::Service => polyshop_platform::tls::endpoint(url)?.connect().await?,
            Self::Edge(cert) => polyshop_gateway::tls::pinned_channel(url, cert)
                .await
                .map_err(|e| anyhow::anyhow!(e))?,
        })
    }
}

/// Runs `service` until SIGTERM or Ctrl-C.
///
/// # Errors
/// If it cannot bind, open its database or serve.
pub async fn serve(service: Service, settings: Settings) -> anyhow::Result<()> {
    // One TLS identity per process, for its server and every channel it dials.
    polyshop_platform::tls::install(&settings.tls)?;
    // Before the port opens, so a SIGTERM from anyone who saw it open is a graceful stop.
    let stop = shutdown::signal();
    let addr = service.listen(&settings);
    let listener = TcpListener::bind(addr).await.with_context(|| {
        format!(
            "cannot listen on {addr} for the {} service",
            service.as_str()
        )
    })?;
    let result = match service {
        Service::User => polyshop_user::serve(settings, listener, stop).await,
        Service::Catalog => polyshop_catalog::serve(settings, listener, stop).await,
        Service::Inventory => polyshop_inventory::serve(settings, listener, stop).await,
        Service::Payment => polyshop_payment::serve(settings, listener, stop).await,
        Service::Notification => polyshop_notification::serve(settings, listener, stop).await,
        Service::Order => polyshop_order::serve(settings, listener, stop).await,
        Service::Gateway => polyshop_gateway::serve(settings, listener, stop).await,
    };
    result.with_context(|| format!("the {} service failed", service.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_context_of_the_contracts_is_a_service_this_binary_runs() {
        for context in contract::contexts() {
            // The edge serves the storefront and governance itself.
            let runs = Service::ALL
                .iter()
                .any(|s| s.grpc_name() == context.service)
                || contract::EDGE_CONTEXTS.contains(&context.name.as_str());
            assert!(runs, "no `polyshop serve` for {}", context.name);
        }
        for service in Service::ALL {
            assert!(
                !service.grpc_name().is_empty(),
                "{service:?} is in the contracts"
            );
        }
    }
}
