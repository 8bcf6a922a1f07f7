//! Reading and replaying the dead-letter stream (`polyshop admin dlq list|redrive`).

use async_nats::jetstream::{self, message::PublishMessage};

use super::{
    HEADER_ID,
    consumer::{DLQ_CONSUMER, DLQ_REASON, DLQ_SUBJECT},
    streams::DLQ_STREAM,
};

/// One dead letter.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    /// Sequence in the DLQ stream.
    pub sequence: u64,
    /// The event id.
    pub event_id: String,
    /// Where it was first published.
    pub subject: String,
    /// The consumer that gave up.
    pub consumer: String,
    /// Why.
    pub reason: String,
}

/// Every message in the dead-letter stream.
///
/// # Errors
/// The JetStream error.
pub async fn list(js: &jetstream::Context) -> Result<Vec<DeadLetter>, async_nats::Error> {
    let mut stream = js.get_stream(DLQ_STREAM).await?;
    let state = stream.info().await?.state.clone();
    let mut out = Vec::new();
    if state.messages == 0 {
        return Ok(out);
    }
    for sequence in state.first_sequence..=state.last_sequence {
        let Ok(message) = stream.get_raw_message(sequence).await else {
            continue;
        };
        let get = |name: &str| {
            message
                .headers
                .get(name)
                .map(|v| v.as_str().to_owned())
                .unwrap_or_default()
        };
        out.push(DeadLetter {
            sequence,
            event_id: get(HEADER_ID),
            subject: get(DLQ_SUBJECT),
            consumer: get(DLQ_CONSUMER),
            reason: get(DLQ_REASON),
        });
    }
    Ok(out)
}

/// Republishes dead letters (all, or the one with `sequence`) on their original subjects and
/// removes them from the DLQ. Consumers that already applied the event skip it by event id.
///
/// # Errors
/// The JetStream error; letters not yet replayed stay in the DLQ.
pub async fn redrive(
    js: &jetstream::Context,
    sequence: Option<u64>,
) -> Result<usize, async_nats::Error> {
    let stream = js.get_stream(DLQ_STREAM).await?;
    let mut replayed = 0;
    for letter in list(js).await? {
        if sequence.is_some_and(|s| s != letter.sequence) {
            continue;
        }
        let message = stream.get_raw_message(letter.sequence).await?;
        let mut headers = message.headers.clone();
        headers.insert(
            "Nats-Msg-Id",
            format!("{}:redrive:{}", letter.event_id, letter.sequence).as_str(),
        );
        js.send_publish(
            letter.subject.clone(),
            PublishMessage::build()
                .payload(message.payload)
                .headers(headers),
        )
        .await?
        .await?;
        stream.delete_message(letter.sequence).await?;
        replayed += 1;
    }
    Ok(replayed)
}
