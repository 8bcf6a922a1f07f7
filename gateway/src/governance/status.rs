//! The status document from what each instance said: its full health check (`GET /health`)
//! and its metrics (`GET /metrics`). Figures every instance of a service reports alike (the
//! outbox, consumers, dead letters and sagas live in shared stores) are merged with `max`;
//! per-call figures (breakers, operations) are per instance or summed.

use std::collections::{BTreeMap, BTreeSet};

use polyshop::admin::v1::{
    Breaker, BreakerState, Consumer, DeadLetterCount, Dependency, DependencyKind,
    GetStatusResponse, Health, Instance, OperationStats, Outbox, RegistryStats, SagaCount, Sagas,
};
use polyshop_platform::{contract, discovery};
use serde::Deserialize;

use super::exposition::Sample;

/// `GET /health` as an instance answers it (the parts read here).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthReport {
    /// Whether readiness holds.
    pub ready: bool,
    /// Every dependency checked.
    #[serde(default)]
    pub checks: Vec<Check>,
}

/// One dependency of a [`HealthReport`].
#[derive(Debug, Clone, Deserialize)]
pub struct Check {
    /// `database`, `nats`, `upstream:<context>`, …
    pub name: String,
    /// Whether it answered well.
    pub ok: bool,
    /// What it said, or why it failed.
    #[serde(default)]
    pub detail: String,
}

/// What one instance said.
#[derive(Debug, Clone)]
pub struct Scraped {
    /// Its context (`gateway` for an edge).
    pub context: String,
    /// Its registry entry.
    pub instance: discovery::Instance,
    /// Its health check; `None` when it did not answer.
    pub health: Option<HealthReport>,
    /// Its metrics (empty when they could not be read).
    pub metrics: Vec<Sample>,
}

/// The figure `name` with label `key` = each value, merged over instances with `max`.
fn max_by_label<'a>(
    scraped: &'a [Scraped],
    name: &str,
    keys: &[&str],
) -> BTreeMap<Vec<&'a str>, f64> {
    let mut out: BTreeMap<Vec<&str>, f64> = BTreeMap::new();
    for sample in scraped
        .iter()
        .flat_map(|s| &s.metrics)
        .filter(|m| m.name == name)
    {
        let Some(key) = keys
            .iter()
            .map(|k| sample.label(k))
            .collect::<Option<Vec<_>>>()
        else {
            continue;
        };
        let entry = out.entry(key).or_insert(sample.value);
        *entry = entry.max(sample.value);
    }
    out
}

/// A gauge or counter's value as a whole number (they count things).
#[allow(clippy::cast_possible_truncation)]
fn whole(value: f64) -> i64 {
    value.round() as i64
}

/// The instances and their registry statistics.
fn instances(scraped: &[Scraped], now_ms: i64) -> (Vec<Instance>, Vec<RegistryStats>) {
    let mut stats: BTreeMap<&str, RegistryStats> = BTreeMap::new();
    let mut out = Vec::new();
    for s in scraped {
        let health = match &s.health {
            None => Health::Unreachable,
            Some(h) if h.ready && s.instance.healthy => Health::Serving,
            Some(_) => Health::NotServing,
        };
        let started = s
            .metrics
            .iter()
            .find(|m| m.name == polyshop_platform::metrics::PROCESS_START)
            .map(|m| whole(m.value * 1000.0))
            .or((s.instance.started_at > 0).then_some(s.instance.started_at));
        let entry = stats.entry(&s.context).or_insert_with(|| RegistryStats {
            context: s.context.clone(),
            ..RegistryStats::default()
        });
        entry.total += 1;
        if health == Health::Serving {
            entry.healthy += 1;
        } else {
            entry.unhealthy += 1;
        }
        out.push(Instance {
            context: s.context.clone(),
            instance_id: s.instance.instance.clone(),
            address: s.instance.url.clone(),
            version: s.instance.version.clone(),
            zone: s.instance.zone.clone(),
            health: health as i32,
            uptime_seconds: started.map_or(0, |t| (now_ms - t).max(0) / 1000),
            failing: s
                .health
                .iter()
                .flat_map(|h| &h.checks)
                .filter(|c| !c.ok)
                .map(|c| format!("{}: {}", c.name, c.detail))
                .collect(),
        });
    }
    (out, stats.into_values().collect())
}

/// Every breaker of every instance, with its counts.
fn breakers(scraped: &[Scraped]) -> Vec<Breaker> {
    let mut out = Vec::new();
    for s in scraped {
        for state in s
            .metrics
            .iter()
            .filter(|m| m.name == "polyshop_circuit_breaker_state")
        {
            let Some(upstream) = state.label("upstream") else {
                continue;
            };
            let count = |outcome: &str| {
                s.metrics
                    .iter()
                    .filter(|m| {
                        m.name == "polyshop_circuit_breaker_calls_total"
                            && m.label("upstream") == Some(upstream)
                            && m.label("outcome") == Some(outcome)
                    })
                    .map(|m| whole(m.value))
                    .sum::<i64>()
            };
            let (successes, failures) = (count("success"), count("failure"));
            let state = match whole(state.value) {
                0 => BreakerState::Closed,
                1 => BreakerState::Open,
                2 => BreakerState::HalfOpen,
                _ => BreakerState::Unspecified,
            };
            out.push(Breaker {
                caller: s.context.clone(),
                instance: s.instance.url.clone(),
                // The edge names its breakers `edge.<context>`.
                upstream: upstream
                    .strip_prefix("edge.")
                    .unwrap_or(upstream)
                    .to_owned(),
                state: state as i32,
                calls: successes + failures,
                successes,
                failures,
                rejections: count("rejected"),
            });
        }
    }
    out
}

/// The shared figures: dead letters, outboxes, consumers, sagas.
fn shared(scraped: &[Scraped]) -> (Vec<DeadLetterCount>, Vec<Outbox>, Vec<Consumer>, Sagas) {
    let oldest_letter = max_by_label(
        scraped,
        "polyshop_dead_letters_oldest_age_seconds",
        &["stream"],
    );
    let dead_letters = max_by_label(scraped, "polyshop_dead_letters", &["stream"])
        .into_iter()
        .map(|(key, n)| DeadLetterCount {
            stream: key[0].to_owned(),
            count: whole(n),
            oldest_age_seconds: oldest_letter.get(&key).copied().map_or(0, whole),
        })
        .collect();
    let oldest_row = max_by_label(scraped, "polyshop_outbox_oldest_age_seconds", &["service"]);
    let outbox = max_by_label(scraped, "polyshop_outbox_backlog", &["service"])
        .into_iter()
        .map(|(key, n)| Outbox {
            // Processes label it with their name (`polyshop-order`); the document says contexts.
            service: key[0]
                .strip_prefix("polyshop-")
                .unwrap_or(key[0])
                .to_owned(),
            backlog: whole(n),
            oldest_age_seconds: oldest_row.get(&key).copied().map_or(0, whole),
        })
        .collect();
    let keys = ["stream", "consumer"];
    let ack_pending = max_by_label(scraped, "polyshop_consumer_ack_pending_messages", &keys);
    let redelivered = max_by_label(scraped, "polyshop_consumer_redelivered_messages", &keys);
    let consumers = max_by_label(scraped, "polyshop_consumer_pending_messages", &keys)
        .into_iter()
        .map(|(key, n)| Consumer {
            stream: key[0].to_owned(),
            durable: key[1].to_owned(),
            pending: whole(n),
            ack_pending: ack_pending.get(&key).copied().map_or(0, whole),
            redelivered: redelivered.get(&key).copied().map_or(0, whole),
        })
        .collect();
    let sagas = Sagas {
        counts: max_by_label(scraped, "polyshop_sagas", &["state"])
            .into_iter()
            .map(|(key, n)| SagaCount {
                state: key[0].to_owned(),
                count: whole(n),
            })
            .collect(),
        oldest_pending_age_seconds: max_by_label(
            scraped,
            "polyshop_saga_oldest_running_age_seconds",
            &[],
        )
        .into_values()
        .next()
        .map_or(0, whole),
    };
    (dead_letters, outbox, consumers, sagas)
}

/// Which context calls which (the contracts' `callers` options, and the edge calling every
/// context it routes to) and which consumes whose events (the durable consumers the
/// instances report, by stream).
fn dependencies(scraped: &[Scraped], edge_calls: &[String]) -> Vec<Dependency> {
    let mut edges: BTreeSet<(String, String, i32)> = BTreeSet::new();
    let calls = DependencyKind::Calls as i32;
    for service in contract::pool().services() {
        let Some(to) = contract::contexts()
            .iter()
            .find(|c| c.service == service.full_name())
            .map(|c| c.name.clone())
        else {
            continue;
        };
        for method in service.methods() {
            for caller in contract::rule_of(&method).callers {
                let from = caller.strip_prefix("polyshop-").unwrap_or(&caller);
                if from != to {
                    edges.insert((from.to_owned(), to.clone(), calls));
                }
            }
        }
    }
    for to in edge_calls {
        edges.insert(("gateway".to_owned(), to.clone(), calls));
    }
    for s in scraped {
        for m in s
            .metrics
            .iter()
            .filter(|m| m.name == "polyshop_consumer_pending_messages")
        {
            let Some(stream) = m.label("stream") else {
                continue;
            };
            let Some(to) = stream
                .strip_prefix("POLYSHOP_")
                .map(str::to_ascii_lowercase)
            else {
                continue;
            };
            if to != s.context {
                edges.insert((s.context.clone(), to, DependencyKind::Consumes as i32));
            }
        }
    }
    edges
        .into_iter()
        .map(|(from, to, kind)| Dependency { from, to, kind })
        .collect()
}

/// The upper bound (µs) of the histogram bucket holding quantile `q` of `buckets`
/// (cumulative counts by upper bound in seconds); past the largest finite bound, that bound.
fn quantile_us(buckets: &[(f64, f64)], count: f64, q: f64) -> i64 {
    let target = (count * q).ceil().max(1.0);
    let largest = buckets
        .iter()
        .map(|(le, _)| *le)
        .filter(|le| le.is_finite())
        .fold(0.0, f64::max);
    buckets
        .iter()
        .find(|(_, n)| *n >= target)
        .map_or(0, |(le, _)| whole(le.min(largest) * 1_000_000.0))
}

/// Calls per operation over every instance: count, errors, p50 and p99 from the request
/// counters and duration histograms each server keeps since it started.
fn operations(scraped: &[Scraped]) -> Vec<OperationStats> {
    let mut counts: BTreeMap<&str, (f64, f64)> = BTreeMap::new();
    let mut buckets: BTreeMap<&str, BTreeMap<u64, (f64, f64)>> = BTreeMap::new();
    for m in scraped.iter().flat_map(|s| &s.metrics) {
        let Some(method) = m.label("method") else {
            continue;
        };
        if m.name == "polyshop_rpc_requests_total" {
            let entry = counts.entry(method).or_default();
            entry.0 += m.value;
            if m.label("code") != Some("Ok") {
                entry.1 += m.value;
            }
        } else if m.name == "polyshop_rpc_duration_seconds_bucket"
            && let Some(le) = m.label("le")
        {
            let le: f64 = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().unwrap_or(f64::INFINITY)
            };
            let entry = buckets
                .entry(method)
                .or_default()
                .entry(le.to_bits())
                .or_insert((le, 0.0));
            entry.1 += m.value;
        }
    }
    counts
        .into_iter()
        .filter(|(_, (n, _))| *n > 0.0)
        .map(|(method, (n, errors))| {
            let mut sorted: Vec<(f64, f64)> = buckets
                .get(method)
                .map(|b| b.values().copied().collect())
                .unwrap_or_default();
            sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
            let total = sorted.last().map_or(n, |(_, c)| *c);
            OperationStats {
                operation: method.to_owned(),
                count: whole(n),
                errors_ppm: whole(errors / n * 1_000_000.0),
                p50_us: quantile_us(&sorted, total, 0.5),
                p99_us: quantile_us(&sorted, total, 0.99),
            }
        })
        .collect()
}

/// Counts, for each of `flags`, the instances that report its value in force and those whose
/// value is the one the flag should have now.
pub fn flags_in_force(scraped: &[Scraped], flags: &mut [polyshop::admin::v1::Flag]) {
    for flag in flags.iter_mut() {
        let values: Vec<bool> = scraped
            .iter()
            .filter_map(|s| {
                s.metrics
                    .iter()
                    .find(|m| {
                        m.name == polyshop_platform::flags::FLAG_GAUGE
                            && m.label("flag") == Some(flag.name.as_str())
                    })
                    .map(|m| m.value > 0.5)
            })
            .collect();
        flag.instances_reporting = i32::try_from(values.len()).unwrap_or(i32::MAX);
        flag.instances_in_force =
            i32::try_from(values.iter().filter(|v| **v == flag.enabled).count())
                .unwrap_or(i32::MAX);
    }
}

/// The status document of `scraped` at `now_ms`; flags, config versions and problems are
/// filled in by the caller.
pub fn document(scraped: &[Scraped], edge_calls: &[String], now_ms: i64) -> GetStatusResponse {
    let (instances, registry) = instances(scraped, now_ms);
    let (dead_letters, outbox, consumers, sagas) = shared(scraped);
    GetStatusResponse {
        generate_time: Some(prost_types::Timestamp {
            seconds: now_ms / 1000,
            nanos: 0,
        }),
        instances,
        registry,
        breakers: breakers(scraped),
        dead_letters,
        outbox,
        consumers,
        sagas: Some(sagas),
        dependencies: dependencies(scraped, edge_calls),
        operations: operations(scraped),
        ..GetStatusResponse::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::governance::exposition;

    fn scraped(context: &str, url: &str, ready: Option<bool>, metrics: &str) -> Scraped {
        Scraped {
            context: context.to_owned(),
            instance: discovery::Instance::new(context, url, url.to_owned()),
            health: ready.map(|ready| HealthReport {
                ready,
                checks: vec![Check {
                    name: "database".into(),
                    ok: ready,
                    detail: if ready { "ok".into() } else { "gone".into() },
                }],
            }),
            metrics: exposition::parse(metrics),
        }
    }

    #[test]
    fn a_flag_counts_the_instances_that_applied_its_value() {
        let on = "polyshop_feature_flag_enabled{flag=\"notification_email\"} 1.0\n";
        let off = "polyshop_feature_flag_enabled{flag=\"notification_email\"} 0.0\n";
        let scraped = [
            scraped("notification", "http://n1", Some(true), off),
            scraped("notification", "http://n2", Some(true), on),
            scraped("catalog", "http://c1", Some(true), ""),
        ];
        let mut flags = vec![polyshop::admin::v1::Flag {
            name: "notification_email".into(),
            enabled: false,
            overridden: true,
            ..Default::default()
        }];
        flags_in_force(&scraped, &mut flags);
        assert_eq!(flags[0].instances_reporting, 2, "the catalog reads no flag");
        assert_eq!(flags[0].instances_in_force, 1, "n2 has not applied it yet");
    }

    #[test]
    fn instances_breakers_and_shared_figures_are_gathered() {
        let order = "polyshop_process_start_time_seconds 100\n\
            polyshop_circuit_breaker_state{upstream=\"payment\"} 1\n\
            polyshop_circuit_breaker_calls_total{upstream=\"payment\",outcome=\"success\"} 3\n\
            polyshop_circuit_breaker_calls_total{upstream=\"payment\",outcome=\"failure\"} 5\n\
            polyshop_circuit_breaker_calls_total{upstream=\"payment\",outcome=\"rejected\"} 2\n\
            polyshop_sagas{state=\"done\"} 4\n\
            polyshop_saga_oldest_running_age_seconds 7.2\n\
            polyshop_outbox_backlog{service=\"order\"} 1\n\
            polyshop_consumer_pending_messages{stream=\"POLYSHOP_PAYMENT\",consumer=\"order-payments\"} 2\n\
            polyshop_dead_letters{stream=\"POLYSHOP_ORDER\"} 1\n\
            polyshop_dead_letters_oldest_age_seconds{stream=\"POLYSHOP_ORDER\"} 30\n\
            polyshop_rpc_requests_total{service=\"order\",method=\"/o/Create\",code=\"Ok\"} 9\n\
            polyshop_rpc_requests_total{service=\"order\",method=\"/o/Create\",code=\"Internal\"} 1\n\
            polyshop_rpc_duration_seconds_bucket{service=\"order\",method=\"/o/Create\",le=\"0.005\"} 5\n\
            polyshop_rpc_duration_seconds_bucket{service=\"order\",method=\"/o/Create\",le=\"0.05\"} 9\n\
            polyshop_rpc_duration_seconds_bucket{service=\"order\",method=\"/o/Create\",le=\"+Inf\"} 10\n";
        // A second instance sees the same shared figures, one of them later.
        let other = "polyshop_dead_letters{stream=\"POLYSHOP_ORDER\"} 2\n";
        let doc = document(
            &[
                scraped("order", "http://a", Some(true), order),
                scraped("order", "http://b", Some(false), other),
                scraped("payment", "http://c", None, ""),
            ],
            &["order".to_owned()],
            110_000,
        );
        assert_eq!(doc.instances.len(), 3);
        assert_eq!(doc.instances[0].uptime_seconds, 10);
        assert_eq!(doc.instances[1].health, Health::NotServing as i32);
        assert_eq!(doc.instances[1].failing, vec!["database: gone".to_owned()]);
        assert_eq!(doc.instances[2].health, Health::Unreachable as i32);
        let order_stats = &doc.registry[0];
        assert_eq!(
            (
                order_stats.total,
                order_stats.healthy,
                order_stats.unhealthy
            ),
            (2, 1, 1)
        );
        let b = &doc.breakers[0];
        assert_eq!(
            (b.caller.as_str(), b.upstream.as_str(), b.state),
            ("order", "payment", BreakerState::Open as i32)
        );
        assert_eq!(
            (b.calls, b.successes, b.failures, b.rejections),
            (8, 3, 5, 2)
        );
        assert_eq!(doc.dead_letters[0].count, 2, "max over instances");
        assert_eq!(doc.dead_letters[0].oldest_age_seconds, 30);
        assert_eq!(doc.consumers[0].pending, 2);
        let sagas = doc.sagas.expect("sagas");
        assert_eq!(sagas.counts[0].count, 4);
        assert_eq!(sagas.oldest_pending_age_seconds, 7);
        let op = &doc.operations[0];
        assert_eq!((op.count, op.errors_ppm), (10, 100_000));
        assert_eq!(op.p50_us, 5_000);
        assert_eq!(op.p99_us, 50_000, "past the last bound: that bound");
        assert!(doc.dependencies.iter().any(|d| d.from == "order"
            && d.to == "payment"
            && d.kind == DependencyKind::Consumes as i32));
        assert!(doc.dependencies.iter().any(|d| d.from == "order"
            && d.to == "inventory"
            && d.kind == DependencyKind::Calls as i32));
        assert!(
            doc.dependencies
                .iter()
                .any(|d| d.from == "gateway" && d.to == "order")
        );
    }
}
