//! The harness of the notification service tests: a real nats-server and the real server on
//! 127.0.0.1:0 over a fresh SQLite file, events published to JetStream the way the outbox
//! relay does, and a fake SMTP relay. Mail goes out after the consumer's commit, so tests
//! wait for it with [`eventually_some`] (a condition polled until a deadline), never a fixed sleep.

#![allow(dead_code)]

use polyshop_platform::testing::{EVENTUALLY, eventually_some};
use std::{
    collections::BTreeMap,
    net::SocketAddr,
    path::PathBuf,
    sync::{Arc, Mutex},
    time::Duration,
};

use async_nats::jetstream::{self, message::PublishMessage};
use polyshop::{
    notification::v1::{self as pb, notification_service_client::NotificationServiceClient},
    user::v1 as user,
};
use polyshop_notification::SERVICE_NAME;
use polyshop_platform::{
    config::Settings,
    events::{HEADER_ID, HEADER_TYPE, streams, subject_of},
    shutdown,
    testing::{self, NatsServer, TestTokens, bearer},
};
use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
    net::TcpListener,
};
use tonic::{Status, transport::Channel};

/// A running notification service with its own NATS and data dir.
pub struct Running {
    pub addr: SocketAddr,
    pub tokens: TestTokens,
    pub js: jetstream::Context,
    pub settings: Settings,
    stop: shutdown::Trigger,
    task: tokio::task::JoinHandle<()>,
    _nats: NatsServer,
    _dir: tempfile::TempDir,
}

/// Starts the service with the default (mailbox) sender.
pub async fn start() -> Running {
    start_with(|_| {}).await
}

/// Starts the service after `configure` adjusted its settings.
pub async fn start_with(configure: impl FnOnce(&mut Settings)) -> Running {
    start_with_backlog(configure, &[]).await
}

/// An event as the relay publishes it, with a fresh event id (also its `Nats-Msg-Id`).
pub struct RawEvent {
    pub subject: String,
    pub type_name: String,
    pub payload: Vec<u8>,
    pub id: String,
}

impl RawEvent {
    /// `event` on its declared subject.
    pub fn of<E: prost::Message + prost::Name>(event: &E) -> Self {
        Self {
            subject: subject_of::<E>().expect("event subject"),
            type_name: E::full_name(),
            payload: event.encode_to_vec(),
            id: polyshop_platform::new_id(),
        }
    }
}

/// Starts the service after `configure` adjusted its settings, with `backlog` published
/// before it starts: its consumers find the events waiting and take them in together, as
/// one batch (one transaction), the way a busy or restarted service does.
pub async fn start_with_backlog(
    configure: impl FnOnce(&mut Settings),
    backlog: &[RawEvent],
) -> Running {
    let nats = NatsServer::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut settings = testing::settings(dir.path());
    settings.nats.url = Some(nats.url());
    settings.events.max_deliver = 3;
    settings.events.ack_wait_secs = 2;
    configure(&mut settings);

    let client = async_nats::connect(nats.url())
        .await
        .expect("connect to NATS");
    let js = jetstream::new(client);
    streams::ensure(&js, 1).await.expect("streams");
    for e in backlog {
        publish_raw(
            &js,
            &e.subject,
            &e.type_name,
            e.payload.clone(),
            &e.id,
            &e.id,
        )
        .await;
    }

    let tokens = TestTokens::new(&settings);
    let auth = tokens.authenticator(SERVICE_NAME);
    let (listener, addr) = testing::listener().await;
    let (stop, stopped) = shutdown::channel();
    let served = settings.clone();
    let task = tokio::spawn(async move {
        polyshop_notification::serve_with_auth(served, listener, auth, stopped.wait())
            .await
            .expect("notification service runs");
    });
    let running = Running {
        addr,
        tokens,
        js,
        settings,
        stop,
        task,
        _nats: nats,
        _dir: dir,
    };
    // The server answers once migrations ran; wait for that.
    for _ in 0..100 {
        if running
            .list("probe", pb::ListNotificationsRequest::default())
            .await
            .is_ok()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    running
}

impl Running {
    pub fn client(&self) -> NotificationServiceClient<Channel> {
        NotificationServiceClient::new(testing::channel(self.addr))
    }

    pub fn mailbox_file(&self, user_id: &str) -> PathBuf {
        self.settings
            .data_dir
            .join("mailbox")
            .join(format!("{user_id}.jsonl"))
    }

    /// Publishes `event` on its declared subject as the relay would; returns its event id.
    pub async fn publish<E: prost::Message + prost::Name>(&self, event: &E) -> String {
        let id = polyshop_platform::new_id();
        self.publish_as(event, &id, &id).await;
        id
    }

    /// Publishes `event` with the given event id and `Nats-Msg-Id`.
    pub async fn publish_as<E: prost::Message + prost::Name>(
        &self,
        event: &E,
        id: &str,
        msg_id: &str,
    ) {
        let subject = subject_of::<E>().expect("event subject");
        self.publish_raw(&subject, &E::full_name(), event.encode_to_vec(), id, msg_id)
            .await;
    }

    /// Publishes any bytes with event headers.
    pub async fn publish_raw(
        &self,
        subject: &str,
        type_name: &str,
        payload: Vec<u8>,
        id: &str,
        msg_id: &str,
    ) {
        publish_raw(&self.js, subject, type_name, payload, id, msg_id).await;
    }

    /// Registers `user_id` with `email`, as the user service announces it.
    pub async fn register(&self, user_id: &str, email: &str, name: &str) -> String {
        self.publish(&registered(user_id, email, name)).await
    }

    pub async fn list(
        &self,
        user_id: &str,
        request: pb::ListNotificationsRequest,
    ) -> Result<pb::ListNotificationsResponse, Status> {
        let token = self.tokens.customer(user_id);
        Ok(self
            .client()
            .list_notifications(bearer(request, &token))
            .await?
            .into_inner())
    }

    pub async fn mark_read(&self, user_id: &str, id: &str) -> Result<pb::Notification, Status> {
        let token = self.tokens.customer(user_id);
        let request = pb::MarkNotificationReadRequest {
            notification_id: id.into(),
        };
        let reply = self
            .client()
            .mark_notification_read(bearer(request, &token))
            .await?;
        Ok(reply.into_inner().notification.expect("notification"))
    }

    /// All of `user_id`'s notifications once there are `count` (polls up to 10 s).
    pub async fn wait_for(&self, user_id: &str, count: usize) -> Vec<pb::Notification> {
        let request = pb::ListNotificationsRequest {
            page_size: 100,
            ..Default::default()
        };
        let mut seen = Vec::new();
        for _ in 0..100 {
            seen = self
                .list(user_id, request.clone())
                .await
                .expect("list")
                .notifications;
            if seen.len() >= count {
                return seen;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "{user_id} has {} notifications, expected {count}: {seen:#?}",
            seen.len()
        );
    }

    /// The lines of `user_id`'s mailbox file once it has `count` (polls up to 10 s).
    pub async fn wait_for_mail(&self, user_id: &str, count: usize) -> Vec<serde_json::Value> {
        let path = self.mailbox_file(user_id);
        eventually_some(
            &format!("{count} mails in {}", path.display()),
            EVENTUALLY,
            async || {
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                let lines: Vec<serde_json::Value> = text
                    .lines()
                    .map(|l| serde_json::from_str(l).expect("json line"))
                    .collect();
                (lines.len() >= count).then_some(lines)
            },
        )
        .await
    }

    pub async fn stop(self) {
        self.stop.fire();
        let _ = tokio::time::timeout(Duration::from_secs(10), self.task).await;
    }
}

/// `event` published as the relay would.
async fn publish_raw(
    js: &jetstream::Context,
    subject: &str,
    type_name: &str,
    payload: Vec<u8>,
    id: &str,
    msg_id: &str,
) {
    let message = PublishMessage::build()
        .payload(payload.into())
        .message_id(msg_id)
        .header(HEADER_ID, id)
        .header(HEADER_TYPE, type_name);
    js.send_publish(subject.to_owned(), message)
        .await
        .expect("publish")
        .await
        .expect("ack");
}

/// `user.registered` for `user_id` with `email` and display name `name`.
pub fn registered(user_id: &str, email: &str, name: &str) -> user::UserRegistered {
    user::UserRegistered {
        user: Some(user::User {
            user_id: user_id.into(),
            username: name.to_lowercase(),
            email: email.into(),
            display_name: name.into(),
            ..Default::default()
        }),
        occur_time: None,
    }
}

/// What a fake SMTP relay received: every command and DATA line, in order.
pub type Transcript = Arc<Mutex<Vec<String>>>;

/// How many accepted mails (a DATA section ended with `.`) carried each Message-ID.
pub fn message_ids(transcript: &Transcript) -> BTreeMap<String, usize> {
    let lines = transcript.lock().expect("transcript").clone();
    let mut counts = BTreeMap::new();
    let mut current = None;
    for line in lines {
        if let Some(id) = line.strip_prefix("Message-ID: ") {
            current = Some(id.to_owned());
        } else if line == "."
            && let Some(id) = current.take()
        {
            *counts.entry(id).or_default() += 1;
        }
    }
    counts
}

/// A fake SMTP relay on 127.0.0.1:0 that answers RCPT TO with 451 in its first
/// `refuse_first` sessions and accepts everything else.
pub async fn fake_smtp(refuse_first: usize) -> (SocketAddr, Transcript) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let transcript = Transcript::default();
    let seen = transcript.clone();
    tokio::spawn(async move {
        let mut session = 0;
        while let Ok((stream, _)) = listener.accept().await {
            let refuse = session < refuse_first;
            session += 1;
            let (read, mut write) = stream.into_split();
            let mut lines = BufReader::new(read).lines();
            let _ = write.write_all(b"220 fake ESMTP\r\n").await;
            let mut in_data = false;
            while let Ok(Some(line)) = lines.next_line().await {
                seen.lock().expect("transcript").push(line.clone());
                let reply: &[u8] = if in_data {
                    if line != "." {
                        continue;
                    }
                    in_data = false;
                    b"250 queued\r\n"
                } else {
                    match line.get(..4).unwrap_or("").to_ascii_uppercase().as_str() {
                        "EHLO" => b"250-fake\r\n250 8BITMIME\r\n",
                        "MAIL" => b"250 ok\r\n",
                        "RCPT" if refuse => b"451 try again later\r\n",
                        "RCPT" => b"250 ok\r\n",
                        "DATA" => {
                            in_data = true;
                            b"354 go ahead\r\n"
                        }
                        "QUIT" => b"221 bye\r\n",
                        _ => b"502 not implemented\r\n",
                    }
                };
                let _ = write.write_all(reply).await;
            }
        }
    });
    (addr, transcript)
}
