//! Use cases of the order context: placing an order through the saga, and reading and
//! changing orders afterwards.

mod manage;
mod saga;

pub use manage::*;
pub use saga::*;
