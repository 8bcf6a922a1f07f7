//! The [`Sender`](crate::app::Sender) implementations, which the mail dispatcher calls after
//! the consumer committed: [`MailboxSender`] (the default: a JSON-lines file per user under
//! the data dir) and [`SmtpSender`] (plain SMTP to a local relay, when
//! `notification.smtp_addr` is set).

mod mailbox;
mod smtp;

pub use mailbox::MailboxSender;
pub use smtp::{SmtpError, SmtpSender};
