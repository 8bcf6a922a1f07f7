//! The order bounded context: its tonic server, use cases, domain rules and store.
