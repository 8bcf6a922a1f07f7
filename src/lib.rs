//! Polyshop's contracts, generated from `proto/` by `build.rs`: prost messages, tonic clients
//! and servers for every bounded context, and the embedded descriptor set.
//!
//! Module paths mirror proto packages: `polyshop.order.v1` is [`order::v1`]. Each context's
//! `ErrorReason` enum implements [`Reason`], which gives its wire string and domain.

#![allow(missing_docs, clippy::all, clippy::pedantic)]

/// The encoded `FileDescriptorSet` of every Polyshop proto, imports included
/// (`google/api`, `google/protobuf`), for reflection, access rules and transcoding.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("polyshop_descriptor");

/// The prefix every `ErrorReason` value carries in the proto (buf's ENUM_VALUE_PREFIX rule) and
/// sheds on the wire.
pub const ERROR_REASON_PREFIX: &str = "ERROR_REASON_";

/// A context's `ErrorReason` enum (`polyshop.<context>.v1.ErrorReason`, in its `errors.proto`):
/// every reason its servers put in `google.rpc.ErrorInfo`, and the domain they put with it.
/// Servers pass these values, never strings, to `polyshop_platform::status`.
pub trait Reason: Copy + std::fmt::Debug {
    /// `ErrorInfo.domain` of the declaring context: `polyshop.<context>`.
    const DOMAIN: &'static str;

    /// The value's name in the proto: `ERROR_REASON_ORDER_NOT_FOUND`.
    fn proto_name(self) -> &'static str;

    /// `ErrorInfo.reason` on the wire: the proto name without [`ERROR_REASON_PREFIX`]
    /// (`ORDER_NOT_FOUND`), the string clients have always received.
    fn wire_name(self) -> &'static str {
        let name = self.proto_name();
        name.strip_prefix(ERROR_REASON_PREFIX).unwrap_or(name)
    }
}

macro_rules! reasons {
    ($($context:ident => $domain:literal),* $(,)?) => {
        $(
            impl Reason for $context::v1::ErrorReason {
                const DOMAIN: &'static str = $domain;

                fn proto_name(self) -> &'static str {
                    self.as_str_name()
                }
            }
        )*
    };
}

reasons! {
    user => "polyshop.user",
    catalog => "polyshop.catalog",
    inventory => "polyshop.inventory",
    order => "polyshop.order",
    payment => "polyshop.payment",
    notification => "polyshop.notification",
    storefront => "polyshop.storefront",
    admin => "polyshop.admin",
}

/// Google's error model (`google.rpc`), vendored for the error details.
pub mod google {
    /// `google.rpc`.
    pub mod rpc {
        tonic::include_proto!("google.rpc");
    }
}

/// Options and value types shared by every context (`polyshop.api.v1`).
pub mod api {
    /// Version 1.
    pub mod v1 {
        tonic::include_proto!("polyshop.api.v1");
    }
}

/// Accounts, credentials and tokens (`polyshop.user.v1`).
pub mod user {
    /// Version 1.
    pub mod v1 {
        tonic::include_proto!("polyshop.user.v1");
    }
}

/// Products and prices (`polyshop.catalog.v1`, and `polyshop.catalog.v2` with a price per
/// currency, served beside it).
pub mod catalog {
    /// Version 1 (deprecated: see `v2`).
    pub mod v1 {
        tonic::include_proto!("polyshop.catalog.v1");
    }
    /// Version 2: a price per currency. Its errors are [`v1::ErrorReason`] values.
    pub mod v2 {
        tonic::include_proto!("polyshop.catalog.v2");
    }
}

/// Stock and reservations (`polyshop.inventory.v1`).
pub mod inventory {
    /// Version 1.
    pub mod v1 {
        tonic::include_proto!("polyshop.inventory.v1");
    }
}

/// Orders, the placement saga and order history (`polyshop.order.v1`).
pub mod order {
    /// Version 1.
    pub mod v1 {
        tonic::include_proto!("polyshop.order.v1");
    }
}

/// Charges, refunds and invoices (`polyshop.payment.v1`).
pub mod payment {
    /// Version 1.
    pub mod v1 {
        tonic::include_proto!("polyshop.payment.v1");
    }
}

/// Messages to users (`polyshop.notification.v1`).
pub mod notification {
    /// Version 1.
    pub mod v1 {
        tonic::include_proto!("polyshop.notification.v1");
    }
}

/// Composed views served by the edge (`polyshop.storefront.v1`).
pub mod storefront {
    /// Version 1.
    pub mod v1 {
        tonic::include_proto!("polyshop.storefront.v1");
    }
}

/// Governance: the platform's status and the operator's actions, served by the edge
/// (`polyshop.admin.v1`).
pub mod admin {
    /// Version 1.
    pub mod v1 {
        tonic::include_proto!("polyshop.admin.v1");
    }
}
