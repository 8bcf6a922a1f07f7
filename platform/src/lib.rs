//! Shared runtime of every Polyshop server: config, telemetry, persistence, auth, server bootstrap.
