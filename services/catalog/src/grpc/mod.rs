//! The tonic face of the catalog context: [`CatalogGrpc`] (thin handlers), proto ↔ domain
//! conversion (also used for the events), and the one error → status table.

pub(crate) mod convert;
mod service;
mod status;

pub use service::CatalogGrpc;
pub use status::DOMAIN;
