//! The tonic face of the inventory context: [`InventoryGrpc`] (thin handlers), proto ↔ domain
//! conversion (also used for the events), and the one error → status table.

pub(crate) mod convert;
mod service;
mod status;

pub use service::InventoryGrpc;
pub use status::DOMAIN;
