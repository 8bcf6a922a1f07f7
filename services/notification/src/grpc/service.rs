//! `polyshop.notification.v1.NotificationService`: each handler converts, calls one use
//! case, converts back. Both RPCs act on the caller's own notifications only.

use std::sync::Arc;

use polyshop::notification::v1::{self as pb, notification_service_server::NotificationService};
use polyshop_platform::auth::principal;
use tonic::{Request, Response, Status};

use super::convert;
use crate::{
    app::{self, NotificationRepository},
    domain::NotificationError,
};

/// The notification service's gRPC handlers.
#[derive(Debug)]
pub struct NotificationGrpc<R> {
    repo: Arc<R>,
}

impl<R> NotificationGrpc<R> {
    /// Handlers over `repo`.
    pub fn new(repo: Arc<R>) -> Self {
        Self { repo }
    }
}

type Reply<T> = Result<Response<T>, Status>;

#[tonic::async_trait]
impl<R: NotificationRepository> NotificationService for NotificationGrpc<R> {
    /// # Errors
    /// INVALID_ARGUMENT for a bad page size or token, or a service caller
    /// (`USER_PRINCIPAL_REQUIRED`); INTERNAL.
    async fn list_notifications(
        &self,
        request: Request<pb::ListNotificationsRequest>,
    ) -> Reply<pb::ListNotificationsResponse> {
        let caller = principal(&request)?.clone();
        let r = request.into_inner();
        let page = app::list_notifications(
            self.repo.as_ref(),
            &caller,
            r.page_size,
            &r.page_token,
            r.unread_only,
        )
        .await?;
        Ok(Response::new(pb::ListNotificationsResponse {
            notifications: page
                .notifications
                .into_iter()
                .map(convert::notification)
                .collect(),
            next_page_token: page.next_page_token,
            unread_count: i32::try_from(page.unread_count).unwrap_or(i32::MAX),
        }))
    }

    /// # Errors
    /// INVALID_ARGUMENT for an empty id or a service caller; NOT_FOUND when the caller has
    /// no such notification (someone else's included); INTERNAL.
    async fn mark_notification_read(
        &self,
        request: Request<pb::MarkNotificationReadRequest>,
    ) -> Reply<pb::MarkNotificationReadResponse> {
        let caller = principal(&request)?.clone();
        let id = request.into_inner().notification_id;
        let notification = app::mark_notification_read(self.repo.as_ref(), &caller, &id).await?;
        Ok(Response::new(pb::MarkNotificationReadResponse {
            notification: Some(convert::notification(notification)),
        }))
    }
}

// Handlers return `NotificationError` through `?`; the conversion lives in `status.rs`.
const _: fn(NotificationError) -> Status = Status::from;
