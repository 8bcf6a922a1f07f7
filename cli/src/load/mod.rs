//! `polyshop load`: mixed shopper journeys against an edge, open-loop (`--rate`) or
//! closed-loop (`--users`), with a live progress line and a report at the end.
//!
//! It speaks gRPC through the edge with the generated tonic clients rather than JSON over
//! HTTP: the requests are typed by the contracts (a renamed field breaks the build, not the
//! run), one HTTP/2 connection carries many calls without a client-side pool to tune, and the
//! edge passes gRPC through to the same handlers the JSON routes reach, so the load measures
//! the system rather than a hand-written client. The edge's rate limits (per principal, per
//! address) answer RESOURCE_EXHAUSTED (HTTP 429) and show up as errors by status: against
//! `just run` lift them first (see docs/development.md; `gateway/scripts/with-system.sh`
//! does).

mod chart;
mod drive;
mod journey;
mod mix;
mod report;
mod stats;

use std::{path::PathBuf, sync::Arc, time::Duration};

use anyhow::{Context, bail};
use polyshop::catalog::v1::{ListProductsRequest, catalog_service_client::CatalogServiceClient};
use tonic::transport::Endpoint;

use self::{
    drive::{Model, Plan},
    journey::{Journey, Shop},
    mix::{DEFAULT_MIX, Mix},
    stats::Recorder,
};

/// Arguments of `polyshop load`.
#[derive(Debug, clap::Args)]
pub struct LoadArgs {
    /// The edge to load.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// Open loop: start this many journeys per second, whatever the answers.
    #[arg(long, conflicts_with = "users")]
    rate: Option<f64>,
    /// Closed loop: this many shoppers, each starting a journey when the last ends [default
    /// without --rate: 10].
    #[arg(long)]
    users: Option<usize>,
    /// How long to send (`20s`, `500ms`, `2m`).
    #[arg(long, default_value = "20s", value_parser = parse_duration)]
    duration: Duration,
    /// Time over which the rate (or the number of shoppers) climbs from 0 to full.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    ramp_up: Duration,
    /// How long journeys still running at the end may take to finish before they are dropped.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    drain: Duration,
    /// Journey weights; journeys not named do not run.
    #[arg(long, default_value = DEFAULT_MIX, value_parser = Mix::parse)]
    mix: Mix,
    /// Journeys in flight at most; an open-loop arrival that finds them all busy is dropped.
    #[arg(long, default_value_t = 256)]
    max_in_flight: usize,
    /// Shoppers registered before the run for the journeys that need a login.
    #[arg(long, default_value_t = 20)]
    accounts: usize,
    /// HTTP/2 connections to the edge (calls take turns).
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// Where report.json, report.md and report.html go.
    #[arg(long, default_value = "load-report")]
    report: PathBuf,
}

/// Runs the load and writes the report.
///
/// # Errors
/// The edge cannot be reached, the catalog is empty, the shoppers cannot be made, or the
/// report cannot be written. Failed calls during the run are counted, not errors.
pub async fn run(args: LoadArgs) -> anyhow::Result<()> {
    let model = match (args.rate, args.users) {
        (Some(rate), _) if rate > 0.0 && rate.is_finite() => Model::Open { rate },
        (Some(_), _) => bail!("--rate must be a positive number"),
        (None, users) => Model::Closed {
            users: users.unwrap_or(10).max(1),
        },
    };
    let plan = Plan {
        model,
        duration: args.duration,
        ramp_up: args.ramp_up.min(args.duration),
        drain: args.drain,
        max_in_flight: args.max_in_flight.max(1),
        mix: args.mix.clone(),
    };
    let shop = Arc::new(prepare(&args).await?);
    eprintln!(
        "load: {} products, {} shoppers ready; {:?} on {} for {:?}",
        shop.products.len(),
        shop.accounts.len(),
        plan.model,
        args.url,
        plan.duration
    );
    let rec = Arc::new(Recorder::new());
    drive::run(&plan, shop, Arc::clone(&rec)).await;
    let doc = report::summary(&args.url, &plan, &rec.snapshot());
    report::write(&args.report, &doc)?;
    let t = &doc["totals"];
    println!(
        "{} requests ({} /s), {} errors, {} dropped, {} orders created, p50 {} ms, p99 {} ms; report in {}",
        t["requests"],
        t["requests_per_sec"],
        t["errors"],
        t["dropped"],
        t["orders_created"],
        t["latency_ms"]["p50"],
        t["latency_ms"]["p99"],
        args.report.display()
    );
    Ok(())
}

/// Connects, reads the catalog and registers the shoppers: setup is not measured.
async fn prepare(args: &LoadArgs) -> anyhow::Result<Shop> {
    let endpoint = Endpoint::from_shared(args.url.clone())
        .context("--url")?
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(10));
    let mut channels = Vec::new();
    for _ in 0..args.connections.max(1) {
        let channel = endpoint
            .connect()
            .await
            .with_context(|| format!("connect to {}", args.url))?;
        channels.push(channel);
    }
    let run_id = format!(
        "{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis()
    );
    let mut shop = Shop::new(channels, run_id);
    let products = CatalogServiceClient::new(shop.channel())
        .list_products(ListProductsRequest {
            page_size: 100,
            ..Default::default()
        })
        .await
        .context("list the catalog")?
        .into_inner()
        .products;
    if products.is_empty() {
        bail!("the catalog is empty: `polyshop up` makes a demo catalog unless --no-demo");
    }
    shop.terms = products
        .iter()
        .filter_map(|p| p.name.split_whitespace().next().map(str::to_lowercase))
        .collect();
    shop.products = products.into_iter().map(|p| p.product_id).collect();
    // Setup calls are recorded apart and thrown away: only the run is reported.
    let setup = Recorder::new();
    for _ in 0..args.accounts.max(1) {
        let account = shop.sign_up(&setup, Journey::Signup).await;
        let error = setup.snapshot().errors_by_status.into_keys().next();
        shop.accounts.push(account.with_context(|| {
            format!(
                "register a shopper: {} (rate-limited? lift the edge's limits)",
                error.unwrap_or_default()
            )
        })?);
    }
    Ok(shop)
}

/// `20s`, `500ms`, `2m`, `1h` or plain seconds.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("`{text}`: expected a number and a unit, like 20s"))?;
    let seconds = match unit {
        "" | "s" => value,
        "ms" => value / 1000.0,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => return Err(format!("`{text}`: unknown unit `{unit}` (ms, s, m, h)")),
    };
    Duration::try_from_secs_f64(seconds).map_err(|e| format!("`{text}`: {e}"))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::parse_duration;

    #[test]
    fn durations_take_a_unit() {
        assert_eq!(parse_duration("20s"), Ok(Duration::from_secs(20)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("5d").is_err());
    }
}
