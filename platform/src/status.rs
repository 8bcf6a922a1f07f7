//! Building blocks for each service's one error → `Status` table: `google.rpc` details
//! (ErrorInfo with a stable reason, BadRequest field violations) and the rule that internal
//! errors are logged in full but say only "internal error" on the wire.
//!
//! Reasons are values of the context's `ErrorReason` proto enum ([`Reason`]), never strings:
//! the enum gives both `ErrorInfo.reason` (its wire name) and `ErrorInfo.domain`, so a server
//! can only send a reason its contract declares and documents. This module is the one place
//! that builds an ErrorInfo (the contract suite checks that).

pub use polyshop::Reason;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, FieldViolation, StatusExt};

/// Field violations collected while validating a request.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Violations(Vec<(String, String)>);

impl Violations {
    /// No violations yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records that `field` (a proto path like `items[0].quantity`) is invalid.
    pub fn add(&mut self, field: impl Into<String>, description: impl Into<String>) {
        self.0.push((field.into(), description.into()));
    }

    /// Records `result`'s error against `field`, passing its value through.
    pub fn check<T>(&mut self, field: &str, result: Result<T, String>) -> Option<T> {
        match result {
            Ok(v) => Some(v),
            Err(description) => {
                self.add(field, description);
                None
            }
        }
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `Ok` when empty, else `Err(self)`.
    ///
    /// # Errors
    /// The collected violations.
    pub fn into_result(self) -> Result<(), Self> {
        if self.is_empty() { Ok(()) } else { Err(self) }
    }

    /// The (field, description) pairs.
    pub fn iter(&self) -> impl Iterator<Item = &(String, String)> {
        self.0.iter()
    }
}

impl std::fmt::Display for Violations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self.0.iter().map(|(k, v)| format!("{k}: {v}")).collect();
        f.write_str(&parts.join("; "))
    }
}

/// Details holding only `ErrorInfo { reason, domain }` of `reason`, for a status that adds
/// more (a PreconditionFailure, RetryInfo) before [`StatusExt::with_error_details`].
pub fn error_info<R: Reason>(reason: R) -> ErrorDetails {
    ErrorDetails::with_error_info(reason.wire_name(), R::DOMAIN, [])
}

/// INVALID_ARGUMENT with `reason` (the context's `ErrorReason::InvalidArgument`) and a
/// BadRequest listing every violation.
pub fn invalid_argument(reason: impl Reason, violations: &Violations) -> Status {
    let mut details = error_info(reason);
    details.set_bad_request(
        violations
            .iter()
            .map(|(field, description)| FieldViolation::new(field.clone(), description.clone()))
            .collect::<Vec<_>>(),
    );
    Status::with_error_details(
        Code::InvalidArgument,
        format!("invalid request: {violations}"),
        details,
    )
}

/// A status carrying `ErrorInfo { reason, domain }` of `reason`.
pub fn with_reason(code: Code, reason: impl Reason, message: impl Into<String>) -> Status {
    Status::with_error_details(code, message, error_info(reason))
}

/// Logs the whole cause chain and returns a bare INTERNAL "internal error".
pub fn internal(err: &(dyn std::error::Error + 'static)) -> Status {
    let mut chain = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        chain.push_str(": ");
        chain.push_str(&cause.to_string());
        source = cause.source();
    }
    tracing::error!(error = %chain, "internal error");
    Status::internal("internal error")
}

#[cfg(test)]
mod tests {
    use super::*;

    use polyshop::{order::v1::ErrorReason as OrderReason, user::v1::ErrorReason as UserReason};

    #[test]
    fn field_violations_reach_the_status_details() {
        let mut v = Violations::new();
        v.add("email", "is not an email address");
        let status = invalid_argument(UserReason::InvalidArgument, &v);
        assert_eq!(status.code(), Code::InvalidArgument);
        let details = status.get_error_details();
        let bad = details.bad_request().expect("bad request detail");
        assert_eq!(bad.field_violations[0].field, "email");
        let info = details.error_info().expect("info");
        assert_eq!(
            (info.reason.as_str(), info.domain.as_str()),
            ("INVALID_ARGUMENT", "polyshop.user")
        );
    }

    #[test]
    fn a_reason_goes_on_the_wire_without_its_proto_prefix_and_with_its_context_domain() {
        let status = with_reason(
            Code::NotFound,
            OrderReason::OrderNotFound,
            "order not found",
        );
        let info = status
            .get_error_details()
            .error_info()
            .cloned()
            .expect("info");
        assert_eq!(
            (info.reason.as_str(), info.domain.as_str()),
            ("ORDER_NOT_FOUND", "polyshop.order")
        );
        assert_eq!(status.message(), "order not found");
    }

    #[test]
    fn internal_errors_do_not_leak() {
        let err = std::io::Error::other("disk /secret/path is full");
        let status = internal(&err);
        assert_eq!(status.message(), "internal error");
    }
}
