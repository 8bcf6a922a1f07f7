//! A query's depth, breadth and cost, measured on the document before anything runs, so a
//! query over a limit is refused without a single upstream call. The cost is the number of
//! upstream calls the query makes: one per root field and one per relation (relations are
//! batched, so a relation costs one call however many parents it has). Introspection
//! (`__schema`, `__type`) costs nothing and is not measured.

use std::collections::HashSet;

use async_graphql::parser::{
    Positioned,
    types::{DocumentOperations, ExecutableDocument, OperationType, Selection, SelectionSet},
};
use polyshop::storefront::v1::ErrorReason;
use polyshop_platform::config::GatewaySettings;
use tonic::Code;

use super::schema::Shape;
use crate::errors::EdgeError;

/// The limits of one query, from the gateway settings.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Deepest nesting of selections.
    pub depth: usize,
    /// Most fields in one selection set.
    pub breadth: usize,
    /// Most upstream calls.
    pub cost: usize,
}

impl Limits {
    /// The limits `settings` set.
    pub fn of(settings: &GatewaySettings) -> Self {
        Self {
            depth: settings.graphql_max_depth,
            breadth: settings.graphql_max_breadth,
            cost: settings.graphql_max_cost,
        }
    }
}

/// What a query measures.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Measure {
    /// Its deepest selection.
    pub depth: usize,
    /// Its widest selection set.
    pub breadth: usize,
    /// Its upstream calls.
    pub cost: usize,
}

/// Measures the operation `name` (the only one when `None`) of `request`'s query and checks
/// it. The parse is kept in `request`, so the schema does not parse the query again.
///
/// # Errors
/// INVALID_ARGUMENT for a query that does not parse or names no operation it has (the
/// schema's own validation reports anything else), RESOURCE_EXHAUSTED with reason
/// `QUERY_TOO_DEEP`, `QUERY_TOO_BROAD` or `QUERY_TOO_COSTLY` over a limit.
pub fn check(
    shape: &Shape,
    request: &mut async_graphql::Request,
    limits: Limits,
) -> Result<Measure, EdgeError> {
    let name = request.operation_name.clone();
    let name = name.as_deref();
    let document = request
        .parsed_query()
        .map_err(|e| EdgeError::bad_request(format!("the query does not parse: {}", e.message)))?;
    let operation = match (&document.operations, name) {
        (DocumentOperations::Single(op), _) => op,
        (DocumentOperations::Multiple(ops), Some(name)) => ops
            .get(name)
            .ok_or_else(|| EdgeError::bad_request(format!("no operation named {name}")))?,
        (DocumentOperations::Multiple(_), None) => {
            return Err(EdgeError::bad_request(
                "the query has several operations: name one (operationName)",
            ));
        }
    };
    let root = match operation.node.ty {
        OperationType::Query => "Query",
        OperationType::Mutation => "Mutation",
        OperationType::Subscription => {
            return Err(EdgeError::bad_request("subscriptions are not served"));
        }
    };
    let mut walk = Walk {
        shape,
        document,
        measure: Measure::default(),
        spreads: HashSet::new(),
        visited: 0,
    };
    walk.selection_set(&operation.node.selection_set, Some(root), 1);
    if walk.visited > MAX_FIELDS {
        return Err(refused(
            format!("the query selects more than {MAX_FIELDS} fields"),
            ErrorReason::QueryTooBroad,
        ));
    }
    let m = walk.measure;
    let over = |what: &str, reason: ErrorReason, value: usize, limit: usize| {
        Err(refused(
            format!("the query's {what} is {value}, over the limit of {limit}"),
            reason,
        ))
    };
    if m.depth > limits.depth {
        return over("depth", ErrorReason::QueryTooDeep, m.depth, limits.depth);
    }
    if m.breadth > limits.breadth {
        return over(
            "breadth",
            ErrorReason::QueryTooBroad,
            m.breadth,
            limits.breadth,
        );
    }
    if m.cost > limits.cost {
        return over(
            "cost (upstream calls)",
            ErrorReason::QueryTooCostly,
            m.cost,
            limits.cost,
        );
    }
    Ok(m)
}

/// RESOURCE_EXHAUSTED with the storefront contract's `reason` (the edge's own reasons).
fn refused(message: String, reason: ErrorReason) -> EdgeError {
    // Not a 429: the same query is refused again however long the client waits.
    EdgeError::from(polyshop_platform::status::with_reason(
        Code::ResourceExhausted,
        reason,
        message,
    ))
    .with_http(http::StatusCode::BAD_REQUEST)
}

struct Walk<'a> {
    shape: &'a Shape,
    document: &'a ExecutableDocument,
    measure: Measure,
    /// Fragments being expanded: a cycle (refused by validation later) stops here.
    spreads: HashSet<String>,
    /// Fields visited, fragments expanded: bounds the walk of a document whose fragments
    /// spread each other many times over.
    visited: usize,
}

/// Most fields a query may select, fragments expanded.
const MAX_FIELDS: usize = 10_000;

impl Walk<'_> {
    /// Walks `set`, selected on type `on` (unknown: measured for depth and breadth only) at
    /// `depth`; returns the number of fields it selects directly.
    fn selection_set(
        &mut self,
        set: &Positioned<SelectionSet>,
        on: Option<&str>,
        depth: usize,
    ) -> usize {
        let mut width = 0;
        for item in &set.node.items {
            if self.visited > MAX_FIELDS {
                return width;
            }
            match &item.node {
                Selection::Field(field) => {
                    let name = field.node.name.node.as_str();
                    if name.starts_with("__") {
                        continue;
                    }
                    width += 1;
                    self.visited += 1;
                    self.measure.depth = self.measure.depth.max(depth);
                    let info = on
                        .and_then(|t| self.shape.get(t))
                        .and_then(|fields| fields.get(name));
                    if info.is_some_and(|i| i.calls) {
                        self.measure.cost += 1;
                    }
                    let target = info.and_then(|i| i.target.clone());
                    if !field.node.selection_set.node.items.is_empty() {
                        self.selection_set(&field.node.selection_set, target.as_deref(), depth + 1);
                    }
                }
                Selection::InlineFragment(fragment) => {
                    let on = fragment
                        .node
                        .type_condition
                        .as_ref()
                        .map(|c| c.node.on.node.as_str())
                        .or(on);
                    width += self.selection_set(&fragment.node.selection_set, on, depth);
                }
                Selection::FragmentSpread(spread) => {
                    let name = spread.node.fragment_name.node.to_string();
                    let Some(fragment) = self
                        .document
                        .fragments
                        .get(spread.node.fragment_name.node.as_str())
                    else {
                        continue;
                    };
                    if !self.spreads.insert(name.clone()) {
                        continue;
                    }
                    let on = fragment.node.type_condition.node.on.node.to_string();
                    width += self.selection_set(&fragment.node.selection_set, Some(&on), depth);
                    self.spreads.remove(&name);
                }
            }
        }
        self.measure.breadth = self.measure.breadth.max(width);
        width
    }
}
