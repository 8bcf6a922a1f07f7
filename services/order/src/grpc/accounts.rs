//! Account status for the authenticator, from the user replica: a token of a user the replica
//! knows to be suspended, inactive or deleted stops working here within a second of the user
//! event arriving.

use std::time::Duration;

use polyshop_platform::cache::TtlMap;

use crate::store::UserReplica;

/// How long an account's replicated status is reused before it is read again.
const ACCOUNT_STATUS_TTL: Duration = Duration::from_secs(1);
/// Accounts whose status is kept; beyond this the expired answers are dropped.
const ACCOUNT_STATUS_MAX: usize = 100_000;

/// Account status from the user replica: unknown users pass (the saga checks them again).
/// Answers are reused for [`ACCOUNT_STATUS_TTL`]: every call of a customer would otherwise
/// read the replica, and a status change takes effect within that second anyway.
#[derive(Debug)]
pub struct ReplicatedAccounts {
    replica: UserReplica,
    /// (user id, active) by user id.
    seen: TtlMap<(String, bool)>,
}

impl ReplicatedAccounts {
    /// Statuses read from `replica`.
    pub fn new(replica: UserReplica) -> Self {
        Self {
            replica,
            seen: TtlMap::new(ACCOUNT_STATUS_TTL, ACCOUNT_STATUS_MAX),
        }
    }
}

impl polyshop_platform::auth::AccountStatus for ReplicatedAccounts {
    fn is_active<'a>(
        &'a self,
        user_id: &'a str,
    ) -> futures::future::BoxFuture<'a, Result<bool, tonic::Status>> {
        Box::pin(async move {
            if let Some(((_, active), true)) = self.seen.get(user_id) {
                return Ok(active);
            }
            let active = match self.replica.status(user_id).await {
                Ok(status) => status.is_none_or(|s| s == "active"),
                Err(e) => return Err(polyshop_platform::status::internal(&e)),
            };
            self.seen
                .remember([&(user_id.to_owned(), active)], |(id, _)| id);
            Ok(active)
        })
    }
}
