//! System tests: the real `polyshop` binary, started the way `just run` starts it, driven
//! from outside (generated Rust and Python clients, signals, restarts).

mod cluster;
mod cluster_faults;
mod crash;
mod deploy;
mod discovery;
mod governance;
mod graphql;
mod harness;
mod help_and_completions;
mod lifecycle;
mod load;
mod metrics;
mod nats_auth;
mod nats_server_check;
mod otlp;
mod outage;
mod python_client;
mod revocation;
mod runtime_config;
mod service_tokens;
mod tls;
mod trace_context;
mod validation;
