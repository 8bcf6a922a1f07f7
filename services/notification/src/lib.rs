//! The notification bounded context: its tonic server, use cases, domain rules and store.
