//! [`MailboxSender`]: delivers mail locally, for development and tests. Each mail becomes a
//! row in the `mailbox` table (through the consumer's transaction) and a line in
//! `<dir>/<user_id>.jsonl`. Both are keyed by notification id, so a redelivered event does
//! not duplicate the mail: a file line is written only if none with that id exists.

use std::{
    io::Write,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use crate::{
    app::{Mailbox, Sender},
    domain::{Mail, NotificationError, check_user_id},
};

/// One line of a mailbox file.
#[derive(Debug, Serialize, Deserialize)]
struct Line {
    notification_id: String,
    user_id: String,
    to: String,
    from: String,
    subject: String,
    body: String,
    /// RFC 3339.
    sent_at: String,
}

/// The default sender: the `mailbox` table and a JSON-lines file per user.
#[derive(Debug)]
pub struct MailboxSender {
    dir: PathBuf,
    from: String,
    // Serialises "is it there? then append" across consumers writing the same user's file.
    file_lock: Mutex<()>,
}

impl MailboxSender {
    /// Keeps files under `dir` (created when needed), sent as `from`.
    pub fn new(dir: impl Into<PathBuf>, from: impl Into<String>) -> Self {
        Self {
            dir: dir.into(),
            from: from.into(),
            file_lock: Mutex::new(()),
        }
    }

    /// The file of `user_id`'s mail.
    pub fn file_of(&self, user_id: &str) -> PathBuf {
        self.dir.join(format!("{user_id}.jsonl"))
    }

    async fn append(&self, mail: &Mail) -> Result<(), std::io::Error> {
        // The id names the file: never let one walk out of the directory.
        check_user_id(&mail.user_id).map_err(|e| {
            std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("user_id {e}"))
        })?;
        let line = Line {
            notification_id: mail.notification_id.clone(),
            user_id: mail.user_id.clone(),
            to: mail.to(),
            from: self.from.clone(),
            subject: mail.subject.clone(),
            body: mail.body.clone(),
            sent_at: chrono::Utc::now().to_rfc3339(),
        };
        let mut text = serde_json::to_string(&line).map_err(std::io::Error::other)?;
        text.push('\n');
        let dir = self.dir.clone();
        let path = self.file_of(&mail.user_id);
        let id = mail.notification_id.clone();
        let _guard = self.file_lock.lock().await;
        // The whole check-and-append in one trip to the blocking pool, not one per file call.
        tokio::task::spawn_blocking(move || append_once(&dir, &path, &id, &text))
            .await
            .map_err(std::io::Error::other)?
    }
}

/// Appends `text` to the file at `path` (under `dir`) unless it has a line for `id`, and
/// syncs it.
fn append_once(dir: &Path, path: &Path, id: &str, text: &str) -> Result<(), std::io::Error> {
    std::fs::create_dir_all(dir)?;
    if holds(path, id)? {
        return Ok(());
    }
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    // One write of the whole line: an appending write never interleaves with another.
    file.write_all(text.as_bytes())?;
    file.sync_data()
}

/// Whether the file at `path` has a line for `notification_id`. Lines are written by
/// `serde_json` (no spaces), so the key and value appear verbatim; a prefix match keeps
/// this check linear in the file's bytes instead of parsing every line of a growing file.
fn holds(path: &Path, notification_id: &str) -> Result<bool, std::io::Error> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    let needle = serde_json::to_string(&serde_json::json!({ "notification_id": notification_id }))
        .map_err(std::io::Error::other)?;
    // `{"notification_id":"…"}` → `{"notification_id":"…",`: how every line with it starts.
    let prefix = format!("{},", needle.trim_end_matches('}'));
    Ok(text.lines().any(|l| l.starts_with(&prefix)))
}

impl Sender for MailboxSender {
    fn channel(&self) -> &'static str {
        "mailbox"
    }

    async fn send<B: Mailbox>(&self, mailbox: &B, mail: &Mail) -> Result<(), NotificationError> {
        if !mailbox.put(mail, &self.from).await? {
            // Delivered by an earlier, committed attempt.
            return Ok(());
        }
        self.append(mail)
            .await
            .map_err(|e| NotificationError::Delivery(format!("mailbox file: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::memory::MemoryStore;

    fn mail(user_id: &str) -> Mail {
        Mail {
            notification_id: "n1".into(),
            user_id: user_id.into(),
            to_email: "ada@example.com".into(),
            to_name: "Ada".into(),
            subject: "Welcome to Polyshop".into(),
            body: "Hello".into(),
        }
    }

    #[tokio::test]
    async fn a_mail_is_kept_once_in_the_table_and_the_users_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sender = MailboxSender::new(dir.path().join("mailbox"), "shop@example.com");
        let table = MemoryStore::default();
        sender.send(&table, &mail("u1")).await.expect("first");
        // A retry after a rolled-back transaction: the row is gone, the file line is not.
        sender
            .send(&MemoryStore::default(), &mail("u1"))
            .await
            .expect("retry");
        let text = std::fs::read_to_string(sender.file_of("u1")).expect("file");
        assert_eq!(text.lines().count(), 1, "{text}");
        let line: Line = serde_json::from_str(text.trim()).expect("json line");
        assert_eq!(line.to, "\"Ada\" <ada@example.com>");
        assert_eq!(line.subject, "Welcome to Polyshop");
    }

    #[tokio::test]
    async fn a_user_id_that_could_leave_the_directory_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sender = MailboxSender::new(dir.path().join("mailbox"), "shop@example.com");
        let err = sender
            .send(&MemoryStore::default(), &mail("../escape"))
            .await
            .expect_err("refused");
        assert!(matches!(err, NotificationError::Delivery(_)), "{err}");
        assert!(!dir.path().join("escape.jsonl").exists());
    }
}
