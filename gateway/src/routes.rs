//! The route table, built once at start from the descriptor pool: every non-INTERNAL method of
//! every `polyshop.*` service, with all its `google.api.http` bindings. Nothing here names a
//! service: the upstream is the context in the package (`polyshop.<context>.v1`).

use std::{collections::HashMap, sync::Arc};

use http::{Method, uri::PathAndQuery};
use polyshop_platform::contract::{self, Access, Idempotency};
use prost_reflect::{DescriptorPool, DynamicMessage, FieldDescriptor, MethodDescriptor, Value};

use crate::template::{DecodeError, PathTemplate};

/// Which token bucket a method draws from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LimitClass {
    /// Ordinary calls, per principal.
    Standard,
    /// Public methods with side effects (login, register), per client IP, stricter.
    Credentials,
}

/// One exposed RPC.
#[derive(Debug)]
pub struct Rpc {
    /// gRPC path, `/polyshop.user.v1.UserService/Login`.
    pub path: String,
    /// The same path, parsed for requests.
    pub grpc_path: PathAndQuery,
    /// The method's descriptor.
    pub method: MethodDescriptor,
    /// Who may call it.
    pub access: Access,
    /// Whether a retry is safe.
    pub idempotency: Idempotency,
    /// Its rate-limit class.
    pub class: LimitClass,
    /// Marked `deprecated = true` in the contract.
    pub deprecated: bool,
    /// The context serving it (`user`, `catalog`, … or `storefront`, served here).
    pub upstream: String,
    /// How its context refuses a request that breaks the contract's rules.
    pub invalid: Option<polyshop_platform::validate::layer::Answer>,
}

impl Rpc {
    /// Checks `message` (this method's input) against its contract's `buf.validate` rules.
    ///
    /// # Errors
    /// INVALID_ARGUMENT as the context answers it (its ErrorInfo, a BadRequest).
    pub fn check(&self, message: &DynamicMessage) -> Result<(), tonic::Status> {
        let Some(answer) = self.invalid else {
            return Ok(());
        };
        let violations = polyshop_platform::validate::plans().check(message);
        if violations.is_empty() {
            Ok(())
        } else {
            Err(answer(&violations))
        }
    }
}

/// Where the HTTP body goes.
#[derive(Debug, Clone)]
pub enum BodySpec {
    /// No body.
    None,
    /// `body: "*"`: the whole request message, except path variables.
    All,
    /// `body: "field"`: one top-level field.
    Field(FieldDescriptor),
}

/// One HTTP binding of an RPC.
#[derive(Debug)]
pub struct HttpRoute {
    /// HTTP method.
    pub method: Method,
    /// The path template as written in the contract.
    pub pattern: String,
    /// Parsed template.
    pub template: PathTemplate,
    /// Body mapping.
    pub body: BodySpec,
    /// `response_body`: the response field sent instead of the whole message.
    pub response_body: Option<FieldDescriptor>,
    /// The RPC.
    pub rpc: Arc<Rpc>,
}

/// Why the table could not be built.
#[derive(Debug, thiserror::Error)]
#[error("{method}: {reason}")]
pub struct RouteError {
    method: String,
    reason: String,
}

/// Result of looking a request up.
#[derive(Debug)]
pub enum Lookup<'a> {
    /// A route matched, with its captured path variables.
    Found(&'a HttpRoute, Vec<(String, String)>),
    /// The path exists for other methods.
    MethodNotAllowed(Vec<Method>),
    /// Nothing matched.
    NotFound,
}

/// Every exposed route and RPC.
#[derive(Debug, Default)]
pub struct RouteTable {
    http: Vec<HttpRoute>,
    rpcs: HashMap<String, Arc<Rpc>>,
}

impl RouteTable {
    /// Builds the table from `pool`.
    ///
    /// # Errors
    /// [`RouteError`] for a malformed or duplicate binding.
    pub fn from_pool(pool: &DescriptorPool) -> Result<Self, RouteError> {
        let http_ext = pool.get_extension_by_name("google.api.http");
        let mut table = Self::default();
        for service in pool.services() {
            let Some(context) = context_of(service.package_name()) else {
                continue;
            };
            for method in service.methods() {
                let rule = contract::rule_of(&method);
                if rule.access == Access::Internal {
                    continue;
                }
                let path = format!("/{}/{}", service.full_name(), method.name());
                let rpc = Arc::new(Rpc {
                    grpc_path: PathAndQuery::try_from(path.as_str()).map_err(|_| RouteError {
                        method: path.clone(),
                        reason: "not a valid gRPC path".into(),
                    })?,
                    path,
                    access: rule.access,
                    idempotency: rule.idempotency,
                    class: if rule.access == Access::Public
                        && rule.idempotency == Idempotency::Unknown
                    {
                        LimitClass::Credentials
                    } else {
                        LimitClass::Standard
                    },
                    deprecated: method
                        .options()
                        .get_field_by_name("deprecated")
                        .and_then(|v| v.as_bool())
                        .unwrap_or(false),
                    upstream: context.to_owned(),
                    invalid: polyshop_platform::validate::layer::answer_for(service.package_name()),
                    method: method.clone(),
                });
                if let Some(ext) = &http_ext
                    && method.options().has_extension(ext)
                    && let Value::Message(rule) = method.options().get_extension(ext).as_ref()
                {
                    table.add_bindings(&rpc, rule)?;
                }
                table.rpcs.insert(rpc.path.clone(), rpc);
            }
        }
        // Most specific first: more literals, and `**` last.
        table.http.sort_by_key(|r| {
            (
                r.template.has_many(),
                std::cmp::Reverse(r.template.literal_count()),
            )
        });
        Ok(table)
    }

    fn add_bindings(&mut self, rpc: &Arc<Rpc>, rule: &DynamicMessage) -> Result<(), RouteError> {
        let fail = |reason: String| RouteError {
            method: rpc.path.clone(),
            reason,
        };
        let route = binding(rpc, rule).map_err(fail)?;
        if self
            .http
            .iter()
            .any(|r| r.method == route.method && r.template == route.template)
        {
            return Err(fail(format!(
                "duplicate binding {} {}",
                route.method, route.pattern
            )));
        }
        self.http.push(route);
        if let Some(Value::List(more)) = rule.get_field_by_name("additional_bindings").as_deref() {
            for extra in more.iter().filter_map(Value::as_message) {
                self.add_bindings(rpc, extra)?;
            }
        }
        Ok(())
    }

    /// Finds the route for `method` and raw `path`.
    ///
    /// # Errors
    /// [`DecodeError`] when a matching path has a badly encoded variable.
    pub fn lookup(&self, method: &Method, path: &str) -> Result<Lookup<'_>, DecodeError> {
        for route in self.http.iter().filter(|r| r.method == *method) {
            if let Some(vars) = route.template.matches(path)? {
                return Ok(Lookup::Found(route, vars));
            }
        }
        // Rare: only now find out whether the path exists for other methods.
        let mut allowed: Vec<Method> = Vec::new();
        for route in self.http.iter().filter(|r| r.method != *method) {
            if !allowed.contains(&route.method) && route.template.matches(path)?.is_some() {
                allowed.push(route.method.clone());
            }
        }
        Ok(if allowed.is_empty() {
            Lookup::NotFound
        } else {
            Lookup::MethodNotAllowed(allowed)
        })
    }

    /// The exposed RPC at gRPC `path`, if any (INTERNAL methods are not).
    pub fn rpc(&self, path: &str) -> Option<&Arc<Rpc>> {
        self.rpcs.get(path)
    }

    /// Every HTTP route, most specific first.
    pub fn http_routes(&self) -> &[HttpRoute] {
        &self.http
    }

    /// Full names of the services with at least one exposed method, sorted.
    pub fn services(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .rpcs
            .values()
            .map(|r| r.method.parent_service().full_name().to_owned())
            .collect();
        names.sort();
        names.dedup();
        names
    }

    /// The contexts that RPCs are routed to, sorted.
    pub fn upstreams(&self) -> Vec<String> {
        let mut names: Vec<String> = self.rpcs.values().map(|r| r.upstream.clone()).collect();
        names.sort();
        names.dedup();
        names
    }
}

/// `polyshop.<context>.v1` → `<context>`; other packages are not ours.
fn context_of(package: &str) -> Option<&str> {
    let mut parts = package.split('.');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some("polyshop"), Some(context), Some(_version), None) if context != "api" => {
            Some(context)
        }
        _ => None,
    }
}

fn text(rule: &DynamicMessage, name: &str) -> String {
    rule.get_field_by_name(name)
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

fn binding(rpc: &Arc<Rpc>, rule: &DynamicMessage) -> Result<HttpRoute, String> {
    let verbs = [
        ("get", Method::GET),
        ("put", Method::PUT),
        ("post", Method::POST),
        ("delete", Method::DELETE),
        ("patch", Method::PATCH),
    ];
    let (method, pattern) =
        if let Some((name, m)) = verbs.iter().find(|(name, _)| rule.has_field_by_name(name)) {
            (m.clone(), text(rule, name))
        } else if let Some(Value::Message(custom)) = rule.get_field_by_name("custom").as_deref() {
            let kind = text(custom, "kind");
            let method =
                Method::from_bytes(kind.as_bytes()).map_err(|_| format!("bad method {kind}"))?;
            (method, text(custom, "path"))
        } else {
            return Err("http rule without a pattern".into());
        };
    let template = PathTemplate::parse(&pattern).map_err(|e| e.to_string())?;
    let input = rpc.method.input();
    for var in template.variables() {
        field_path(&input, &var.field_path)?;
    }
    let body = match text(rule, "body").as_str() {
        "" => BodySpec::None,
        "*" => BodySpec::All,
        name => BodySpec::Field(
            input
                .get_field_by_name(name)
                .ok_or_else(|| format!("body field {name} does not exist"))?,
        ),
    };
    let response_body = match text(rule, "response_body").as_str() {
        "" => None,
        name => Some(
            rpc.method
                .output()
                .get_field_by_name(name)
                .ok_or_else(|| format!("response_body field {name} does not exist"))?,
        ),
    };
    Ok(HttpRoute {
        method,
        pattern,
        template,
        body,
        response_body,
        rpc: rpc.clone(),
    })
}

/// Resolves a dotted field path; every step but the last must be a singular message.
pub fn field_path(
    message: &prost_reflect::MessageDescriptor,
    path: &str,
) -> Result<Vec<FieldDescriptor>, String> {
    let mut current = message.clone();
    let mut out = Vec::new();
    let mut names = path.split('.').peekable();
    while let Some(name) = names.next() {
        let field = current
            .get_field_by_name(name)
            .or_else(|| current.get_field_by_json_name(name))
            .ok_or_else(|| format!("no field `{path}` in {}", message.full_name()))?;
        if names.peek().is_some() {
            match field.kind() {
                prost_reflect::Kind::Message(m) if !field.is_list() && !field.is_map() => {
                    current = m;
                }
                _ => return Err(format!("`{path}` goes through a non-message field")),
            }
        }
        out.push(field);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> RouteTable {
        RouteTable::from_pool(contract::pool()).expect("contract routes are valid")
    }

    #[test]
    fn internal_methods_are_not_exposed() {
        let t = table();
        assert!(
            t.rpc("/polyshop.inventory.v1.InventoryService/ReserveStock")
                .is_none()
        );
        assert!(
            t.rpc("/polyshop.payment.v1.PaymentService/Charge")
                .is_none()
        );
        assert!(t.rpc("/polyshop.user.v1.UserService/Login").is_some());
    }

    #[test]
    fn login_and_register_are_credential_class() {
        let t = table();
        for path in [
            "/polyshop.user.v1.UserService/Login",
            "/polyshop.user.v1.UserService/Register",
        ] {
            assert_eq!(t.rpc(path).expect("exposed").class, LimitClass::Credentials);
        }
        let get = t
            .rpc("/polyshop.catalog.v1.CatalogService/GetProduct")
            .expect("exposed");
        assert_eq!(get.class, LimitClass::Standard);
    }

    #[test]
    fn lookups_find_routes_verbs_and_additional_bindings() {
        let t = table();
        let Ok(Lookup::Found(r, vars)) = t.lookup(&Method::GET, "/v1/products/p1") else {
            panic!("GetProduct route");
        };
        assert_eq!(r.rpc.method.name(), "GetProduct");
        assert_eq!(vars, vec![("product_id".to_owned(), "p1".to_owned())]);
        let Ok(Lookup::Found(r, _)) = t.lookup(&Method::GET, "/v1/products:batchGet") else {
            panic!("batchGet route");
        };
        assert_eq!(r.rpc.method.name(), "BatchGetProducts");
        let Ok(Lookup::Found(r, _)) = t.lookup(&Method::GET, "/.well-known/jwks.json") else {
            panic!("additional binding");
        };
        assert_eq!(r.rpc.method.name(), "GetJwks");
        let Ok(Lookup::Found(r, _)) = t.lookup(&Method::GET, "/v1/orders/o1/details") else {
            panic!("storefront route");
        };
        assert_eq!(r.rpc.upstream, "storefront");
        assert!(matches!(
            t.lookup(&Method::PUT, "/v1/products/p1"),
            Ok(Lookup::MethodNotAllowed(_))
        ));
        assert!(matches!(
            t.lookup(&Method::GET, "/v1/nothing"),
            Ok(Lookup::NotFound)
        ));
    }

    #[test]
    fn contexts_come_from_packages() {
        assert_eq!(context_of("polyshop.order.v1"), Some("order"));
        assert_eq!(context_of("polyshop.api.v1"), None);
        assert_eq!(context_of("google.api"), None);
    }
}
