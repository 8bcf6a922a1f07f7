//! The one table from [`InventoryError`] to gRPC status.

use polyshop_platform::status::{internal, invalid_argument, with_reason};
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, PreconditionViolation, StatusExt};

use crate::domain::InventoryError;

/// `ErrorInfo.domain` of this context.
pub const DOMAIN: &str = "polyshop.inventory";

/// `PreconditionFailure.Violation.type` for stock that is not there.
const STOCK: &str = "STOCK";

/// FAILED_PRECONDITION with ErrorInfo `reason` and a PreconditionFailure naming products.
fn stock_precondition(
    reason: &str,
    message: String,
    violations: Vec<PreconditionViolation>,
) -> Status {
    let mut details = ErrorDetails::with_error_info(reason, DOMAIN, []);
    details.set_precondition_failure(violations);
    Status::with_error_details(Code::FailedPrecondition, message, details)
}

impl From<InventoryError> for Status {
    fn from(err: InventoryError) -> Self {
        let message = err.to_string();
        match err {
            InventoryError::Invalid(v) => invalid_argument(DOMAIN, &v),
            InventoryError::BelowReserved {
                product_id,
                reserved,
            } => stock_precondition(
                "BELOW_RESERVED",
                message,
                vec![PreconditionViolation::new(
                    STOCK,
                    product_id,
                    format!("{reserved} units are reserved; release or confirm them first"),
                )],
            ),
            InventoryError::InsufficientStock(products) => stock_precondition(
                "INSUFFICIENT_STOCK",
                message,
                products
                    .into_iter()
                    .map(|p| PreconditionViolation::new(STOCK, p, "not enough units available"))
                    .collect(),
            ),
            InventoryError::ReservationNotFound => {
                with_reason(Code::NotFound, DOMAIN, "RESERVATION_NOT_FOUND", message)
            }
            InventoryError::ReservationReleased => with_reason(
                Code::FailedPrecondition,
                DOMAIN,
                "RESERVATION_RELEASED",
                message,
            ),
            InventoryError::ReservationConfirmed => with_reason(
                Code::FailedPrecondition,
                DOMAIN,
                "RESERVATION_CONFIRMED",
                message,
            ),
            InventoryError::Internal(e) => internal(e.as_ref()),
        }
    }
}
