//! The one table from [`OrderError`] to gRPC status.

use polyshop_platform::status::{internal, invalid_argument, with_reason};
use tonic::{Code, Status};

use crate::domain::OrderError;

/// `ErrorInfo.domain` of this context.
pub const DOMAIN: &str = "polyshop.order";

impl From<OrderError> for Status {
    fn from(err: OrderError) -> Self {
        match err {
            OrderError::Invalid(v) => invalid_argument(DOMAIN, &v),
            OrderError::NotFound => {
                with_reason(Code::NotFound, DOMAIN, "ORDER_NOT_FOUND", "order not found")
            }
            OrderError::NotAllowed(why) => with_reason(
                Code::FailedPrecondition,
                DOMAIN,
                "STATUS_DOES_NOT_ALLOW",
                why,
            ),
            OrderError::Conflict => with_reason(
                Code::Aborted,
                DOMAIN,
                "CONCURRENT_MODIFICATION",
                "the order changed concurrently; retry",
            ),
            OrderError::Unavailable(why) => {
                with_reason(Code::Unavailable, DOMAIN, "PARTICIPANT_UNAVAILABLE", why)
            }
            e @ OrderError::UnknownSagaState { .. } => internal(&e),
            OrderError::Internal(e) => internal(e.as_ref()),
        }
    }
}
