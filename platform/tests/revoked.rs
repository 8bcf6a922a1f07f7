//! The revocation list against a real nats-server: the user events the user service publishes
//! (same envelope and headers as its outbox relay) revoke a suspended or deleted user within
//! seconds, re-activation lifts it, and a process started later replays the stream.

use std::time::Duration;

use polyshop::user::v1 as pb;
use polyshop_platform::{
    auth::{AccountStatus, RevokedUsers},
    events::{self, OutgoingEvent, streams},
    shutdown,
    testing::{NatsServer, eventually_some, jetstream, publish_event},
};

/// How soon a status change must reach the list.
const WITHIN: Duration = Duration::from_secs(5);

fn status_changed(
    user_id: &str,
    previous: pb::UserStatus,
    status: pb::UserStatus,
) -> OutgoingEvent {
    events::event(&pb::UserStatusChanged {
        user_id: user_id.into(),
        previous_status: previous as i32,
        status: status as i32,
        ..Default::default()
    })
}

/// Waits until `list` says `user_id` is active (`true`) or not (`false`).
async fn until_active(list: &RevokedUsers, user_id: &str, active: bool, what: &str) {
    eventually_some(what, WITHIN, async || {
        (list.is_active(user_id).await.expect("is_active") == active).then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_suspended_user_is_refused_within_seconds_and_allowed_again_when_reactivated() {
    let nats = NatsServer::start().await;
    let js = jetstream(&nats).await;
    let (_stop, stopped) = shutdown::channel();
    // Started before the streams exist, as a service may be: it waits for them.
    let list = RevokedUsers::follow(js.clone(), stopped);
    streams::ensure(&js, 1).await.expect("streams");

    let suspended = status_changed("u1", pb::UserStatus::Active, pb::UserStatus::Suspended);
    publish_event(&js, suspended).await;
    until_active(&list, "u1", false, "the suspended user is refused").await;
    assert!(
        list.is_active("u2").await.expect("is_active"),
        "others pass"
    );

    let reactivated = status_changed("u1", pb::UserStatus::Suspended, pb::UserStatus::Active);
    publish_event(&js, reactivated).await;
    until_active(&list, "u1", true, "the re-activated user passes").await;

    let deleted = events::event(&pb::UserDeleted {
        user_id: "u2".into(),
        occur_time: None,
    });
    publish_event(&js, deleted).await;
    until_active(&list, "u2", false, "the deleted user is refused").await;
}

#[tokio::test]
async fn a_process_started_later_replays_the_revocations_from_the_stream() {
    let nats = NatsServer::start().await;
    let js = jetstream(&nats).await;
    streams::ensure(&js, 1).await.expect("streams");
    let t = pb::UserStatus::Active;
    publish_event(&js, status_changed("u1", t, pb::UserStatus::Suspended)).await;
    publish_event(&js, status_changed("u2", t, pb::UserStatus::Inactive)).await;
    publish_event(&js, status_changed("u2", pb::UserStatus::Inactive, t)).await;

    let (_stop, stopped) = shutdown::channel();
    let list = RevokedUsers::follow(js.clone(), stopped);
    until_active(&list, "u1", false, "the earlier suspension is replayed").await;
    assert!(
        list.is_active("u2").await.expect("is_active"),
        "last event wins"
    );
}
