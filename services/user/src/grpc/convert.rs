//! Proto ↔ domain conversion for the user context (also used to build events).

#![allow(clippy::needless_pass_by_value)]

use polyshop::user::v1 as pb;
use polyshop_platform::{status::Violations, timestamp};

use crate::domain::{Address, Role, User, UserError, UserStatus};

pub fn user(u: User) -> pb::User {
    pb::User {
        user_id: u.id,
        username: u.username,
        email: u.email,
        display_name: u.display_name,
        status: status(u.status) as i32,
        roles: u.roles.iter().map(|r| role(*r) as i32).collect(),
        addresses: u.addresses.into_iter().map(address).collect(),
        create_time: Some(timestamp(u.created_at)),
        update_time: Some(timestamp(u.updated_at)),
    }
}

pub fn address(a: Address) -> pb::Address {
    pb::Address {
        address_id: a.id,
        recipient: a.recipient,
        line1: a.line1,
        line2: a.line2,
        city: a.city,
        region: a.region,
        postal_code: a.postal_code,
        country_code: a.country_code,
    }
}

pub fn address_in(a: pb::Address) -> Address {
    Address {
        id: String::new(),
        recipient: a.recipient.trim().to_owned(),
        line1: a.line1.trim().to_owned(),
        line2: a.line2.trim().to_owned(),
        city: a.city.trim().to_owned(),
        region: a.region.trim().to_owned(),
        postal_code: a.postal_code.trim().to_owned(),
        country_code: a.country_code,
    }
}

pub fn status(s: UserStatus) -> pb::UserStatus {
    match s {
        UserStatus::Active => pb::UserStatus::Active,
        UserStatus::Inactive => pb::UserStatus::Inactive,
        UserStatus::Suspended => pb::UserStatus::Suspended,
    }
}

pub fn status_in(value: i32) -> Result<UserStatus, UserError> {
    match pb::UserStatus::try_from(value) {
        Ok(pb::UserStatus::Active) => Ok(UserStatus::Active),
        Ok(pb::UserStatus::Inactive) => Ok(UserStatus::Inactive),
        Ok(pb::UserStatus::Suspended) => Ok(UserStatus::Suspended),
        // The contract refuses these already (`defined_only`, `not_in: [0]`); kept so the
        // conversion is total.
        _ => {
            let mut v = Violations::new();
            v.add(
                "status",
                "must be USER_STATUS_ACTIVE, USER_STATUS_INACTIVE or USER_STATUS_SUSPENDED",
            );
            Err(UserError::Invalid(v))
        }
    }
}

fn role(r: Role) -> pb::Role {
    match r {
        Role::Customer => pb::Role::Customer,
        Role::Admin => pb::Role::Admin,
    }
}

/// Every RPC names the user in `user_id`; an empty one is a field violation, not NOT_FOUND.
pub fn user_id(id: &str) -> Result<&str, UserError> {
    // The contract's min_len lets a whitespace-only id through.
    if id.trim().is_empty() {
        let mut v = Violations::new();
        v.add("user_id", "is required");
        return Err(UserError::Invalid(v));
    }
    Ok(id)
}
