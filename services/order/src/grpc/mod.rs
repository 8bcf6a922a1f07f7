//! The tonic face of the order context: thin handlers, request conversion, the status table.

mod accounts;
mod convert;
mod participants;
mod service;
mod status;
mod upstreams;

pub use accounts::ReplicatedAccounts;
pub use service::OrderGrpc;
pub use upstreams::GrpcParticipants;
