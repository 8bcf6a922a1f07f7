//! The notification bounded context: it consumes `user.registered`, `order.confirmed`,
//! `order.rejected`, `order.cancelled`, `order.shipped` and `payment.refunded`, stores one
//! notification per event per user (idempotent), mails it, and serves ListNotifications /
//! MarkNotificationRead to the owner. It keeps a small recipient directory from
//! `user.registered` / `user.updated` / `user.deleted` to know where to mail.
//!
//! Mail goes out after commit: the consumer records each mail in the `mail_outbox` table in
//! its own transaction, and a background [`app::MailDispatcher`] sends the committed ones
//! through a sender (the mailbox under the data dir by default, SMTP when
//! `notification.smtp_addr` is set), marks them sent and publishes `NotificationSent`. A
//! batch of events rolled back and replayed one by one therefore sends nothing twice; a
//! failed mail is retried with backoff without holding up the consumers; every attempt at a
//! mail carries the same Message-ID.
//!
//! Layers: [`grpc`] → [`app`] → [`domain`], with [`store`] implementing the ports, [`mail`]
//! the senders, and [`events`] the consumers.

pub mod app;
pub mod domain;
pub mod events;
pub mod grpc;
pub mod mail;
pub mod store;

use std::{future::Future, sync::Arc, time::Duration};

use polyshop::notification::v1::notification_service_server::NotificationServiceServer;
use polyshop_platform::{
    auth::{Authenticator, RevokedUsers},
    config::Settings,
    db,
    events::{
        EventBus,
        outbox::{self, OutboxSignal},
    },
    server::{self, ServerSpec, StartError},
    shutdown::{self, Shutdown},
};
use tokio::{net::TcpListener, task::JoinHandle};

use crate::{
    app::{MailDispatcher, Sender},
    mail::{MailboxSender, SmtpSender},
    store::{SeaMailOutbox, SeaNotificationRepository},
};

/// The name this service verifies service tokens as, and its NATS client name.
pub const SERVICE_NAME: &str = "polyshop-notification";

/// Serves the notification service on `listener` until `shutdown` resolves, with the
/// standard authenticator (user tokens through the user service's JWKS, the service key).
///
/// # Errors
/// [`StartError`] if the keys, database, NATS URL or server fail.
pub async fn serve(
    settings: Settings,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StartError> {
    let auth = Authenticator::for_service(&settings, SERVICE_NAME)?;
    serve_with_auth(settings, listener, Arc::new(auth), shutdown).await
}

/// Opens the database, runs migrations, starts the event bus (outbox relay), the three
/// consumers and the mail dispatcher, and serves the notification service on `listener` with
/// `auth` until `shutdown` resolves; the background tasks stop with it (or when the server
/// stops on its own). Tests pass an authenticator that trusts their tokens.
///
/// # Errors
/// [`StartError`] if the database, NATS URL or server fail.
pub async fn serve_with_auth(
    settings: Settings,
    listener: TcpListener,
    auth: Arc<Authenticator>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StartError> {
    let conn = db::connect(
        &settings.data_dir,
        "notification",
        &settings.notification.service(),
    )
    .await?;
    db::migrate(&conn, &[store::MIGRATIONS, outbox::MIGRATIONS].concat()).await?;

    // The trigger lives in the server's shutdown future: it fires with `shutdown`, and is
    // dropped (which also stops the background tasks) if the server returns early.
    let (stop_events, events_stopped) = shutdown::channel();
    let bus = EventBus::start(
        &settings,
        SERVICE_NAME,
        conn.clone(),
        events_stopped.clone(),
    )
    .await?;
    bus.register("notification", settings.notification.service().url());
    // Keys of user tokens come from the user service's instances as discovery finds them.
    auth.discover_keys(bus.discovery(), &settings)
        .map_err(|e| StartError::Other(e.to_string()))?;
    // Tokens of suspended or deleted users are refused once the user service's event arrives.
    auth.set_account_status(RevokedUsers::follow(bus.js.clone(), events_stopped.clone()));
    let mail = OutboxSignal::new();
    let outbox = Arc::new(SeaMailOutbox::new(conn.clone(), bus.signal.clone()));
    let from = settings.notification.mail_from.clone();
    let dispatcher = match &settings.notification.smtp_addr {
        Some(addr) => {
            tracing::info!(relay = %addr, "mail goes to the SMTP relay");
            let sender = SmtpSender::new(addr.clone(), from);
            spawn_dispatcher(outbox, sender, mail.clone(), events_stopped.clone())
        }
        None => {
            let dir = settings.data_dir.join("mailbox");
            tracing::info!(dir = %dir.display(), "mail goes to the local mailbox");
            let sender = MailboxSender::new(dir, from);
            spawn_dispatcher(outbox, sender, mail.clone(), events_stopped.clone())
        }
    };
    let flags = bus.flags(&settings);
    events::spawn_consumers(&bus, &conn, &settings.events, mail, flags, &events_stopped);
    let shutdown = async move {
        shutdown.await;
        stop_events.fire();
    };

    let repo = Arc::new(SeaNotificationRepository::new(conn.clone()));
    let routes = tonic::service::Routes::new(NotificationServiceServer::new(
        grpc::NotificationGrpc::new(repo),
    ));
    let served = server::serve(
        listener,
        ServerSpec {
            name: "notification",
            grpc_services: vec!["polyshop.notification.v1.NotificationService"],
            routes,
            db: conn,
            health: server::health::Health::new("notification", &settings.data_dir).nats(
                bus.js.client(),
                server::health::nats_critical("notification"),
            ),
            auth,
            grace: Duration::from_secs(settings.shutdown_grace_secs),
        },
        shutdown,
    )
    .await;
    // It finishes the mail in hand (at most one SMTP exchange) and stops.
    if let Err(e) = dispatcher.await {
        tracing::warn!(error = %e, "mail dispatcher ended abnormally");
    }
    served?;
    Ok(())
}

/// Runs the mail dispatcher from `outbox` through `sender`, woken by `wake`, until `stopped`.
fn spawn_dispatcher<M: Sender>(
    outbox: Arc<SeaMailOutbox>,
    sender: M,
    wake: OutboxSignal,
    stopped: Shutdown,
) -> JoinHandle<()> {
    tokio::spawn(MailDispatcher::new(outbox, Arc::new(sender), wake).run(stopped))
}
