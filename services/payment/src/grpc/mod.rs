//! The tonic face of the payment context: [`PaymentGrpc`] (thin handlers), proto ↔ domain
//! conversion (also used for the events), and the one error → status table.

pub(crate) mod convert;
mod service;
mod status;

pub use service::PaymentGrpc;
pub use status::DOMAIN;
