//! `polyshop.storefront.v1`, served by the edge itself (API composition). GetDashboard fetches
//! profile, recent orders and notifications in parallel and names what failed in `degraded`;
//! GetOrderDetails reads the order, then its customer and products in parallel. Every part
//! is called with the caller's own token, so each service applies its own owner checks.

use std::{collections::BTreeSet, future::Future, time::Duration};

use polyshop::{
    catalog::v1::{BatchGetProductsRequest, catalog_service_client::CatalogServiceClient},
    notification::v1::{
        ListNotificationsRequest, notification_service_client::NotificationServiceClient,
    },
    order::v1::{GetOrderRequest, ListOrdersRequest, order_service_client::OrderServiceClient},
    storefront::v1::{
        ErrorReason, GetDashboardRequest, GetDashboardResponse, GetOrderDetailsRequest,
        GetOrderDetailsResponse, storefront_service_server::StorefrontService,
    },
    user::v1::{GetUserRequest, user_service_client::UserServiceClient},
};
use polyshop_platform::discovery::Balanced;
use polyshop_platform::{
    auth::Principal,
    status::{Violations, invalid_argument},
};
use tonic::{Request, Response, Status, metadata::MetadataMap};

/// Forwarded to every part, so the parts' logs share the edge's request id.
const FORWARDED: [&str; 3] = ["authorization", "x-request-id", "traceparent"];

/// The storefront's upstream clients.
#[derive(Debug, Clone)]
pub struct Storefront {
    users: UserServiceClient<Balanced>,
    catalog: CatalogServiceClient<Balanced>,
    orders: OrderServiceClient<Balanced>,
    notifications: NotificationServiceClient<Balanced>,
    part_timeout: Duration,
}

/// Clients of the contexts the storefront composes, each over its instances.
#[derive(Debug)]
pub struct Parts {
    /// The user context.
    pub user: Balanced,
    /// The catalog context.
    pub catalog: Balanced,
    /// The order context.
    pub order: Balanced,
    /// The notification context.
    pub notification: Balanced,
}

impl Storefront {
    /// A storefront over `parts`; each part gets at most `part_timeout`, so a hanging context
    /// degrades the answer instead of timing out the whole call.
    pub fn new(parts: Parts, part_timeout: Duration) -> Self {
        Self {
            users: UserServiceClient::new(parts.user),
            catalog: CatalogServiceClient::new(parts.catalog),
            orders: OrderServiceClient::new(parts.order),
            notifications: NotificationServiceClient::new(parts.notification),
            part_timeout,
        }
    }

    fn forward<T>(&self, from: &MetadataMap, message: T) -> Request<T> {
        let mut request = Request::new(message);
        for name in FORWARDED {
            if let Some(v) = from.get(name) {
                request.metadata_mut().insert(name, v.clone());
            }
        }
        request.set_timeout(self.part_timeout);
        request
    }

    async fn part<T, F>(&self, name: &str, call: F) -> Result<T, Status>
    where
        F: Future<Output = Result<Response<T>, Status>>,
    {
        match tokio::time::timeout(self.part_timeout, call).await {
            Ok(Ok(r)) => Ok(r.into_inner()),
            Ok(Err(status)) => {
                tracing::warn!(part = name, code = ?status.code(), message = status.message(), "storefront part failed");
                Err(status)
            }
            Err(_) => {
                tracing::warn!(part = name, "storefront part timed out");
                Err(Status::deadline_exceeded(format!("{name} timed out")))
            }
        }
    }
}

fn caller<T>(request: &Request<T>) -> Result<String, Status> {
    request
        .extensions()
        .get::<Principal>()
        .and_then(|p| p.user_id().map(str::to_owned))
        .ok_or_else(|| Status::unauthenticated("a valid access token is required"))
}

#[tonic::async_trait]
impl StorefrontService for Storefront {
    /// # Errors
    /// UNAUTHENTICATED without a user; INVALID_ARGUMENT for `recent_limit` outside 0–20.
    /// Failing parts are named in `degraded`, never errors.
    async fn get_dashboard(
        &self,
        request: Request<GetDashboardRequest>,
    ) -> Result<Response<GetDashboardResponse>, Status> {
        let user_id = caller(&request)?;
        let limit = match request.get_ref().recent_limit {
            0 => 5,
            n @ 1..=20 => n,
            _ => {
                let mut v = Violations::new();
                v.add("recent_limit", "must be between 1 and 20");
                return Err(invalid_argument(ErrorReason::InvalidArgument, &v));
            }
        };
        let md = request.metadata();
        let (mut users, mut orders, mut notes) = (
            self.users.clone(),
            self.orders.clone(),
            self.notifications.clone(),
        );
        let (profile, recent, notifications) = tokio::join!(
            self.part(
                "profile",
                users.get_user(self.forward(md, GetUserRequest { user_id }))
            ),
            self.part(
                "orders",
                orders.list_orders(self.forward(
                    md,
                    ListOrdersRequest {
                        page_size: limit,
                        ..Default::default()
                    }
                ))
            ),
            self.part(
                "notifications",
                notes.list_notifications(self.forward(
                    md,
                    ListNotificationsRequest {
                        page_size: limit,
                        ..Default::default()
                    }
                ))
            ),
        );
        let mut out = GetDashboardResponse::default();
        match profile {
            Ok(r) => out.profile = r.user,
            Err(_) => out.degraded.push("profile".into()),
        }
        match recent {
            Ok(r) => out.recent_orders = r.orders,
            Err(_) => out.degraded.push("orders".into()),
        }
        match notifications {
            Ok(r) => {
                out.notifications = r.notifications;
                out.unread_notifications = r.unread_count;
            }
            Err(_) => out.degraded.push("notifications".into()),
        }
        Ok(Response::new(out))
    }

    /// # Errors
    /// INVALID_ARGUMENT without an order id; the order service's error when the order cannot
    /// be read (NOT_FOUND, PERMISSION_DENIED, UNAVAILABLE). Customer and products degrade.
    async fn get_order_details(
        &self,
        request: Request<GetOrderDetailsRequest>,
    ) -> Result<Response<GetOrderDetailsResponse>, Status> {
        caller(&request)?;
        let order_id = request.get_ref().order_id.clone();
        if order_id.is_empty() {
            let mut v = Violations::new();
            v.add("order_id", "is required");
            return Err(invalid_argument(ErrorReason::InvalidArgument, &v));
        }
        let md = request.metadata();
        let mut orders = self.orders.clone();
        let order = self
            .part(
                "order",
                orders.get_order(self.forward(md, GetOrderRequest { order_id })),
            )
            .await?
            .order
            .ok_or_else(|| Status::internal("internal error"))?;
        let product_ids: Vec<String> = order
            .items
            .iter()
            .map(|i| i.product_id.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let (mut users, mut catalog) = (self.users.clone(), self.catalog.clone());
        let user_id = order.user_id.clone();
        let (customer, products) = tokio::join!(
            self.part(
                "customer",
                users.get_user(self.forward(md, GetUserRequest { user_id }))
            ),
            self.part(
                "products",
                catalog
                    .batch_get_products(self.forward(md, BatchGetProductsRequest { product_ids }))
            ),
        );
        let mut out = GetOrderDetailsResponse {
            order: Some(order),
            ..Default::default()
        };
        match customer {
            Ok(r) => out.customer = r.user,
            Err(_) => out.degraded.push("customer".into()),
        }
        match products {
            Ok(r) => out.products = r.products,
            Err(_) => out.degraded.push("products".into()),
        }
        Ok(Response::new(out))
    }
}
