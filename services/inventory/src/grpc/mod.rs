//! The tonic face of the inventory context: [`InventoryGrpc`] (thin handlers), proto ↔ domain
//! conversion, and the one error → status table.

mod convert;
mod service;
mod status;

pub use service::InventoryGrpc;
pub use status::DOMAIN;
