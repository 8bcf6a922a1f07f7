//! The tonic face of the notification context: [`NotificationGrpc`] (thin handlers), proto ↔
//! domain conversion (also used for `NotificationSent`), and the one error → status table.

pub(crate) mod convert;
mod service;
mod status;

pub use service::NotificationGrpc;
pub use status::DOMAIN;
