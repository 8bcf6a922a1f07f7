//! The [`Sender`](crate::app::Sender) implementations: [`MailboxSender`] (the default: a
//! `mailbox` table row plus a JSON-lines file per user under the data dir) and
//! [`SmtpSender`] (plain SMTP to a local relay, when `notification.smtp_addr` is set).

mod mailbox;
mod smtp;

pub use mailbox::MailboxSender;
pub use smtp::{SmtpError, SmtpSender};
