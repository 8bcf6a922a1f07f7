//! GetPayment, GetInvoice and ListPayments, with the owner rule: a user sees only their own
//! payments; admins and services see all. Someone else's payment answers exactly like a
//! missing one (`PaymentNotFound`), so ids of other users' payments cannot be probed.

use polyshop_platform::{auth::Principal, paging, status::Violations};

use super::{ListFilter, PaymentRepository};
use crate::domain::{Invoice, Payment, PaymentError, PaymentStatus};

/// Reads a payment the caller may see.
///
/// # Errors
/// `PaymentNotFound` when missing or someone else's (the contract refuses an empty id);
/// `Internal`.
pub async fn get_payment<R: PaymentRepository>(
    repo: &R,
    caller: &Principal,
    id: &str,
) -> Result<Payment, PaymentError> {
    repo.find(id)
        .await?
        .filter(|p| caller.may_act_for(&p.user_id))
        .ok_or(PaymentError::PaymentNotFound)
}

/// The invoice of a payment the caller may see. A refunded payment keeps its invoice.
///
/// # Errors
/// As [`get_payment`], and `NoInvoice` for a declined payment.
pub async fn get_invoice<R: PaymentRepository>(
    repo: &R,
    caller: &Principal,
    id: &str,
) -> Result<Invoice, PaymentError> {
    let payment = get_payment(repo, caller, id).await?;
    if payment.status == PaymentStatus::Declined {
        return Err(PaymentError::NoInvoice);
    }
    repo.invoice(id).await?.ok_or_else(|| {
        PaymentError::Internal(format!("payment {id} was captured but has no invoice").into())
    })
}

/// What ListPayments asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListRequest {
    /// 0 for the default, at most [`paging::MAX_PAGE_SIZE`].
    pub page_size: i32,
    /// Empty for the first page, else a previous page's next token.
    pub page_token: String,
    /// Only this order's payments, or empty for all.
    pub order_id: String,
}

/// One page of the payments the caller may see, newest first, and the next page's token
/// (empty on the last page).
///
/// # Errors
/// `Invalid` for a bad page size or token; `Internal`.
pub async fn list_payments<R: PaymentRepository>(
    repo: &R,
    caller: &Principal,
    request: ListRequest,
) -> Result<(Vec<Payment>, String), PaymentError> {
    let mut v = Violations::new();
    let size = v.check("page_size", paging::page_size(request.page_size));
    // The contract checks only the token's alphabet, not that it decodes to a key.
    let before = v.check("page_token", paging::decode_token(&request.page_token));
    v.into_result()?;
    let size = size.unwrap_or(paging::DEFAULT_PAGE_SIZE);
    let filter = ListFilter {
        user_id: (!caller.acts_for_anyone())
            .then(|| caller.user_id().unwrap_or_default().to_owned()),
        order_id: Some(request.order_id).filter(|o| !o.is_empty()),
    };
    // One extra row tells whether another page exists.
    let mut payments = repo.list(&filter, before.flatten(), size + 1).await?;
    let next = if payments.len() as u64 > size {
        payments.truncate(usize::try_from(size).unwrap_or(usize::MAX));
        payments
            .last()
            .map(|p| paging::encode_token(&p.id))
            .unwrap_or_default()
    } else {
        String::new()
    };
    Ok((payments, next))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::{
        charge,
        memory::{MemoryRepository, draft},
    };

    fn user(id: &str) -> Principal {
        Principal::User {
            id: id.into(),
            roles: vec!["customer".into()],
        }
    }

    fn service() -> Principal {
        Principal::Service {
            name: "polyshop-order".into(),
        }
    }

    async fn pay(repo: &MemoryRepository, key: &str, user_id: &str, token: &str) -> Payment {
        let mut d = draft(key, token, 500);
        d.user_id = user_id.into();
        let provider = crate::provider::SimulatedProvider::default();
        charge(repo, &provider, d, 1)
            .await
            .expect("charge")
            .into_payment()
    }

    #[tokio::test]
    async fn users_read_their_own_payments_and_others_look_missing() {
        let repo = MemoryRepository::default();
        let mine = pay(&repo, "k1", "alice", "tok_visa").await;
        assert_eq!(
            get_payment(&repo, &user("alice"), &mine.id).await.ok(),
            Some(mine.clone())
        );
        assert!(get_payment(&repo, &service(), &mine.id).await.is_ok());
        let err = get_payment(&repo, &user("bob"), &mine.id)
            .await
            .expect_err("not bob's");
        assert!(matches!(err, PaymentError::PaymentNotFound));
        let err = get_invoice(&repo, &user("bob"), &mine.id)
            .await
            .expect_err("not bob's");
        assert!(matches!(err, PaymentError::PaymentNotFound));
    }

    #[tokio::test]
    async fn a_declined_payment_has_no_invoice() {
        let repo = MemoryRepository::default();
        let declined = pay(&repo, "k1", "alice", "tok_chargeDeclined").await;
        let err = get_invoice(&repo, &user("alice"), &declined.id)
            .await
            .expect_err("none");
        assert!(matches!(err, PaymentError::NoInvoice));
        let captured = pay(&repo, "k2", "alice", "tok_visa").await;
        let invoice = get_invoice(&repo, &user("alice"), &captured.id)
            .await
            .expect("invoice");
        assert_eq!(invoice.total, captured.amount);
    }

    #[tokio::test]
    async fn lists_are_newest_first_paged_and_limited_to_the_callers_payments() {
        let repo = MemoryRepository::default();
        let mut alices = Vec::new();
        for i in 0..5 {
            alices.push(pay(&repo, &format!("a{i}"), "alice", "tok_visa").await.id);
            pay(&repo, &format!("b{i}"), "bob", "tok_visa").await;
        }
        alices.reverse();
        let mut seen = Vec::new();
        let mut token = String::new();
        loop {
            let request = ListRequest {
                page_size: 2,
                page_token: token,
                order_id: String::new(),
            };
            let (page, next) = list_payments(&repo, &user("alice"), request)
                .await
                .expect("list");
            seen.extend(page.into_iter().map(|p| p.id));
            if next.is_empty() {
                break;
            }
            token = next;
        }
        assert_eq!(seen, alices);
        let all = list_payments(&repo, &service(), ListRequest::default())
            .await
            .expect("all");
        assert_eq!(all.0.len(), 10);
        let by_order = ListRequest {
            order_id: "order-of-b3".into(),
            ..ListRequest::default()
        };
        let (one, _) = list_payments(&repo, &service(), by_order)
            .await
            .expect("by order");
        assert_eq!(one.len(), 1);
    }

    #[tokio::test]
    async fn bad_page_sizes_and_tokens_are_invalid_arguments() {
        let repo = MemoryRepository::default();
        let request = ListRequest {
            page_size: -1,
            page_token: "junk!".into(),
            order_id: String::new(),
        };
        let Err(PaymentError::Invalid(v)) = list_payments(&repo, &service(), request).await else {
            panic!("invalid");
        };
        let fields: Vec<_> = v.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(fields, ["page_size", "page_token"]);
    }
}
