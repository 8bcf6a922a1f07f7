//! Reading and changing accounts: profile, status, addresses, listing and deletion. Every use
//! case takes the caller and applies the owner rule.

use polyshop_platform::{auth::Principal, paging, status::Violations};

use super::UserRepository;
use crate::domain::{Address, User, UserError, UserStatus, check_address, check_email, mask_email};

fn owner_or_admin(caller: &Principal, user_id: &str) -> Result<(), UserError> {
    if caller.may_act_for(user_id) {
        Ok(())
    } else {
        Err(UserError::NotOwner)
    }
}

/// Reads an account.
///
/// # Errors
/// `NotOwner`, `NotFound`, `Internal`.
pub async fn get_user<R: UserRepository>(
    repo: &R,
    caller: &Principal,
    id: &str,
) -> Result<User, UserError> {
    owner_or_admin(caller, id)?;
    repo.find(id).await?.ok_or(UserError::NotFound)
}

/// Changes the display name and/or email.
///
/// # Errors
/// `NotOwner`, `Invalid`, `EmailTaken`, `NotFound`, `Internal`.
pub async fn update_user<R: UserRepository>(
    repo: &R,
    caller: &Principal,
    id: &str,
    display_name: Option<String>,
    email: Option<String>,
) -> Result<User, UserError> {
    owner_or_admin(caller, id)?;
    let display_name = display_name.map(|n| n.trim().to_owned());
    let email = email.map(|e| e.trim().to_owned());
    let mut v = Violations::new();
    // The contract has checked the display name's length and characters.
    if let Some(name) = &display_name {
        // The domain trims first, so a whitespace-only name passes the contract's min_len.
        if name.is_empty() {
            v.add("display_name", "must not be empty");
        }
    }
    if let Some(email) = &email {
        // Stricter than the contract's `email` in places (a single-label domain `a@b`).
        v.check("email", check_email(email));
    }
    v.into_result()?;
    repo.update_profile(id, display_name, email).await
}

/// Sets an account's status (admins only, enforced by the contract).
///
/// # Errors
/// `NotFound`, `Internal`.
pub async fn change_status<R: UserRepository>(
    repo: &R,
    id: &str,
    status: UserStatus,
) -> Result<(UserStatus, User), UserError> {
    repo.set_status(id, status).await
}

/// Adds an address to the caller's (or, for an admin, anyone's) address book.
///
/// # Errors
/// `NotOwner`, `Invalid`, `NotFound`, `Internal`.
pub async fn add_address<R: UserRepository>(
    repo: &R,
    caller: &Principal,
    user_id: &str,
    mut address: Address,
) -> Result<Address, UserError> {
    owner_or_admin(caller, user_id)?;
    address.country_code = address.country_code.trim().to_owned();
    let mut v = Violations::new();
    // Blank required fields pass the contract (see check_address).
    check_address(&address, "address", &mut v);
    v.into_result()?;
    address.id = polyshop_platform::new_id();
    repo.add_address(user_id, address).await
}

/// One page of accounts, with other users' emails masked.
///
/// # Errors
/// `Invalid` for a bad page size or token, `Internal`.
pub async fn list_users<R: UserRepository>(
    repo: &R,
    caller: &Principal,
    page_size: i32,
    page_token: &str,
) -> Result<(Vec<User>, String), UserError> {
    let mut v = Violations::new();
    let size = v.check("page_size", paging::page_size(page_size));
    let after = v.check("page_token", paging::decode_token(page_token));
    v.into_result()?;
    let size = size.unwrap_or(paging::DEFAULT_PAGE_SIZE);
    // One extra row tells whether another page exists.
    let mut users = repo.list(after.flatten(), size + 1).await?;
    let next = if users.len() as u64 > size {
        users.truncate(usize::try_from(size).unwrap_or(usize::MAX));
        users
            .last()
            .map(|u| paging::encode_token(&u.id))
            .unwrap_or_default()
    } else {
        String::new()
    };
    for user in &mut users {
        if caller.user_id() != Some(user.id.as_str()) {
            user.email = mask_email(&user.email);
        }
    }
    Ok((users, next))
}

/// Deletes an account.
///
/// # Errors
/// `NotOwner`, `NotFound`, `Internal`.
pub async fn delete_user<R: UserRepository>(
    repo: &R,
    caller: &Principal,
    id: &str,
) -> Result<(), UserError> {
    owner_or_admin(caller, id)?;
    if repo.delete(id).await? {
        Ok(())
    } else {
        Err(UserError::NotFound)
    }
}
