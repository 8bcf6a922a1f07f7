//! The schema, built once at start from the route table: every exposed RPC is a root field
//! (NO_SIDE_EFFECTS ones under `Query`, the rest under `Mutation`) whose arguments are its
//! request's fields, and every `(polyshop.api.v1.relations)` of a message is a field of its
//! object resolved by another RPC. INTERNAL methods are not in the table, so not here either.

use std::{
    collections::{BTreeMap, HashMap},
    sync::Arc,
};

use async_graphql::dynamic::{
    Field, FieldFuture, FieldValue, InputValue, Object, ResolverContext, SchemaBuilder, TypeRef,
};
use polyshop_platform::contract::Idempotency;
use prost_reflect::{DescriptorPool, DynamicMessage, MessageDescriptor, Value};
use serde_json::{Map, Value as Json};

use super::{
    session::{Relation, Session},
    types::{self, Leaf, Names},
};
use crate::routes::{RouteTable, Rpc};

/// What the limits need of one field: the type it selects into and whether resolving it
/// calls an upstream.
#[derive(Debug, Clone, Default)]
pub struct FieldInfo {
    /// The object type its selection set applies to, if any.
    pub target: Option<String>,
    /// One upstream call per occurrence (root fields and relations).
    pub calls: bool,
}

/// Fields per object type name, for checking a query before it runs.
pub type Shape = HashMap<String, HashMap<String, FieldInfo>>;

/// The schema builder and the shape of its types.
pub fn build(routes: &RouteTable, pool: &DescriptorPool) -> (SchemaBuilder, Shape) {
    let names = Names::of(pool);
    let mut rpcs: Vec<&Arc<Rpc>> = routes.rpcs().collect();
    rpcs.sort_by(|a, b| a.path.cmp(&b.path));
    let fields = root_names(&rpcs);
    let mut shape = Shape::new();
    let (mut query, mut mutation) = (Object::new("Query"), Object::new("Mutation"));
    let mut outputs = Vec::new();
    let mut inputs = Vec::new();
    for (rpc, name) in rpcs.iter().zip(&fields) {
        let output = rpc.method.output();
        let target = names.get(output.full_name());
        let root = if rpc.idempotency == Idempotency::NoSideEffects {
            "Query"
        } else {
            "Mutation"
        };
        shape.entry(root.into()).or_default().insert(
            name.clone(),
            FieldInfo {
                target: Some(target.clone()),
                calls: true,
            },
        );
        let field = root_field(rpc, name, target, &names);
        if root == "Query" {
            query = query.field(field);
        } else {
            mutation = mutation.field(field);
        }
        outputs.push(output);
        inputs.push(rpc.method.input());
    }
    let out = types::reachable(outputs);
    let inp = types::reachable(inputs);
    let mut builder = async_graphql::dynamic::Schema::build("Query", Some("Mutation"), None)
        .register(types::json_scalar());
    for message in out.messages.values() {
        let (object, info) =
            with_relations(types::object(message, &names), message, routes, &names);
        shape.insert(names.get(message.full_name()), info);
        builder = builder.register(object);
    }
    let mut enums: BTreeMap<_, _> = out.enums;
    enums.extend(inp.enums);
    for e in enums.values() {
        builder = builder.register(types::enum_type(e, &names));
    }
    // Requests are flattened into arguments: only messages inside them are input objects.
    let nested: std::collections::HashSet<String> = inp
        .messages
        .values()
        .flat_map(|m| m.fields())
        .filter_map(|f| match f.kind() {
            prost_reflect::Kind::Message(m) => Some(m.full_name().to_owned()),
            _ => None,
        })
        .collect();
    for message in inp
        .messages
        .values()
        .filter(|m| nested.contains(m.full_name()))
    {
        builder = builder.register(types::input_object(message, &names));
    }
    (builder.register(query).register(mutation), shape)
}

/// Root field names: the method's name in lowerCamel; where versions of a service share one,
/// the newest keeps it and older ones add their version (`getProductV1`).
fn root_names(rpcs: &[&Arc<Rpc>]) -> Vec<String> {
    let plain: Vec<String> = rpcs
        .iter()
        .map(|r| types::lower_camel(r.method.name()))
        .collect();
    let version = |r: &Rpc| {
        r.method
            .parent_service()
            .package_name()
            .rsplit('.')
            .next()
            .unwrap_or_default()
            .to_owned()
    };
    rpcs.iter()
        .zip(&plain)
        .map(|(rpc, name)| {
            let newest = rpcs
                .iter()
                .zip(&plain)
                .filter(|(_, n)| *n == name)
                .map(|(r, _)| version(r))
                .max_by_key(|v| v.trim_start_matches('v').parse::<u32>().unwrap_or(0));
            match newest {
                Some(v) if v != version(rpc) => format!("{name}{}", types::pascal(&version(rpc))),
                _ => name.clone(),
            }
        })
        .collect()
}

/// The arguments of a field calling `input`: its fields, less `skip`.
fn arguments(mut field: Field, input: &MessageDescriptor, skip: &str, names: &Names) -> Field {
    for f in input.fields().filter(|f| f.name() != skip) {
        let (named, _) = types::named_type(&f, names, true);
        field = field.argument(InputValue::new(f.json_name(), types::type_ref(&f, named)));
    }
    field
}

/// The arguments a resolver was called with, as proto3 JSON.
pub fn args_json(ctx: &ResolverContext<'_>) -> async_graphql::Result<Map<String, Json>> {
    let mut map = Map::new();
    for (name, value) in ctx.args.as_index_map() {
        map.insert(name.to_string(), value.clone().into_json()?);
    }
    Ok(map)
}

fn root_field(rpc: &Arc<Rpc>, name: &str, target: String, names: &Names) -> Field {
    let call = Arc::clone(rpc);
    let field = Field::new(name, TypeRef::named(target), move |ctx| {
        let rpc = Arc::clone(&call);
        FieldFuture::new(async move {
            let session = ctx.data::<Arc<Session>>()?;
            let request = args_json(&ctx)?;
            let reply = session
                .call(&rpc, Json::Object(request))
                .await
                .map_err(|e| super::errors::graphql(&e))?;
            Ok(Some(FieldValue::owned_any(reply)))
        })
    });
    let field = if rpc.deprecated {
        field.deprecation(Some("deprecated: see its successor"))
    } else {
        field
    };
    arguments(field, &rpc.method.input(), "", names)
}

/// The relations declared on `message`, as fields of its object.
fn with_relations(
    mut object: Object,
    message: &MessageDescriptor,
    routes: &RouteTable,
    names: &Names,
) -> (Object, HashMap<String, FieldInfo>) {
    let mut info: HashMap<String, FieldInfo> = message
        .fields()
        .map(|f| {
            let (named, leaf) = types::named_type(&f, names, false);
            let target = (leaf == Leaf::Object).then_some(named);
            (
                f.json_name().to_owned(),
                FieldInfo {
                    target,
                    calls: false,
                },
            )
        })
        .collect();
    for relation in declared(message, routes) {
        let field = relation.output_field();
        let (named, leaf) = types::named_type(&field, names, false);
        info.insert(
            relation.field.clone(),
            FieldInfo {
                target: (leaf == Leaf::Object).then(|| named.clone()),
                calls: true,
            },
        );
        let list = relation.is_list();
        let ty = if list {
            TypeRef::named_nn_list(named)
        } else {
            TypeRef::named(named)
        };
        let input = relation.rpc.method.input();
        let skip = relation.request_field.clone();
        let relation = Arc::new(relation);
        let name = relation.field.clone();
        let resolver = Field::new(name, ty, move |ctx| {
            let relation = Arc::clone(&relation);
            FieldFuture::new(async move {
                let session = ctx.data::<Arc<Session>>()?;
                let parent = ctx.parent_value.try_downcast_ref::<Json>()?;
                let key = match parent.get(&relation.key) {
                    Some(Json::String(s)) if !s.is_empty() => s.clone(),
                    Some(Json::Number(n)) => n.to_string(),
                    _ => return Ok(None),
                };
                let args = args_json(&ctx)?;
                let value = session
                    .related(relation, key, args)
                    .await
                    .map_err(|e| super::errors::graphql(&e))?;
                Ok(value.as_ref().and_then(|v| types::output(v, leaf, list)))
            })
        });
        object = object.field(arguments(resolver, &input, &skip, names));
    }
    (object, info)
}

/// The relations of `message` whose RPC the edge exposes.
fn declared(message: &MessageDescriptor, routes: &RouteTable) -> Vec<Relation> {
    let pool = message.parent_pool();
    let Some(ext) = pool.get_extension_by_name("polyshop.api.v1.relations") else {
        return Vec::new();
    };
    let options = message.options();
    if !options.has_extension(&ext) {
        return Vec::new();
    }
    let Value::List(list) = options.get_extension(&ext).into_owned() else {
        return Vec::new();
    };
    list.iter()
        .filter_map(Value::as_message)
        .filter_map(|r| Relation::from_option(r, message, routes))
        .collect()
}

/// A text field of an option message.
pub fn text(option: &DynamicMessage, name: &str) -> String {
    option
        .get_field_by_name(name)
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}
