//! Proto types as GraphQL types: messages become objects (and `…Input` input objects),
//! enums keep their value names, fields their proto3 JSON names. Values keep proto3 JSON's
//! exactness: 64-bit integers (money's minor units among them) are strings, never floats.

use std::collections::{BTreeMap, HashMap};

use async_graphql::{
    Name, Value as GqlValue,
    dynamic::{
        Enum, EnumItem, Field, FieldFuture, FieldValue, InputObject, InputValue, Object, Scalar,
        TypeRef,
    },
};
use prost_reflect::{DescriptorPool, EnumDescriptor, FieldDescriptor, Kind, MessageDescriptor};
use serde_json::Value as Json;

/// The scalar for values with no fixed shape (maps, `Struct`, `Any`).
pub const JSON_SCALAR: &str = "JSON";

/// GraphQL names of proto messages and enums: the name inside its package (nested names
/// joined), prefixed with the package (`CatalogV2Product`) only where two packages share it.
#[derive(Debug, Default)]
pub struct Names(HashMap<String, String>);

impl Names {
    /// Names every message and enum of `pool`.
    pub fn of(pool: &DescriptorPool) -> Self {
        let mut local: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
        let all = pool
            .all_messages()
            .map(|m| (m.full_name().to_owned(), m.package_name().to_owned()))
            .chain(
                pool.all_enums()
                    .map(|e| (e.full_name().to_owned(), e.package_name().to_owned())),
            );
        for (full, package) in all {
            let short = full
                .strip_prefix(&format!("{package}."))
                .unwrap_or(&full)
                .replace('.', "");
            local.entry(short).or_default().push((full, package));
        }
        let mut names = HashMap::new();
        for (short, owners) in local {
            let shared = owners.len() > 1;
            for (full, package) in owners {
                let name = if shared {
                    format!("{}{short}", pascal(package.trim_start_matches("polyshop.")))
                } else {
                    short.clone()
                };
                names.insert(full, name);
            }
        }
        Self(names)
    }

    /// The GraphQL name of the message or enum `full_name`.
    pub fn get(&self, full_name: &str) -> String {
        self.0
            .get(full_name)
            .cloned()
            .unwrap_or_else(|| full_name.replace('.', "_"))
    }
}

/// `catalog.v2` → `CatalogV2`, `get_product` → `GetProduct`.
pub fn pascal(text: &str) -> String {
    text.split(['.', '_'])
        .filter(|p| !p.is_empty())
        .map(|p| {
            let mut chars = p.chars();
            chars.next().map_or_else(String::new, |c| {
                c.to_ascii_uppercase().to_string() + chars.as_str()
            })
        })
        .collect()
}

/// `GetProduct` → `getProduct`.
pub fn lower_camel(name: &str) -> String {
    let mut chars = name.chars();
    chars.next().map_or_else(String::new, |c| {
        c.to_ascii_lowercase().to_string() + chars.as_str()
    })
}

/// What a field's values are, for writing them out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leaf {
    /// A message shown as an object type.
    Object,
    /// An enum: proto3 JSON writes its value name.
    Enum,
    /// Anything written as is (scalars, well-known types, maps).
    Scalar,
}

/// The scalar a well-known type is written as in proto3 JSON, if `message` is one.
fn well_known(message: &MessageDescriptor) -> Option<&'static str> {
    Some(match message.full_name() {
        "google.protobuf.Timestamp"
        | "google.protobuf.Duration"
        | "google.protobuf.FieldMask"
        | "google.protobuf.StringValue"
        | "google.protobuf.BytesValue"
        | "google.protobuf.Int64Value"
        | "google.protobuf.UInt64Value" => TypeRef::STRING,
        "google.protobuf.Int32Value" | "google.protobuf.UInt32Value" => TypeRef::INT,
        "google.protobuf.FloatValue" | "google.protobuf.DoubleValue" => TypeRef::FLOAT,
        "google.protobuf.BoolValue" => TypeRef::BOOLEAN,
        "google.protobuf.Struct"
        | "google.protobuf.Value"
        | "google.protobuf.ListValue"
        | "google.protobuf.Any"
        | "google.protobuf.Empty" => JSON_SCALAR,
        _ => return None,
    })
}

/// The named type of `field` (without list or non-null) and how its values are written.
/// `input` picks the input object of a message.
pub fn named_type(field: &FieldDescriptor, names: &Names, input: bool) -> (String, Leaf) {
    if field.is_map() {
        return (JSON_SCALAR.into(), Leaf::Scalar);
    }
    let scalar = |s: &str| (s.to_owned(), Leaf::Scalar);
    match field.kind() {
        Kind::Double | Kind::Float => scalar(TypeRef::FLOAT),
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 | Kind::Uint32 | Kind::Fixed32 => {
            scalar(TypeRef::INT)
        }
        // proto3 JSON writes 64-bit integers as strings: no client rounds them.
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 | Kind::Uint64 | Kind::Fixed64 => {
            scalar(TypeRef::STRING)
        }
        Kind::Bool => scalar(TypeRef::BOOLEAN),
        Kind::String | Kind::Bytes => scalar(TypeRef::STRING),
        Kind::Enum(e) => (names.get(e.full_name()), Leaf::Enum),
        Kind::Message(m) => match well_known(&m) {
            Some(s) => scalar(s),
            None if input => (format!("{}Input", names.get(m.full_name())), Leaf::Object),
            None => (names.get(m.full_name()), Leaf::Object),
        },
    }
}

/// `named` as a list when `field` is repeated (a map is one JSON value).
pub fn type_ref(field: &FieldDescriptor, named: String) -> TypeRef {
    if field.is_list() {
        TypeRef::named_nn_list(named)
    } else {
        TypeRef::named(named)
    }
}

/// A GraphQL enum with `desc`'s value names.
pub fn enum_type(desc: &EnumDescriptor, names: &Names) -> Enum {
    Enum::new(names.get(desc.full_name())).items(desc.values().map(|v| EnumItem::new(v.name())))
}

/// The input object of `desc`: its fields by proto3 JSON name, every one optional as in proto3.
pub fn input_object(desc: &MessageDescriptor, names: &Names) -> InputObject {
    let mut object = InputObject::new(format!("{}Input", names.get(desc.full_name())));
    for field in desc.fields() {
        let (named, _) = named_type(&field, names, true);
        object = object.field(InputValue::new(field.json_name(), type_ref(&field, named)));
    }
    if desc.fields().len() == 0 {
        object = object.field(InputValue::new(EMPTY, TypeRef::named(TypeRef::BOOLEAN)));
    }
    object
}

/// The one field of a message without fields (GraphQL types need one); always null.
const EMPTY: &str = "_empty";

/// The object type of `desc`, reading each field from its proto3 JSON form.
pub fn object(desc: &MessageDescriptor, names: &Names) -> Object {
    let mut object = Object::new(names.get(desc.full_name()));
    if desc.fields().len() == 0 {
        object = object.field(Field::new(EMPTY, TypeRef::named(TypeRef::BOOLEAN), |_| {
            FieldFuture::from_value(None)
        }));
    }
    for field in desc.fields() {
        let (named, leaf) = named_type(&field, names, false);
        let key = field.json_name().to_owned();
        let list = field.is_list();
        object = object.field(Field::new(
            key.clone(),
            type_ref(&field, named),
            move |ctx| {
                let key = key.clone();
                FieldFuture::new(async move {
                    let parent = ctx.parent_value.try_downcast_ref::<Json>()?;
                    Ok(parent.get(&key).and_then(|v| output(v, leaf, list)))
                })
            },
        ));
    }
    object
}

/// A proto3 JSON value as the value of a field of kind `leaf`; `None` for null.
pub fn output(value: &Json, leaf: Leaf, list: bool) -> Option<FieldValue<'static>> {
    if list {
        let items = value.as_array()?;
        return Some(FieldValue::list(
            items.iter().filter_map(|v| output(v, leaf, false)),
        ));
    }
    match (leaf, value) {
        (_, Json::Null) => None,
        (Leaf::Object, v) => Some(FieldValue::owned_any(v.clone())),
        // An enum number this edge has no name for: nothing GraphQL can say.
        (Leaf::Enum, Json::String(name)) => {
            Some(FieldValue::value(GqlValue::Enum(Name::new(name))))
        }
        (Leaf::Enum, _) => None,
        (Leaf::Scalar, v) => GqlValue::from_json(v.clone()).ok().map(FieldValue::value),
    }
}

/// The `JSON` scalar: any value.
pub fn json_scalar() -> Scalar {
    Scalar::new(JSON_SCALAR).description("Any JSON value (maps, google.protobuf.Struct, Any).")
}

/// Every message and enum reachable from `roots` through fields, in a stable order.
pub fn reachable(roots: impl IntoIterator<Item = MessageDescriptor>) -> Reached {
    let mut reached = Reached::default();
    let mut stack: Vec<MessageDescriptor> = roots.into_iter().collect();
    while let Some(message) = stack.pop() {
        if well_known(&message).is_some()
            || reached.messages.contains_key(message.full_name())
            || message.is_map_entry()
        {
            continue;
        }
        for field in message.fields() {
            match field.kind() {
                Kind::Message(m) if m.is_map_entry() => {}
                Kind::Message(m) => stack.push(m),
                Kind::Enum(e) => {
                    reached.enums.insert(e.full_name().to_owned(), e);
                }
                _ => {}
            }
        }
        reached
            .messages
            .insert(message.full_name().to_owned(), message);
    }
    reached
}

/// Messages and enums by full name.
#[derive(Debug, Default)]
pub struct Reached {
    /// Messages (well-known types and map entries excluded).
    pub messages: BTreeMap<String, MessageDescriptor>,
    /// Enums.
    pub enums: BTreeMap<String, EnumDescriptor>,
}
