//! The tonic face of the catalog context: [`CatalogGrpc`] (version 1) and [`CatalogV2Grpc`]
//! (version 2, a price per currency) as thin handlers over the same use cases, proto ↔ domain
//! conversion (version 1's also used for the events), and the one error → status table.

pub(crate) mod convert;
mod convert_v2;
mod service;
mod service_v2;
mod status;

pub use service::CatalogGrpc;
pub use service_v2::CatalogV2Grpc;
pub use status::DOMAIN;
