//! MarkNotificationRead: the owner marks one of their notifications read, once.

use polyshop_platform::{auth::Principal, status::Violations};

use super::{NotificationRepository, owner};
use crate::domain::{Notification, NotificationError};

/// Marks the caller's notification `id` read. Idempotent: `read_at` keeps the time of the
/// first call. Someone else's notification is `NotFound`, exactly like a missing one, so ids
/// cannot be probed.
///
/// # Errors
/// `UserRequired` for a service caller, `Invalid` for an empty id, `NotFound`, `Internal`.
pub async fn mark_notification_read<R: NotificationRepository>(
    repo: &R,
    caller: &Principal,
    id: &str,
) -> Result<Notification, NotificationError> {
    let user_id = owner(caller)?;
    let id = id.trim();
    // The contract's min_len lets a whitespace-only id through.
    if id.is_empty() {
        let mut v = Violations::new();
        v.add("notification_id", "is required");
        return Err(v.into());
    }
    repo.mark_read(user_id, id, polyshop_platform::now_millis())
        .await?
        .ok_or(NotificationError::NotFound)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{app::memory::MemoryStore, domain::NotificationKind};

    fn user(id: &str) -> Principal {
        Principal::User {
            id: id.into(),
            roles: vec!["customer".into()],
        }
    }

    fn store_with_one() -> MemoryStore {
        let store = MemoryStore::default();
        store.add(Notification {
            id: "n1".into(),
            user_id: "u1".into(),
            kind: NotificationKind::Welcome,
            title: "t".into(),
            body: "b".into(),
            source_event_id: "e1".into(),
            created_at: 0,
            read_at: None,
        });
        store
    }

    #[tokio::test]
    async fn marking_read_twice_keeps_the_first_read_time() {
        let store = store_with_one();
        let first = mark_notification_read(&store, &user("u1"), "n1")
            .await
            .expect("mark");
        let at = first.read_at.expect("read");
        let again = mark_notification_read(&store, &user("u1"), " n1 ")
            .await
            .expect("mark again");
        assert_eq!(again.read_at, Some(at));
    }

    #[tokio::test]
    async fn someone_elses_notification_is_not_found() {
        let store = store_with_one();
        let err = mark_notification_read(&store, &user("u2"), "n1").await;
        assert!(matches!(err, Err(NotificationError::NotFound)), "{err:?}");
        let err = mark_notification_read(&store, &user("u2"), "").await;
        assert!(matches!(err, Err(NotificationError::Invalid(_))), "{err:?}");
        assert_eq!(store.notifications()[0].read_at, None);
    }
}
