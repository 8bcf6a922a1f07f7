//! Stream definitions, created or updated at start.

use std::time::Duration;

use async_nats::jetstream::{self, stream};

/// Contexts that publish events, each with its own stream: every context of the contracts
/// but the edge's own.
pub fn contexts() -> impl Iterator<Item = &'static str> {
    crate::contract::contexts()
        .iter()
        .map(|c| c.name.as_str())
        .filter(|name| !crate::contract::EDGE_CONTEXTS.contains(name))
}
/// The dead-letter stream.
pub const DLQ_STREAM: &str = "POLYSHOP_DLQ";
/// Subject prefix of dead letters: `polyshop.dlq.<consumer>`.
pub const DLQ_PREFIX: &str = "polyshop.dlq";
/// Longer than the relay's retry horizon (its backoff is capped at 30 s and an unacknowledged
/// publish is retried within a few attempts), so a re-publish after a lost ack is deduplicated.
pub const DUPLICATE_WINDOW: Duration = Duration::from_secs(15 * 60);

/// Name of a context's stream: `POLYSHOP_ORDER`.
pub fn stream_name(context: &str) -> String {
    format!("POLYSHOP_{}", context.to_ascii_uppercase())
}

/// How many copies of a stream (or KV bucket) JetStream keeps when it is created or updated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replicas {
    /// As many as it has now, this many for a new stream: a process must not undo what
    /// `polyshop up` or an operator set.
    Keep(usize),
    /// Exactly this many (1..=5, at most the number of servers).
    Exactly(usize),
}

impl Replicas {
    /// The count to write into the config of stream `name`.
    ///
    /// # Errors
    /// The JetStream error when the current count cannot be read: guessing one then could
    /// shrink a replicated stream.
    pub async fn of(self, js: &jetstream::Context, name: &str) -> Result<usize, async_nats::Error> {
        match self {
            Self::Exactly(n) => Ok(n.max(1)),
            Self::Keep(new) => match js.get_stream(name).await {
                Ok(stream) => Ok(stream.cached_info().config.num_replicas.max(1)),
                Err(e) if is_not_found(&e) => Ok(new.max(1)),
                Err(e) => Err(e.into()),
            },
        }
    }
}

/// KV bucket `bucket`, created, or updated to this `description`, `history` and `replicas`.
///
/// # Errors
/// When JetStream cannot be reached or has fewer servers than the replicas asked for.
pub async fn key_value(
    js: &jetstream::Context,
    bucket: &str,
    description: &str,
    history: i64,
    replicas: Replicas,
) -> Result<jetstream::kv::Store, String> {
    let num_replicas = replicas
        .of(js, &format!("KV_{bucket}"))
        .await
        .map_err(|e| e.to_string())?;
    js.create_or_update_key_value(jetstream::kv::Config {
        bucket: bucket.into(),
        description: description.into(),
        history,
        num_replicas,
        ..Default::default()
    })
    .await
    .map_err(|e| e.to_string())
}

fn is_not_found(e: &jetstream::context::GetStreamError) -> bool {
    matches!(
        e.kind(),
        jetstream::context::GetStreamErrorKind::JetStream(j)
            if j.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND
    )
}

/// How long and how much the streams keep: JetStream discards an event past either limit,
/// oldest first, whether or not every consumer has had it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Age past which a context stream drops an event.
    pub max_age: Duration,
    /// Age past which the DLQ drops a dead letter.
    pub dlq_max_age: Duration,
    /// Bytes each stream may hold.
    pub max_bytes: i64,
}

impl Limits {
    /// The limits `events` configures.
    pub fn of(events: &crate::config::EventSettings) -> Self {
        Self {
            max_age: events.stream_max_age(),
            dlq_max_age: events.dlq_max_age(),
            max_bytes: i64::try_from(events.stream_max_bytes).unwrap_or(i64::MAX),
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self::of(&crate::config::EventSettings::default())
    }
}

/// Creates or updates every context stream and the DLQ stream, keeping each existing
/// stream's replica count and limits, and creating a missing one with `replicas` copies and
/// the default [`Limits`].
///
/// # Errors
/// The JetStream error.
pub async fn ensure(js: &jetstream::Context, replicas: usize) -> Result<(), async_nats::Error> {
    ensure_with(js, Replicas::Keep(replicas), None).await
}

/// Creates or updates every context stream and the DLQ stream with `replicas` copies each
/// (what `polyshop up` does before it starts the services); a stream created with fewer is
/// scaled up in place. An existing stream keeps its limits, a new one gets the default
/// [`Limits`]: `up` must not undo the limits the services' settings gave it.
///
/// # Errors
/// The JetStream error, e.g. fewer servers than `replicas`.
pub async fn ensure_replicated(
    js: &jetstream::Context,
    replicas: usize,
) -> Result<(), async_nats::Error> {
    ensure_with(js, Replicas::Exactly(replicas), None).await
}

/// Creates or updates every context stream and the DLQ stream with `replicas` and `limits`
/// (what services do at start, with `nats.replicas` and the `events` settings). The limits of
/// an existing stream are changed in place: JetStream applies a shorter age or a smaller size
/// at once, discarding what no longer fits.
///
/// # Errors
/// The JetStream error.
pub async fn ensure_limited(
    js: &jetstream::Context,
    replicas: Replicas,
    limits: Limits,
) -> Result<(), async_nats::Error> {
    ensure_with(js, replicas, Some(limits)).await
}

/// `limits`, or, when `None`, each existing stream's own (the defaults for a new one).
async fn ensure_with(
    js: &jetstream::Context,
    replicas: Replicas,
    limits: Option<Limits>,
) -> Result<(), async_nats::Error> {
    let defaults = limits.unwrap_or_default();
    let streams = contexts()
        .map(|context| {
            (
                stream_name(context),
                format!("polyshop.{context}.>"),
                defaults.max_age,
            )
        })
        .chain([(
            DLQ_STREAM.to_owned(),
            format!("{DLQ_PREFIX}.>"),
            defaults.dlq_max_age,
        )]);
    for (name, subject, mut max_age) in streams {
        let num_replicas = replicas.of(js, &name).await?;
        let mut max_bytes = defaults.max_bytes;
        if limits.is_none() {
            match js.get_stream(&name).await {
                Ok(stream) => {
                    let config = &stream.cached_info().config;
                    (max_age, max_bytes) = (config.max_age, config.max_bytes);
                }
                Err(e) if is_not_found(&e) => {}
                Err(e) => return Err(e.into()),
            }
        }
        js.create_or_update_stream(stream::Config {
            name,
            subjects: vec![subject],
            storage: stream::StorageType::File,
            // JetStream refuses a window longer than a (non-zero, i.e. limited) max age.
            duplicate_window: if max_age.is_zero() {
                DUPLICATE_WINDOW
            } else {
                DUPLICATE_WINDOW.min(max_age)
            },
            max_age,
            max_bytes,
            num_replicas,
            ..Default::default()
        })
        .await?;
    }
    Ok(())
}
