//! ListOrders: a page of orders from the read model (the CQRS query side).

use polyshop_platform::{auth::Principal, paging, status::Violations};

use crate::{
    domain::{Order, OrderError, OrderStatus},
    store::{ListFilter, ReadModel},
};

/// What ListOrders asks for.
#[derive(Debug, Clone, Default)]
pub struct ListRequest {
    /// Page size as requested.
    pub page_size: i32,
    /// Page token as received.
    pub page_token: String,
    /// Status filter.
    pub status: Option<OrderStatus>,
    /// Admin-only user filter.
    pub user_id: String,
}

/// One page of orders from the read model, newest first. Users see their own orders; admins
/// anyone's (optionally one user's).
///
/// # Errors
/// `Invalid` for bad paging, `Internal`.
pub async fn list_orders(
    read: &ReadModel,
    caller: &Principal,
    req: ListRequest,
) -> Result<(Vec<Order>, String), OrderError> {
    let mut v = Violations::new();
    let size = v.check("page_size", paging::page_size(req.page_size));
    let before = v.check("page_token", paging::decode_token(&req.page_token));
    v.into_result()?;
    let size = size.unwrap_or(paging::DEFAULT_PAGE_SIZE);
    let user_id = match caller.user_id() {
        Some(me) if !caller.acts_for_anyone() => Some(me.to_owned()),
        _ => (!req.user_id.is_empty()).then_some(req.user_id),
    };
    let mut orders = read
        .list(&ListFilter {
            user_id,
            status: req.status,
            before: before.flatten(),
            limit: size + 1,
        })
        .await?;
    let next = if orders.len() as u64 > size {
        orders.truncate(usize::try_from(size).unwrap_or(usize::MAX));
        orders
            .last()
            .map(|o| paging::encode_token(&o.id))
            .unwrap_or_default()
    } else {
        String::new()
    };
    Ok((orders, next))
}
