//! `polyshop.payment.v1.PaymentService`: each handler converts, calls one use case, converts
//! back. Access (Charge and Refund for services only, reads for any signed-in caller) is
//! enforced by the auth layer from the contract before a handler runs; the owner rule of the
//! reads lives in the use cases.

use std::sync::Arc;

use polyshop::payment::v1::{self as pb, payment_service_server::PaymentService};
use polyshop_platform::{auth::principal, now_millis};
use tonic::{Request, Response, Status};

use super::convert;
use crate::{
    app::{self, CardProvider, ListRequest, PaymentRepository, Recorded},
    domain::PaymentError,
};

/// The payment service's gRPC handlers.
#[derive(Debug)]
pub struct PaymentGrpc<R, P> {
    repo: Arc<R>,
    provider: Arc<P>,
}

impl<R, P> PaymentGrpc<R, P> {
    /// Handlers over `repo`, charging cards at `provider`.
    pub fn new(repo: Arc<R>, provider: Arc<P>) -> Self {
        Self { repo, provider }
    }
}

type Reply<T> = Result<Response<T>, Status>;

#[tonic::async_trait]
impl<R: PaymentRepository, P: CardProvider> PaymentService for PaymentGrpc<R, P> {
    /// # Errors
    /// INVALID_ARGUMENT (field violations, unknown card token), FAILED_PRECONDITION
    /// `IDEMPOTENCY_KEY_REUSED`, UNAVAILABLE `PROVIDER_UNAVAILABLE` (nothing stored).
    async fn charge(&self, request: Request<pb::ChargeRequest>) -> Reply<pb::ChargeResponse> {
        let draft = convert::charge_in(request.into_inner());
        let (repo, provider) = (self.repo.as_ref(), self.provider.as_ref());
        let recorded = app::charge(repo, provider, draft, now_millis()).await?;
        if let Recorded::New(p) = &recorded {
            tracing::info!(
                payment_id = %p.id,
                order_id = %p.order_id,
                status = p.status.as_str(),
                "payment charged"
            );
        }
        Ok(Response::new(pb::ChargeResponse {
            payment: Some(convert::payment(recorded.into_payment())),
        }))
    }

    /// # Errors
    /// INVALID_ARGUMENT, NOT_FOUND `PAYMENT_NOT_FOUND`, FAILED_PRECONDITION
    /// `IDEMPOTENCY_KEY_REUSED` / `NOT_CAPTURED` / `ALREADY_REFUNDED`.
    async fn refund(&self, request: Request<pb::RefundRequest>) -> Reply<pb::RefundResponse> {
        let r = request.into_inner();
        let recorded = app::refund(
            self.repo.as_ref(),
            r.idempotency_key,
            r.payment_id,
            &r.reason,
            now_millis(),
        )
        .await?;
        if let Recorded::New(p) = &recorded {
            tracing::info!(payment_id = %p.id, reason = %r.reason, "payment refunded");
        }
        Ok(Response::new(pb::RefundResponse {
            payment: Some(convert::payment(recorded.into_payment())),
        }))
    }

    /// # Errors
    /// INVALID_ARGUMENT, NOT_FOUND `PAYMENT_NOT_FOUND` (also for another user's payment).
    async fn get_payment(
        &self,
        request: Request<pb::GetPaymentRequest>,
    ) -> Reply<pb::GetPaymentResponse> {
        let caller = principal(&request)?.clone();
        let id = &request.get_ref().payment_id;
        let payment = app::get_payment(self.repo.as_ref(), &caller, id).await?;
        Ok(Response::new(pb::GetPaymentResponse {
            payment: Some(convert::payment(payment)),
        }))
    }

    /// # Errors
    /// INVALID_ARGUMENT for a bad page size or token.
    async fn list_payments(
        &self,
        request: Request<pb::ListPaymentsRequest>,
    ) -> Reply<pb::ListPaymentsResponse> {
        let caller = principal(&request)?.clone();
        let r = request.into_inner();
        let list = ListRequest {
            page_size: r.page_size,
            page_token: r.page_token,
            order_id: r.order_id,
        };
        let (payments, next_page_token) =
            app::list_payments(self.repo.as_ref(), &caller, list).await?;
        Ok(Response::new(pb::ListPaymentsResponse {
            payments: payments.into_iter().map(convert::payment).collect(),
            next_page_token,
        }))
    }

    /// # Errors
    /// As GetPayment, and FAILED_PRECONDITION `NO_INVOICE` for a declined payment.
    async fn get_invoice(
        &self,
        request: Request<pb::GetInvoiceRequest>,
    ) -> Reply<pb::GetInvoiceResponse> {
        let caller = principal(&request)?.clone();
        let id = &request.get_ref().payment_id;
        let invoice = app::get_invoice(self.repo.as_ref(), &caller, id).await?;
        Ok(Response::new(pb::GetInvoiceResponse {
            invoice: Some(convert::invoice(invoice)),
        }))
    }
}

// Handlers return `PaymentError` through `?`; the conversion lives in `status.rs`.
const _: fn(PaymentError) -> Status = Status::from;
