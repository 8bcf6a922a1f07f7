//! Stream definitions, created or updated at start.

use std::time::Duration;

use async_nats::jetstream::{self, stream};

/// Contexts that publish events, each with its own stream.
pub const CONTEXTS: [&str; 6] = [
    "user",
    "catalog",
    "inventory",
    "order",
    "payment",
    "notification",
];
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

/// Creates or updates every context stream and the DLQ stream.
///
/// # Errors
/// The JetStream error.
pub async fn ensure(js: &jetstream::Context) -> Result<(), async_nats::Error> {
    for context in CONTEXTS {
        js.create_or_update_stream(stream::Config {
            name: stream_name(context),
            subjects: vec![format!("polyshop.{context}.>")],
            storage: stream::StorageType::File,
            duplicate_window: DUPLICATE_WINDOW,
            ..Default::default()
        })
        .await?;
    }
    js.create_or_update_stream(stream::Config {
        name: DLQ_STREAM.into(),
        subjects: vec![format!("{DLQ_PREFIX}.>")],
        storage: stream::StorageType::File,
        duplicate_window: DUPLICATE_WINDOW,
        ..Default::default()
    })
    .await?;
    Ok(())
}
