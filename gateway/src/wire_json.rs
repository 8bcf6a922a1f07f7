//! Protobuf wire bytes → proto3 JSON, written straight from the bytes: the edge's path for
//! responses. Byte for byte what prost-reflect's serializer writes with default fields kept
//! (fields in number order, lowerCamel names, int64 as strings, enums as names), without
//! decoding into a `DynamicMessage` first — that decode and its allocations were most of the
//! edge's transcoding time. What it does not write the same way — map entries, `Any`,
//! `Struct`, `Value`, `ListValue`, `Duration`, `FieldMask`, a singular field sent twice, two
//! members of one oneof, anything malformed — is `None`, and the caller takes the general path.

use base64::{Engine, prelude::BASE64_STANDARD};
use prost_reflect::{FieldDescriptor, Kind, MessageDescriptor};

/// Well-known types whose JSON form this writer leaves to the general path. The float
/// wrappers are among them: prost-reflect writes their non-finite values as `null`.
const LEFT_TO_GENERAL: [&str; 8] = [
    "google.protobuf.Any",
    "google.protobuf.Duration",
    "google.protobuf.Struct",
    "google.protobuf.Value",
    "google.protobuf.ListValue",
    "google.protobuf.FieldMask",
    "google.protobuf.DoubleValue",
    "google.protobuf.FloatValue",
];

/// Deeper nesting than this is left to the general path (prost-reflect's decode limit).
const MAX_DEPTH: u32 = 100;

/// Writes the message in `bytes` as JSON to `out`; `None` when the general path must write it
/// (`out` may then hold a partial write).
#[must_use]
pub fn message(desc: &MessageDescriptor, bytes: &[u8], out: &mut Vec<u8>) -> Option<()> {
    write_message(desc, bytes, out, 0)
}

/// Writes one `field` of the message in `bytes` as JSON (`null` when it is unset and has
/// presence): the `response_body` of a route.
#[must_use]
pub fn field(
    desc: &MessageDescriptor,
    field: &FieldDescriptor,
    bytes: &[u8],
    out: &mut Vec<u8>,
) -> Option<()> {
    let fields = Fields::scan(bytes)?;
    check_oneofs(desc, &fields)?;
    let seen = fields.of(field.number());
    if seen.is_empty() && field.supports_presence() {
        out.extend_from_slice(b"null");
        return Some(());
    }
    write_field(field, seen, out, 0)
}

/// One field's value as it came off the wire.
#[derive(Clone, Copy)]
enum Wire<'a> {
    Varint(u64),
    Fixed64(u64),
    Fixed32(u32),
    Delimited(&'a [u8]),
}

/// The fields of one message, sorted by number (stably: repeated values keep their order).
struct Fields<'a>(Vec<(u32, Wire<'a>)>);

impl<'a> Fields<'a> {
    fn scan(mut rest: &'a [u8]) -> Option<Self> {
        let mut fields = Vec::with_capacity(8);
        while !rest.is_empty() {
            let key = varint(&mut rest)?;
            let number = u32::try_from(key >> 3).ok().filter(|n| *n > 0)?;
            fields.push((number, read(key & 7, &mut rest)?));
        }
        if !fields.is_sorted_by_key(|(n, _)| *n) {
            fields.sort_by_key(|(n, _)| *n);
        }
        Some(Self(fields))
    }

    fn of(&self, number: u32) -> &[(u32, Wire<'a>)] {
        let start = self.0.partition_point(|(n, _)| *n < number);
        let end = start + self.0[start..].partition_point(|(n, _)| *n == number);
        &self.0[start..end]
    }
}

/// Two members of one oneof on the wire: the last one wins, and the sort lost which that was.
fn check_oneofs(desc: &MessageDescriptor, fields: &Fields<'_>) -> Option<()> {
    for oneof in desc.oneofs() {
        let set = oneof
            .fields()
            .filter(|f| !fields.of(f.number()).is_empty())
            .count();
        if set > 1 {
            return None;
        }
    }
    Some(())
}

fn write_message(
    desc: &MessageDescriptor,
    bytes: &[u8],
    out: &mut Vec<u8>,
    depth: u32,
) -> Option<()> {
    if depth > MAX_DEPTH {
        return None;
    }
    match desc.full_name() {
        "google.protobuf.Timestamp" => return timestamp(bytes, out),
        "google.protobuf.Empty" => {
            Fields::scan(bytes)?;
            out.extend_from_slice(b"{}");
            return Some(());
        }
        "google.protobuf.Int64Value"
        | "google.protobuf.UInt64Value"
        | "google.protobuf.Int32Value"
        | "google.protobuf.UInt32Value"
        | "google.protobuf.BoolValue"
        | "google.protobuf.StringValue"
        | "google.protobuf.BytesValue" => {
            let value = desc.get_field(1)?;
            return field(desc, &value, bytes, out);
        }
        name if LEFT_TO_GENERAL.contains(&name) => return None,
        _ => {}
    }
    if desc.extensions().len() > 0 {
        return None;
    }
    let fields = Fields::scan(bytes)?;
    check_oneofs(desc, &fields)?;
    out.push(b'{');
    let mut first = true;
    for field in desc.fields() {
        let seen = fields.of(field.number());
        if seen.is_empty() && field.supports_presence() {
            continue;
        }
        if !first {
            out.push(b',');
        }
        first = false;
        string(field.json_name(), out);
        out.push(b':');
        write_field(&field, seen, out, depth)?;
    }
    out.push(b'}');
    Some(())
}

/// A field's JSON value from its occurrences on the wire (none: its default).
fn write_field(
    field: &FieldDescriptor,
    seen: &[(u32, Wire<'_>)],
    out: &mut Vec<u8>,
    depth: u32,
) -> Option<()> {
    let kind = field.kind();
    if field.is_map() {
        // Map entries can repeat a key (the last wins): left to the general path.
        return seen.is_empty().then(|| out.extend_from_slice(b"{}"));
    }
    if field.is_list() {
        out.push(b'[');
        let mut first = true;
        for &(_, wire) in seen {
            match (wire, packed_wire_type(&kind)) {
                (Wire::Delimited(mut packed), Some(wire_type)) => {
                    while !packed.is_empty() {
                        separate(&mut first, out);
                        value(&kind, read(wire_type, &mut packed)?, out, depth)?;
                    }
                }
                (wire, _) => {
                    separate(&mut first, out);
                    value(&kind, wire, out, depth)?;
                }
            }
        }
        out.push(b']');
        return Some(());
    }
    match seen {
        [] => default(&kind, out),
        [(_, wire)] => value(&kind, *wire, out, depth),
        // prost merges a repeated singular message and keeps the last scalar: rare enough
        // (no encoder in this system writes it) to leave to the general path.
        _ => None,
    }
}

/// The JSON of one value of `kind`; `None` when the wire type does not fit the kind.
fn value(kind: &Kind, wire: Wire<'_>, out: &mut Vec<u8>, depth: u32) -> Option<()> {
    // The `as` casts below are protobuf's own conversions: a varint truncated to 32 bits.
    match (kind, wire) {
        (Kind::Double, Wire::Fixed64(v)) => float(f64::from_bits(v), out),
        (Kind::Float, Wire::Fixed32(v)) => float(f32::from_bits(v), out),
        (Kind::Int32, Wire::Varint(v)) => number(v as i32, out),
        (Kind::Uint32, Wire::Varint(v)) => number(v as u32, out),
        (Kind::Sint32, Wire::Varint(v)) => {
            let v = v as u32;
            number((v >> 1) as i32 ^ -((v & 1) as i32), out);
        }
        (Kind::Fixed32, Wire::Fixed32(v)) => number(v, out),
        (Kind::Sfixed32, Wire::Fixed32(v)) => number(v as i32, out),
        (Kind::Int64, Wire::Varint(v)) => quoted_number(v as i64, out),
        (Kind::Uint64, Wire::Varint(v)) => quoted_number(v, out),
        (Kind::Sint64, Wire::Varint(v)) => quoted_number((v >> 1) as i64 ^ -((v & 1) as i64), out),
        (Kind::Fixed64, Wire::Fixed64(v)) => quoted_number(v, out),
        (Kind::Sfixed64, Wire::Fixed64(v)) => quoted_number(v as i64, out),
        (Kind::Bool, Wire::Varint(v)) => {
            out.extend_from_slice(if v == 0 { b"false" } else { b"true" })
        }
        (Kind::String, Wire::Delimited(b)) => string(std::str::from_utf8(b).ok()?, out),
        (Kind::Bytes, Wire::Delimited(b)) => {
            out.push(b'"');
            let start = out.len();
            out.resize(start + base64::encoded_len(b.len(), true)?, 0);
            let written = BASE64_STANDARD.encode_slice(b, &mut out[start..]).ok()?;
            out.truncate(start + written);
            out.push(b'"');
        }
        (Kind::Enum(e), Wire::Varint(v)) => {
            if e.full_name() == "google.protobuf.NullValue" {
                return None;
            }
            // An unknown number stays a number in proto3 but is an unknown field in proto2:
            // the general path knows which.
            string(e.get_value(v as i32)?.name(), out);
        }
        (Kind::Message(m), Wire::Delimited(b)) => write_message(m, b, out, depth + 1)?,
        _ => return None,
    }
    Some(())
}

/// The JSON of a field that is not on the wire and has no presence (proto3 implicit fields).
fn default(kind: &Kind, out: &mut Vec<u8>) -> Option<()> {
    match kind {
        Kind::Double | Kind::Float => float(0.0_f64, out),
        Kind::Int32 | Kind::Uint32 | Kind::Sint32 | Kind::Fixed32 | Kind::Sfixed32 => {
            out.push(b'0');
        }
        Kind::Int64 | Kind::Uint64 | Kind::Sint64 | Kind::Fixed64 | Kind::Sfixed64 => {
            out.extend_from_slice(b"\"0\"");
        }
        Kind::Bool => out.extend_from_slice(b"false"),
        Kind::String | Kind::Bytes => out.extend_from_slice(b"\"\""),
        Kind::Enum(e) => {
            let number = u64::from(e.default_value().number().cast_unsigned());
            return value(kind, Wire::Varint(number), out, 0);
        }
        Kind::Message(_) => return None,
    }
    Some(())
}

/// The wire type of each element of a packed repeated field; `None` for kinds never packed.
fn packed_wire_type(kind: &Kind) -> Option<u64> {
    match kind {
        Kind::Int32
        | Kind::Int64
        | Kind::Uint32
        | Kind::Uint64
        | Kind::Sint32
        | Kind::Sint64
        | Kind::Bool
        | Kind::Enum(_) => Some(0),
        Kind::Fixed32 | Kind::Sfixed32 | Kind::Float => Some(5),
        Kind::Fixed64 | Kind::Sfixed64 | Kind::Double => Some(1),
        Kind::String | Kind::Bytes | Kind::Message(_) => None,
    }
}

/// `google.protobuf.Timestamp` as RFC 3339, through the same formatter prost-reflect uses.
fn timestamp(bytes: &[u8], out: &mut Vec<u8>) -> Option<()> {
    /// 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z, the range proto3 JSON allows.
    const RANGE: std::ops::RangeInclusive<i64> = -62_135_596_800..=253_402_300_799;
    let fields = Fields::scan(bytes)?;
    let one = |number| match fields.of(number) {
        [] => Some(0),
        [(_, Wire::Varint(v))] => Some(*v),
        _ => None,
    };
    let stamp = prost_types::Timestamp {
        seconds: one(1)? as i64,
        nanos: one(2)? as i32,
    };
    if !RANGE.contains(&stamp.seconds) {
        return None;
    }
    use std::io::Write as _;
    write!(out, "\"{stamp}\"").ok()
}

fn separate(first: &mut bool, out: &mut Vec<u8>) {
    if !std::mem::take(first) {
        out.push(b',');
    }
}

fn string(s: &str, out: &mut Vec<u8>) {
    // Writing to a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

fn number<N: serde::Serialize>(n: N, out: &mut Vec<u8>) {
    let _ = serde_json::to_writer(&mut *out, &n);
}

fn quoted_number<N: serde::Serialize>(n: N, out: &mut Vec<u8>) {
    out.push(b'"');
    number(n, out);
    out.push(b'"');
}

/// Finite floats as numbers, the rest as the strings proto3 JSON names them.
fn float<F: Into<f64> + serde::Serialize + Copy>(f: F, out: &mut Vec<u8>) {
    let wide: f64 = f.into();
    if wide.is_nan() {
        out.extend_from_slice(b"\"NaN\"");
    } else if wide == f64::INFINITY {
        out.extend_from_slice(b"\"Infinity\"");
    } else if wide == f64::NEG_INFINITY {
        out.extend_from_slice(b"\"-Infinity\"");
    } else {
        number(f, out);
    }
}

/// One value of `wire_type` (0 varint, 1 fixed64, 2 length-delimited, 5 fixed32; the group
/// types are refused).
fn read<'a>(wire_type: u64, rest: &mut &'a [u8]) -> Option<Wire<'a>> {
    Some(match wire_type {
        0 => Wire::Varint(varint(rest)?),
        1 => Wire::Fixed64(u64::from_le_bytes(take(rest, 8)?.try_into().ok()?)),
        2 => {
            let len = usize::try_from(varint(rest)?).ok()?;
            Wire::Delimited(take(rest, len)?)
        }
        5 => Wire::Fixed32(u32::from_le_bytes(take(rest, 4)?.try_into().ok()?)),
        _ => return None,
    })
}

fn varint(rest: &mut &[u8]) -> Option<u64> {
    let mut value = 0_u64;
    for (i, byte) in rest.iter().enumerate().take(10) {
        // The tenth byte holds one bit; more is an overflow prost refuses.
        if i == 9 && *byte > 1 {
            return None;
        }
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            *rest = &rest[i + 1..];
            return Some(value);
        }
    }
    None
}

fn take<'a>(rest: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    if rest.len() < n {
        return None;
    }
    let (head, tail) = rest.split_at(n);
    *rest = tail;
    Some(head)
}

#[cfg(test)]
mod tests {
    use super::*;
    use polyshop_platform::contract;
    use prost::Message as _;
    use prost_reflect::{DynamicMessage, MapKey, SerializeOptions, Value};

    /// A small deterministic generator (splitmix64): the same messages on every run.
    struct Random(u64);

    impl Random {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
        fn pick<T: Copy>(&mut self, items: &[T]) -> T {
            items[usize::try_from(self.below(items.len() as u64)).expect("index")]
        }
    }

    const STRINGS: [&str; 5] = ["", "plain", "quote \" slash \\ tab \t", "ünï ✓ 🦀", "\u{1}"];

    fn scalar(kind: &Kind, rng: &mut Random, depth: u32) -> Value {
        match kind {
            Kind::Double => Value::F64(rng.pick(&[
                0.0,
                -0.0,
                1.5,
                -2.25e300,
                1e-7,
                f64::NAN,
                f64::INFINITY,
                f64::NEG_INFINITY,
            ])),
            Kind::Float => {
                Value::F32(rng.pick(&[0.0, 3.25, -1e30, 1e-7, f32::NAN, f32::NEG_INFINITY]))
            }
            Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => {
                Value::I32(rng.pick(&[0, 1, -1, i32::MIN, i32::MAX]))
            }
            Kind::Uint32 | Kind::Fixed32 => Value::U32(rng.pick(&[0, 7, u32::MAX])),
            Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => {
                Value::I64(rng.pick(&[0, 1999, -5, i64::MIN, i64::MAX]))
            }
            Kind::Uint64 | Kind::Fixed64 => Value::U64(rng.pick(&[0, 42, u64::MAX])),
            Kind::Bool => Value::Bool(rng.below(2) == 1),
            Kind::String => Value::String(rng.pick(&STRINGS).to_owned()),
            Kind::Bytes => Value::Bytes(bytes::Bytes::from(rng.pick(&STRINGS).as_bytes().to_vec())),
            Kind::Enum(e) => {
                let values: Vec<i32> = e.values().map(|v| v.number()).collect();
                Value::EnumNumber(rng.pick(&values))
            }
            Kind::Message(m) => Value::Message(random_message(m, rng, depth + 1)),
        }
    }

    fn random_message(desc: &MessageDescriptor, rng: &mut Random, depth: u32) -> DynamicMessage {
        let mut message = DynamicMessage::new(desc.clone());
        if desc.full_name() == "google.protobuf.Timestamp" {
            let seconds = rng.pick(&[0_i64, 1_764_000_000, -62_135_596_800, 253_402_300_799]);
            let nanos = rng.pick(&[0_i32, 5_000_000, 123_456_000, 999_999_999]);
            message.set_field_by_number(1, Value::I64(seconds));
            message.set_field_by_number(2, Value::I32(nanos));
            return message;
        }
        for field in desc.fields() {
            let kind = field.kind();
            let nested = matches!(kind, Kind::Message(_));
            if rng.below(3) == 0 || (nested && depth > 3) {
                continue;
            }
            let value = if field.is_map() {
                let entry = field.kind();
                let entry = entry.as_message().expect("entry");
                let key = match scalar(&entry.map_entry_key_field().kind(), rng, depth) {
                    Value::String(s) => MapKey::String(s),
                    Value::I32(n) => MapKey::I32(n),
                    Value::I64(n) => MapKey::I64(n),
                    Value::U32(n) => MapKey::U32(n),
                    Value::U64(n) => MapKey::U64(n),
                    Value::Bool(b) => MapKey::Bool(b),
                    other => panic!("map key {other:?}"),
                };
                let value = scalar(&entry.map_entry_value_field().kind(), rng, depth);
                Value::Map([(key, value)].into_iter().collect())
            } else if field.is_list() {
                let n = rng.below(4);
                Value::List((0..n).map(|_| scalar(&kind, rng, depth)).collect())
            } else {
                scalar(&kind, rng, depth)
            };
            message.set_field(&field, value);
        }
        message
    }

    fn general(message: &DynamicMessage) -> Vec<u8> {
        let options = SerializeOptions::new().skip_default_fields(false);
        let mut out = Vec::new();
        message
            .serialize_with_options(&mut serde_json::Serializer::new(&mut out), &options)
            .expect("serialize");
        out
    }

    /// Messages that hold a type this writer hands to the general path, at any depth.
    fn general_only(desc: &MessageDescriptor, seen: &mut Vec<String>) -> bool {
        if seen.iter().any(|s| s == desc.full_name()) {
            return false;
        }
        seen.push(desc.full_name().to_owned());
        desc.extensions().len() > 0
            || LEFT_TO_GENERAL.contains(&desc.full_name())
            || desc
                .fields()
                .any(|f| f.is_map() || f.kind().as_message().is_some_and(|m| general_only(m, seen)))
    }

    #[test]
    fn every_contract_message_is_written_as_the_general_path_writes_it() {
        let mut rng = Random(7);
        let mut checked = 0;
        for desc in contract::pool().all_messages() {
            let always = !general_only(&desc, &mut Vec::new());
            for _ in 0..40 {
                let message = random_message(&desc, &mut rng, 0);
                let mut out = Vec::new();
                match super::message(&desc, &message.encode_to_vec(), &mut out) {
                    Some(()) => {
                        assert_eq!(
                            String::from_utf8_lossy(&out),
                            String::from_utf8_lossy(&general(&message)),
                            "{}",
                            desc.full_name()
                        );
                        checked += 1;
                    }
                    None => assert!(!always, "{} fell back", desc.full_name()),
                }
            }
        }
        assert!(checked > 1000, "only {checked} messages written");
    }

    fn product() -> MessageDescriptor {
        contract::pool()
            .get_message_by_name("polyshop.catalog.v1.Product")
            .expect("Product")
    }

    #[test]
    fn a_response_body_field_is_written_alone_and_null_when_unset() {
        let desc = contract::pool()
            .get_message_by_name("polyshop.catalog.v1.GetProductResponse")
            .expect("GetProductResponse");
        let field = desc.get_field_by_name("product").expect("product");
        let mut out = Vec::new();
        super::field(&desc, &field, &[], &mut out).expect("written");
        assert_eq!(out, b"null");
        let mut message = DynamicMessage::new(desc.clone());
        let mut rng = Random(1);
        message.set_field(
            &field,
            Value::Message(random_message(&product(), &mut rng, 1)),
        );
        let mut out = Vec::new();
        super::field(&desc, &field, &message.encode_to_vec(), &mut out).expect("written");
        let inner = message.get_field(&field);
        let inner = general(inner.as_message().expect("message"));
        assert_eq!(
            String::from_utf8_lossy(&out),
            String::from_utf8_lossy(&inner)
        );
    }

    #[test]
    fn what_the_general_path_must_judge_is_left_to_it() {
        let desc = product();
        let id = desc.get_field_by_name("product_id").expect("product_id");
        let key = u8::try_from(id.number() << 3 | 2).expect("one-byte key");
        let mut out = Vec::new();
        // The same singular field twice: prost keeps the last, merged for messages.
        assert!(super::message(&desc, &[key, 1, b'a', key, 1, b'b'], &mut out).is_none());
        // A string that is not UTF-8.
        assert!(super::message(&desc, &[key, 1, 0xff], &mut out).is_none());
        // Truncated: a length past the end.
        assert!(super::message(&desc, &[key, 5, b'a'], &mut out).is_none());
        // An enum number the contract does not name (status = 5 of an Order).
        let order = contract::pool()
            .get_message_by_name("polyshop.order.v1.Order")
            .expect("Order");
        assert!(super::message(&order, &[5 << 3, 99], &mut out).is_none());
        assert!(super::message(&order, &[5 << 3, 2], &mut out).is_some());
        // A varint that overflows 64 bits.
        let overflow = [
            0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02,
        ];
        assert!(super::message(&desc, &overflow, &mut out).is_none());
    }
}
