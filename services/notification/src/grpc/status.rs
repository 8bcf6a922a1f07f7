//! The one table from [`NotificationError`] to gRPC status. Reasons are values of
//! `polyshop.notification.v1.ErrorReason`, stable once published.

use polyshop::notification::v1::ErrorReason;
use polyshop_platform::status::{Reason, internal, invalid_argument, with_reason};
use tonic::{Code, Status};

use crate::domain::NotificationError;

/// `ErrorInfo.domain` of this context, as its `ErrorReason` enum declares it.
pub const DOMAIN: &str = ErrorReason::DOMAIN;

impl From<NotificationError> for Status {
    fn from(err: NotificationError) -> Self {
        match err {
            NotificationError::Invalid(v) => invalid_argument(ErrorReason::InvalidArgument, &v),
            // A service token has no user; notifications are only ever the caller's own.
            NotificationError::UserRequired => with_reason(
                Code::InvalidArgument,
                ErrorReason::UserPrincipalRequired,
                "notifications belong to users; call with a user's token",
            ),
            NotificationError::NotFound => with_reason(
                Code::NotFound,
                ErrorReason::NotificationNotFound,
                "notification not found",
            ),
            // Delivery happens only in the mail dispatcher; should one surface here, it is
            // internal.
            e @ NotificationError::Delivery(_) => internal(&e),
            NotificationError::Internal(e) => internal(e.as_ref()),
        }
    }
}
