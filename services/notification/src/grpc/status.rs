//! The one table from [`NotificationError`] to gRPC status.

use polyshop_platform::status::{internal, invalid_argument, with_reason};
use tonic::{Code, Status};

use crate::domain::NotificationError;

/// `ErrorInfo.domain` of this context.
pub const DOMAIN: &str = "polyshop.notification";

impl From<NotificationError> for Status {
    fn from(err: NotificationError) -> Self {
        match err {
            NotificationError::Invalid(v) => invalid_argument(DOMAIN, &v),
            // A service token has no user; notifications are only ever the caller's own.
            NotificationError::UserRequired => with_reason(
                Code::InvalidArgument,
                DOMAIN,
                "USER_PRINCIPAL_REQUIRED",
                "notifications belong to users; call with a user's token",
            ),
            NotificationError::NotFound => with_reason(
                Code::NotFound,
                DOMAIN,
                "NOTIFICATION_NOT_FOUND",
                "notification not found",
            ),
            // Delivery happens only in the mail dispatcher; should one surface here, it is
            // internal.
            e @ NotificationError::Delivery(_) => internal(&e),
            NotificationError::Internal(e) => internal(e.as_ref()),
        }
    }
}
