//! `polyshop admin status`: the governance status document (`polyshop.admin.v1.GetStatus`,
//! served by the edge) as tables.

use std::fmt::Write as _;

use anyhow::Context as _;
use polyshop::{
    admin::v1::{
        BreakerState, DependencyKind, GetStatusRequest, GetStatusResponse, Health,
        admin_service_client::AdminServiceClient,
    },
    user::v1::{LoginRequest, user_service_client::UserServiceClient},
};
use polyshop_platform::config::{Settings, url_of};
use secrecy::ExposeSecret as _;
use tonic::{metadata::MetadataValue, transport::Channel};

/// An admin access token: `POLYSHOP_ADMIN_TOKEN`, else a login as the admin with the
/// configured password or the one `polyshop up` wrote under the data dir.
async fn admin_token(settings: &Settings, edge: Channel) -> anyhow::Result<String> {
    if let Ok(token) = std::env::var("POLYSHOP_ADMIN_TOKEN") {
        return Ok(token);
    }
    let password = match &settings.user.admin_password {
        Some(p) => p.expose_secret().to_owned(),
        None => {
            let file = settings.data_dir.join("admin-credentials.txt");
            std::fs::read_to_string(&file)
                .ok()
                .and_then(|t| {
                    t.lines()
                        .find_map(|l| l.strip_prefix("password: "))
                        .map(str::to_owned)
                })
                .with_context(|| {
                    format!(
                        "no admin password: set POLYSHOP_ADMIN_TOKEN, user.admin_password, or \
                         run where {} exists",
                        file.display()
                    )
                })?
        }
    };
    let reply = UserServiceClient::new(edge)
        .login(LoginRequest {
            login: settings.user.admin_username.clone(),
            password,
        })
        .await
        .context("admin login through the edge")?;
    Ok(reply.into_inner().access_token)
}

/// Fetches the status from the edge and prints it.
pub async fn run(settings: &Settings) -> anyhow::Result<()> {
    let url = url_of(settings.gateway.listen);
    let edge = Channel::from_shared(url.clone())?
        .connect()
        .await
        .with_context(|| format!("the edge at {url}"))?;
    let token = admin_token(settings, edge.clone()).await?;
    let mut request = tonic::Request::new(GetStatusRequest {});
    let bearer: MetadataValue<_> = format!("Bearer {token}").parse()?;
    request.metadata_mut().insert("authorization", bearer);
    let status = AdminServiceClient::new(edge)
        .get_status(request)
        .await
        .context("GetStatus")?
        .into_inner();
    print!("{}", render(&status));
    Ok(())
}

/// A table: a title, a header and rows, columns padded to their widest cell.
fn table(out: &mut String, title: &str, header: &[&str], rows: &[Vec<String>]) {
    let _ = writeln!(out, "\n{title}");
    if rows.is_empty() {
        let _ = writeln!(out, "  (none)");
        return;
    }
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        format!("  {}", padded.join("  ").trim_end())
    };
    let _ = writeln!(out, "{}", line(header.to_vec()));
    for row in rows {
        let _ = writeln!(out, "{}", line(row.iter().map(String::as_str).collect()));
    }
}

#[allow(clippy::cast_precision_loss)]
fn micros_as_ms(us: i64) -> f64 {
    us as f64 / 1000.0
}

fn health_name(value: i32) -> &'static str {
    match Health::try_from(value) {
        Ok(Health::Serving) => "serving",
        Ok(Health::NotServing) => "NOT SERVING",
        Ok(Health::Unreachable) => "UNREACHABLE",
        _ => "?",
    }
}

fn breaker_name(value: i32) -> &'static str {
    match BreakerState::try_from(value) {
        Ok(BreakerState::Closed) => "closed",
        Ok(BreakerState::Open) => "OPEN",
        Ok(BreakerState::HalfOpen) => "half-open",
        _ => "?",
    }
}

/// The status document as tables.
pub fn render(s: &GetStatusResponse) -> String {
    let mut out = String::new();
    table(
        &mut out,
        "Instances",
        &[
            "CONTEXT", "ADDRESS", "VERSION", "ZONE", "HEALTH", "UPTIME", "FAILING",
        ],
        &s.instances
            .iter()
            .map(|i| {
                vec![
                    i.context.clone(),
                    i.address.clone(),
                    i.version.clone(),
                    i.zone.clone(),
                    health_name(i.health).to_owned(),
                    format!("{}s", i.uptime_seconds),
                    i.failing.join("; "),
                ]
            })
            .collect::<Vec<_>>(),
    );
    table(
        &mut out,
        "Registry",
        &["CONTEXT", "TOTAL", "HEALTHY", "UNHEALTHY"],
        &s.registry
            .iter()
            .map(|r| {
                vec![
                    r.context.clone(),
                    r.total.to_string(),
                    r.healthy.to_string(),
                    r.unhealthy.to_string(),
                ]
            })
            .collect::<Vec<_>>(),
    );
    table(
        &mut out,
        "Circuit breakers",
        &[
            "CALLER", "INSTANCE", "UPSTREAM", "STATE", "CALLS", "OK", "FAILED", "REJECTED",
        ],
        &s.breakers
            .iter()
            .map(|b| {
                vec![
                    b.caller.clone(),
                    b.instance.clone(),
                    b.upstream.clone(),
                    breaker_name(b.state).to_owned(),
                    b.calls.to_string(),
                    b.successes.to_string(),
                    b.failures.to_string(),
                    b.rejections.to_string(),
                ]
            })
            .collect::<Vec<_>>(),
    );
    table(
        &mut out,
        "Dead letters",
        &["STREAM", "COUNT", "OLDEST"],
        &s.dead_letters
            .iter()
            .map(|d| {
                vec![
                    d.stream.clone(),
                    d.count.to_string(),
                    format!("{}s", d.oldest_age_seconds),
                ]
            })
            .collect::<Vec<_>>(),
    );
    table(
        &mut out,
        "Outbox",
        &["SERVICE", "BACKLOG", "OLDEST"],
        &s.outbox
            .iter()
            .map(|o| {
                vec![
                    o.service.clone(),
                    o.backlog.to_string(),
                    format!("{}s", o.oldest_age_seconds),
                ]
            })
            .collect::<Vec<_>>(),
    );
    table(
        &mut out,
        "Consumers",
        &["STREAM", "DURABLE", "PENDING", "ACK PENDING", "REDELIVERED"],
        &s.consumers
            .iter()
            .map(|c| {
                vec![
                    c.stream.clone(),
                    c.durable.clone(),
                    c.pending.to_string(),
                    c.ack_pending.to_string(),
                    c.redelivered.to_string(),
                ]
            })
            .collect::<Vec<_>>(),
    );
    let sagas = s.sagas.clone().unwrap_or_default();
    table(
        &mut out,
        &format!(
            "Sagas (oldest running: {}s)",
            sagas.oldest_pending_age_seconds
        ),
        &["STATE", "COUNT"],
        &sagas
            .counts
            .iter()
            .map(|c| vec![c.state.clone(), c.count.to_string()])
            .collect::<Vec<_>>(),
    );
    table(
        &mut out,
        "Flags",
        &["FLAG", "ENABLED", "OVERRIDDEN", "IN FORCE"],
        &s.flags
            .iter()
            .map(|f| {
                vec![
                    f.name.clone(),
                    f.enabled.to_string(),
                    f.overridden.to_string(),
                    format!("{}/{}", f.instances_in_force, f.instances_reporting),
                ]
            })
            .collect::<Vec<_>>(),
    );
    table(
        &mut out,
        "Runtime config",
        &["SERVICE", "VERSION"],
        &s.config
            .iter()
            .map(|c| vec![c.service.clone(), c.version.to_string()])
            .collect::<Vec<_>>(),
    );
    table(
        &mut out,
        "Dependencies",
        &["FROM", "TO", "KIND"],
        &s.dependencies
            .iter()
            .map(|d| {
                let kind = match DependencyKind::try_from(d.kind) {
                    Ok(DependencyKind::Calls) => "calls",
                    Ok(DependencyKind::Consumes) => "consumes events of",
                    _ => "?",
                };
                vec![d.from.clone(), d.to.clone(), kind.to_owned()]
            })
            .collect::<Vec<_>>(),
    );
    table(
        &mut out,
        "Operations",
        &["OPERATION", "CALLS", "ERRORS", "P50", "P99"],
        &s.operations
            .iter()
            .map(|o| {
                #[allow(clippy::cast_precision_loss)]
                let errors = o.errors_ppm as f64 / 10_000.0;
                vec![
                    o.operation.clone(),
                    o.count.to_string(),
                    format!("{errors:.2}%"),
                    format!("{:.1}ms", micros_as_ms(o.p50_us)),
                    format!("{:.1}ms", micros_as_ms(o.p99_us)),
                ]
            })
            .collect::<Vec<_>>(),
    );
    if !s.degraded.is_empty() {
        let _ = writeln!(out, "\nNot read");
        for d in &s.degraded {
            let _ = writeln!(out, "  {d}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use polyshop::admin::v1::{Breaker, Instance};

    use super::*;

    #[test]
    fn tables_pad_columns_and_name_states() {
        let status = GetStatusResponse {
            instances: vec![Instance {
                context: "order".into(),
                address: "http://127.0.0.1:50056".into(),
                health: Health::Serving as i32,
                uptime_seconds: 12,
                ..Instance::default()
            }],
            breakers: vec![Breaker {
                caller: "order".into(),
                upstream: "payment".into(),
                state: BreakerState::Open as i32,
                calls: 5,
                failures: 5,
                rejections: 3,
                ..Breaker::default()
            }],
            degraded: vec!["flags: broker down".into()],
            ..GetStatusResponse::default()
        };
        let text = render(&status);
        assert!(text.contains("  order    http://127.0.0.1:50056"), "{text}");
        assert!(text.contains("serving"), "{text}");
        assert!(text.contains("OPEN"), "{text}");
        assert!(text.contains("Dead letters\n  (none)"), "{text}");
        assert!(text.contains("Not read\n  flags: broker down"), "{text}");
    }
}
