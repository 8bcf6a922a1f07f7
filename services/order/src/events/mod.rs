//! Consumers of the order context: the read-model projection (from the order stream) and the
//! user replica (from the user stream). Both run inside the platform's exactly-once consumer.

mod projection;
mod replica;

pub use projection::{ProjectionHandler, rebuild};
pub use replica::ReplicaHandler;
