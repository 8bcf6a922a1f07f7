//! The one table from [`OrderError`] to gRPC status. Reasons are values of
//! `polyshop.order.v1.ErrorReason` (domain `polyshop.order`), stable once published.

use polyshop::order::v1::ErrorReason;
use polyshop_platform::status::{internal, invalid_argument, with_reason};
use tonic::{Code, Status};

use crate::domain::OrderError;

impl From<OrderError> for Status {
    fn from(err: OrderError) -> Self {
        match err {
            OrderError::Invalid(v) => invalid_argument(ErrorReason::InvalidArgument, &v),
            OrderError::NotFound => with_reason(
                Code::NotFound,
                ErrorReason::OrderNotFound,
                "order not found",
            ),
            OrderError::NotAllowed(why) => with_reason(
                Code::FailedPrecondition,
                ErrorReason::StatusDoesNotAllow,
                why,
            ),
            OrderError::Conflict => with_reason(
                Code::Aborted,
                ErrorReason::ConcurrentModification,
                "the order changed concurrently; retry",
            ),
            // Another instance took the saga over mid-request; the caller may retry.
            OrderError::LeaseLost { .. } => with_reason(
                Code::Aborted,
                ErrorReason::ConcurrentModification,
                "the order changed concurrently; retry",
            ),
            OrderError::Unavailable(why) => {
                with_reason(Code::Unavailable, ErrorReason::ParticipantUnavailable, why)
            }
            e @ OrderError::UnknownSagaState { .. } => internal(&e),
            OrderError::Internal(e) => internal(e.as_ref()),
        }
    }
}
