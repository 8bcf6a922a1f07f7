//! `polyshop`: run one service (`serve`), the whole system (`up`), or admin tasks.

mod admin;
mod demo;
mod services;
mod up;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use polyshop_platform::{config::Settings, telemetry};

use crate::services::Service;

/// Polyshop: an e-commerce backend of gRPC services.
#[derive(Debug, Parser)]
#[command(name = "polyshop", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run one service in the foreground until SIGTERM / Ctrl-C.
    Serve {
        /// Which service.
        service: Service,
    },
    /// Run the whole system: a nats-server child and one process per service.
    Up(up::UpArgs),
    /// Operator tasks.
    #[command(subcommand)]
    Admin(admin::AdminCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = match Settings::load() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("polyshop: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("polyshop: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Serve { service } => {
                let _guard = telemetry::init(service.as_str(), &settings);
                services::serve(service, settings).await
            }
            Command::Up(args) => up::run(args, settings).await,
            Command::Admin(command) => admin::run(command, settings).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("polyshop: {e:#}");
            ExitCode::FAILURE
        }
    }
}
