//! Use cases of the order context: placing an order through the saga, cancelling one, and
//! reading and changing orders afterwards; over the ports in [`ports`].

mod cancel_order;
pub mod failpoints;
mod get_order;
mod list_orders;
#[cfg(test)]
mod memory;
mod place_order;
pub mod ports;
mod saga_runner;
#[cfg(test)]
mod tests;
mod update_order_status;

pub use get_order::*;
pub use list_orders::*;
pub use saga_runner::*;
pub use update_order_status::*;
