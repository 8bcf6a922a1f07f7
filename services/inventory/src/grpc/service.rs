//! `polyshop.inventory.v1.InventoryService`: each handler converts, calls one use case,
//! converts back. Access (public, admin, services only) is enforced by the auth layer from
//! the contract before a handler runs.

use std::sync::Arc;

use polyshop::inventory::v1::{self as pb, inventory_service_server::InventoryService};
use polyshop_platform::{auth::principal, now_millis};
use tonic::{Request, Response, Status};

use super::convert;
use crate::{
    app::{self, InventoryRepository, Reserved},
    domain::InventoryError,
};

/// The inventory service's gRPC handlers.
#[derive(Debug)]
pub struct InventoryGrpc<R> {
    repo: Arc<R>,
    hold_secs: u64,
}

impl<R> InventoryGrpc<R> {
    /// Handlers over `repo`; reservations hold stock for `hold_secs`.
    pub fn new(repo: Arc<R>, hold_secs: u64) -> Self {
        Self { repo, hold_secs }
    }
}

type Reply<T> = Result<Response<T>, Status>;

#[tonic::async_trait]
impl<R: InventoryRepository> InventoryService for InventoryGrpc<R> {
    async fn get_stock(
        &self,
        request: Request<pb::GetStockRequest>,
    ) -> Reply<pb::GetStockResponse> {
        let stock = app::get_stock(self.repo.as_ref(), &request.get_ref().product_id).await?;
        Ok(Response::new(pb::GetStockResponse {
            stock: Some(convert::stock(stock)),
        }))
    }

    async fn set_stock(
        &self,
        request: Request<pb::SetStockRequest>,
    ) -> Reply<pb::SetStockResponse> {
        let caller = principal(&request)?.clone();
        let r = request.into_inner();
        let stock = app::set_stock(
            self.repo.as_ref(),
            &r.product_id,
            r.quantity_on_hand,
            now_millis(),
        )
        .await?;
        tracing::info!(
            product_id = %stock.product_id,
            on_hand = stock.on_hand,
            ?caller,
            "stock set"
        );
        Ok(Response::new(pb::SetStockResponse {
            stock: Some(convert::stock(stock)),
        }))
    }

    async fn reserve_stock(
        &self,
        request: Request<pb::ReserveStockRequest>,
    ) -> Reply<pb::ReserveStockResponse> {
        let r = request.into_inner();
        let items = convert::items_in(r.items);
        let reserved = app::reserve_stock(
            self.repo.as_ref(),
            &r.reservation_id,
            items,
            self.hold_secs,
            now_millis(),
        )
        .await?;
        if let Reserved::New(_) = &reserved {
            tracing::info!(reservation_id = %r.reservation_id, "stock reserved");
        }
        let reservation = convert::reservation(reserved.into_reservation());
        Ok(Response::new(pb::ReserveStockResponse {
            reservation: Some(reservation),
        }))
    }

    async fn confirm_reservation(
        &self,
        request: Request<pb::ConfirmReservationRequest>,
    ) -> Reply<pb::ConfirmReservationResponse> {
        let id = &request.get_ref().reservation_id;
        let reservation = app::confirm_reservation(self.repo.as_ref(), id, now_millis()).await?;
        tracing::info!(reservation_id = %id, "reservation confirmed");
        Ok(Response::new(pb::ConfirmReservationResponse {
            reservation: Some(convert::reservation(reservation)),
        }))
    }

    async fn release_reservation(
        &self,
        request: Request<pb::ReleaseReservationRequest>,
    ) -> Reply<pb::ReleaseReservationResponse> {
        let r = request.into_inner();
        let reservation = app::release_reservation(
            self.repo.as_ref(),
            &r.reservation_id,
            &r.reason,
            now_millis(),
        )
        .await?;
        tracing::info!(
            reservation_id = %r.reservation_id,
            reason = %reservation.release_reason,
            "reservation released"
        );
        Ok(Response::new(pb::ReleaseReservationResponse {
            reservation: Some(convert::reservation(reservation)),
        }))
    }
}

// Handlers return `InventoryError` through `?`; the conversion lives in `status.rs`.
const _: fn(InventoryError) -> Status = Status::from;
