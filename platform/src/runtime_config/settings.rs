//! The settings that may change at runtime: each one's name, who reads it and its parser
//! ([`KNOWN`]), and the checks `polyshop admin config set` and a process applying a value
//! share.

use super::GATEWAY;

/// A parsed value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A `tracing` filter (`warn,polyshop_gateway=debug`).
    Filter(String),
    /// A whole number (a burst, a count).
    Count(u32),
    /// A rate per second (may be fractional).
    Rate(f64),
    /// A duration in milliseconds.
    Millis(u64),
}

impl std::fmt::Display for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Filter(s) => f.write_str(s),
            Self::Count(n) => write!(f, "{n}"),
            Self::Rate(r) => write!(f, "{r}"),
            Self::Millis(ms) => write!(f, "{ms}"),
        }
    }
}

/// Which processes read a setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Every service and the edge.
    Every,
    /// The edge only.
    Gateway,
    /// The processes named (`gateway` or contexts).
    Only(&'static [&'static str]),
}

impl Scope {
    /// Whether process `service` reads a setting of this scope.
    pub fn reads(self, service: &str) -> bool {
        match self {
            Self::Every => true,
            Self::Gateway => service == GATEWAY,
            Self::Only(services) => services.contains(&service),
        }
    }
}

/// A setting that may change at runtime.
#[derive(Debug, Clone, Copy)]
pub struct SettingSpec {
    /// Its name, the last part of the key (the config key of the same meaning, without the
    /// section).
    pub name: &'static str,
    /// Who reads it.
    pub scope: Scope,
    /// What it sets, and what it accepts.
    pub description: &'static str,
    /// Its parser and validator: the value, or why not.
    pub parse: fn(&str) -> Result<Value, String>,
}

/// The largest rate or burst accepted.
const MAX_RATE: u32 = 1_000_000;

fn count(text: &str) -> Result<u32, String> {
    let n: u32 = text
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a whole number"))?;
    if n > MAX_RATE {
        return Err(format!("{n} is above the maximum {MAX_RATE}"));
    }
    Ok(n)
}

fn parse_count(text: &str) -> Result<Value, String> {
    count(text).map(Value::Count)
}

fn parse_whole_rate(text: &str) -> Result<Value, String> {
    count(text).map(|n| Value::Rate(f64::from(n)))
}

fn parse_rate(text: &str) -> Result<Value, String> {
    let r: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a number"))?;
    if !r.is_finite() || r < 0.0 || r > f64::from(MAX_RATE) {
        return Err(format!("{text:?} must be a number from 0 to {MAX_RATE}"));
    }
    Ok(Value::Rate(r))
}

/// A whole number of `unit` (`""` for a plain count) within `range`, the range named as
/// `range_text` in the refusal: the parse every bounded setting shares.
fn whole_in(
    text: &str,
    range: std::ops::RangeInclusive<u64>,
    unit: &str,
    range_text: &str,
) -> Result<u64, String> {
    let of_unit = if unit.is_empty() {
        String::new()
    } else {
        format!(" of {unit}")
    };
    let n: u64 = text
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a whole number{of_unit}"))?;
    if !range.contains(&n) {
        let shown = if unit == "milliseconds" {
            format!("{n} ms")
        } else {
            n.to_string()
        };
        return Err(format!("{shown} is out of range: {range_text}"));
    }
    Ok(n)
}

/// A count within `range`, as a [`Value::Count`].
fn whole_count(
    text: &str,
    range: std::ops::RangeInclusive<u64>,
    range_text: &str,
) -> Result<Value, String> {
    let n = whole_in(text, range, "", range_text)?;
    // The ranges are far below u32::MAX.
    Ok(Value::Count(u32::try_from(n).unwrap_or(u32::MAX)))
}

fn parse_timeout(text: &str) -> Result<Value, String> {
    whole_in(
        text,
        1..=600_000,
        "milliseconds",
        "from 1 to 600000 (ten minutes)",
    )
    .map(Value::Millis)
}

fn parse_failures(text: &str) -> Result<Value, String> {
    whole_count(text, 1..=10_000, "from 1 to 10000")
}

fn parse_attempts(text: &str) -> Result<Value, String> {
    whole_count(text, 1..=10, "from 1 (no retry) to 10 attempts")
}

fn parse_ttl(text: &str) -> Result<Value, String> {
    whole_in(
        text,
        1..=60_000,
        "milliseconds",
        "from 1 to 60000 (a minute)",
    )
    .map(Value::Millis)
}

fn parse_filter(text: &str) -> Result<Value, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("an empty log filter; say e.g. info or warn,polyshop_gateway=debug".into());
    }
    tracing_subscriber::EnvFilter::builder()
        .parse(text)
        .map_err(|e| format!("{text:?} is not a log filter: {e}"))?;
    Ok(Value::Filter(text.to_owned()))
}

/// Every runtime setting; a key naming any other is refused.
pub const KNOWN: &[SettingSpec] = &[
    SettingSpec {
        name: "log",
        scope: Scope::Every,
        description: "the log filter (as `log`), e.g. warn or info,polyshop_gateway=debug",
        parse: parse_filter,
    },
    SettingSpec {
        name: "rate_per_sec",
        scope: Scope::Gateway,
        description: "tokens per second of the ordinary bucket per principal (gateway.rate_per_sec), 0 to 1000000",
        parse: parse_whole_rate,
    },
    SettingSpec {
        name: "rate_burst",
        scope: Scope::Gateway,
        description: "size of the ordinary bucket (gateway.rate_burst), 0 (no limit) to 1000000",
        parse: parse_count,
    },
    SettingSpec {
        name: "auth_rate_per_sec",
        scope: Scope::Gateway,
        description: "tokens per second of the login/register bucket per address (gateway.auth_rate_per_sec), 0 to 1000000",
        parse: parse_whole_rate,
    },
    SettingSpec {
        name: "auth_rate_burst",
        scope: Scope::Gateway,
        description: "size of the login/register bucket (gateway.auth_rate_burst), 0 (no limit) to 1000000",
        parse: parse_count,
    },
    SettingSpec {
        name: "account_rate_per_sec",
        scope: Scope::Gateway,
        description: "logins per second per account (gateway.account_rate_per_sec), a number from 0 to 1000000",
        parse: parse_rate,
    },
    SettingSpec {
        name: "account_rate_burst",
        scope: Scope::Gateway,
        description: "size of the per-account login bucket (gateway.account_rate_burst), 0 (no limit) to 1000000",
        parse: parse_count,
    },
    SettingSpec {
        name: "request_timeout_ms",
        scope: Scope::Gateway,
        description: "deadline of one upstream call at the edge (gateway.request_timeout_ms), 1 to 600000",
        parse: parse_timeout,
    },
    SettingSpec {
        name: "breaker_failures",
        scope: Scope::Only(&[GATEWAY, "order"]),
        description: "consecutive failures that open a circuit to an upstream (gateway.breaker_failures, order.breaker_failures), 1 to 10000",
        parse: parse_failures,
    },
    SettingSpec {
        name: "breaker_cool_down_ms",
        scope: Scope::Only(&[GATEWAY, "order"]),
        description: "how long an open circuit fails fast before it lets a probe through (gateway.breaker_cool_down_ms, order.breaker_cool_down_ms), 1 to 600000",
        parse: parse_timeout,
    },
    SettingSpec {
        name: "call_attempts",
        scope: Scope::Only(&["order"]),
        description: "the retry budget: attempts per idempotent call to a saga participant, the first included (order.call_attempts), 1 to 10",
        parse: parse_attempts,
    },
    SettingSpec {
        name: "cache_ttl_ms",
        scope: Scope::Only(&["catalog", "user"]),
        description: "how long a cached product (catalog) or account (user) is served before a read goes to the store, 1 to 60000",
        parse: parse_ttl,
    },
];

/// The setting named `name`, if known.
pub fn spec(name: &str) -> Option<&'static SettingSpec> {
    KNOWN.iter().find(|s| s.name == name)
}

/// The known settings' names, comma-separated.
pub fn names() -> String {
    KNOWN.iter().map(|s| s.name).collect::<Vec<_>>().join(", ")
}

/// The processes that read runtime settings: every context that runs as a service, and the
/// edge.
pub fn services() -> Vec<&'static str> {
    crate::events::streams::contexts()
        .chain([GATEWAY])
        .collect()
}

/// The settings `service` reads.
pub fn settings_of(service: &str) -> impl Iterator<Item = &'static SettingSpec> + '_ {
    KNOWN.iter().filter(move |s| s.scope.reads(service))
}

/// Whether `env` may be an environment name (a key part of its own).
pub fn valid_environment(env: &str) -> bool {
    (1..=32).contains(&env.len())
        && env
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// Checks that `service` reads `setting` and that `value` is a good value of it: the value,
/// or why not.
///
/// # Errors
/// An unknown service or setting, a setting the service does not read, or a bad value.
pub fn validate(service: &str, setting: &str, value: &str) -> Result<Value, String> {
    let spec = spec_for(service, setting)?;
    (spec.parse)(value).map_err(|why| format!("{service}.{setting}: {why}"))
}

/// The spec of `setting` for `service`.
///
/// # Errors
/// An unknown service or setting, or a setting the service does not read.
pub fn spec_for(service: &str, setting: &str) -> Result<&'static SettingSpec, String> {
    if !services().contains(&service) {
        return Err(format!(
            "unknown service {service:?}; known: {}",
            services().join(", ")
        ));
    }
    let spec =
        spec(setting).ok_or_else(|| format!("unknown setting {setting:?}; known: {}", names()))?;
    if !spec.scope.reads(service) {
        let readers = match spec.scope {
            Scope::Every => String::new(),
            Scope::Gateway => GATEWAY.to_owned(),
            Scope::Only(services) => services.join(", "),
        };
        return Err(format!(
            "{setting} is a setting of {readers} only, not of {service}"
        ));
    }
    Ok(spec)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_setting_parses_its_values_and_refuses_others_with_a_reason() {
        assert_eq!(
            validate("gateway", "rate_burst", " 20 "),
            Ok(Value::Count(20))
        );
        assert_eq!(
            validate("gateway", "rate_per_sec", "5"),
            Ok(Value::Rate(5.0))
        );
        assert_eq!(
            validate("gateway", "account_rate_per_sec", "0.2"),
            Ok(Value::Rate(0.2))
        );
        assert_eq!(
            validate("gateway", "request_timeout_ms", "2500"),
            Ok(Value::Millis(2500))
        );
        assert_eq!(
            validate("order", "log", "warn,polyshop_order=debug"),
            Ok(Value::Filter("warn,polyshop_order=debug".into()))
        );
        for (service, setting, value, why) in [
            ("gateway", "rate_burst", "lots", "not a whole number"),
            ("gateway", "rate_burst", "-1", "not a whole number"),
            ("gateway", "rate_burst", "2000000", "above the maximum"),
            ("gateway", "rate_per_sec", "1.5", "not a whole number"),
            ("gateway", "account_rate_per_sec", "NaN", "from 0 to"),
            ("gateway", "account_rate_per_sec", "-0.5", "from 0 to"),
            ("gateway", "request_timeout_ms", "0", "out of range"),
            ("gateway", "log", "", "empty log filter"),
            ("gateway", "log", "info,[[", "not a log filter"),
            ("catalog", "rate_burst", "5", "gateway only"),
            ("catalog", "breaker_failures", "5", "gateway, order only"),
            ("order", "breaker_failures", "0", "out of range"),
            ("order", "call_attempts", "11", "out of range"),
            ("order", "call_attempts", "three", "not a whole number"),
            ("user", "cache_ttl_ms", "600000", "out of range"),
            ("gateway", "cache_ttl_ms", "50", "catalog, user only"),
            ("gateway", "no_such", "5", "unknown setting"),
            ("shop", "log", "info", "unknown service"),
        ] {
            let err = validate(service, setting, value).expect_err(value);
            assert!(err.contains(why), "{service} {setting} {value}: {err}");
        }
    }

    #[test]
    fn every_process_reads_the_log_filter_and_only_the_edge_its_limits() {
        assert!(services().contains(&"order") && services().contains(&"gateway"));
        let order: Vec<_> = settings_of("order").map(|s| s.name).collect();
        assert_eq!(
            order,
            [
                "log",
                "breaker_failures",
                "breaker_cool_down_ms",
                "call_attempts"
            ]
        );
        let catalog: Vec<_> = settings_of("catalog").map(|s| s.name).collect();
        assert_eq!(catalog, ["log", "cache_ttl_ms"]);
        assert_eq!(
            settings_of("gateway").count(),
            KNOWN.len() - 2,
            "all but call_attempts and cache_ttl_ms"
        );
        assert!(valid_environment("prod-eu_1"));
        for bad in ["", "Prod", "a.b", "a>", &"x".repeat(33)] {
            assert!(!valid_environment(bad), "{bad}");
        }
    }
}
