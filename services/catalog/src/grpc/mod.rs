//! The tonic face of the catalog context: [`CatalogGrpc`] (thin handlers), proto ↔ domain
//! conversion, and the one error → status table.

mod convert;
mod service;
mod status;

pub use service::CatalogGrpc;
pub use status::DOMAIN;
