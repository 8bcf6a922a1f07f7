//! Runs the edge alone from the usual configuration (`polyshop.toml`, `POLYSHOP_*`), until
//! the CLI's `polyshop serve gateway` exists: `cargo run --release -p polyshop-gateway
//! --example serve`. Used by `scripts/bench-edge.sh` when no gateway is running yet.

use polyshop_platform::{config::Settings, shutdown, telemetry};
use tokio::net::TcpListener;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let settings = Settings::load()?;
    let _telemetry = telemetry::init("polyshop-gateway", &settings);
    let listener = TcpListener::bind(settings.gateway.listen).await?;
    polyshop_gateway::serve(settings, listener, shutdown::signal()).await?;
    Ok(())
}
