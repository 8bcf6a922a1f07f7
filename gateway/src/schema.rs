//! JSON Schemas (OpenAPI 3.1 dialect) of protobuf messages and enums in their proto3 JSON form,
//! with the proto comments as descriptions, collected into `components.schemas`.

use std::collections::{BTreeMap, HashMap};

use polyshop_platform::validate::{self, Constraints};
use prost_reflect::{DescriptorPool, EnumDescriptor, FieldDescriptor, Kind, MessageDescriptor};
use serde_json::{Map, Value, json};

/// Leading comments of every element of the pool, by file and source path.
#[derive(Debug, Default)]
pub struct Comments(HashMap<(String, Vec<i32>), String>);

impl Comments {
    /// Reads the source info of every file in `pool`.
    pub fn of(pool: &DescriptorPool) -> Self {
        let mut map = HashMap::new();
        for file in pool.files() {
            let Some(info) = &file.file_descriptor_proto().source_code_info else {
                continue;
            };
            for loc in &info.location {
                if let Some(text) = loc.leading_comments.as_deref() {
                    let text: Vec<&str> = text.lines().map(str::trim).collect();
                    let text = text.join("\n").trim().to_owned();
                    if !text.is_empty() {
                        map.insert((file.name().to_owned(), loc.path.clone()), text);
                    }
                }
            }
        }
        Self(map)
    }

    /// The comment at `path` in `file`.
    pub fn get(&self, file: &str, path: &[i32]) -> Option<&str> {
        self.0
            .get(&(file.to_owned(), path.to_vec()))
            .map(String::as_str)
    }

    fn message(&self, m: &MessageDescriptor) -> Option<&str> {
        self.get(m.parent_file().name(), m.path())
    }

    fn field(&self, f: &FieldDescriptor) -> Option<&str> {
        self.get(f.parent_file().name(), f.path())
    }
}

/// `#/components/schemas/<name>`.
pub fn reference(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

/// Collects the schemas that `schema_of` calls refer to.
#[derive(Debug)]
pub struct Schemas<'a> {
    comments: &'a Comments,
    /// Component schemas by full proto name.
    pub components: BTreeMap<String, Value>,
}

impl<'a> Schemas<'a> {
    /// An empty collection describing with `comments`.
    pub fn new(comments: &'a Comments) -> Self {
        Self {
            comments,
            components: BTreeMap::new(),
        }
    }

    /// A reference to `message`'s schema (or the inline schema of a well-known type).
    pub fn message(&mut self, message: &MessageDescriptor) -> Value {
        if let Some(wkt) = well_known(message) {
            return wkt;
        }
        let name = message.full_name().to_owned();
        if !self.components.contains_key(&name) {
            // Placeholder first: recursive messages refer to themselves.
            self.components.insert(name.clone(), Value::Null);
            let schema = self.object(message, &[]);
            self.components.insert(name.clone(), schema);
        }
        reference(&name)
    }

    /// The inline object schema of `message` without the fields named in `exclude`.
    pub fn object(&mut self, message: &MessageDescriptor, exclude: &[&str]) -> Value {
        let mut properties = Map::new();
        for field in message.fields() {
            if exclude.contains(&field.name()) {
                continue;
            }
            let mut schema = self.field(&field);
            if let (Some(text), Value::Object(map)) = (self.comments.field(&field), &mut schema) {
                if map.contains_key("$ref") {
                    schema = json!({ "allOf": [schema], "description": text });
                } else {
                    map.insert("description".into(), Value::String(text.to_owned()));
                }
            }
            properties.insert(field.json_name().to_owned(), schema);
        }
        let required: Vec<String> = message
            .fields()
            .filter(|f| !exclude.contains(&f.name()))
            .filter(|f| validate::constraints(f).is_some_and(|c| c.required))
            .map(|f| f.json_name().to_owned())
            .collect();
        let mut out = json!({
            "type": "object",
            "properties": properties,
            "additionalProperties": false,
        });
        if !required.is_empty() {
            out["required"] = json!(required);
        }
        if let Some(text) = self.comments.message(message) {
            out["description"] = Value::String(text.to_owned());
        }
        out
    }

    /// The schema of one field's value.
    pub fn field(&mut self, field: &FieldDescriptor) -> Value {
        if field.is_map() {
            let value = match field.kind() {
                Kind::Message(entry) => entry.map_entry_value_field().kind(),
                kind => kind,
            };
            return json!({ "type": "object", "additionalProperties": self.kind(&value) });
        }
        let item = self.kind(&field.kind());
        let mut out = if field.is_list() {
            json!({ "type": "array", "items": item })
        } else {
            item
        };
        if let Some(rules) = validate::constraints(field) {
            constrain(&mut out, field, &rules);
        }
        out
    }

    /// The schema of a value of `kind`.
    pub fn kind(&mut self, kind: &Kind) -> Value {
        match kind {
            Kind::Double | Kind::Float => json!({
                "anyOf": [
                    { "type": "number" },
                    { "type": "string", "enum": ["NaN", "Infinity", "-Infinity"] },
                ]
            }),
            Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => json!({
                "type": "integer", "format": "int32",
                "minimum": i32::MIN, "maximum": i32::MAX,
            }),
            Kind::Uint32 | Kind::Fixed32 => json!({
                "type": "integer", "minimum": 0, "maximum": u32::MAX,
            }),
            Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => json!({
                "type": "string", "format": "int64", "pattern": "^-?[0-9]{1,19}$",
            }),
            Kind::Uint64 | Kind::Fixed64 => json!({
                "type": "string", "format": "uint64", "pattern": "^[0-9]{1,20}$",
            }),
            Kind::Bool => json!({ "type": "boolean" }),
            Kind::String => json!({ "type": "string" }),
            Kind::Bytes => json!({ "type": "string", "format": "byte" }),
            Kind::Enum(e) => self.enumeration(e),
            Kind::Message(m) => self.message(m),
        }
    }

    fn enumeration(&mut self, e: &EnumDescriptor) -> Value {
        let name = e.full_name().to_owned();
        if e.full_name() == "google.protobuf.NullValue" {
            return json!({ "type": "null" });
        }
        if !self.components.contains_key(&name) {
            let names: Vec<String> = e.values().map(|v| v.name().to_owned()).collect();
            let mut schema = json!({ "type": "string", "enum": names });
            if let Some(text) = self.comments.get(e.parent_file().name(), e.path()) {
                schema["description"] = Value::String(text.to_owned());
            }
            self.components.insert(name.clone(), schema);
        }
        reference(&name)
    }
}

/// Adds the contract's `buf.validate` rules of `field` to its schema `out`: what a client
/// generated from the document can check before sending (issue 21).
fn constrain(out: &mut Value, field: &FieldDescriptor, rules: &Constraints) {
    if field.is_list() {
        if let Some(n) = rules.min_items {
            out["minItems"] = json!(n);
        }
        if let Some(n) = rules.max_items {
            out["maxItems"] = json!(n);
        }
    }
    let target = if field.is_list() {
        &mut out["items"]
    } else {
        out
    };
    match field.kind() {
        Kind::String => {
            if let Some(n) = rules.min_length.filter(|_| !rules.zero_allowed) {
                target["minLength"] = json!(n);
            }
            if let Some(n) = rules.max_length {
                target["maxLength"] = json!(n);
            }
            if let Some(p) = &rules.pattern {
                // An ignored zero value (the empty string) is accepted whatever the pattern.
                target["pattern"] = if rules.zero_allowed {
                    json!(format!("^$|{p}"))
                } else {
                    json!(p)
                };
            }
            if rules.email {
                target["format"] = json!("email");
            }
        }
        // 64-bit numbers are JSON strings; their schemas keep the digits pattern.
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => {
            if let Some(n) = rules.minimum {
                target["minimum"] = json!(n);
            }
            if let Some(n) = rules.maximum {
                target["maximum"] = json!(n);
            }
        }
        Kind::Enum(_) => {
            if let Some(names) = &rules.enum_names {
                *target = json!({ "allOf": [target.clone()], "enum": names });
            }
        }
        _ => {}
    }
}

/// Inline schemas of the well-known types, in their special JSON forms.
fn well_known(message: &MessageDescriptor) -> Option<Value> {
    let wrapper = |inner: Value| json!({ "anyOf": [inner, { "type": "null" }] });
    Some(match message.full_name() {
        "google.protobuf.Timestamp" => json!({ "type": "string", "format": "date-time" }),
        "google.protobuf.Duration" => {
            json!({ "type": "string", "pattern": "^-?[0-9]+(\\.[0-9]{1,9})?s$" })
        }
        "google.protobuf.FieldMask" => json!({ "type": "string" }),
        "google.protobuf.Empty" => json!({ "type": "object", "additionalProperties": false }),
        "google.protobuf.Struct" => json!({ "type": "object" }),
        "google.protobuf.Value" => json!({}),
        "google.protobuf.ListValue" => json!({ "type": "array" }),
        "google.protobuf.Any" => json!({
            "type": "object",
            "properties": { "@type": { "type": "string" } },
            "required": ["@type"],
        }),
        "google.protobuf.StringValue" => wrapper(json!({ "type": "string" })),
        "google.protobuf.BytesValue" => wrapper(json!({ "type": "string", "format": "byte" })),
        "google.protobuf.BoolValue" => wrapper(json!({ "type": "boolean" })),
        "google.protobuf.Int32Value" | "google.protobuf.UInt32Value" => {
            wrapper(json!({ "type": "integer" }))
        }
        "google.protobuf.Int64Value" | "google.protobuf.UInt64Value" => {
            wrapper(json!({ "type": "string", "pattern": "^-?[0-9]+$" }))
        }
        "google.protobuf.FloatValue" | "google.protobuf.DoubleValue" => {
            wrapper(json!({ "type": "number" }))
        }
        _ => return None,
    })
}
