//! The users whose tokens no longer work: an in-memory set of the ids of suspended,
//! inactive and deleted accounts, kept by following the user service's events
//! (`POLYSHOP_USER`, `polyshop.user.status_changed|updated|deleted`). A service passes it to
//! [`super::Authenticator::set_account_status`], so a suspended user's token is refused a
//! moment after the user service commits the change, not when the token expires.
//!
//! Nothing is persisted: an ordered, ephemeral consumer replays the stream from its start at
//! every process start (and after a lost consumer), and the last event per user wins. The
//! stream must therefore keep user events at least as long as a user token lives. Until the
//! replay has caught up, a user not yet seen counts as active (fail open): the token was
//! still verified, and the replay of a few thousand status events takes well under a second.

use std::{
    collections::HashSet,
    sync::{Arc, RwLock},
    time::Duration,
};

use async_nats::jetstream::{self, consumer::DeliverPolicy};
use futures::{StreamExt, future::BoxFuture};
use polyshop::user::v1 as pb;
use prost::Message;
use tonic::Status;

use super::AccountStatus;
use crate::{events::HEADER_TYPE, shutdown::Shutdown};

/// The stream of the user context.
const STREAM: &str = "POLYSHOP_USER";

/// The user events that carry an account's status.
const SUBJECTS: [&str; 3] = [
    "polyshop.user.status_changed",
    "polyshop.user.updated",
    "polyshop.user.deleted",
];

/// What a user event says about an account.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Change {
    /// The account may use its tokens.
    Allow(String),
    /// The account is suspended, inactive or deleted.
    Revoke(String),
}

/// The ids of accounts whose tokens are refused, kept current from user events.
#[derive(Debug, Default)]
pub struct RevokedUsers {
    revoked: RwLock<HashSet<String>>,
}

impl RevokedUsers {
    /// An empty list that nothing updates (tests fill it with [`Self::apply`]).
    pub fn new() -> Self {
        Self::default()
    }

    /// A list following the user events on `js` from the start of the stream, until
    /// `shutdown`. Waits (retrying) while NATS or the stream is not there yet.
    pub fn follow(js: jetstream::Context, shutdown: Shutdown) -> Arc<Self> {
        let list = Arc::new(Self::new());
        tokio::spawn(run(js, list.clone(), shutdown));
        list
    }

    /// Whether `user_id`'s tokens are refused.
    pub fn is_revoked(&self, user_id: &str) -> bool {
        self.revoked
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .contains(user_id)
    }

    /// Applies the user event of protobuf type `type_name` with `payload`; events of other
    /// types and undecodable ones are ignored.
    pub fn apply(&self, type_name: &str, payload: &[u8]) {
        let Some(change) = change_of(type_name, payload) else {
            return;
        };
        let mut revoked = self
            .revoked
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match change {
            Change::Allow(id) => {
                revoked.remove(&id);
            }
            Change::Revoke(id) => {
                revoked.insert(id);
            }
        }
    }
}

impl AccountStatus for RevokedUsers {
    fn is_active<'a>(&'a self, user_id: &'a str) -> BoxFuture<'a, Result<bool, Status>> {
        Box::pin(std::future::ready(Ok(!self.is_revoked(user_id))))
    }
}

/// The change an event makes, if it is a user status event with a user id.
fn change_of(type_name: &str, payload: &[u8]) -> Option<Change> {
    // An unset or unknown status says nothing: the user keeps the state last seen.
    let by_status = |id: String, status: i32| match pb::UserStatus::try_from(status) {
        Ok(pb::UserStatus::Active) => Some(Change::Allow(id)),
        Ok(pb::UserStatus::Inactive | pb::UserStatus::Suspended) => Some(Change::Revoke(id)),
        Ok(pb::UserStatus::Unspecified) | Err(_) => None,
    };
    let change = match type_name {
        "polyshop.user.v1.UserStatusChanged" => {
            let e = pb::UserStatusChanged::decode(payload).ok()?;
            by_status(e.user_id, e.status)?
        }
        "polyshop.user.v1.UserUpdated" => {
            let user = pb::UserUpdated::decode(payload).ok()?.user?;
            by_status(user.user_id, user.status)?
        }
        "polyshop.user.v1.UserDeleted" => {
            Change::Revoke(pb::UserDeleted::decode(payload).ok()?.user_id)
        }
        _ => return None,
    };
    match &change {
        Change::Allow(id) | Change::Revoke(id) if id.is_empty() => None,
        _ => Some(change),
    }
}

/// Follows the stream until `shutdown`, starting over after errors.
async fn run(js: jetstream::Context, list: Arc<RevokedUsers>, shutdown: Shutdown) {
    let mut backoff = Duration::from_millis(200);
    while !shutdown.is_fired() {
        let followed = tokio::select! {
            r = follow(&js, &list) => r,
            () = shutdown.clone().wait() => return,
        };
        if let Err(e) = followed {
            tracing::warn!(error = %e, "cannot follow user events for revocation; retrying");
        }
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            () = shutdown.clone().wait() => return,
        }
        backoff = (backoff * 2).min(Duration::from_secs(10));
    }
}

/// One ordered consumer from the start of the stream; the client recreates it after gaps.
/// A replay applies the same events again, which leaves the same set.
async fn follow(js: &jetstream::Context, list: &RevokedUsers) -> Result<(), async_nats::Error> {
    let stream = js.get_stream(STREAM).await?;
    let mut messages = stream
        .create_consumer(jetstream::consumer::push::OrderedConfig {
            deliver_subject: js.client().new_inbox(),
            filter_subjects: SUBJECTS.map(str::to_owned).to_vec(),
            deliver_policy: DeliverPolicy::All,
            ..Default::default()
        })
        .await?
        .messages()
        .await?;
    while let Some(message) = messages.next().await {
        let message = message?;
        let type_name = message
            .headers
            .as_ref()
            .and_then(|h| h.get(HEADER_TYPE))
            .map(|v| v.as_str().to_owned())
            .unwrap_or_default();
        list.apply(&type_name, &message.payload);
    }
    Err("the user event subscription ended".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status_changed(user_id: &str, status: pb::UserStatus) -> Vec<u8> {
        pb::UserStatusChanged {
            user_id: user_id.into(),
            status: status as i32,
            ..Default::default()
        }
        .encode_to_vec()
    }

    #[test]
    fn a_suspended_user_is_revoked_until_reactivated() {
        let list = RevokedUsers::new();
        let t = "polyshop.user.v1.UserStatusChanged";
        list.apply(t, &status_changed("u1", pb::UserStatus::Suspended));
        assert!(list.is_revoked("u1"));
        assert!(!list.is_revoked("u2"));
        list.apply(t, &status_changed("u1", pb::UserStatus::Active));
        assert!(!list.is_revoked("u1"));
    }

    #[test]
    fn a_deleted_user_is_revoked_and_other_events_are_ignored() {
        let list = RevokedUsers::new();
        let deleted = pb::UserDeleted {
            user_id: "u1".into(),
            occur_time: None,
        };
        list.apply("polyshop.user.v1.UserDeleted", &deleted.encode_to_vec());
        list.apply("polyshop.user.v1.UserRegistered", b"junk");
        list.apply("polyshop.user.v1.UserStatusChanged", b"\xff\xff");
        assert!(list.is_revoked("u1"));
        assert_eq!(list.revoked.read().map(|s| s.len()).unwrap_or(0), 1);
    }
}
