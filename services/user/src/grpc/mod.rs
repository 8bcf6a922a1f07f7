//! The tonic face of the user context: [`UserGrpc`] (thin handlers), proto ↔ domain
//! conversion, and the one error → status table.

pub(crate) mod convert;
mod service;
mod status;

pub use service::UserGrpc;
