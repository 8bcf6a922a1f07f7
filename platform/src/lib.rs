//! Shared runtime of every Polyshop server: layered config, JSON logs and OTLP tracing,
//! sea-orm connections and migrations, token signing and verification, access rules from the
//! descriptor set, the `google.rpc` status helpers, and the server bootstrap (health,
//! reflection, request logging, Prometheus metrics, graceful shutdown).
//!
//! Services depend on this crate and on the contracts, never on each other.

pub mod auth;
pub mod cache;
pub mod config;
pub mod contract;
pub mod db;
pub mod discovery;
pub mod events;
pub mod flags;
pub mod metrics;
pub mod paging;
pub mod ports;
pub mod resilience;
pub mod retention;
pub mod runtime_config;
pub mod server;
pub mod shutdown;
pub mod status;
pub mod telemetry;
#[cfg(feature = "test-util")]
pub mod testing;
pub mod tls;
pub mod validate;

/// A new UUIDv7 id as a string: time-ordered, so ids sort by creation.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// A random UUIDv4 for correlation (request ids), from the thread's RNG: ids that need no order
/// should not pay a clock read and a `getrandom` call each.
pub fn new_request_id() -> String {
    uuid::Builder::from_random_bytes(rand::random())
        .into_uuid()
        .to_string()
}

/// Milliseconds since the Unix epoch, the timestamp format of every table.
pub fn now_millis() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// A `google.protobuf.Timestamp` from epoch milliseconds.
pub fn timestamp(millis: i64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: millis.div_euclid(1000),
        nanos: i32::try_from(millis.rem_euclid(1000) * 1_000_000).unwrap_or(0),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn request_ids_are_distinct_random_uuids() {
        let (a, b) = (super::new_request_id(), super::new_request_id());
        assert_ne!(a, b);
        assert_eq!(
            uuid::Uuid::parse_str(&a).map(|u| u.get_version_num()),
            Ok(4)
        );
    }
}
