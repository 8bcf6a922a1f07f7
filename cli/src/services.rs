//! The services this binary can run, and where each listens.

use anyhow::Context;
use clap::ValueEnum;
use polyshop_platform::{config::Settings, shutdown};
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
}

impl Service {
    /// Every service, in start order (the user service first: the others fetch its JWKS).
    pub const ALL: [Self; 5] = [
        Self::User,
        Self::Catalog,
        Self::Inventory,
        Self::Payment,
        Self::Notification,
    ];

    /// Its name on the command line and in logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Catalog => "catalog",
            Self::Inventory => "inventory",
            Self::Payment => "payment",
            Self::Notification => "notification",
        }
    }

    /// Its full gRPC service name.
    pub fn grpc_name(self) -> &'static str {
        match self {
            Self::User => "polyshop.user.v1.UserService",
            Self::Catalog => "polyshop.catalog.v1.CatalogService",
            Self::Inventory => "polyshop.inventory.v1.InventoryService",
            Self::Payment => "polyshop.payment.v1.PaymentService",
            Self::Notification => "polyshop.notification.v1.NotificationService",
        }
    }

    /// Where it listens.
    pub fn listen(self, settings: &Settings) -> std::net::SocketAddr {
        match self {
            Self::User => settings.user.listen,
            Self::Catalog => settings.catalog.listen,
            Self::Inventory => settings.inventory.listen,
            Self::Payment => settings.payment.listen,
            Self::Notification => settings.notification.listen,
        }
    }

    /// The URL clients dial.
    pub fn url(self, settings: &Settings) -> String {
        match self {
            Self::User => settings.user.url(),
            Self::Catalog => settings.catalog.url(),
            Self::Inventory => settings.inventory.service().url(),
            Self::Payment => settings.payment.url(),
            Self::Notification => settings.notification.url(),
        }
    }
}

/// Runs `service` until SIGTERM or Ctrl-C.
///
/// # Errors
/// If it cannot bind, open its database or serve.
pub async fn serve(service: Service, settings: Settings) -> anyhow::Result<()> {
    let addr = service.listen(&settings);
    let listener = TcpListener::bind(addr).await.with_context(|| {
        format!(
            "cannot listen on {addr} for the {} service",
            service.as_str()
        )
    })?;
    let stop = shutdown::signal();
    let result = match service {
        Service::User => polyshop_user::serve(settings, listener, stop).await,
        Service::Catalog => polyshop_catalog::serve(settings, listener, stop).await,
        Service::Inventory => polyshop_inventory::serve(settings, listener, stop).await,
        Service::Payment => polyshop_payment::serve(settings, listener, stop).await,
        Service::Notification => polyshop_notification::serve(settings, listener, stop).await,
    };
    result.with_context(|| format!("the {} service failed", service.as_str()))
}
