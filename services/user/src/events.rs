//! The user context's domain events, as outbox entries (published by the platform's relay).

use polyshop::user::v1 as pb;
use polyshop_platform::{
    events::{OutgoingEvent, event},
    now_millis, timestamp,
};

use crate::{
    domain::{User, UserStatus},
    grpc::convert,
};

fn now() -> Option<prost_types::Timestamp> {
    Some(timestamp(now_millis()))
}

/// `polyshop.user.registered`.
pub fn registered(user: &User) -> OutgoingEvent {
    event(&pb::UserRegistered {
        user: Some(convert::user(user.clone())),
        occur_time: now(),
    })
}

/// `polyshop.user.updated`.
pub fn updated(user: &User) -> OutgoingEvent {
    event(&pb::UserUpdated {
        user: Some(convert::user(user.clone())),
        occur_time: now(),
    })
}

/// `polyshop.user.status_changed`.
pub fn status_changed(user_id: &str, previous: UserStatus, status: UserStatus) -> OutgoingEvent {
    event(&pb::UserStatusChanged {
        user_id: user_id.to_owned(),
        previous_status: convert::status(previous) as i32,
        status: convert::status(status) as i32,
        reason: String::new(),
        occur_time: now(),
    })
}

/// `polyshop.user.deleted`.
pub fn deleted(user_id: &str) -> OutgoingEvent {
    event(&pb::UserDeleted {
        user_id: user_id.to_owned(),
        occur_time: now(),
    })
}
