//! Use cases of the order context: placing an order through the saga, cancelling one, and
//! reading and changing orders afterwards; over the ports in [`ports`].

mod cancel_order;
pub mod failpoints;
mod manage;
#[cfg(test)]
mod memory;
mod place_order;
pub mod ports;
mod saga_runner;
#[cfg(test)]
mod tests;

pub use manage::*;
pub use saga_runner::*;
