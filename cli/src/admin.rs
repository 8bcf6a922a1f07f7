//! `polyshop admin`: operator tasks.

use clap::Subcommand;
use polyshop_platform::{auth, config::Settings};

/// Operator commands.
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Print a service token, e.g. for grpcurl calls to INTERNAL methods.
    ServiceToken {
        /// The calling service (token issuer), e.g. polyshop-order.
        #[arg(long, default_value = "polyshop-admin")]
        from: String,
        /// The called service (token audience), e.g. polyshop-inventory.
        #[arg(long)]
        to: String,
    },
}

/// Runs an admin command.
///
/// # Errors
/// If the service key cannot be loaded.
pub async fn run(command: AdminCommand, settings: Settings) -> anyhow::Result<()> {
    match command {
        AdminCommand::ServiceToken { from, to } => {
            if !from.starts_with("polyshop-") || !to.starts_with("polyshop-") {
                anyhow::bail!("service names start with polyshop-, e.g. --to polyshop-inventory");
            }
            let tokens = auth::service_tokens(&settings, &from)?;
            println!("{}", tokens.token_for(&to)?);
            Ok(())
        }
    }
}
