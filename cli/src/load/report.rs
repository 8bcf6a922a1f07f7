//! The end-of-run report in `--report DIR`: `report.json` (the numbers), `report.md` (tables)
//! and `report.html` (tables plus throughput and latency charts as inline SVG).

use std::{fmt::Write, path::Path};

use anyhow::Context;
use serde_json::{Value, json};

use super::{
    chart::{Series, line_chart},
    drive::{Model, Plan},
    journey::Journey,
    stats::{Stats, percentile_ms},
};

/// Builds the JSON document of a run against `url`.
pub fn summary(url: &str, plan: &Plan, stats: &Stats) -> Value {
    let seconds = plan.duration.as_secs_f64().max(1e-9);
    let mut all = stats.latencies_us();
    let journeys: serde_json::Map<String, Value> = stats
        .journeys
        .iter()
        .map(|(journey, counts)| {
            let mut l = counts.latencies_us.clone();
            let value = json!({
                "count": counts.count,
                "failed": counts.failed,
                "latency_ms": latency(&mut l),
            });
            (journey.name().to_owned(), value)
        })
        .collect();
    let timeline: Vec<Value> = stats
        .seconds
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let mut l = s.latencies_us.clone();
            json!({
                "second": i,
                "requests": s.requests,
                "errors": s.errors,
                "journeys": s.journeys,
                "dropped": s.dropped,
                "latency_ms": latency(&mut l),
            })
        })
        .collect();
    let (model, rate, users) = match plan.model {
        Model::Open { rate } => ("open", json!(rate), Value::Null),
        Model::Closed { users } => ("closed", Value::Null, json!(users)),
    };
    let mix: serde_json::Map<String, Value> = plan
        .mix
        .weights()
        .iter()
        .map(|(j, w)| (j.name().to_owned(), json!(w)))
        .collect();
    json!({
        "url": url,
        "model": model,
        "rate": rate,
        "users": users,
        "duration_secs": plan.duration.as_secs_f64(),
        "ramp_up_secs": plan.ramp_up.as_secs_f64(),
        "max_in_flight": plan.max_in_flight,
        "mix": mix,
        "totals": {
            "requests": stats.requests(),
            "errors": stats.errors(),
            "journeys": stats.journeys.values().map(|c| c.count).sum::<u64>(),
            "journeys_failed": stats.journeys.values().map(|c| c.failed).sum::<u64>(),
            "dropped": stats.dropped(),
            "orders_created": stats.orders_created,
            "requests_per_sec": round2(f64_of(stats.requests()) / seconds),
            "latency_ms": latency(&mut all),
        },
        "journeys": journeys,
        "errors_by_status": stats.errors_by_status,
        "errors_by_step": stats.errors_by_step,
        "timeline": timeline,
    })
}

/// Writes `report.json`, `report.md` and `report.html` into `dir` (made if missing).
///
/// # Errors
/// The directory or a file cannot be written.
pub fn write(dir: &Path, doc: &Value) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    let files = [
        ("report.json", serde_json::to_string_pretty(doc)?),
        ("report.md", markdown(doc)),
        ("report.html", html(doc)),
    ];
    for (name, text) in files {
        let path = dir.join(name);
        std::fs::write(&path, text).with_context(|| format!("write {}", path.display()))?;
    }
    Ok(())
}

/// The tables of the report as Markdown.
pub fn markdown(doc: &Value) -> String {
    let t = &doc["totals"];
    let l = &t["latency_ms"];
    let mut md = format!(
        "# Load report\n\n{} load on {} for {} s ({} s ramp-up).\n\n\
         | requests | req/s | errors | journeys | failed journeys | dropped | orders created | p50 ms | p90 ms | p99 ms |\n\
         |---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n\
         | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
        doc["model"].as_str().unwrap_or_default(),
        doc["url"].as_str().unwrap_or_default(),
        doc["duration_secs"],
        doc["ramp_up_secs"],
        t["requests"],
        t["requests_per_sec"],
        t["errors"],
        t["journeys"],
        t["journeys_failed"],
        t["dropped"],
        t["orders_created"],
        l["p50"],
        l["p90"],
        l["p99"],
    );
    md.push_str("\n## Journeys\n\n| journey | count | failed | p50 ms | p90 ms | p99 ms |\n|---|---:|---:|---:|---:|---:|\n");
    for journey in Journey::ALL {
        let j = &doc["journeys"][journey.name()];
        if !j.is_null() {
            let l = &j["latency_ms"];
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} |",
                journey.name(),
                j["count"],
                j["failed"],
                l["p50"],
                l["p90"],
                l["p99"]
            );
        }
    }
    for (title, key, column) in [
        ("Errors by status", "errors_by_status", "status"),
        ("Errors by journey step", "errors_by_step", "journey/step"),
    ] {
        let _ = write!(md, "\n## {title}\n\n| {column} | calls |\n|---|---:|\n");
        for (name, count) in doc[key].as_object().into_iter().flatten() {
            let _ = writeln!(md, "| {name} | {count} |");
        }
    }
    md
}

/// The report as one self-contained HTML page.
pub fn html(doc: &Value) -> String {
    let timeline = doc["timeline"].as_array().map_or(&[][..], Vec::as_slice);
    let column = |f: &dyn Fn(&Value) -> f64| timeline.iter().map(f).collect::<Vec<f64>>();
    let number = |v: &Value| v.as_f64().unwrap_or(0.0);
    let throughput = line_chart(
        "Throughput",
        "/s",
        &[
            Series {
                name: "requests/s",
                color: "#1f77b4",
                values: column(&|s| number(&s["requests"])),
            },
            Series {
                name: "journeys/s",
                color: "#2ca02c",
                values: column(&|s| number(&s["journeys"])),
            },
            Series {
                name: "errors/s",
                color: "#d62728",
                values: column(&|s| number(&s["errors"])),
            },
        ],
    );
    let latency = line_chart(
        "Latency percentiles",
        "ms",
        &[
            Series {
                name: "p50",
                color: "#1f77b4",
                values: column(&|s| number(&s["latency_ms"]["p50"])),
            },
            Series {
                name: "p90",
                color: "#ff7f0e",
                values: column(&|s| number(&s["latency_ms"]["p90"])),
            },
            Series {
                name: "p99",
                color: "#d62728",
                values: column(&|s| number(&s["latency_ms"]["p99"])),
            },
        ],
    );
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Polyshop load report</title>\
         <style>body{{font-family:sans-serif;margin:2em;max-width:1000px}}table{{border-collapse:collapse;margin:1em 0}}\
         td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}th:first-child,td:first-child{{text-align:left}}</style>\
         </head><body>\n{}\n<h2>Over time</h2>\n<figure>{throughput}</figure>\n<figure>{latency}</figure>\n</body></html>\n",
        markdown_tables_as_html(&markdown(doc)),
    )
}

/// The Markdown this module writes (headings, paragraphs, pipe tables) as HTML.
fn markdown_tables_as_html(md: &str) -> String {
    let mut out = String::new();
    let mut in_table = false;
    for line in md.lines() {
        let is_row = line.starts_with('|');
        if in_table && !is_row {
            out.push_str("</table>\n");
            in_table = false;
        }
        if let Some(title) = line.strip_prefix("## ") {
            let _ = writeln!(out, "<h2>{}</h2>", escape(title));
        } else if let Some(title) = line.strip_prefix("# ") {
            let _ = writeln!(out, "<h1>{}</h1>", escape(title));
        } else if is_row && line.contains("---") {
            continue;
        } else if is_row {
            let tag = if in_table { "td" } else { "th" };
            if !in_table {
                out.push_str("<table>\n");
                in_table = true;
            }
            let cells: String = line
                .trim_matches('|')
                .split('|')
                .map(|c| format!("<{tag}>{}</{tag}>", escape(c.trim())))
                .collect();
            let _ = writeln!(out, "<tr>{cells}</tr>");
        } else if !line.is_empty() {
            let _ = writeln!(out, "<p>{}</p>", escape(line));
        }
    }
    if in_table {
        out.push_str("</table>\n");
    }
    out
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn latency(values: &mut [u64]) -> Value {
    json!({
        "p50": round2(percentile_ms(values, 50.0)),
        "p90": round2(percentile_ms(values, 90.0)),
        "p99": round2(percentile_ms(values, 99.0)),
        "max": round2(percentile_ms(values, 100.0)),
    })
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

#[allow(clippy::cast_precision_loss)]
fn f64_of(n: u64) -> f64 {
    n as f64
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::{html, markdown, summary};
    use crate::load::{
        drive::{Model, Plan},
        journey::Journey,
        mix::{DEFAULT_MIX, Mix},
        stats::Recorder,
    };

    #[test]
    fn the_report_has_totals_errors_by_step_and_two_charts() {
        let rec = Recorder::new();
        let now = Instant::now();
        rec.request(
            Journey::Checkout,
            "CreateOrder",
            now,
            Some(tonic::Code::ResourceExhausted),
        );
        rec.request(Journey::Browse, "ListProducts", now, None);
        rec.journey(Journey::Checkout, now, false);
        let plan = Plan {
            model: Model::Open { rate: 10.0 },
            duration: Duration::from_secs(2),
            ramp_up: Duration::ZERO,
            drain: Duration::ZERO,
            max_in_flight: 1,
            mix: Mix::parse(DEFAULT_MIX).expect("mix"),
        };
        let doc = summary("http://edge", &plan, &rec.snapshot());
        assert_eq!(doc["totals"]["requests"], 2);
        assert_eq!(doc["errors_by_status"]["RESOURCE_EXHAUSTED"], 1);
        let md = markdown(&doc);
        assert!(md.contains("| checkout/CreateOrder | 1 |"), "{md}");
        let page = html(&doc);
        assert_eq!(page.matches("<svg").count(), 2);
        assert!(page.contains("<td>checkout/CreateOrder</td>"));
    }
}
