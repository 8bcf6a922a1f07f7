//! The route table, built once at start from the descriptor pool: every non-INTERNAL method of
//! every `polyshop.*` service, with all its `google.api.http` bindings. Nothing here names a
//! service: the upstream is the context in the package (`polyshop.<context>.v1`, `.v2`, …).
//! A service marked `deprecated = true` names its sunset and successor in
//! `(polyshop.api.v1.lifecycle)`; its methods' responses say so in headers ([`Sunset`]).

use std::{collections::HashMap, sync::Arc};

use http::{HeaderMap, HeaderValue, Method, uri::PathAndQuery};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
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
    /// Marked `deprecated = true` in the contract, itself or its service.
    pub deprecated: bool,
    /// When a deprecated method goes away and what replaces it, from its service's
    /// `(polyshop.api.v1.lifecycle)`.
    pub sunset: Option<Sunset>,
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

impl Rpc {
    /// Adds the headers that tell a client this method is deprecated: RFC 9745 `Deprecation`
    /// (`@<unix seconds>`), RFC 8594 `Sunset` (an HTTP-date) and an RFC 8288 `Link` to the
    /// successor with `rel="successor-version"`. A JSON call (`vars` its path variables)
    /// links to the successor's route with the same variables, a gRPC or grpc-web call
    /// (`vars` None) to the successor's gRPC path. Nothing for methods not deprecated.
    pub fn mark_deprecation(&self, headers: &mut HeaderMap, vars: Option<&[(String, String)]>) {
        let Some(sunset) = &self.sunset else {
            return;
        };
        headers.insert("deprecation", sunset.deprecation.clone());
        headers.insert("sunset", sunset.sunset.clone());
        let target = match vars {
            Some(vars) => sunset
                .successor_route
                .as_deref()
                .and_then(|pattern| fill(pattern, vars)),
            None => Some(sunset.successor_grpc.clone()),
        };
        if let Some(link) = target
            .and_then(|t| HeaderValue::from_str(&format!("<{t}>; rel=\"successor-version\"")).ok())
        {
            headers.insert(http::header::LINK, link);
        }
    }
}

/// A deprecated method's lifecycle, as header values built once at start.
#[derive(Debug, Clone)]
pub struct Sunset {
    /// `Deprecation`: `@` and the Unix time of `deprecate_date`'s midnight UTC.
    pub deprecation: HeaderValue,
    /// `Sunset`: `sunset_date`'s midnight UTC as an HTTP-date.
    pub sunset: HeaderValue,
    /// The same-named method of the successor service: its gRPC path.
    pub successor_grpc: String,
    /// … and its first HTTP route pattern, if it has one.
    pub successor_route: Option<String>,
    /// The successor method's full name, for the OpenAPI document.
    pub successor: String,
}

/// Characters a path variable's value keeps unescaped in a link (RFC 3986 unreserved).
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// `pattern` (`/v2/products/{product_id}`) with its variables taken from `vars`; None when
/// one is missing or matches several segments.
fn fill(pattern: &str, vars: &[(String, String)]) -> Option<String> {
    let mut out = String::with_capacity(pattern.len());
    let mut rest = pattern;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let close = rest[open..].find('}')? + open;
        let inner = &rest[open + 1..close];
        let (name, sub) = inner.split_once('=').unwrap_or((inner, "*"));
        if sub != "*" {
            return None;
        }
        let (_, value) = vars.iter().find(|(n, _)| n == name)?;
        out.extend(utf8_percent_encode(value, SEGMENT));
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    Some(out)
}

/// Days from 1970-01-01 to the RFC 3339 full-date `date` (`2027-06-30`).
fn days_of(date: &str) -> Option<i64> {
    let mut parts = date.split('-');
    let (Some(y), Some(m), Some(d), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    if (y.len(), m.len(), d.len()) != (4, 2, 2) {
        return None;
    }
    let (y, m, d): (i64, i64, i64) = (y.parse().ok()?, m.parse().ok()?, d.parse().ok()?);
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let month_days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if !(1..=12).contains(&m) || d < 1 || d > month_days[usize::try_from(m - 1).ok()?] {
        return None;
    }
    // Howard Hinnant's days_from_civil.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some(era * 146_097 + doe - 719_468)
}

/// The IMF-fixdate (RFC 9110 HTTP-date) of midnight UTC `days` after 1970-01-01.
fn http_date(days: i64, date: &str) -> String {
    const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let weekday = WEEKDAYS[usize::try_from(days.rem_euclid(7)).unwrap_or(0)];
    // `date` is the checked `YYYY-MM-DD` the days came from.
    let month = MONTHS[date[5..7].parse::<usize>().unwrap_or(1) - 1];
    format!(
        "{weekday}, {} {month} {} 00:00:00 GMT",
        &date[8..10],
        &date[..4]
    )
}

/// The lifecycle of `service` (marked deprecated) for its method `method`.
fn sunset_of(
    pool: &DescriptorPool,
    service: &prost_reflect::ServiceDescriptor,
    method: &MethodDescriptor,
) -> Result<Option<Sunset>, String> {
    let Some(ext) = pool.get_extension_by_name("polyshop.api.v1.lifecycle") else {
        return Ok(None);
    };
    if !service.options().has_extension(&ext) {
        return Ok(None);
    }
    let Value::Message(lifecycle) = service.options().get_extension(&ext).into_owned() else {
        return Ok(None);
    };
    let date = |name: &str| {
        let text = text(&lifecycle, name);
        days_of(&text)
            .map(|days| (days, text.clone()))
            .ok_or_else(|| format!("lifecycle {name} {text:?} is not a YYYY-MM-DD date"))
    };
    let (deprecated, _) = date("deprecate_date")?;
    let (sunset, sunset_text) = date("sunset_date")?;
    let successor_name = text(&lifecycle, "successor");
    let successor = pool
        .get_service_by_name(&successor_name)
        .and_then(|s| s.methods().find(|m| m.name() == method.name()))
        .ok_or_else(|| format!("successor {successor_name} has no method {}", method.name()))?;
    let successor_route = pool
        .get_extension_by_name("google.api.http")
        .and_then(|http| {
            let options = successor.options();
            if !options.has_extension(&http) {
                return None;
            }
            let Value::Message(rule) = options.get_extension(&http).into_owned() else {
                return None;
            };
            ["get", "put", "post", "delete", "patch"]
                .iter()
                .find(|verb| rule.has_field_by_name(verb))
                .map(|verb| text(&rule, verb))
        });
    let header = |v: String| HeaderValue::from_str(&v).map_err(|e| e.to_string());
    Ok(Some(Sunset {
        deprecation: header(format!("@{}", deprecated * 86_400))?,
        sunset: header(http_date(sunset, &sunset_text))?,
        successor_grpc: format!(
            "/{}/{}",
            successor.parent_service().full_name(),
            successor.name()
        ),
        successor_route,
        successor: successor.full_name().to_owned(),
    }))
}

fn is_deprecated(options: &DynamicMessage) -> bool {
    options
        .get_field_by_name("deprecated")
        .and_then(|v| v.as_bool())
        .unwrap_or(false)
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
            let service_deprecated = is_deprecated(&service.options());
            for method in service.methods() {
                let rule = contract::rule_of(&method);
                if rule.access == Access::Internal {
                    continue;
                }
                let path = format!("/{}/{}", service.full_name(), method.name());
                let deprecated = service_deprecated || is_deprecated(&method.options());
                let sunset = if deprecated {
                    sunset_of(pool, &service, &method).map_err(|reason| RouteError {
                        method: path.clone(),
                        reason,
                    })?
                } else {
                    None
                };
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
                    deprecated,
                    sunset,
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

    /// Every exposed RPC, in no particular order.
    pub fn rpcs(&self) -> impl Iterator<Item = &Arc<Rpc>> {
        self.rpcs.values()
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

/// `polyshop.<context>.<version>` → `<context>`; other packages are not ours.
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
    fn dates_become_unix_seconds_and_http_dates() {
        assert_eq!(days_of("1970-01-01"), Some(0));
        assert_eq!(
            days_of("2026-12-01").map(|d| d * 86_400),
            Some(1_796_083_200)
        );
        let days = days_of("2027-06-30").expect("date");
        assert_eq!(
            http_date(days, "2027-06-30"),
            "Wed, 30 Jun 2027 00:00:00 GMT"
        );
        assert_eq!(
            http_date(days_of("2024-02-29").expect("leap day"), "2024-02-29"),
            "Thu, 29 Feb 2024 00:00:00 GMT"
        );
        for bad in [
            "2027-02-29",
            "2027-13-01",
            "27-06-30",
            "2027-06-30T00:00:00Z",
            "",
        ] {
            assert_eq!(days_of(bad), None, "{bad}");
        }
    }

    #[test]
    fn successor_links_fill_path_variables() {
        let vars = [("product_id".to_owned(), "p 1/2".to_owned())];
        assert_eq!(
            fill("/v2/products/{product_id}", &vars).as_deref(),
            Some("/v2/products/p%201%2F2")
        );
        assert_eq!(fill("/v2/products", &vars).as_deref(), Some("/v2/products"));
        assert_eq!(fill("/v2/orders/{order_id}", &vars), None);
        assert_eq!(fill("/v2/{product_id=products/*}", &vars), None);
    }

    #[test]
    fn catalog_v1_is_deprecated_with_a_sunset_and_v2_is_not() {
        let t = table();
        let old = t
            .rpc("/polyshop.catalog.v1.CatalogService/GetProduct")
            .expect("v1 exposed");
        assert!(old.deprecated);
        let sunset = old.sunset.as_ref().expect("lifecycle");
        assert_eq!(sunset.sunset, "Wed, 30 Jun 2027 00:00:00 GMT");
        assert_eq!(sunset.deprecation, "@1796083200");
        assert_eq!(
            sunset.successor_grpc,
            "/polyshop.catalog.v2.CatalogService/GetProduct"
        );
        assert_eq!(
            sunset.successor_route.as_deref(),
            Some("/v2/products/{product_id}")
        );
        let new = t
            .rpc("/polyshop.catalog.v2.CatalogService/GetProduct")
            .expect("v2 exposed");
        assert!(!new.deprecated && new.sunset.is_none());
        assert_eq!(new.upstream, "catalog");
        let Ok(Lookup::Found(r, _)) = t.lookup(&Method::GET, "/v2/products/p1") else {
            panic!("v2 GetProduct route");
        };
        assert_eq!(r.rpc.path, "/polyshop.catalog.v2.CatalogService/GetProduct");
    }

    #[test]
    fn contexts_come_from_packages() {
        assert_eq!(context_of("polyshop.order.v1"), Some("order"));
        assert_eq!(context_of("polyshop.catalog.v2"), Some("catalog"));
        assert_eq!(context_of("polyshop.api.v1"), None);
        assert_eq!(context_of("google.api"), None);
    }
}
