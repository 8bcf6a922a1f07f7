//! Domain events over NATS JetStream, with nothing lost:
//! - [`outbox`]: a service writes its events into an `outbox` table in the same database
//!   transaction as the state change;
//! - [`relay`]: publishes outbox rows with `Nats-Msg-Id` = event id (broker-side dedupe) and
//!   deletes a row only after JetStream acknowledged it, retrying with backoff while NATS is
//!   away; woken on commit, so there is no polling delay;
//! - [`consumer`]: durable pull consumers with explicit ack; a handler's effects and the event
//!   id (inbox) commit in one transaction, so a redelivery is a no-op; after MaxDeliver the
//!   message is copied to the dead-letter stream with the failure reason;
//! - [`streams`]: one stream per context (`POLYSHOP_<CONTEXT>`, subjects
//!   `polyshop.<context>.>`), plus `POLYSHOP_DLQ`.

pub mod consumer;
pub mod dlq;
pub mod gauges;
pub mod identity;
pub mod outbox;
pub mod relay;
pub mod streams;

use std::time::Duration;

use bytes::Bytes;
use prost::{Message, Name};
use prost_reflect::Value;

/// Header naming the event's protobuf type (`polyshop.order.v1.OrderConfirmed`).
pub const HEADER_TYPE: &str = "Polyshop-Event-Type";
/// Header carrying the event id, also when `Nats-Msg-Id` differs (a redrive).
pub const HEADER_ID: &str = "Polyshop-Event-Id";
/// W3C trace context.
pub const HEADER_TRACEPARENT: &str = "traceparent";

/// An event ready to be written to the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingEvent {
    /// UUIDv7; becomes `Nats-Msg-Id`.
    pub id: String,
    /// NATS subject, from the message's `(polyshop.api.v1.event).subject`.
    pub subject: String,
    /// Full protobuf name.
    pub type_name: String,
    /// Encoded protobuf.
    pub payload: Vec<u8>,
    /// Trace context of the request that caused it, if any.
    pub traceparent: Option<String>,
}

/// An event as a consumer receives it.
#[derive(Debug, Clone)]
pub struct ReceivedEvent {
    /// The event id.
    pub id: String,
    /// Subject it was published on.
    pub subject: String,
    /// Full protobuf name.
    pub type_name: String,
    /// Encoded protobuf.
    pub payload: Bytes,
    /// How many times it has been delivered, including this one.
    pub delivered: i64,
}

impl ReceivedEvent {
    /// Decodes the payload as `M`.
    ///
    /// # Errors
    /// When the payload is not an `M`.
    pub fn decode<M: Message + Default>(&self) -> Result<M, prost::DecodeError> {
        M::decode(self.payload.clone())
    }
}

/// The subject declared for event type `M` in its proto.
pub fn subject_of<M: Name>() -> Option<String> {
    let pool = crate::contract::pool();
    let message = pool.get_message_by_name(&M::full_name())?;
    let ext = pool.get_extension_by_name("polyshop.api.v1.event")?;
    let options = message.options();
    let value = options.get_extension(&ext);
    match value.as_ref() {
        Value::Message(m) => m
            .get_field_by_name("subject")
            .and_then(|s| s.as_str().map(str::to_owned)),
        _ => None,
    }
    .filter(|s| !s.is_empty())
}

/// Wraps a domain event for the outbox, with a new id, its declared subject and the current
/// trace.
///
/// # Panics
/// If `M` declares no subject — the contract tests make that impossible for real events.
pub fn event<M: Message + Name>(message: &M) -> OutgoingEvent {
    let subject = subject_of::<M>()
        .unwrap_or_else(|| panic!("{} has no (polyshop.api.v1.event).subject", M::full_name()));
    OutgoingEvent {
        id: crate::new_id(),
        subject,
        type_name: M::full_name(),
        payload: message.encode_to_vec(),
        traceparent: crate::telemetry::current_traceparent(),
    }
}

/// Connects to NATS without credentials, retrying in the background if it is not up yet, so
/// a service starts (and keeps writing its outbox) while the broker is away. `url` may list
/// the servers of a cluster separated by commas (as the NATS CLI takes them); the client fails
/// over between them. [`identity::connect_as`] connects with the credentials the settings
/// give a process.
///
/// # Errors
/// When a URL is invalid.
pub async fn connect(
    url: &str,
    name: &str,
) -> Result<async_nats::Client, async_nats::ConnectError> {
    identity::connect(url, name, &identity::Credentials::None).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_carry_the_subject_their_proto_declares() {
        let e = event(&polyshop::user::v1::UserDeleted {
            user_id: "u1".into(),
            occur_time: None,
        });
        assert_eq!(e.subject, "polyshop.user.deleted");
        assert_eq!(e.type_name, "polyshop.user.v1.UserDeleted");
        assert_eq!(subject_of::<polyshop::user::v1::User>(), None);
    }
}

/// A service's connection to the event system: the JetStream context and the signal that
/// wakes its outbox relay.
#[derive(Debug, Clone)]
pub struct EventBus {
    /// JetStream.
    pub js: async_nats::jetstream::Context,
    /// Wake the relay after committing outbox rows.
    pub signal: outbox::OutboxSignal,
    discovery: crate::discovery::Discovery,
    stopped: crate::shutdown::Shutdown,
    /// The durable consumers this process runs, sampled by [`gauges::Gauges`].
    consumers: gauges::Consumers,
}

impl EventBus {
    /// Connects (in the background if NATS is not up yet), makes sure the streams exist with
    /// the configured limits, and runs the outbox relay and the inbox pruner of `db` until
    /// `shutdown`.
    ///
    /// # Errors
    /// When the NATS URL is invalid.
    pub async fn start(
        settings: &crate::config::Settings,
        name: &str,
        db: sea_orm::DatabaseConnection,
        shutdown: crate::shutdown::Shutdown,
    ) -> Result<Self, crate::server::StartError> {
        let client = identity::connect_as(settings, name)
            .await
            .map_err(|e| crate::server::StartError::Other(format!("NATS: {e}")))?;
        let js = async_nats::jetstream::new(client);
        let signal = outbox::OutboxSignal::new();
        let bus = Self {
            js: js.clone(),
            signal: signal.clone(),
            discovery: crate::discovery::Discovery::new(
                settings.discovery.clone(),
                settings.nats.replicas,
                Some(js.clone()),
                shutdown.clone(),
            ),
            stopped: shutdown.clone(),
            consumers: gauges::Consumers::default(),
        };
        gauges::Gauges::new(name, db.clone(), js.clone(), bus.consumers.clone())
            .spawn(settings.events.gauge_interval(), shutdown.clone());
        let replicas = streams::Replicas::Keep(settings.nats.replicas);
        let limits = streams::Limits::of(&settings.events);
        crate::retention::Pruner::new(db.clone())
            .rule(crate::retention::Rule::inbox(&settings.events))
            .spawn(settings.events.prune_interval(), shutdown.clone());
        tokio::spawn(async move {
            let mut backoff = Duration::from_millis(200);
            while let Err(e) = streams::ensure_limited(&js, replicas, limits).await {
                if shutdown.is_fired() {
                    return;
                }
                tracing::warn!(error = %e, "cannot set up JetStream streams yet; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(10));
            }
            relay::run(db, js, signal, shutdown).await;
        });
        Ok(bus)
    }

    /// Registers this process as an instance of `service` at `url` (when discovery is `nats`)
    /// until the bus stops.
    pub fn register(&self, service: &str, url: String) {
        self.discovery.register(service, url);
    }

    /// This process's discovery (the bus's JetStream is its registry).
    pub fn discovery(&self) -> &crate::discovery::Discovery {
        &self.discovery
    }

    /// A client of `service` balancing over its instances as discovery finds them (its
    /// configured `url` while none is found). `configure` sets the endpoints' timeouts.
    ///
    /// # Errors
    /// When `url` is malformed.
    pub fn channel_to(
        &self,
        service: &str,
        url: &str,
        configure: impl Fn(tonic::transport::Endpoint) -> tonic::transport::Endpoint
        + Send
        + Sync
        + 'static,
    ) -> Result<crate::discovery::Balanced, crate::discovery::RegistryError> {
        self.discovery.balanced(service, url, configure)
    }

    /// The feature flags of `settings`, following runtime overrides until the bus stops.
    pub fn flags(&self, settings: &crate::config::Settings) -> crate::flags::Flags {
        let flags = crate::flags::Flags::new(&settings.flags);
        flags.watch(self.js.clone(), self.stopped.clone());
        flags
    }

    /// Runs a durable consumer in the background until `shutdown`; its pending messages are
    /// sampled as a gauge until the bus stops.
    pub fn spawn_consumer(
        &self,
        db: sea_orm::DatabaseConnection,
        spec: consumer::ConsumerSpec,
        handler: std::sync::Arc<dyn consumer::Handler>,
        shutdown: crate::shutdown::Shutdown,
    ) {
        {
            let key = (spec.stream.clone(), spec.name.clone());
            let mut consumers = self
                .consumers
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if !consumers.contains(&key) {
                consumers.push(key);
            }
        }
        tokio::spawn(consumer::run(self.js.clone(), db, spec, handler, shutdown));
    }
}
