//! The tonic face of the order context: thin handlers, request conversion, the status table.

mod convert;
mod service;
mod status;

pub use service::OrderGrpc;
