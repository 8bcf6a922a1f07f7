//! The one table from [`UserError`] to gRPC status. Reasons are values of
//! `polyshop.user.v1.ErrorReason` (domain `polyshop.user`), stable once published.

use polyshop::user::v1::ErrorReason;
use polyshop_platform::status::{internal, invalid_argument, with_reason};
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::domain::UserError;

impl From<UserError> for Status {
    fn from(err: UserError) -> Self {
        match err {
            UserError::Invalid(v) => invalid_argument(ErrorReason::InvalidArgument, &v),
            UserError::UsernameTaken => with_reason(
                Code::AlreadyExists,
                ErrorReason::UsernameTaken,
                "username is taken",
            ),
            UserError::EmailTaken => with_reason(
                Code::AlreadyExists,
                ErrorReason::EmailTaken,
                "email is already registered",
            ),
            UserError::NotFound => {
                with_reason(Code::NotFound, ErrorReason::UserNotFound, "user not found")
            }
            UserError::InvalidCredentials => with_reason(
                Code::Unauthenticated,
                ErrorReason::InvalidCredentials,
                "invalid login or password",
            ),
            UserError::NotActive(status) => with_reason(
                Code::PermissionDenied,
                ErrorReason::AccountNotActive,
                format!("account is {status}"),
            ),
            UserError::RefreshRejected(why) => with_reason(
                Code::Unauthenticated,
                ErrorReason::InvalidRefreshToken,
                why.message(),
            ),
            UserError::NotOwner => with_reason(
                Code::PermissionDenied,
                ErrorReason::NotOwner,
                "you may only access your own account",
            ),
            // No ErrorInfo: the user contract declares no reason for it (yet); the code and
            // RetryInfo say all a client needs, and the edge answers 429 with Retry-After.
            UserError::Busy { retry_after } => Status::with_error_details(
                Code::ResourceExhausted,
                "too many sign-ins at once; retry shortly",
                ErrorDetails::with_retry_info(Some(retry_after)),
            ),
            UserError::Internal(e) => internal(e.as_ref()),
        }
    }
}
