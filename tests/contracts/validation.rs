//! Validation rules are part of the contract (issue 21): every string, bytes, repeated or
//! numeric field a client sends — in a request message or in a Polyshop message a request
//! carries (`Money`, `Address`, `ReservationItem`, …) — states its shape with a
//! `buf.validate` rule, or is named in [`WITHOUT_RULE`] with the reason it has none.

use std::collections::BTreeSet;

use prost_reflect::{DescriptorPool, FieldDescriptor, Kind, MessageDescriptor, Value};

use super::{methods, pool};

/// Fields a client sends that deliberately carry no `buf.validate` rule. Keep it short: each
/// entry says why the contract cannot or should not state a shape.
const WITHOUT_RULE: &[&str] = &[
    // Assigned by the server; ignored when sent.
    "polyshop.user.v1.Address.address_id",
    // Optional free text the services store as given, with no limit today (a later step of
    // issue 21 may add one to both the domain and the contract).
    "polyshop.user.v1.Address.line2",
    "polyshop.user.v1.Address.region",
    "polyshop.order.v1.ShippingAddress.line2",
    "polyshop.order.v1.ShippingAddress.region",
    "polyshop.user.v1.ChangeUserStatusRequest.reason",
    "polyshop.order.v1.CancelOrderRequest.reason",
    // A wrong login or password is UNAUTHENTICATED, never a field violation: the answer must
    // not tell which accounts exist or what a password looks like.
    "polyshop.user.v1.LoginRequest.login",
    "polyshop.user.v1.LoginRequest.password",
    // An admin's filter by owner; any value is a valid filter (none matches nothing).
    "polyshop.order.v1.ListOrdersRequest.user_id",
    // Required only when the new status is SHIPPED: a cross-field rule (CEL), which the
    // validator's standard-rules path does not evaluate; the domain checks it.
    "polyshop.order.v1.UpdateOrderStatusRequest.tracking_number",
];

/// `buf.validate.field` on `field`, when it sets a rule (not only `ignore`).
fn has_rule(pool: &DescriptorPool, field: &FieldDescriptor) -> bool {
    let ext = pool
        .get_extension_by_name("buf.validate.field")
        .expect("buf.validate.field is declared (proto/buf/validate/validate.proto)");
    let options = field.options();
    if !options.has_extension(&ext) {
        return false;
    }
    match options.get_extension(&ext).as_ref() {
        Value::Message(rules) => rules.fields().any(|(f, _)| f.name() != "ignore"),
        other => panic!("{}: buf.validate.field is {other:?}", field.full_name()),
    }
}

/// Whether the field is one the acceptance test asks a rule of: strings, bytes, numbers and
/// lists. Booleans, enums and single messages are left out (a message's own fields are
/// checked where the message is reached).
fn needs_rule(field: &FieldDescriptor) -> bool {
    field.is_list()
        || matches!(
            field.kind(),
            Kind::String
                | Kind::Bytes
                | Kind::Int32
                | Kind::Int64
                | Kind::Uint32
                | Kind::Uint64
                | Kind::Sint32
                | Kind::Sint64
                | Kind::Fixed32
                | Kind::Fixed64
                | Kind::Sfixed32
                | Kind::Sfixed64
                | Kind::Float
                | Kind::Double
        )
}

/// Request messages of every Polyshop RPC and the Polyshop messages they carry.
fn sent_messages(pool: &DescriptorPool) -> Vec<MessageDescriptor> {
    let mut seen = BTreeSet::new();
    let mut todo: Vec<MessageDescriptor> = methods(pool).iter().map(|m| m.input()).collect();
    let mut out = Vec::new();
    while let Some(message) = todo.pop() {
        if !message.package_name().starts_with("polyshop.")
            || !seen.insert(message.full_name().to_owned())
        {
            continue;
        }
        for field in message.fields() {
            if let Kind::Message(inner) = field.kind() {
                todo.push(inner);
            }
        }
        out.push(message);
    }
    out
}

#[test]
fn every_sent_field_has_a_validation_rule_or_a_reason_for_none() {
    let pool = pool();
    let allowed: BTreeSet<&str> = WITHOUT_RULE.iter().copied().collect();
    let mut missing = Vec::new();
    let mut needless = Vec::new();
    let mut listed_and_seen = BTreeSet::new();
    for message in sent_messages(&pool) {
        for field in message.fields().filter(needs_rule) {
            let name = field.full_name().to_owned();
            let ruled = has_rule(&pool, &field);
            if allowed.contains(name.as_str()) {
                listed_and_seen.insert(name.clone());
                if ruled {
                    needless.push(name);
                }
            } else if !ruled {
                missing.push(name);
            }
        }
    }
    assert!(
        missing.is_empty(),
        "fields without a buf.validate rule (add one, or add the field to WITHOUT_RULE with \
         the reason): {missing:#?}"
    );
    assert!(
        needless.is_empty(),
        "fields in WITHOUT_RULE that have a rule now (remove them from the list): {needless:#?}"
    );
    let stale: Vec<&&str> = WITHOUT_RULE
        .iter()
        .filter(|f| !listed_and_seen.contains(**f))
        .collect();
    assert!(
        stale.is_empty(),
        "WITHOUT_RULE names fields no request sends: {stale:#?}"
    );
}

#[test]
fn required_is_only_put_on_message_fields() {
    // `required` on a proto3 scalar would reject its zero value, which the services treat as
    // "not set" with a meaning of its own (page_size 0 is the default page); strings say
    // `min_len` instead. Catch a rule that would turn today's valid request into an error.
    let pool = pool();
    let ext = pool
        .get_extension_by_name("buf.validate.field")
        .expect("buf.validate.field is declared");
    for message in sent_messages(&pool) {
        for field in message.fields() {
            let options = field.options();
            if !options.has_extension(&ext) {
                continue;
            }
            let Value::Message(rules) = options.get_extension(&ext).as_ref().clone() else {
                continue;
            };
            let required = rules
                .get_field_by_name("required")
                .is_some_and(|v| v.as_bool() == Some(true));
            if required {
                assert!(
                    matches!(field.kind(), Kind::Message(_)) && !field.is_list(),
                    "{}: `required` belongs on message fields only",
                    field.full_name()
                );
            }
        }
    }
}
