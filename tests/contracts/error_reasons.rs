//! Error reasons are part of the contract: every context declares the `ErrorInfo` reasons it
//! sends in one documented `ErrorReason` enum (`polyshop/<context>/v1/errors.proto`), each
//! value's wire name is its proto name without `ERROR_REASON_`, and servers send only values
//! of their own context's enum, through `polyshop_platform::status`.

use std::path::{Path, PathBuf};

use polyshop::{ERROR_REASON_PREFIX, Reason};
use prost_reflect::{DescriptorPool, EnumDescriptor};

use super::{leading_comment, pool};

/// Every context that answers calls, and so sends errors: its `ErrorInfo.domain` is
/// `polyshop.<context>`.
const CONTEXTS: [&str; 8] = [
    "admin",
    "user",
    "catalog",
    "inventory",
    "order",
    "payment",
    "notification",
    "storefront",
];

/// gRPC code names; a reason's comment starts with the code it is sent with (`NOT_FOUND: …`).
const CODES: [&str; 16] = [
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];

fn reasons_of(pool: &DescriptorPool, context: &str) -> EnumDescriptor {
    let name = format!("polyshop.{context}.v1.ErrorReason");
    pool.get_enum_by_name(&name)
        .unwrap_or_else(|| panic!("{name} is not declared"))
}

#[test]
fn every_context_declares_its_error_reasons_in_its_errors_proto() {
    let pool = pool();
    for service in pool
        .services()
        .filter(|s| s.package_name().starts_with("polyshop."))
    {
        let context = service.package_name().split('.').nth(1).unwrap_or_default();
        assert!(
            CONTEXTS.contains(&context),
            "{} serves calls, but its context {context} is not in CONTEXTS",
            service.full_name()
        );
    }
    for context in CONTEXTS {
        let reasons = reasons_of(&pool, context);
        let file = reasons.parent_file();
        assert_eq!(
            file.name(),
            format!("polyshop/{context}/v1/errors.proto"),
            "{} lives in its context's errors.proto",
            reasons.full_name()
        );
        let names: Vec<String> = reasons.values().map(|v| v.name().to_owned()).collect();
        assert_eq!(
            names.first().map(String::as_str),
            Some("ERROR_REASON_UNSPECIFIED")
        );
        assert!(
            names.iter().any(|n| n == "ERROR_REASON_INVALID_ARGUMENT"),
            "{}: every context sends INVALID_ARGUMENT for field violations",
            reasons.full_name()
        );
        for name in names {
            assert!(
                name.starts_with(ERROR_REASON_PREFIX),
                "{}.{name}: reasons are named ERROR_REASON_<WIRE NAME>",
                reasons.full_name()
            );
        }
    }
    let stray: Vec<String> = pool
        .all_enums()
        .filter(|e| e.name() == "ErrorReason" && e.package_name().starts_with("polyshop."))
        .map(|e| e.full_name().to_owned())
        .filter(|name| {
            !CONTEXTS
                .iter()
                .any(|c| *name == format!("polyshop.{c}.v1.ErrorReason"))
        })
        .collect();
    assert!(
        stray.is_empty(),
        "ErrorReason enums of no context: {stray:?}"
    );
}

#[test]
fn every_error_reason_is_documented_with_the_code_it_is_sent_with() {
    let pool = pool();
    let mut problems = Vec::new();
    for context in CONTEXTS {
        let reasons = reasons_of(&pool, context);
        let file = reasons.parent_file();
        if leading_comment(&file, reasons.path()).is_none() {
            problems.push(format!("{} is not documented", reasons.full_name()));
        }
        for value in reasons.values().filter(|v| v.number() != 0) {
            let comment = leading_comment(&file, value.path()).unwrap_or_default();
            let code = comment.trim().split(':').next().unwrap_or_default();
            if !CODES.contains(&code) {
                problems.push(format!(
                    "{}.{}: its comment must start with the gRPC code it is sent with and \
                     say what it means (\"NOT_FOUND: no order with this id.\"), found {comment:?}",
                    reasons.full_name(),
                    value.name()
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
}

/// Checks that `R` (the generated `ErrorReason` of `context`) goes on the wire as its proto
/// name without the prefix, with its context's domain.
fn check_wire_names<R: Reason>(context: &str, from_name: fn(&str) -> Option<R>) {
    let pool = pool();
    assert_eq!(R::DOMAIN, format!("polyshop.{context}"));
    for value in reasons_of(&pool, context).values() {
        let reason = from_name(value.name())
            .unwrap_or_else(|| panic!("{} is not generated", value.full_name()));
        assert_eq!(reason.proto_name(), value.name());
        assert_eq!(
            Some(reason.wire_name()),
            value.name().strip_prefix(ERROR_REASON_PREFIX),
            "{}",
            value.full_name()
        );
    }
}

#[test]
fn a_reason_is_sent_as_its_name_without_the_prefix_in_its_contexts_domain() {
    use polyshop::{catalog, inventory, notification, order, payment, storefront, user};
    check_wire_names("user", user::v1::ErrorReason::from_str_name);
    check_wire_names("catalog", catalog::v1::ErrorReason::from_str_name);
    check_wire_names("inventory", inventory::v1::ErrorReason::from_str_name);
    check_wire_names("order", order::v1::ErrorReason::from_str_name);
    check_wire_names("payment", payment::v1::ErrorReason::from_str_name);
    check_wire_names("notification", notification::v1::ErrorReason::from_str_name);
    check_wire_names("storefront", storefront::v1::ErrorReason::from_str_name);
    check_wire_names("admin", polyshop::admin::v1::ErrorReason::from_str_name);
    assert_eq!(
        order::v1::ErrorReason::OrderNotFound.wire_name(),
        "ORDER_NOT_FOUND"
    );
}

/// Rust sources under `dir`, recursively.
fn sources(dir: &Path, into: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            sources(&path, into);
        } else if path.extension().is_some_and(|e| e == "rs") {
            into.push(path);
        }
    }
}

/// A source's code without its comments and its trailing `#[cfg(test)] mod tests`: tests may
/// build statuses by hand to stand for an upstream's answer.
fn production_code(text: &str) -> String {
    let code = text
        .find("#[cfg(test)]\nmod tests")
        .map_or(text, |end| &text[..end]);
    code.lines()
        .filter(|line| !line.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// `ORDER_NOT_FOUND` as prost names the variant: `OrderNotFound`.
fn variant(wire: &str) -> String {
    wire.split('_')
        .map(|word| {
            let mut chars = word.chars();
            chars.next().map_or_else(String::new, |first| {
                first.to_string() + &chars.as_str().to_ascii_lowercase()
            })
        })
        .collect()
}

/// The context a qualified path ending just before `ErrorReason::` names
/// (`… catalog::v1::`), if any.
fn named_context(before: &str) -> Option<&'static str> {
    let path = before.strip_suffix("::v1::")?;
    let name: String = path
        .chars()
        .rev()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    CONTEXTS.iter().copied().find(|c| *c == name)
}

/// The crates that answer calls, each with the context whose reasons it may send (`None`:
/// it sends no `ErrorInfo` of its own).
fn answering_crates(root: &Path) -> Vec<(PathBuf, Option<&'static str>)> {
    let mut crates: Vec<(PathBuf, Option<&'static str>)> = CONTEXTS
        .iter()
        // The edge serves these two itself.
        .filter(|c| !["storefront", "admin"].contains(c))
        .map(|c| (root.join("services").join(c).join("src"), Some(*c)))
        .collect();
    // The edge serves the storefront itself.
    crates.push((root.join("gateway/src"), Some("storefront")));
    crates.push((root.join("platform/src"), None));
    crates.push((root.join("cli/src"), None));
    crates
}

#[test]
fn servers_send_only_reasons_their_own_contract_declares() {
    let pool = pool();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let status_rs = root.join("platform/src/status.rs");
    let mut problems = Vec::new();
    let mut used = 0;
    for (dir, context) in answering_crates(root) {
        let declared: Vec<String> = context
            .map(|c| {
                reasons_of(&pool, c)
                    .values()
                    .filter(|v| v.number() != 0)
                    .map(|v| variant(v.name().trim_start_matches(ERROR_REASON_PREFIX)))
                    .collect()
            })
            .unwrap_or_default();
        let mut files = Vec::new();
        sources(&dir, &mut files);
        assert!(!files.is_empty(), "no sources under {}", dir.display());
        for file in files {
            let text = std::fs::read_to_string(&file).expect("read source");
            let code = production_code(&text);
            let shown = file
                .strip_prefix(root)
                .unwrap_or(&file)
                .display()
                .to_string();
            // One place builds ErrorInfo, from a typed reason: no string can slip through.
            if file != status_rs {
                for raw in [
                    "with_error_info(",
                    "set_error_info(",
                    "ErrorInfo {",
                    "ErrorInfo::new(",
                ] {
                    if code.contains(raw) {
                        problems.push(format!(
                            "{shown}: builds an ErrorInfo by hand ({raw}); use \
                             polyshop_platform::status with an ErrorReason value"
                        ));
                    }
                }
            }
            for (at, _) in code.match_indices("ErrorReason::") {
                let rest = &code[at + "ErrorReason::".len()..];
                let name: String = rest
                    .chars()
                    .take_while(char::is_ascii_alphanumeric)
                    .collect();
                // Variants are UpperCamel; skip methods (`from_str_name`) and consts (`DOMAIN`).
                let is_variant = name.starts_with(|c: char| c.is_ascii_uppercase())
                    && name.contains(|c: char| c.is_ascii_lowercase());
                if !is_variant {
                    continue;
                }
                used += 1;
                // A path naming its context (`catalog::v1::ErrorReason::InvalidArgument`, as
                // the platform's validation layer answers for each context) is checked
                // against that context's declared reasons.
                if let Some(named) = named_context(&code[..at]) {
                    let declared_there = reasons_of(&pool, named)
                        .values()
                        .any(|v| variant(v.name().trim_start_matches(ERROR_REASON_PREFIX)) == name);
                    if !declared_there {
                        problems.push(format!(
                            "{shown}: ErrorReason::{name} is not declared by polyshop.{named}.v1.ErrorReason"
                        ));
                    }
                    continue;
                }
                match context {
                    _ if name == "Unspecified" => {
                        problems.push(format!("{shown}: ErrorReason::Unspecified is never sent"))
                    }
                    Some(c) if !declared.contains(&name) => problems.push(format!(
                        "{shown}: ErrorReason::{name} is not declared by \
                         polyshop.{c}.v1.ErrorReason (add it to polyshop/{c}/v1/errors.proto, \
                         documented)"
                    )),
                    None => problems.push(format!(
                        "{shown}: ErrorReason::{name}: this crate sends no reasons of its own"
                    )),
                    Some(_) => {}
                }
            }
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
    assert!(
        used >= 30,
        "expected every status table to name its reasons, found {used}"
    );
}
