//! `polyshop.order.v1.OrderService`: each handler converts, calls one use case, converts back.

use std::sync::Arc;

use polyshop::order::v1::{self as pb, order_service_server::OrderService};
use polyshop_platform::{auth::principal, status::Violations};
use tonic::{Request, Response, Status};

use super::convert;
use crate::{
    app::{self, ListRequest, SagaRunner},
    codec,
    domain::OrderError,
    store::{EventStore, ReadModel},
};

/// The order service's gRPC handlers.
#[derive(Debug)]
pub struct OrderGrpc {
    saga: Arc<SagaRunner>,
    events: EventStore,
    read: ReadModel,
}

impl OrderGrpc {
    /// Handlers over the saga runner, the event store (history) and the read model (lists).
    pub fn new(saga: Arc<SagaRunner>, events: EventStore, read: ReadModel) -> Self {
        Self { saga, events, read }
    }
}

type Reply<T> = Result<Response<T>, Status>;

#[tonic::async_trait]
impl OrderService for OrderGrpc {
    async fn create_order(
        &self,
        request: Request<pb::CreateOrderRequest>,
    ) -> Reply<pb::CreateOrderResponse> {
        let caller = principal(&request)?.clone();
        let Some(user_id) = caller.user_id().map(str::to_owned) else {
            let mut v = Violations::new();
            v.add("authorization", "orders are placed with a user's token");
            return Err(OrderError::Invalid(v).into());
        };
        let order = self
            .saga
            .place(&user_id, convert::place_order(request.into_inner()))
            .await?;
        tracing::info!(order_id = %order.id, status = order.status.as_str(), "order placed");
        Ok(Response::new(pb::CreateOrderResponse {
            order: Some(codec::order(&order)),
        }))
    }

    async fn get_order(
        &self,
        request: Request<pb::GetOrderRequest>,
    ) -> Reply<pb::GetOrderResponse> {
        let caller = principal(&request)?.clone();
        let id = convert::order_id(&request.get_ref().order_id)?;
        let order = app::get_order(self.saga.log().as_ref(), &caller, id).await?;
        Ok(Response::new(pb::GetOrderResponse {
            order: Some(codec::order(&order)),
        }))
    }

    async fn list_orders(
        &self,
        request: Request<pb::ListOrdersRequest>,
    ) -> Reply<pb::ListOrdersResponse> {
        let caller = principal(&request)?.clone();
        let r = request.into_inner();
        let req = ListRequest {
            page_size: r.page_size,
            page_token: r.page_token,
            status: convert::status_in(r.status),
            user_id: r.user_id,
        };
        let (orders, next) = app::list_orders(&self.read, &caller, req).await?;
        Ok(Response::new(pb::ListOrdersResponse {
            orders: orders.iter().map(codec::order).collect(),
            next_page_token: next,
        }))
    }

    async fn cancel_order(
        &self,
        request: Request<pb::CancelOrderRequest>,
    ) -> Reply<pb::CancelOrderResponse> {
        let caller = principal(&request)?.clone();
        let r = request.into_inner();
        let id = convert::order_id(&r.order_id)?;
        let order = self.saga.cancel(&caller, id, &r.reason).await?;
        Ok(Response::new(pb::CancelOrderResponse {
            order: Some(codec::order(&order)),
        }))
    }

    async fn update_order_status(
        &self,
        request: Request<pb::UpdateOrderStatusRequest>,
    ) -> Reply<pb::UpdateOrderStatusResponse> {
        let caller = principal(&request)?.clone();
        let r = request.into_inner();
        let id = convert::order_id(&r.order_id)?;
        let order = app::update_status(
            self.saga.log().as_ref(),
            &caller,
            id,
            convert::status_in(r.status),
            &r.tracking_number,
        )
        .await?;
        Ok(Response::new(pb::UpdateOrderStatusResponse {
            order: Some(codec::order(&order)),
        }))
    }

    async fn get_order_history(
        &self,
        request: Request<pb::GetOrderHistoryRequest>,
    ) -> Reply<pb::GetOrderHistoryResponse> {
        let caller = principal(&request)?.clone();
        let id = convert::order_id(&request.get_ref().order_id)?;
        let entries = app::order_history(self.saga.log().as_ref(), &self.events, &caller, id)
            .await?
            .iter()
            .map(|r| {
                codec::history_entry(r.version, &r.event_id, &r.kind, &r.payload, r.recorded_at)
            })
            .collect();
        Ok(Response::new(pb::GetOrderHistoryResponse { entries }))
    }
}
