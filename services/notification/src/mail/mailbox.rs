//! [`MailboxSender`]: delivers mail locally, for development and tests. Each mail becomes a
//! line in `<dir>/<user_id>.jsonl`, written only if none with its notification id (its
//! Message-ID) exists, so a mail sent again (a dispatcher stopped before recording it) is
//! not duplicated. The `mail_outbox` table keeps the record of what was sent.

use std::{
    collections::{HashMap, HashSet},
    io::{Read, Seek, SeekFrom, Write},
    path::{Path, PathBuf},
    sync::{Arc, Mutex, PoisonError},
};

use serde::{Deserialize, Serialize};

use crate::{
    app::Sender,
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

/// The default sender: a JSON-lines file per user.
#[derive(Debug)]
pub struct MailboxSender {
    dir: PathBuf,
    from: String,
    // Serialises "is it there? then append" across consumers writing the same user's file, and
    // remembers what each file holds so a check reads only what was appended since.
    files: Arc<Mutex<Files>>,
}

impl MailboxSender {
    /// Keeps files under `dir` (created when needed), sent as `from`.
    pub fn new(dir: impl Into<PathBuf>, from: impl Into<String>) -> Self {
        Self {
            dir: dir.into(),
            from: from.into(),
            files: Arc::default(),
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
        let files = self.files.clone();
        // The whole check-and-append in one trip to the blocking pool, not one per file call.
        tokio::task::spawn_blocking(move || {
            let mut files = files.lock().unwrap_or_else(PoisonError::into_inner);
            files.append_once(&dir, &path, &id, &text)
        })
        .await
        .map_err(std::io::Error::other)?
    }
}

/// Files beyond this many are forgotten (and read again when next written to).
const FILES_KEPT: usize = 1024;

/// What the mailbox files hold, as far as read: notification ids per file.
#[derive(Debug, Default)]
struct Files(HashMap<PathBuf, Seen>);

/// The ids in a file's first `read` bytes.
#[derive(Debug, Default)]
struct Seen {
    read: u64,
    ids: HashSet<String>,
}

impl Files {
    /// Appends `text` to the file at `path` (under `dir`) unless it has a line for `id`, and
    /// syncs it.
    fn append_once(
        &mut self,
        dir: &Path,
        path: &Path,
        id: &str,
        text: &str,
    ) -> Result<(), std::io::Error> {
        std::fs::create_dir_all(dir)?;
        if self.0.len() >= FILES_KEPT && !self.0.contains_key(path) {
            self.0.clear();
        }
        let seen = self.0.entry(path.to_owned()).or_default();
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(path)?;
        seen.catch_up(&mut file)?;
        if seen.ids.contains(id) {
            return Ok(());
        }
        // One write of the whole line: an appending write never interleaves with another.
        file.write_all(text.as_bytes())?;
        file.sync_data()?;
        // `read` stays: the next check reads this line back with whatever another writer
        // appended around it, rather than guessing where it landed.
        seen.ids.insert(id.to_owned());
        Ok(())
    }
}

impl Seen {
    /// Reads the ids of the lines appended since the last look (all of them for a file that
    /// shrank, i.e. was replaced).
    fn catch_up(&mut self, file: &mut std::fs::File) -> Result<(), std::io::Error> {
        let len = file.metadata()?.len();
        if len < self.read {
            *self = Self::default();
        }
        if len == self.read {
            return Ok(());
        }
        file.seek(SeekFrom::Start(self.read))?;
        let mut fresh = Vec::new();
        file.take(len - self.read).read_to_end(&mut fresh)?;
        // Only whole lines count: a line still being written is read next time.
        let whole = fresh.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        for line in fresh[..whole].split(|&b| b == b'\n') {
            if let Some(id) = notification_id_of(line) {
                self.ids.insert(id.to_owned());
            }
        }
        self.read += whole as u64;
        Ok(())
    }
}

/// The notification id a mailbox line starts with. Lines are written by `serde_json` (no
/// spaces, fields in declaration order), so the id is the first string; anything else is
/// not a line of ours.
fn notification_id_of(line: &[u8]) -> Option<&str> {
    const KEY: &[u8] = b"{\"notification_id\":\"";
    let rest = line.strip_prefix(KEY)?;
    let end = rest.iter().position(|&b| b == b'"')?;
    std::str::from_utf8(&rest[..end]).ok()
}

impl Sender for MailboxSender {
    fn channel(&self) -> &'static str {
        "mailbox"
    }

    async fn send(&self, mail: &Mail) -> Result<(), NotificationError> {
        self.append(mail)
            .await
            .map_err(|e| NotificationError::Delivery(format!("mailbox file: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    async fn a_mail_sent_again_is_kept_once_in_the_users_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sender = MailboxSender::new(dir.path().join("mailbox"), "shop@example.com");
        sender.send(&mail("u1")).await.expect("first");
        // Sent again, as after a dispatcher stopped before recording it: one line still.
        sender.send(&mail("u1")).await.expect("again");
        let text = std::fs::read_to_string(sender.file_of("u1")).expect("file");
        assert_eq!(text.lines().count(), 1, "{text}");
        let line: Line = serde_json::from_str(text.trim()).expect("json line");
        assert_eq!(line.to, "\"Ada\" <ada@example.com>");
        assert_eq!(line.subject, "Welcome to Polyshop");
    }

    #[tokio::test]
    async fn a_line_another_writer_appended_counts_as_sent() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sender = MailboxSender::new(dir.path().join("mailbox"), "shop@example.com");
        let mut first = mail("u1");
        first.notification_id = "n0".into();
        sender.send(&first).await.expect("n0");
        // Another process (a second instance on the same dir) mails n1 to the same file.
        let other = MailboxSender::new(dir.path().join("mailbox"), "shop@example.com");
        other.send(&mail("u1")).await.expect("other");
        // This sender has read the file before, yet sees the line appended since.
        sender.send(&mail("u1")).await.expect("retry");
        let text = std::fs::read_to_string(sender.file_of("u1")).expect("file");
        assert_eq!(text.lines().count(), 2, "{text}");
    }

    #[test]
    fn the_id_is_read_from_the_start_of_a_line() {
        let line = serde_json::to_string(&Line {
            notification_id: "0190-abc".into(),
            user_id: "u".into(),
            to: "t".into(),
            from: "f".into(),
            subject: "s".into(),
            body: "b".into(),
            sent_at: "now".into(),
        })
        .expect("json");
        assert_eq!(notification_id_of(line.as_bytes()), Some("0190-abc"));
        assert_eq!(notification_id_of(b"{\"user_id\":\"x\"}"), None);
        assert_eq!(notification_id_of(b""), None);
    }

    #[tokio::test]
    async fn a_user_id_that_could_leave_the_directory_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sender = MailboxSender::new(dir.path().join("mailbox"), "shop@example.com");
        let err = sender.send(&mail("../escape")).await.expect_err("refused");
        assert!(matches!(err, NotificationError::Delivery(_)), "{err}");
        assert!(!dir.path().join("escape.jsonl").exists());
    }
}
