//! The docs test: every configuration key appears in `docs/operating.md` (its "Settings"
//! table) as `section.key`, with its environment variable and its default, and the table names
//! no key that does not exist. The keys and defaults come from `Settings::default()` itself,
//! serialized, so a key added to `platform/src/config.rs` fails here until it is documented.

use std::collections::BTreeMap;

use figment::providers::Env;
use polyshop_platform::{
    config::{self, Settings},
    flags,
};
use serde_json::Value;

const DOC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/operating.md");

/// The heading of the section holding the settings table.
const SECTION: &str = "## Settings";

/// A setting's row in the table: its environment variable and default cells, as written.
#[derive(Debug)]
struct Row {
    env: String,
    default: String,
}

/// How the docs write a value: `unset` for none, strings bare, lists as JSON arrays.
fn render(value: &Value) -> String {
    match value {
        Value::Null => "unset".to_owned(),
        Value::String(s) => s.clone(),
        Value::Bool(_) | Value::Number(_) | Value::Array(_) | Value::Object(_) => value.to_string(),
    }
}

/// Every key of `settings` as `section.key` (top-level keys bare) with its value as the docs
/// write it. `flags` is a map that is empty by default: its keys are the flags the code knows
/// (`flags::KNOWN`), at their configured value or else their default.
fn keys(settings: &Settings) -> BTreeMap<String, String> {
    let value = serde_json::to_value(settings).expect("Settings serializes to JSON");
    let Value::Object(top) = value else {
        panic!("Settings serializes to a JSON object");
    };
    let mut keys = BTreeMap::new();
    for (name, value) in &top {
        match (name.as_str(), value) {
            ("flags", Value::Object(set)) => {
                for flag in flags::KNOWN {
                    let value = set.get(flag.name).cloned().unwrap_or(flag.default.into());
                    keys.insert(format!("flags.{}", flag.name), render(&value));
                }
            }
            (_, Value::Object(section)) => {
                for (key, value) in section {
                    keys.insert(format!("{name}.{key}"), render(value));
                }
            }
            _ => {
                keys.insert(name.clone(), render(value));
            }
        }
    }
    keys
}

/// `POLYSHOP_<SECTION>_<KEY>`, the name `Settings::figment` maps to `section.key`.
fn env_var(key: &str) -> String {
    format!("POLYSHOP_{}", key.replace('.', "_").to_ascii_uppercase())
}

/// The cells of a table row, split on `|` but not on an escaped `\|`.
fn cells(line: &str) -> Vec<String> {
    let inner = line.trim().trim_start_matches('|').trim_end_matches('|');
    let mut cells = vec![String::new()];
    let mut chars = inner.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'|') => {
                chars.next();
                cells.last_mut().expect("one cell").push('|');
            }
            '|' => cells.push(String::new()),
            _ => cells.last_mut().expect("one cell").push(c),
        }
    }
    cells.into_iter().map(|c| c.trim().to_owned()).collect()
}

/// A cell's text without the backticks of a cell that is one code span.
fn plain(cell: &str) -> &str {
    cell.strip_prefix('`')
        .and_then(|c| c.strip_suffix('`'))
        .unwrap_or(cell)
}

/// The rows of the settings table in `doc`, by key; the problems found reading it.
fn documented(doc: &str) -> (BTreeMap<String, Row>, Vec<String>) {
    let mut problems = Vec::new();
    let section: Vec<&str> = doc
        .lines()
        .skip_while(|l| l.trim() != SECTION)
        .skip(1)
        .take_while(|l| !l.starts_with("## "))
        .collect();
    if section.is_empty() {
        problems.push(format!("docs/operating.md has no `{SECTION}` section"));
    }
    let mut table = section
        .iter()
        .skip_while(|l| !l.trim_start().starts_with('|'))
        .take_while(|l| l.trim_start().starts_with('|'));
    let header = table.next().map(|l| cells(l)).unwrap_or_default();
    let column = |name: &str| header.iter().position(|h| h == name);
    let (Some(key_at), Some(env_at), Some(default_at)) =
        (column("key"), column("environment"), column("default"))
    else {
        problems.push(format!(
            "the first table under `{SECTION}` needs the columns key, environment and default; \
             its header is {header:?}"
        ));
        return (BTreeMap::new(), problems);
    };
    let mut rows = BTreeMap::new();
    for line in table.skip(1) {
        let cells = cells(line);
        let cell = |at: usize| cells.get(at).map_or("", String::as_str);
        let key = plain(cell(key_at)).to_owned();
        let row = Row {
            env: plain(cell(env_at)).to_owned(),
            default: plain(cell(default_at)).to_owned(),
        };
        if rows.insert(key.clone(), row).is_some() {
            problems.push(format!("`{key}` has two rows"));
        }
    }
    (rows, problems)
}

#[test]
fn every_config_key_is_in_operating_md_with_its_environment_variable_and_default() {
    let doc = std::fs::read_to_string(DOC).expect("docs/operating.md is readable");
    let (rows, mut problems) = documented(&doc);
    let expected = keys(&Settings::default());
    let mut missing = Vec::new();
    for (key, default) in &expected {
        let env = env_var(key);
        match rows.get(key) {
            None => missing.push(format!("| `{key}` | `{env}` | `{default}` | … |")),
            Some(row) => {
                if row.default != *default {
                    problems.push(format!(
                        "`{key}`: the docs say the default is `{}`, the code says `{default}`",
                        row.default
                    ));
                }
                if row.env != env {
                    problems.push(format!(
                        "`{key}`: the docs name the variable `{}`, it is `{env}`",
                        row.env
                    ));
                }
            }
        }
    }
    for key in rows.keys().filter(|k| !expected.contains_key(*k)) {
        problems.push(format!("`{key}` is documented but is not a setting"));
    }
    if !missing.is_empty() {
        problems.push(format!(
            "{} setting(s) missing from the table under `{SECTION}` in docs/operating.md; \
             add rows like these (meaning from platform/src/config.rs):\n{}",
            missing.len(),
            missing.join("\n")
        ));
    }
    assert!(
        problems.is_empty(),
        "docs/operating.md is out of step with platform/src/config.rs:\n{}",
        problems.join("\n")
    );
}

/// A value for `key`'s variable that differs from its `default`, as the environment writes it.
fn probe(default: &Value) -> Option<String> {
    match default {
        Value::Null => Some("probe".to_owned()),
        Value::Bool(b) => Some((!b).to_string()),
        Value::Number(n) => n.as_u64().map(|n| (n + 1).to_string()),
        Value::String(s) => Some(match s.parse::<std::net::SocketAddr>() {
            Ok(mut addr) => {
                addr.set_port(addr.port().wrapping_add(1000));
                addr.to_string()
            }
            Err(_) => "probe".to_owned(),
        }),
        Value::Array(_) => Some(r#"["probe"]"#.to_owned()),
        Value::Object(_) => None,
    }
}

/// The settings that `POLYSHOP_*` variables `vars` give, or why they were refused.
#[allow(clippy::result_large_err)] // figment::Error is what Jail's closure must return
fn with_env(vars: &[(&str, &str)]) -> Result<Settings, String> {
    let mut result = None;
    figment::Jail::expect_with(|jail| {
        // Only the variables under test: none of the caller's POLYSHOP_* (restored afterwards).
        jail.clear_env();
        for (name, value) in vars {
            jail.set_env(name, value);
        }
        let figment = Settings::figment(
            std::path::Path::new("polyshop.toml"),
            Env::prefixed("POLYSHOP_"),
        );
        result = Some(Settings::from_figment(figment).map_err(|e| e.to_string()));
        Ok(())
    });
    result.expect("the jail ran")
}

#[test]
fn the_environment_variable_of_each_key_sets_that_key() {
    let defaults = serde_json::to_value(Settings::default()).expect("serializes");
    let flag_defaults: BTreeMap<String, Value> = flags::KNOWN
        .iter()
        .map(|f| (f.name.to_owned(), Value::Bool(f.default)))
        .collect();
    let mut problems = Vec::new();
    for (key, default) in keys(&Settings::default()) {
        let (section, name) = key.split_once('.').unwrap_or(("", key.as_str()));
        let value = match section {
            "" => &defaults[name],
            "flags" => &flag_defaults[name],
            _ => &defaults[section][name],
        };
        let env = env_var(&key);
        let Some(other) = probe(value) else { continue };
        match with_env(&[(env.as_str(), other.as_str())]) {
            Ok(settings) => {
                let got = keys(&settings).remove(&key).unwrap_or_default();
                let wanted = serde_json::from_str::<Value>(&other)
                    .map_or_else(|_| other.clone(), |v| render(&v));
                // A secret (`user.admin_password`) serializes as `<redacted>` once set: that
                // the variable set it is all the serialized settings can show.
                let secret_set = got == config::REDACTED && wanted != "unset";
                if got != wanted && !secret_set {
                    problems.push(format!(
                        "{env}={other} set `{key}` to `{got}`, not `{wanted}`"
                    ));
                }
            }
            // Values of a closed set (log_format, discovery.mode) refuse the probe: the
            // variable must at least take the default.
            Err(refused) => {
                // An unset address (discovery.dns_server) refuses the word: try an address.
                if value.is_null() && with_env(&[(env.as_str(), "127.0.0.1:1053")]).is_ok() {
                    continue;
                }
                if let Err(e) = with_env(&[(env.as_str(), default.as_str())]) {
                    problems.push(format!(
                        "{env}={default} is refused: {e} (and {other}: {refused})"
                    ));
                }
            }
        }
    }
    assert!(
        problems.is_empty(),
        "environment variables that do not set the key docs/operating.md says they set:\n{}",
        problems.join("\n")
    );
}
