//! The contract suite: rules every Polyshop proto must keep, checked against the descriptor
//! set that `build.rs` embeds. A failure names the offending RPC, message or field.

use std::collections::{BTreeMap, BTreeSet};

use prost_reflect::{
    DescriptorPool, DynamicMessage, FileDescriptor, MessageDescriptor, MethodDescriptor, Value,
};

#[path = "contracts/error_reasons.rs"]
mod error_reasons;
#[path = "contracts/validation.rs"]
mod validation;

const SERVICES: [&str; 8] = [
    "polyshop.user.v1.UserService",
    "polyshop.catalog.v1.CatalogService",
    "polyshop.catalog.v2.CatalogService",
    "polyshop.inventory.v1.InventoryService",
    "polyshop.order.v1.OrderService",
    "polyshop.payment.v1.PaymentService",
    "polyshop.notification.v1.NotificationService",
    "polyshop.storefront.v1.StorefrontService",
];

/// `polyshop.api.v1.Access` numbers.
const ACCESS_UNSPECIFIED: i32 = 0;
const ACCESS_INTERNAL: i32 = 4;
/// `google.protobuf.MethodOptions.IdempotencyLevel` numbers.
const NO_SIDE_EFFECTS: i32 = 1;

fn pool() -> DescriptorPool {
    DescriptorPool::decode(polyshop::FILE_DESCRIPTOR_SET).expect("descriptor set decodes")
}

fn our_files(pool: &DescriptorPool) -> Vec<FileDescriptor> {
    pool.files()
        .filter(|f| f.package_name().starts_with("polyshop."))
        .collect()
}

fn methods(pool: &DescriptorPool) -> Vec<MethodDescriptor> {
    pool.services()
        .filter(|s| s.package_name().starts_with("polyshop."))
        .flat_map(|s| s.methods().collect::<Vec<_>>())
        .collect()
}

fn access_of(pool: &DescriptorPool, method: &MethodDescriptor) -> i32 {
    let ext = pool
        .get_extension_by_name("polyshop.api.v1.access")
        .expect("access extension is declared");
    match method.options().get_extension(&ext).as_ref() {
        Value::EnumNumber(n) => *n,
        other => panic!("{}: access is not an enum: {other:?}", method.full_name()),
    }
}

fn http_rule(pool: &DescriptorPool, method: &MethodDescriptor) -> Option<DynamicMessage> {
    let ext = pool
        .get_extension_by_name("google.api.http")
        .expect("google.api.http is declared");
    let options = method.options();
    if !options.has_extension(&ext) {
        return None;
    }
    match options.get_extension(&ext).as_ref() {
        Value::Message(rule) => Some(rule.clone()),
        other => panic!(
            "{}: http rule is not a message: {other:?}",
            method.full_name()
        ),
    }
}

/// (HTTP method, path) of a rule and its additional bindings.
fn bindings(rule: &DynamicMessage) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for verb in ["get", "put", "post", "delete", "patch"] {
        if rule.has_field_by_name(verb) {
            let path = rule.get_field_by_name(verb).expect("field exists");
            out.push((
                verb.to_uppercase(),
                path.as_str().unwrap_or_default().to_owned(),
            ));
        }
    }
    if let Some(extra) = rule.get_field_by_name("additional_bindings")
        && let Some(list) = extra.as_list()
    {
        for binding in list {
            out.extend(bindings(
                binding.as_message().expect("binding is a message"),
            ));
        }
    }
    out
}

/// Path with variable names erased, so `/v1/x/{a}` and `/v1/x/{b}` collide as they would
/// in a router.
fn route_shape(path: &str) -> String {
    let mut shape = String::new();
    let mut depth = 0;
    for c in path.chars() {
        match c {
            '{' => {
                depth += 1;
                shape.push('*');
            }
            '}' => depth -= 1,
            _ if depth == 0 => shape.push(c),
            _ => {}
        }
    }
    shape
}

fn leading_comment(file: &FileDescriptor, path: &[i32]) -> Option<String> {
    file.file_descriptor_proto()
        .source_code_info
        .as_ref()?
        .location
        .iter()
        .find(|loc| loc.path == path)
        .and_then(|loc| loc.leading_comments.clone())
        .filter(|c| !c.trim().is_empty())
}

#[test]
fn descriptor_set_decodes_and_contains_every_service() {
    let pool = pool();
    for service in SERVICES {
        assert!(
            pool.get_service_by_name(service).is_some(),
            "{service} is missing from the descriptor set"
        );
    }
    // Imports are embedded too, so options can be read without the .proto files.
    assert!(pool.get_file_by_name("google/api/http.proto").is_some());
    assert!(
        pool.get_file_by_name("google/protobuf/timestamp.proto")
            .is_some()
    );
}

#[test]
fn every_rpc_declares_who_may_call_it() {
    let pool = pool();
    let missing: Vec<_> = methods(&pool)
        .iter()
        .filter(|m| access_of(&pool, m) == ACCESS_UNSPECIFIED)
        .map(|m| m.full_name().to_owned())
        .collect();
    assert!(
        missing.is_empty(),
        "RPCs without (polyshop.api.v1.access): {missing:?}"
    );
}

fn callers_of(pool: &DescriptorPool, method: &MethodDescriptor) -> Vec<String> {
    let ext = pool
        .get_extension_by_name("polyshop.api.v1.callers")
        .expect("callers extension is declared");
    match method.options().get_extension(&ext).as_ref() {
        Value::List(items) => items
            .iter()
            .map(|v| v.as_str().expect("callers are strings").to_owned())
            .collect(),
        other => panic!("{}: callers is not a list: {other:?}", method.full_name()),
    }
}

#[test]
fn internal_rpcs_name_their_callers_and_only_real_services_are_named() {
    const ACCESS_PUBLIC: i32 = 1;
    const ACCESS_ADMIN: i32 = 3;
    let pool = pool();
    let contexts: BTreeSet<String> = SERVICES
        .iter()
        .map(|s| s.split('.').nth(1).expect("polyshop.<context>").to_owned())
        .collect();
    let mut wrong = Vec::new();
    for method in methods(&pool) {
        let callers = callers_of(&pool, &method);
        let access = access_of(&pool, &method);
        if access == ACCESS_INTERNAL && callers.is_empty() {
            wrong.push(format!("{}: INTERNAL without callers", method.full_name()));
        }
        if (access == ACCESS_PUBLIC || access == ACCESS_ADMIN) && !callers.is_empty() {
            // Anyone may call a public method; no service may call an admin one.
            wrong.push(format!(
                "{}: callers on a PUBLIC/ADMIN method",
                method.full_name()
            ));
        }
        for caller in callers {
            if !contexts.contains(&caller)
                || method
                    .parent_service()
                    .full_name()
                    .contains(&format!(".{caller}."))
            {
                wrong.push(format!(
                    "{}: caller {caller:?} is not another context",
                    method.full_name()
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

#[test]
fn every_exposed_rpc_has_an_http_rule_and_internal_ones_have_none() {
    let pool = pool();
    for method in methods(&pool) {
        let internal = access_of(&pool, &method) == ACCESS_INTERNAL;
        let rule = http_rule(&pool, &method);
        if internal {
            assert!(
                rule.is_none(),
                "{} is INTERNAL but has an http rule",
                method.full_name()
            );
        } else {
            let rule = rule.unwrap_or_else(|| panic!("{} has no http rule", method.full_name()));
            let routes = bindings(&rule);
            assert!(
                !routes.is_empty(),
                "{} has an empty http rule",
                method.full_name()
            );
            // `polyshop.catalog.v2` routes live under `/v2/`, and so on.
            let version = method
                .parent_service()
                .package_name()
                .rsplit('.')
                .next()
                .unwrap_or_default()
                .to_owned();
            for (_, path) in routes {
                assert!(
                    path.starts_with(&format!("/{version}/")) || path.starts_with("/.well-known/"),
                    "{}: route {path} is not versioned under /{version}/",
                    method.full_name()
                );
            }
        }
    }
}

/// (year, month, day) of an RFC 3339 full-date (`2027-06-30`), if it is one; the edge's own
/// parser also refuses days a month does not have.
fn full_date(text: &str) -> Option<(u32, u32, u32)> {
    let mut parts = text.split('-').map(str::parse::<u32>);
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(Ok(y)), Some(Ok(m)), Some(Ok(d)), None)
            if text.len() == 10 && (1..=12).contains(&m) && (1..=31).contains(&d) =>
        {
            Some((y, m, d))
        }
        _ => None,
    }
}

#[test]
fn every_deprecated_service_names_its_lifecycle_and_successor() {
    let pool = pool();
    let ext = pool
        .get_extension_by_name("polyshop.api.v1.lifecycle")
        .expect("lifecycle extension is declared");
    let mut deprecated = 0;
    for service in pool
        .services()
        .filter(|s| s.package_name().starts_with("polyshop."))
    {
        let flag = |options: &DynamicMessage| {
            options
                .get_field_by_name("deprecated")
                .and_then(|v| v.as_bool())
                .unwrap_or(false)
        };
        let methods_deprecated = service.methods().any(|m| flag(&m.options()));
        let options = service.options();
        if !flag(&options) {
            assert!(
                !methods_deprecated && !options.has_extension(&ext),
                "{}: deprecate the whole service, with a lifecycle, not single methods",
                service.full_name()
            );
            continue;
        }
        deprecated += 1;
        let name = service.full_name();
        let Value::Message(lifecycle) = options.get_extension(&ext).into_owned() else {
            panic!("{name}: lifecycle is not a message");
        };
        let text = |field: &str| {
            lifecycle
                .get_field_by_name(field)
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default()
        };
        let since = full_date(&text("deprecate_date"))
            .unwrap_or_else(|| panic!("{name}: deprecate_date is not YYYY-MM-DD"));
        let sunset = full_date(&text("sunset_date"))
            .unwrap_or_else(|| panic!("{name}: sunset_date is not YYYY-MM-DD"));
        assert!(
            since < sunset,
            "{name}: the sunset comes after the deprecation"
        );
        let successor = pool
            .get_service_by_name(&text("successor"))
            .unwrap_or_else(|| panic!("{name}: successor {:?} does not exist", text("successor")));
        assert!(
            !flag(&successor.options()),
            "{name}: its successor is deprecated too"
        );
        for method in service.methods() {
            assert!(
                successor.methods().any(|m| m.name() == method.name()),
                "{}: the successor has no {}",
                name,
                method.name()
            );
        }
    }
    assert!(
        deprecated >= 1,
        "expected polyshop.catalog.v1 to be deprecated"
    );
}

#[test]
fn no_two_rpcs_share_an_http_method_and_path() {
    let pool = pool();
    let mut seen: BTreeMap<(String, String), String> = BTreeMap::new();
    for method in methods(&pool) {
        let Some(rule) = http_rule(&pool, &method) else {
            continue;
        };
        for (verb, path) in bindings(&rule) {
            let key = (verb.clone(), route_shape(&path));
            if let Some(other) = seen.insert(key, method.full_name().to_owned()) {
                panic!(
                    "{verb} {path} is bound by both {other} and {}",
                    method.full_name()
                );
            }
        }
    }
}

#[test]
fn path_variables_name_request_fields() {
    let pool = pool();
    for method in methods(&pool) {
        let Some(rule) = http_rule(&pool, &method) else {
            continue;
        };
        for (_, path) in bindings(&rule) {
            for var in path.split('{').skip(1) {
                let name = var.split(['}', '=']).next().unwrap_or_default();
                assert!(
                    method.input().get_field_by_name(name).is_some(),
                    "{}: path variable {{{name}}} is not a field of {}",
                    method.full_name(),
                    method.input().full_name()
                );
            }
        }
        let body = rule
            .get_field_by_name("body")
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        if !body.is_empty() && body != "*" {
            assert!(
                method.input().get_field_by_name(&body).is_some(),
                "{}: body field {body} does not exist",
                method.full_name()
            );
        }
    }
}

#[test]
fn reads_are_marked_free_of_side_effects() {
    let pool = pool();
    for method in methods(&pool) {
        let name = method.name();
        if name.starts_with("Get") || name.starts_with("List") || name.starts_with("BatchGet") {
            let level = method
                .options()
                .get_field_by_name("idempotency_level")
                .and_then(|v| v.as_enum_number())
                .unwrap_or_default();
            assert_eq!(
                level,
                NO_SIDE_EFFECTS,
                "{} reads but is not idempotency_level = NO_SIDE_EFFECTS",
                method.full_name()
            );
        }
    }
}

fn event_subject(pool: &DescriptorPool, message: &MessageDescriptor) -> Option<String> {
    let ext = pool
        .get_extension_by_name("polyshop.api.v1.event")
        .expect("event option");
    let options = message.options();
    if !options.has_extension(&ext) {
        return None;
    }
    options
        .get_extension(&ext)
        .as_message()
        .and_then(|m| m.get_field_by_name("subject"))
        .and_then(|v| v.as_str().map(str::to_owned))
}

#[test]
fn every_event_is_documented_and_has_a_unique_subject_in_its_context() {
    let pool = pool();
    let mut subjects = BTreeSet::new();
    let mut events = 0;
    for file in our_files(&pool)
        .iter()
        .filter(|f| f.name().ends_with("/events.proto"))
    {
        // polyshop.<context>.v1
        let context = file
            .package_name()
            .split('.')
            .nth(1)
            .expect("package has a context");
        for message in file.messages() {
            events += 1;
            let subject = event_subject(&pool, &message)
                .unwrap_or_else(|| panic!("event {} has no subject option", message.full_name()));
            assert!(
                subject.starts_with(&format!("polyshop.{context}.")),
                "{}: subject {subject} is outside polyshop.{context}.>",
                message.full_name()
            );
            assert!(
                subjects.insert(subject.clone()),
                "subject {subject} is used twice"
            );
            assert!(
                leading_comment(file, message.path()).is_some(),
                "event {} is not documented",
                message.full_name()
            );
        }
    }
    assert!(
        events >= 20,
        "expected every context's events, found {events}"
    );
}

#[test]
fn only_events_carry_an_event_subject() {
    let pool = pool();
    for file in our_files(&pool)
        .iter()
        .filter(|f| !f.name().ends_with("/events.proto"))
    {
        for message in file.messages() {
            assert!(
                event_subject(&pool, &message).is_none(),
                "{} has an event subject but is not in an events.proto",
                message.full_name()
            );
        }
    }
}

#[test]
fn every_service_rpc_message_field_and_enum_value_is_documented() {
    let pool = pool();
    let mut undocumented = Vec::new();
    for file in our_files(&pool) {
        let mut check = |path: &[i32], name: &str| {
            if leading_comment(&file, path).is_none() {
                undocumented.push(name.to_owned());
            }
        };
        for service in file.services() {
            check(service.path(), service.full_name());
            for method in service.methods() {
                check(method.path(), method.full_name());
            }
        }
        for message in file.messages() {
            check(message.path(), message.full_name());
            for field in message.fields() {
                check(field.path(), field.full_name());
            }
        }
        for en in file.enums() {
            check(en.path(), en.full_name());
            for value in en.values() {
                check(value.path(), value.full_name());
            }
        }
    }
    assert!(undocumented.is_empty(), "undocumented: {undocumented:#?}");
}

#[test]
fn money_is_never_a_float() {
    let pool = pool();
    for file in our_files(&pool) {
        for message in file.messages() {
            for field in message.fields() {
                let kind = field.kind();
                assert!(
                    !matches!(
                        kind,
                        prost_reflect::Kind::Double | prost_reflect::Kind::Float
                    ),
                    "{} is a floating-point field",
                    field.full_name()
                );
            }
        }
    }
}
