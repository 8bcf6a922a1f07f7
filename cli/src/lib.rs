//! The polyshop command: run one service, the whole system, or admin tasks.
