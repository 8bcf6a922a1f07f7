//! The contracts' `buf.validate` field rules, evaluated by reflection over the embedded
//! descriptor pool ([`contract::pool`]): one plan per Polyshop message, built once, then a
//! walk of a decoded message that yields `google.rpc.BadRequest` field violations named by
//! proto path (`items[2].quantity`), worded like the services' own checks.
//!
//! Only the standard rules the contracts use are supported (see [`Unsupported`]); a rule this
//! module cannot evaluate makes building the plans fail, so the contract test
//! `every_rule_in_the_contracts_is_supported` catches it before a server could skip it
//! silently. CEL rules are not evaluated (docs/decisions/0016-validation-in-contracts.md).

use std::{collections::HashMap, sync::OnceLock};

use prost_reflect::{
    DescriptorPool, DynamicMessage, FieldDescriptor, Kind, MessageDescriptor, ReflectMessage, Value,
};
use regex::Regex;
use tonic::Status;

use crate::{
    contract,
    status::{Reason, Violations, invalid_argument},
};

/// A rule in the contracts that this module does not evaluate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsupported {
    /// The field carrying it (`polyshop.catalog.v1.ListProductsRequest.query`).
    pub field: String,
    /// The rule (`string.prefix`).
    pub rule: String,
}

impl std::fmt::Display for Unsupported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: buf.validate rule `{}` is not supported",
            self.field, self.rule
        )
    }
}

impl std::error::Error for Unsupported {}

/// Bounds of a number, inclusive (`gt`/`lt` are stored as the next value in).
#[derive(Debug, Clone, Default)]
struct Range {
    min: Option<i64>,
    max: Option<i64>,
}

#[derive(Debug, Clone, Default)]
struct StringRule {
    min_len: Option<u64>,
    max_len: Option<u64>,
    max_bytes: Option<u64>,
    pattern: Option<Regex>,
    email: bool,
}

#[derive(Debug, Clone, Default)]
struct EnumRule {
    defined_only: bool,
    allowed: Option<Vec<i32>>,
    denied: Vec<i32>,
}

#[derive(Debug, Clone, Default)]
enum Rule {
    #[default]
    None,
    String(StringRule),
    Number(Range),
    Enum(EnumRule),
}

#[derive(Debug, Clone, Default)]
struct ListRule {
    min_items: Option<u64>,
    max_items: Option<u64>,
}

/// What to check of one field.
#[derive(Debug, Clone)]
struct FieldPlan {
    field: FieldDescriptor,
    required: bool,
    ignore_if_zero: bool,
    /// For a list: its item count.
    list: Option<ListRule>,
    /// For a scalar, or each item of a list.
    value: Rule,
}

/// The plans of every Polyshop message, by full name.
#[derive(Debug)]
pub struct Plans(HashMap<String, Vec<FieldPlan>>);

impl Plans {
    /// Builds the plans of every `polyshop.*` message in `pool`.
    ///
    /// # Errors
    /// The first rule that is not supported.
    pub fn build(pool: &DescriptorPool) -> Result<Self, Unsupported> {
        let Some(ext) = pool.get_extension_by_name("buf.validate.field") else {
            return Ok(Self(HashMap::new()));
        };
        let mut plans = HashMap::new();
        for message in pool
            .all_messages()
            .filter(|m| m.package_name().starts_with("polyshop."))
        {
            let mut fields = Vec::new();
            for field in message.fields() {
                let options = field.options();
                if !options.has_extension(&ext) {
                    continue;
                }
                if let Value::Message(rules) = options.get_extension(&ext).as_ref() {
                    fields.push(plan_field(&field, rules)?);
                }
            }
            plans.insert(message.full_name().to_owned(), fields);
        }
        Ok(Self(plans))
    }

    /// Every violation of `message`, nested messages included.
    pub fn check(&self, message: &DynamicMessage) -> Violations {
        let mut violations = Violations::new();
        self.walk(message, "", &mut violations);
        violations
    }

    fn walk(&self, message: &DynamicMessage, prefix: &str, out: &mut Violations) {
        let descriptor = message.descriptor();
        let plans = self.0.get(descriptor.full_name());
        for field in descriptor.fields() {
            let path = format!("{prefix}{}", field.name());
            let plan = plans.and_then(|p| p.iter().find(|p| p.field == field));
            if let Some(plan) = plan {
                check_field(plan, message, &path, out);
            }
            // Nested Polyshop messages carry rules of their own.
            let Kind::Message(inner) = field.kind() else {
                continue;
            };
            if !self.0.contains_key(inner.full_name()) || field.is_map() {
                continue;
            }
            if field.is_list() {
                if let Value::List(items) = message.get_field(&field).as_ref() {
                    for (i, item) in items.iter().enumerate() {
                        if let Value::Message(m) = item {
                            self.walk(m, &format!("{path}[{i}]."), out);
                        }
                    }
                }
            } else if message.has_field(&field)
                && let Value::Message(m) = message.get_field(&field).as_ref()
            {
                self.walk(m, &format!("{path}."), out);
            }
        }
    }
}

fn plan_field(field: &FieldDescriptor, rules: &DynamicMessage) -> Result<FieldPlan, Unsupported> {
    let unsupported = |rule: &str| Unsupported {
        field: field.full_name().to_owned(),
        rule: rule.to_owned(),
    };
    let mut plan = FieldPlan {
        field: field.clone(),
        required: false,
        ignore_if_zero: false,
        list: None,
        value: Rule::None,
    };
    for (f, value) in rules.fields() {
        match (f.name(), value) {
            ("required", Value::Bool(b)) => plan.required = *b,
            // IGNORE_IF_ZERO_VALUE = 1; IGNORE_UNSPECIFIED = 0 is the default behaviour.
            ("ignore", Value::EnumNumber(1)) => plan.ignore_if_zero = true,
            ("ignore", Value::EnumNumber(0)) => {}
            ("repeated", Value::Message(list)) => {
                let mut rule = ListRule::default();
                for (f, value) in list.fields() {
                    match (f.name(), value) {
                        ("min_items", Value::U64(n)) => rule.min_items = Some(*n),
                        ("max_items", Value::U64(n)) => rule.max_items = Some(*n),
                        ("items", Value::Message(items)) => {
                            let item = plan_field(field, items)?;
                            if item.required || item.list.is_some() || item.ignore_if_zero {
                                return Err(unsupported("repeated.items (beyond type rules)"));
                            }
                            plan.value = item.value;
                        }
                        (other, _) => return Err(unsupported(&format!("repeated.{other}"))),
                    }
                }
                plan.list = Some(rule);
            }
            ("string", Value::Message(s)) => {
                plan.value = Rule::String(string_rule(s, &unsupported)?)
            }
            (
                kind @ ("int32" | "int64" | "sint32" | "sint64" | "sfixed32" | "sfixed64"),
                Value::Message(n),
            ) => {
                plan.value = Rule::Number(range(kind, n, &unsupported)?);
            }
            ("enum", Value::Message(e)) => plan.value = Rule::Enum(enum_rule(e, &unsupported)?),
            (other, _) => return Err(unsupported(other)),
        }
    }
    Ok(plan)
}

fn string_rule(
    rules: &DynamicMessage,
    unsupported: &dyn Fn(&str) -> Unsupported,
) -> Result<StringRule, Unsupported> {
    let mut rule = StringRule::default();
    for (f, value) in rules.fields() {
        match (f.name(), value) {
            ("min_len", Value::U64(n)) => rule.min_len = Some(*n),
            ("max_len", Value::U64(n)) => rule.max_len = Some(*n),
            ("max_bytes", Value::U64(n)) => rule.max_bytes = Some(*n),
            ("pattern", Value::String(p)) => {
                rule.pattern =
                    Some(Regex::new(p).map_err(|e| unsupported(&format!("string.pattern: {e}")))?);
            }
            ("email", Value::Bool(b)) => rule.email = *b,
            (other, _) => return Err(unsupported(&format!("string.{other}"))),
        }
    }
    Ok(rule)
}

fn range(
    kind: &str,
    rules: &DynamicMessage,
    unsupported: &dyn Fn(&str) -> Unsupported,
) -> Result<Range, Unsupported> {
    let mut range = Range::default();
    for (f, value) in rules.fields() {
        let n = match value {
            Value::I32(n) => i64::from(*n),
            Value::I64(n) => *n,
            _ => return Err(unsupported(&format!("{kind}.{}", f.name()))),
        };
        match f.name() {
            "gte" => range.min = Some(n),
            "gt" => range.min = Some(n.saturating_add(1)),
            "lte" => range.max = Some(n),
            "lt" => range.max = Some(n.saturating_sub(1)),
            other => return Err(unsupported(&format!("{kind}.{other}"))),
        }
    }
    Ok(range)
}

fn enum_rule(
    rules: &DynamicMessage,
    unsupported: &dyn Fn(&str) -> Unsupported,
) -> Result<EnumRule, Unsupported> {
    let mut rule = EnumRule::default();
    let numbers = |v: &Value| -> Vec<i32> {
        match v {
            Value::List(items) => items.iter().filter_map(Value::as_i32).collect(),
            _ => Vec::new(),
        }
    };
    for (f, value) in rules.fields() {
        match (f.name(), value) {
            ("defined_only", Value::Bool(b)) => rule.defined_only = *b,
            ("in", v) => rule.allowed = Some(numbers(v)),
            ("not_in", v) => rule.denied = numbers(v),
            (other, _) => return Err(unsupported(&format!("enum.{other}"))),
        }
    }
    Ok(rule)
}

/// protovalidate's `email`: the WHATWG (HTML) definition of a valid email address.
fn is_email(s: &str) -> bool {
    static EMAIL: OnceLock<Regex> = OnceLock::new();
    EMAIL
        .get_or_init(|| {
            Regex::new(
                r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$",
            )
            .unwrap_or_else(|e| panic!("email pattern: {e}"))
        })
        .is_match(s)
}

fn is_zero(value: &Value) -> bool {
    match value {
        Value::String(s) => s.is_empty(),
        Value::Bytes(b) => b.is_empty(),
        Value::I32(n) | Value::EnumNumber(n) => *n == 0,
        Value::I64(n) => *n == 0,
        Value::U32(n) => *n == 0,
        Value::U64(n) => *n == 0,
        Value::Bool(b) => !b,
        Value::List(items) => items.is_empty(),
        _ => false,
    }
}

fn check_field(plan: &FieldPlan, message: &DynamicMessage, path: &str, out: &mut Violations) {
    let field = &plan.field;
    let present = message.has_field(field);
    if matches!(field.kind(), Kind::Message(_)) && !field.is_list() {
        if plan.required && !present {
            out.add(path, "is required");
        }
        return;
    }
    // A field with presence (proto3 `optional`) is checked only when set.
    if field.supports_presence() && !present {
        return;
    }
    let value = message.get_field(field);
    if plan.ignore_if_zero && is_zero(&value) {
        return;
    }
    if let Some(list) = &plan.list {
        let Value::List(items) = value.as_ref() else {
            return;
        };
        let n = u64::try_from(items.len()).unwrap_or(u64::MAX);
        let too_few = list.min_items.is_some_and(|min| n < min);
        let too_many = list.max_items.is_some_and(|max| n > max);
        if too_few || too_many {
            out.add(path, count_message(list));
            if too_many {
                // Do not answer a flood of items with a flood of violations.
                return;
            }
        }
        for (i, item) in items.iter().enumerate() {
            check_value(&plan.value, field, item, &format!("{path}[{i}]"), out);
        }
        return;
    }
    check_value(&plan.value, field, &value, path, out);
}

fn count_message(list: &ListRule) -> String {
    match (list.min_items, list.max_items) {
        (Some(min), Some(max)) => format!("must have {min}–{max} items"),
        (Some(min), None) => format!("must have at least {min} items"),
        (None, Some(max)) => format!("must have at most {max} items"),
        (None, None) => String::new(),
    }
}

fn check_value(
    rule: &Rule,
    field: &FieldDescriptor,
    value: &Value,
    path: &str,
    out: &mut Violations,
) {
    match (rule, value) {
        (Rule::String(rule), Value::String(s)) => {
            if let Some(problem) = string_problem(rule, s) {
                out.add(path, problem);
            }
        }
        (Rule::Number(range), Value::I32(_) | Value::I64(_)) => {
            let n = match value {
                Value::I32(n) => i64::from(*n),
                Value::I64(n) => *n,
                _ => return,
            };
            let low = range.min.is_some_and(|min| n < min);
            let high = range.max.is_some_and(|max| n > max);
            if low || high {
                out.add(
                    path,
                    match (range.min, range.max) {
                        (Some(min), Some(max)) => format!("must be between {min} and {max}"),
                        (Some(min), None) => format!("must be at least {min}"),
                        (None, Some(max)) => format!("must be at most {max}"),
                        (None, None) => return,
                    },
                );
            }
        }
        (Rule::Enum(rule), Value::EnumNumber(n)) => {
            let Kind::Enum(descriptor) = field.kind() else {
                return;
            };
            let names = |numbers: &[i32]| -> String {
                numbers
                    .iter()
                    .map(|n| {
                        descriptor
                            .get_value(*n)
                            .map_or_else(|| n.to_string(), |v| v.name().to_owned())
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            if let Some(allowed) = &rule.allowed
                && !allowed.contains(n)
            {
                out.add(path, format!("must be one of {}", names(allowed)));
            } else if rule.denied.contains(n) {
                out.add(
                    path,
                    if *n == 0 {
                        "is required".to_owned()
                    } else {
                        format!("must not be {}", names(&[*n]))
                    },
                );
            } else if rule.defined_only && descriptor.get_value(*n).is_none() {
                out.add(path, "must be one of the values the contract defines");
            }
        }
        _ => {}
    }
}

fn string_problem(rule: &StringRule, s: &str) -> Option<String> {
    let len = u64::try_from(s.chars().count()).unwrap_or(u64::MAX);
    let short = rule.min_len.is_some_and(|min| len < min);
    let long = rule.max_len.is_some_and(|max| len > max);
    if short || long {
        return Some(match (rule.min_len, rule.max_len) {
            (Some(1), None) => "is required".to_owned(),
            (Some(min), Some(max)) => format!("must be {min}–{max} characters"),
            (Some(min), None) => format!("must be at least {min} characters"),
            (None, Some(max)) => format!("must be at most {max} characters"),
            (None, None) => return None,
        });
    }
    if let Some(max) = rule.max_bytes
        && u64::try_from(s.len()).unwrap_or(u64::MAX) > max
    {
        return Some(format!("must be at most {max} bytes"));
    }
    if rule.email && !is_email(s) {
        return Some("is not a valid email address".to_owned());
    }
    if let Some(pattern) = &rule.pattern
        && !pattern.is_match(s)
    {
        return Some(format!("must match the pattern {}", pattern.as_str()));
    }
    None
}

/// The plans of the embedded contracts.
///
/// # Panics
/// When a contract carries a rule this module does not support (the contract suite fails
/// first).
pub fn plans() -> &'static Plans {
    static PLANS: OnceLock<Plans> = OnceLock::new();
    PLANS.get_or_init(|| {
        Plans::build(contract::pool()).unwrap_or_else(|e| panic!("validation rules: {e}"))
    })
}

/// Every violation of `message` (a generated prost message of the contracts) against its
/// `buf.validate` rules.
pub fn violations<M: prost::Message + prost::Name>(message: &M) -> Violations {
    let Some(descriptor) = contract::pool().get_message_by_name(&M::full_name()) else {
        return Violations::new();
    };
    match DynamicMessage::decode(descriptor, message.encode_to_vec().as_slice()) {
        Ok(dynamic) => plans().check(&dynamic),
        Err(_) => Violations::new(),
    }
}

/// Every violation of the message of type `descriptor` encoded in `bytes`; `None` when the
/// bytes do not decode (the server's own decode answers that).
pub fn violations_of_encoded(descriptor: &MessageDescriptor, bytes: &[u8]) -> Option<Violations> {
    DynamicMessage::decode(descriptor.clone(), bytes)
        .ok()
        .map(|m| plans().check(&m))
}

/// `Ok` when `message` keeps its contract's rules, else INVALID_ARGUMENT with `reason` and a
/// BadRequest naming every violation, as the services' own checks answer.
///
/// # Errors
/// The INVALID_ARGUMENT status.
pub fn check<M: prost::Message + prost::Name>(
    message: &M,
    reason: impl Reason,
) -> Result<(), Status> {
    let v = violations(message);
    if v.is_empty() {
        Ok(())
    } else {
        Err(invalid_argument(reason, &v))
    }
}

pub mod layer;

#[cfg(test)]
#[path = "validate_tests.rs"]
mod tests;
