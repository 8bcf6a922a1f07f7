//! The one table from [`PaymentError`] to gRPC status. Reasons are values of
//! `polyshop.payment.v1.ErrorReason`, stable once published.

use std::time::Duration;

use polyshop::payment::v1::ErrorReason;
use polyshop_platform::status::{Reason, error_info, internal, invalid_argument, with_reason};
use tonic::{Code, Status};
use tonic_types::StatusExt;

use crate::domain::PaymentError;

/// `ErrorInfo.domain` of this context, as its `ErrorReason` enum declares it.
pub const DOMAIN: &str = ErrorReason::DOMAIN;

/// How long a caller should wait before asking an unavailable provider again.
const PROVIDER_RETRY: Duration = Duration::from_secs(1);

impl From<PaymentError> for Status {
    fn from(err: PaymentError) -> Self {
        let message = err.to_string();
        let precondition = |reason| with_reason(Code::FailedPrecondition, reason, &message);
        match err {
            PaymentError::Invalid(v) => invalid_argument(ErrorReason::InvalidArgument, &v),
            PaymentError::IdempotencyKeyReused => precondition(ErrorReason::IdempotencyKeyReused),
            PaymentError::NotCaptured => precondition(ErrorReason::NotCaptured),
            PaymentError::AlreadyRefunded => precondition(ErrorReason::AlreadyRefunded),
            PaymentError::NoInvoice => precondition(ErrorReason::NoInvoice),
            PaymentError::PaymentNotFound => {
                with_reason(Code::NotFound, ErrorReason::PaymentNotFound, message)
            }
            PaymentError::ProviderUnavailable => {
                let mut details = error_info(ErrorReason::ProviderUnavailable);
                details.set_retry_info(Some(PROVIDER_RETRY));
                Status::with_error_details(Code::Unavailable, message, details)
            }
            PaymentError::Internal(e) => internal(e.as_ref()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_refusal_carries_its_stable_reason() {
        let cases = [
            (
                PaymentError::IdempotencyKeyReused,
                Code::FailedPrecondition,
                "IDEMPOTENCY_KEY_REUSED",
            ),
            (
                PaymentError::NotCaptured,
                Code::FailedPrecondition,
                "NOT_CAPTURED",
            ),
            (
                PaymentError::AlreadyRefunded,
                Code::FailedPrecondition,
                "ALREADY_REFUNDED",
            ),
            (
                PaymentError::NoInvoice,
                Code::FailedPrecondition,
                "NO_INVOICE",
            ),
            (
                PaymentError::PaymentNotFound,
                Code::NotFound,
                "PAYMENT_NOT_FOUND",
            ),
            (
                PaymentError::ProviderUnavailable,
                Code::Unavailable,
                "PROVIDER_UNAVAILABLE",
            ),
        ];
        for (err, code, reason) in cases {
            let status = Status::from(err);
            assert_eq!(status.code(), code);
            let info = status
                .get_error_details()
                .error_info()
                .cloned()
                .expect("ErrorInfo");
            assert_eq!(
                (info.reason.as_str(), info.domain.as_str()),
                (reason, DOMAIN)
            );
        }
    }

    #[test]
    fn internal_errors_say_only_internal_error() {
        let status = Status::from(PaymentError::Internal("db at /secret is gone".into()));
        assert_eq!(
            (status.code(), status.message()),
            (Code::Internal, "internal error")
        );
    }
}
