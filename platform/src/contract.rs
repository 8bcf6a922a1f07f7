//! What the descriptor set says about an RPC: who may call it, and whether a retry is safe.
//! Read once at start from [`polyshop::FILE_DESCRIPTOR_SET`], so access rules live in the
//! contract and not in handler code.

use std::{collections::HashMap, sync::OnceLock};

use prost_reflect::{DescriptorPool, MethodDescriptor, Value};

/// Who may call an RPC (`polyshop.api.v1.Access`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone.
    Public,
    /// A signed-in user (or a service).
    Authenticated,
    /// An admin (or a service).
    Admin,
    /// Services only.
    Internal,
}

/// `google.protobuf.MethodOptions.IdempotencyLevel`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Idempotency {
    /// A retry may repeat a side effect.
    Unknown,
    /// Reads only.
    NoSideEffects,
    /// Repeating it has the effect of doing it once.
    Idempotent,
}

/// What the contract says about one method.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MethodRule {
    /// Who may call it.
    pub access: Access,
    /// Whether retries are safe.
    pub idempotency: Idempotency,
    /// Context names whose service tokens may call it (`polyshop.api.v1.callers`).
    pub callers: Vec<String>,
}

impl MethodRule {
    /// Whether the service called `service` (`polyshop-order`) may call this method.
    pub fn allows_service(&self, service: &str) -> bool {
        match self.access {
            Access::Public => true,
            Access::Admin => false,
            Access::Authenticated | Access::Internal => service
                .strip_prefix("polyshop-")
                .is_some_and(|name| self.callers.iter().any(|c| c == name)),
        }
    }
}

/// The decoded descriptor pool of every Polyshop contract.
pub fn pool() -> &'static DescriptorPool {
    static POOL: OnceLock<DescriptorPool> = OnceLock::new();
    POOL.get_or_init(|| {
        DescriptorPool::decode(polyshop::FILE_DESCRIPTOR_SET)
            .unwrap_or_else(|e| panic!("the embedded descriptor set is invalid: {e}"))
    })
}

/// Rules of every Polyshop method, keyed by gRPC path (`/polyshop.user.v1.UserService/Login`).
pub fn rules() -> &'static HashMap<String, MethodRule> {
    static RULES: OnceLock<HashMap<String, MethodRule>> = OnceLock::new();
    RULES.get_or_init(|| {
        let pool = pool();
        pool.services()
            .filter(|s| s.package_name().starts_with("polyshop."))
            .flat_map(|s| s.methods().collect::<Vec<_>>())
            .map(|m| {
                (
                    format!("/{}/{}", m.parent_service().full_name(), m.name()),
                    rule_of(&m),
                )
            })
            .collect()
    })
}

/// A bounded context as the contracts declare it: the `<name>` of a `polyshop.<name>.v1`
/// package that has a service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Context {
    /// `catalog`.
    pub name: String,
    /// `polyshop.catalog.v1.CatalogService`.
    pub service: String,
}

/// Every context in the contracts, by name: the one list that config, the edge's routing,
/// `polyshop up` and the tests read (the edge serves `storefront` itself).
pub fn contexts() -> &'static [Context] {
    static CONTEXTS: OnceLock<Vec<Context>> = OnceLock::new();
    CONTEXTS.get_or_init(|| {
        let mut found: Vec<Context> = pool()
            .services()
            .filter_map(|s| {
                let name = s
                    .package_name()
                    .strip_prefix("polyshop.")?
                    .strip_suffix(".v1")?;
                Some(Context {
                    name: name.to_owned(),
                    service: s.full_name().to_owned(),
                })
            })
            .collect();
        found.sort_by(|a, b| a.name.cmp(&b.name));
        found
    })
}

/// The context the edge serves in-process, composing the others.
pub const EDGE_CONTEXT: &str = "storefront";

/// Every context the edge serves in-process: the storefront, and governance (`admin`), which
/// reads every instance over the registry.
pub const EDGE_CONTEXTS: [&str; 2] = [EDGE_CONTEXT, "admin"];

/// The rule for a gRPC path; `None` for paths outside the contracts (health, reflection).
pub fn rule(path: &str) -> Option<&'static MethodRule> {
    rules().get(path)
}

/// Reads the access and idempotency options of one method.
pub fn rule_of(method: &MethodDescriptor) -> MethodRule {
    let pool = method.parent_pool();
    let access = pool
        .get_extension_by_name("polyshop.api.v1.access")
        .map(|ext| match method.options().get_extension(&ext).as_ref() {
            Value::EnumNumber(1) => Access::Public,
            Value::EnumNumber(2) => Access::Authenticated,
            Value::EnumNumber(3) => Access::Admin,
            // Unset (rejected by the contract tests) fails closed.
            _ => Access::Internal,
        })
        .unwrap_or(Access::Internal);
    let idempotency = match method
        .options()
        .get_field_by_name("idempotency_level")
        .and_then(|v| v.as_enum_number())
    {
        Some(1) => Idempotency::NoSideEffects,
        Some(2) => Idempotency::Idempotent,
        _ => Idempotency::Unknown,
    };
    let callers = pool
        .get_extension_by_name("polyshop.api.v1.callers")
        .and_then(|ext| {
            method.options().get_extension(&ext).as_list().map(|list| {
                list.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
        })
        .unwrap_or_default();
    MethodRule {
        access,
        idempotency,
        callers,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_come_from_the_contract() {
        let login = rule("/polyshop.user.v1.UserService/Login").expect("login");
        assert_eq!(login.access, Access::Public);
        let reserve = rule("/polyshop.inventory.v1.InventoryService/ReserveStock").expect("rs");
        assert_eq!(reserve.access, Access::Internal);
        assert_eq!(reserve.idempotency, Idempotency::Idempotent);
        let list = rule("/polyshop.user.v1.UserService/ListUsers").expect("list");
        assert_eq!(
            (list.access, list.idempotency),
            (Access::Admin, Idempotency::NoSideEffects)
        );
        assert!(rule("/grpc.health.v1.Health/Check").is_none());
    }

    #[test]
    fn the_contexts_are_the_packages_with_a_service() {
        let names: Vec<&str> = contexts().iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "admin",
                "catalog",
                "inventory",
                "notification",
                "order",
                "payment",
                "storefront",
                "user"
            ]
        );
        let order = contexts()
            .iter()
            .find(|c| c.name == "order")
            .expect("order");
        assert_eq!(order.service, "polyshop.order.v1.OrderService");
    }
}
