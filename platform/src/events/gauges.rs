//! Gauges operators alert on, sampled every `events.gauge_interval_ms` by a background task of
//! each process with an [`EventBus`](super::EventBus), not on each scrape: a value is as old as
//! that interval at most. Each sample is one cheap query: the outbox's row count and oldest
//! row, the consumer info of each durable consumer the process runs, and the dead-letter
//! stream's per-subject counts. A failed query leaves the last value in place.
//!
//! - `polyshop_outbox_backlog{service}`, `polyshop_outbox_oldest_age_seconds{service}`;
//! - `polyshop_consumer_pending_messages{stream,consumer}` (JetStream's `num_pending`);
//! - `polyshop_dead_letters{stream}`, per original stream, every context's stream listed.
//!
//! Every instance of a service sees the same outbox, durables and DLQ, so it reports the same
//! figures: aggregate with `max`, not `sum`.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use async_nats::jetstream;
use futures::TryStreamExt as _;
use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};

use super::{
    consumer::DLQ_SUBJECT,
    streams::{self, DLQ_PREFIX, DLQ_STREAM},
};
use crate::shutdown::Shutdown;

/// Name of the outbox backlog gauge.
pub const OUTBOX_BACKLOG: &str = "polyshop_outbox_backlog";
/// Name of the outbox age gauge.
pub const OUTBOX_OLDEST_AGE: &str = "polyshop_outbox_oldest_age_seconds";
/// Name of the consumer pending gauge.
pub const CONSUMER_PENDING: &str = "polyshop_consumer_pending_messages";
/// Name of the dead letters gauge.
pub const DEAD_LETTERS: &str = "polyshop_dead_letters";
/// Name of the consumer ack-pending gauge.
pub const CONSUMER_ACK_PENDING: &str = "polyshop_consumer_ack_pending_messages";
/// Name of the consumer redelivered gauge.
pub const CONSUMER_REDELIVERED: &str = "polyshop_consumer_redelivered_messages";
/// Name of the oldest dead letter's age gauge.
pub const DEAD_LETTERS_OLDEST_AGE: &str = "polyshop_dead_letters_oldest_age_seconds";

const OUTBOX_BACKLOG_HELP: &str = "Outbox rows of the service not yet acknowledged by JetStream \
     (sampled every events.gauge_interval_ms, 5 s by default).";
const OUTBOX_OLDEST_AGE_HELP: &str = "Age in seconds of the service's oldest unsent outbox row, \
     0 when empty (sampled every events.gauge_interval_ms, 5 s by default).";
const CONSUMER_PENDING_HELP: &str = "Messages of the stream a durable consumer has not yet been \
     delivered (JetStream num_pending; sampled every events.gauge_interval_ms, 5 s by default).";
const DEAD_LETTERS_HELP: &str = "Messages in the dead-letter stream, per stream they were first \
     published on (sampled every events.gauge_interval_ms, 5 s by default).";

const CONSUMER_ACK_PENDING_HELP: &str = "Messages delivered to a durable consumer and not yet \
     acknowledged (JetStream num_ack_pending; sampled every events.gauge_interval_ms).";
const CONSUMER_REDELIVERED_HELP: &str = "Messages delivered to a durable consumer more than once \
     (JetStream num_redelivered; sampled every events.gauge_interval_ms).";
const DEAD_LETTERS_OLDEST_AGE_HELP: &str = "Age in seconds of the oldest dead letter, per stream \
     it was first published on, 0 when none (sampled every events.gauge_interval_ms).";

/// The durable consumers (stream, durable name) a process runs, for sampling.
pub type Consumers = Arc<Mutex<Vec<(String, String)>>>;

/// What one process samples.
#[derive(Debug, Clone)]
pub struct Gauges {
    service: String,
    db: DatabaseConnection,
    js: jetstream::Context,
    consumers: Consumers,
}

impl Gauges {
    /// Gauges of `service`'s outbox in `db`, of the consumers listed in `consumers`, and of
    /// the dead-letter stream.
    pub fn new(
        service: &str,
        db: DatabaseConnection,
        js: jetstream::Context,
        consumers: Consumers,
    ) -> Self {
        Self {
            service: service.to_owned(),
            db,
            js,
            consumers,
        }
    }

    /// Samples every gauge once.
    pub async fn sample(&self) {
        if let Err(e) = self.sample_outbox().await {
            tracing::debug!(error = %e, "cannot sample the outbox");
        }
        let consumers = self
            .consumers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        for (stream, name) in consumers {
            if let Err(e) = self.sample_consumer(&stream, &name).await {
                tracing::debug!(consumer = %name, error = %e, "cannot sample the consumer");
            }
        }
        if let Err(e) = self.sample_dead_letters().await {
            tracing::debug!(error = %e, "cannot sample the dead-letter stream");
        }
    }

    /// Samples now and then every `interval` until `shutdown`.
    pub fn spawn(self, interval: Duration, shutdown: Shutdown) {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = tick.tick() => self.sample().await,
                    () = shutdown.clone().wait() => return,
                }
            }
        });
    }

    async fn sample_outbox(&self) -> Result<(), sea_orm::DbErr> {
        let row = self
            .db
            .query_one_raw(Statement::from_string(
                self.db.get_database_backend(),
                "SELECT COUNT(*) AS n, MIN(created_at) AS oldest FROM event_outbox",
            ))
            .await?;
        let (n, oldest) = match row {
            Some(r) => (
                r.try_get::<i64>("", "n")?,
                r.try_get::<Option<i64>>("", "oldest")?,
            ),
            None => (0, None),
        };
        let age_ms = oldest.map_or(0, |t| crate::now_millis().saturating_sub(t).max(0));
        let labels = [("service", self.service.as_str())];
        #[allow(clippy::cast_precision_loss)]
        {
            crate::metrics::set(OUTBOX_BACKLOG, OUTBOX_BACKLOG_HELP, &labels, n as f64);
            crate::metrics::set(
                OUTBOX_OLDEST_AGE,
                OUTBOX_OLDEST_AGE_HELP,
                &labels,
                age_ms as f64 / 1000.0,
            );
        }
        Ok(())
    }

    async fn sample_consumer(&self, stream: &str, name: &str) -> Result<(), async_nats::Error> {
        let mut consumer = self
            .js
            .get_consumer_from_stream::<jetstream::consumer::pull::Config, _, _>(name, stream)
            .await?;
        let info = consumer.info().await?;
        let labels = [("stream", stream), ("consumer", name)];
        #[allow(clippy::cast_precision_loss)]
        {
            crate::metrics::set(
                CONSUMER_PENDING,
                CONSUMER_PENDING_HELP,
                &labels,
                info.num_pending as f64,
            );
            crate::metrics::set(
                CONSUMER_ACK_PENDING,
                CONSUMER_ACK_PENDING_HELP,
                &labels,
                info.num_ack_pending as f64,
            );
            crate::metrics::set(
                CONSUMER_REDELIVERED,
                CONSUMER_REDELIVERED_HELP,
                &labels,
                info.num_redelivered as f64,
            );
        }
        Ok(())
    }

    /// One stream info with per-subject counts (`polyshop.dlq.<consumer>`), then the last
    /// letter of each subject for the stream its consumer reads: a consumer reads one stream.
    async fn sample_dead_letters(&self) -> Result<(), async_nats::Error> {
        let mut counts: BTreeMap<String, u64> = streams::contexts()
            .map(|c| (streams::stream_name(c), 0))
            .collect();
        let mut oldest: BTreeMap<String, i64> = BTreeMap::new();
        let dlq = self.js.get_stream(DLQ_STREAM).await?;
        let subjects: Vec<(String, usize)> = dlq
            .info_with_subjects(format!("{DLQ_PREFIX}.>"))
            .await?
            .try_collect()
            .await?;
        for (subject, n) in subjects {
            let letter = dlq.get_last_raw_message_by_subject(&subject).await?;
            let original = letter
                .headers
                .get(DLQ_SUBJECT)
                .map(|v| v.as_str().to_owned())
                .unwrap_or_default();
            let stream = stream_of(&original);
            *counts.entry(stream.clone()).or_default() += n as u64;
            // The first letter on the subject at or after sequence 1: its oldest.
            let first = dlq.get_first_raw_message_by_subject(&subject, 1).await?;
            let at_ms = i64::try_from(first.time.unix_timestamp_nanos() / 1_000_000).unwrap_or(0);
            let entry = oldest.entry(stream).or_insert(at_ms);
            *entry = (*entry).min(at_ms);
        }
        for (stream, n) in counts {
            #[allow(clippy::cast_precision_loss)]
            crate::metrics::set(
                DEAD_LETTERS,
                DEAD_LETTERS_HELP,
                &[("stream", &stream)],
                n as f64,
            );
            let age_ms = oldest
                .get(&stream)
                .map_or(0, |t| crate::now_millis().saturating_sub(*t).max(0));
            #[allow(clippy::cast_precision_loss)]
            crate::metrics::set(
                DEAD_LETTERS_OLDEST_AGE,
                DEAD_LETTERS_OLDEST_AGE_HELP,
                &[("stream", &stream)],
                age_ms as f64 / 1000.0,
            );
        }
        Ok(())
    }
}

/// The stream of an event subject: `polyshop.order.confirmed` → `POLYSHOP_ORDER`; `unknown`
/// for anything else.
fn stream_of(subject: &str) -> String {
    let mut parts = subject.split('.');
    match (parts.next(), parts.next()) {
        (Some("polyshop"), Some(context)) if streams::contexts().any(|c| c == context) => {
            streams::stream_name(context)
        }
        _ => "unknown".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_subject_names_its_stream() {
        assert_eq!(stream_of("polyshop.user.deleted"), "POLYSHOP_USER");
        assert_eq!(stream_of("polyshop.nosuch.x"), "unknown");
        assert_eq!(stream_of(""), "unknown");
    }
}
