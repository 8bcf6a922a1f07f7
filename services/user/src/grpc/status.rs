//! The one table from [`UserError`] to gRPC status.

use polyshop_platform::status::{internal, invalid_argument, with_reason};
use tonic::{Code, Status};

use crate::domain::UserError;

/// `ErrorInfo.domain` of this context.
pub const DOMAIN: &str = "polyshop.user";

impl From<UserError> for Status {
    fn from(err: UserError) -> Self {
        match err {
            UserError::Invalid(v) => invalid_argument(DOMAIN, &v),
            UserError::UsernameTaken => with_reason(
                Code::AlreadyExists,
                DOMAIN,
                "USERNAME_TAKEN",
                "username is taken",
            ),
            UserError::EmailTaken => with_reason(
                Code::AlreadyExists,
                DOMAIN,
                "EMAIL_TAKEN",
                "email is already registered",
            ),
            UserError::NotFound => {
                with_reason(Code::NotFound, DOMAIN, "USER_NOT_FOUND", "user not found")
            }
            UserError::InvalidCredentials => with_reason(
                Code::Unauthenticated,
                DOMAIN,
                "INVALID_CREDENTIALS",
                "invalid login or password",
            ),
            UserError::NotActive(status) => with_reason(
                Code::PermissionDenied,
                DOMAIN,
                "ACCOUNT_NOT_ACTIVE",
                format!("account is {status}"),
            ),
            UserError::NotOwner => with_reason(
                Code::PermissionDenied,
                DOMAIN,
                "NOT_OWNER",
                "you may only access your own account",
            ),
            UserError::Internal(e) => internal(e.as_ref()),
        }
    }
}
