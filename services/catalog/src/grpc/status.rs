//! The one table from [`CatalogError`] to gRPC status. Reasons are values of
//! `polyshop.catalog.v1.ErrorReason`, stable once published.

use polyshop::catalog::v1::ErrorReason;
use polyshop_platform::status::{Reason, internal, invalid_argument, with_reason};
use tonic::{Code, Status};

use crate::domain::CatalogError;

/// `ErrorInfo.domain` of this context, as its `ErrorReason` enum declares it.
pub const DOMAIN: &str = ErrorReason::DOMAIN;

impl From<CatalogError> for Status {
    fn from(err: CatalogError) -> Self {
        match err {
            CatalogError::Invalid(v) => invalid_argument(ErrorReason::InvalidArgument, &v),
            CatalogError::NotFound => with_reason(
                Code::NotFound,
                ErrorReason::ProductNotFound,
                "product not found",
            ),
            // ABORTED: the client retries the same request and gets the winner's product.
            CatalogError::DuplicateRequest => with_reason(
                Code::Aborted,
                ErrorReason::DuplicateRequest,
                "a concurrent request with this request_id is in progress; retry it",
            ),
            CatalogError::Internal(e) => internal(e.as_ref()),
        }
    }
}

#[cfg(test)]
mod tests {
    use polyshop_platform::status::Violations;
    use tonic_types::StatusExt;

    use super::*;

    #[test]
    fn each_error_has_its_code_and_reason() {
        let mut v = Violations::new();
        v.add("name", "must be 1–200 characters");
        let cases = [
            (
                CatalogError::Invalid(v),
                Code::InvalidArgument,
                "INVALID_ARGUMENT",
            ),
            (CatalogError::NotFound, Code::NotFound, "PRODUCT_NOT_FOUND"),
            (
                CatalogError::DuplicateRequest,
                Code::Aborted,
                "DUPLICATE_REQUEST",
            ),
        ];
        for (err, code, reason) in cases {
            let status = Status::from(err);
            assert_eq!(status.code(), code);
            let details = status.get_error_details();
            let info = details.error_info().expect("ErrorInfo");
            assert_eq!(
                (info.reason.as_str(), info.domain.as_str()),
                (reason, DOMAIN)
            );
        }
    }

    #[test]
    fn internal_errors_say_only_internal_error() {
        let status = Status::from(CatalogError::Internal("disk /var/db is full".into()));
        assert_eq!(
            (status.code(), status.message()),
            (Code::Internal, "internal error")
        );
    }
}
