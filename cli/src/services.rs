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

    /// Its full gRPC service name.
    pub fn grpc_name(self) -> &'static str {
        match self {
            Self::User => "polyshop.user.v1.UserService",
            Self::Catalog => "polyshop.catalog.v1.CatalogService",
            Self::Inventory => "polyshop.inventory.v1.InventoryService",
            Self::Payment => "polyshop.payment.v1.PaymentService",
            Self::Notification => "polyshop.notification.v1.NotificationService",
            Self::Order => "polyshop.order.v1.OrderService",
            // The edge serves the storefront itself and reports it in health.
            Self::Gateway => "polyshop.storefront.v1.StorefrontService",
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
            Self::Order => settings.order.listen,
            Self::Gateway => settings.gateway.listen,
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
            Self::Order => settings.order.url(),
            Self::Gateway => format!("http://{}", settings.gateway.listen),
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
        Service::Order => polyshop_order::serve(settings, listener, stop).await,
        Service::Gateway => polyshop_gateway::serve(settings, listener, stop).await,
    };
    result.with_context(|| format!("the {} service failed", service.as_str()))
}
