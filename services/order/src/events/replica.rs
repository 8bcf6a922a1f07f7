//! User events → the local user replica.

use futures::future::BoxFuture;
use polyshop::user::v1 as pb;
use polyshop_platform::events::{
    ReceivedEvent,
    consumer::{Handler, HandlerError},
};
use prost::Message;
use sea_orm::DatabaseTransaction;

use crate::store::UserReplica;

fn millis(t: Option<&prost_types::Timestamp>) -> i64 {
    t.map_or(0, |t| t.seconds * 1000 + i64::from(t.nanos / 1_000_000))
}

fn status_name(s: i32) -> &'static str {
    match pb::UserStatus::try_from(s) {
        Ok(pb::UserStatus::Active) => "active",
        Ok(pb::UserStatus::Inactive) => "inactive",
        _ => "suspended",
    }
}

/// Keeps the user replica current.
#[derive(Debug, Default)]
pub struct ReplicaHandler;

impl Handler for ReplicaHandler {
    fn handle<'a>(
        &'a self,
        txn: &'a DatabaseTransaction,
        event: &'a ReceivedEvent,
    ) -> BoxFuture<'a, Result<(), HandlerError>> {
        Box::pin(async move {
            let poison = |e: prost::DecodeError| HandlerError::Poison(e.to_string());
            let payload = event.payload.as_ref();
            let (user_id, status, at) = match event.type_name.as_str() {
                "polyshop.user.v1.UserRegistered" => {
                    let e = pb::UserRegistered::decode(payload).map_err(poison)?;
                    let user = e.user.unwrap_or_default();
                    (
                        user.user_id,
                        status_name(user.status),
                        millis(e.occur_time.as_ref()),
                    )
                }
                "polyshop.user.v1.UserUpdated" => {
                    let e = pb::UserUpdated::decode(payload).map_err(poison)?;
                    let user = e.user.unwrap_or_default();
                    (
                        user.user_id,
                        status_name(user.status),
                        millis(e.occur_time.as_ref()),
                    )
                }
                "polyshop.user.v1.UserStatusChanged" => {
                    let e = pb::UserStatusChanged::decode(payload).map_err(poison)?;
                    (
                        e.user_id,
                        status_name(e.status),
                        millis(e.occur_time.as_ref()),
                    )
                }
                "polyshop.user.v1.UserDeleted" => {
                    let e = pb::UserDeleted::decode(payload).map_err(poison)?;
                    (e.user_id, "deleted", millis(e.occur_time.as_ref()))
                }
                other => return Err(HandlerError::Poison(format!("not a user event: {other}"))),
            };
            if user_id.is_empty() {
                return Err(HandlerError::Poison("user event without a user id".into()));
            }
            UserReplica::upsert(txn, &user_id, status, at)
                .await
                .map_err(|e| HandlerError::Retry(e.to_string()))
        })
    }
}
