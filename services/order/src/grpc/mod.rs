//! The tonic face of the order context: thin handlers, request conversion, the status table.

mod accounts;
mod convert;
pub mod participants;
mod service;
mod status;

pub use accounts::ReplicatedAccounts;
pub use participants::GrpcParticipants;
pub use service::OrderGrpc;
