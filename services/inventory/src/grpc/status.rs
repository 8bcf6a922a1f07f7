//! The one table from [`InventoryError`] to gRPC status. Reasons are values of
//! `polyshop.inventory.v1.ErrorReason`, stable once published.

use polyshop::inventory::v1::ErrorReason;
use polyshop_platform::status::{Reason, error_info, internal, invalid_argument, with_reason};
use tonic::{Code, Status};
use tonic_types::{PreconditionViolation, StatusExt};

use crate::domain::InventoryError;

/// `ErrorInfo.domain` of this context, as its `ErrorReason` enum declares it.
pub const DOMAIN: &str = ErrorReason::DOMAIN;

/// `PreconditionFailure.Violation.type` for stock that is not there.
const STOCK: &str = "STOCK";

/// FAILED_PRECONDITION with ErrorInfo `reason` and a PreconditionFailure naming products.
fn stock_precondition(
    reason: ErrorReason,
    message: String,
    violations: Vec<PreconditionViolation>,
) -> Status {
    let mut details = error_info(reason);
    details.set_precondition_failure(violations);
    Status::with_error_details(Code::FailedPrecondition, message, details)
}

impl From<InventoryError> for Status {
    fn from(err: InventoryError) -> Self {
        let message = err.to_string();
        match err {
            InventoryError::Invalid(v) => invalid_argument(ErrorReason::InvalidArgument, &v),
            InventoryError::BelowReserved {
                product_id,
                reserved,
            } => stock_precondition(
                ErrorReason::BelowReserved,
                message,
                vec![PreconditionViolation::new(
                    STOCK,
                    product_id,
                    format!("{reserved} units are reserved; release or confirm them first"),
                )],
            ),
            InventoryError::InsufficientStock(products) => stock_precondition(
                ErrorReason::InsufficientStock,
                message,
                products
                    .into_iter()
                    .map(|p| PreconditionViolation::new(STOCK, p, "not enough units available"))
                    .collect(),
            ),
            InventoryError::ProductNotFound => {
                with_reason(Code::NotFound, ErrorReason::ProductNotFound, message)
            }
            InventoryError::ReservationNotFound => {
                with_reason(Code::NotFound, ErrorReason::ReservationNotFound, message)
            }
            InventoryError::ReservationReleased => with_reason(
                Code::FailedPrecondition,
                ErrorReason::ReservationReleased,
                message,
            ),
            InventoryError::ReservationConfirmed => with_reason(
                Code::FailedPrecondition,
                ErrorReason::ReservationConfirmed,
                message,
            ),
            InventoryError::Internal(e) => internal(e.as_ref()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_product_is_not_found_with_its_reason() {
        let status = Status::from(InventoryError::ProductNotFound);
        assert_eq!(status.code(), Code::NotFound);
        let info = status
            .get_error_details()
            .error_info()
            .cloned()
            .expect("ErrorInfo");
        assert_eq!(
            (info.reason.as_str(), info.domain.as_str()),
            ("PRODUCT_NOT_FOUND", DOMAIN)
        );
    }
}
