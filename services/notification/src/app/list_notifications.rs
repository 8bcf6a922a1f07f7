//! ListNotifications: one page of the caller's own notifications, with the unread count.

use polyshop_platform::{auth::Principal, paging, status::Violations};

use super::{NotificationRepository, owner};
use crate::domain::{Notification, NotificationError};

/// One page of a user's notifications.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotificationPage {
    /// Newest first.
    pub notifications: Vec<Notification>,
    /// Token for the next page; empty on the last.
    pub next_page_token: String,
    /// Unread notifications of the user in all (not only on this page).
    pub unread_count: u64,
}

/// The caller's notifications, newest first, keyset-paged by id.
///
/// # Errors
/// `UserRequired` for a service caller, `Invalid` for a bad page size or token, `Internal`.
pub async fn list_notifications<R: NotificationRepository>(
    repo: &R,
    caller: &Principal,
    page_size: i32,
    page_token: &str,
    unread_only: bool,
) -> Result<NotificationPage, NotificationError> {
    let user_id = owner(caller)?;
    let mut v = Violations::new();
    let size = v.check("page_size", paging::page_size(page_size));
    let before = v.check("page_token", paging::decode_token(page_token));
    v.into_result()?;
    let size = size.unwrap_or(paging::DEFAULT_PAGE_SIZE);
    // One extra row tells whether another page exists.
    let mut notifications = repo
        .list(user_id, unread_only, before.flatten(), size + 1)
        .await?;
    let next_page_token = if notifications.len() as u64 > size {
        notifications.truncate(usize::try_from(size).unwrap_or(usize::MAX));
        notifications
            .last()
            .map(|n| paging::encode_token(&n.id))
            .unwrap_or_default()
    } else {
        String::new()
    };
    let unread_count = repo.unread_count(user_id).await?;
    Ok(NotificationPage {
        notifications,
        next_page_token,
        unread_count,
    })
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

    fn notification(id: &str, user_id: &str, read: bool) -> Notification {
        Notification {
            id: id.into(),
            user_id: user_id.into(),
            kind: NotificationKind::OrderShipped,
            title: "t".into(),
            body: "b".into(),
            source_event_id: format!("e-{id}"),
            created_at: 0,
            read_at: read.then_some(1),
        }
    }

    #[tokio::test]
    async fn pages_walk_the_callers_notifications_newest_first() {
        let store = MemoryStore::default();
        for id in ["a", "b", "c"] {
            store.add(notification(id, "u1", id == "b"));
        }
        store.add(notification("z", "u2", false));
        let first = list_notifications(&store, &user("u1"), 2, "", false)
            .await
            .expect("first page");
        let ids: Vec<_> = first.notifications.iter().map(|n| n.id.as_str()).collect();
        assert_eq!(ids, ["c", "b"]);
        assert_eq!(first.unread_count, 2);
        let second = list_notifications(&store, &user("u1"), 2, &first.next_page_token, false)
            .await
            .expect("second page");
        let ids: Vec<_> = second.notifications.iter().map(|n| n.id.as_str()).collect();
        assert_eq!(ids, ["a"]);
        assert_eq!(second.next_page_token, "");
        let unread = list_notifications(&store, &user("u1"), 0, "", true)
            .await
            .expect("unread");
        assert_eq!(unread.notifications.len(), 2);
    }

    #[tokio::test]
    async fn a_service_caller_and_bad_paging_are_refused() {
        let store = MemoryStore::default();
        let service = Principal::Service {
            name: "polyshop-order".into(),
        };
        let err = list_notifications(&store, &service, 0, "", false).await;
        assert!(matches!(err, Err(NotificationError::UserRequired)));
        let err = list_notifications(&store, &user("u1"), -1, "garbage!", false).await;
        let Err(NotificationError::Invalid(v)) = err else {
            panic!("expected invalid, got {err:?}");
        };
        let fields: Vec<_> = v.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(fields, ["page_size", "page_token"]);
    }
}
