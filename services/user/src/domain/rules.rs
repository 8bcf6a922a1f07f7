//! Field rules for registration, profile changes and addresses.

use polyshop_platform::status::Violations;

use super::Address;

/// Username length bounds.
pub const USERNAME_LEN: (usize, usize) = (3, 32);
/// Password length bounds (characters).
pub const PASSWORD_LEN: (usize, usize) = (12, 128);
/// Longest display name.
pub const DISPLAY_NAME_MAX: usize = 100;

/// A username: 3–32 letters, digits, `.`, `_` or `-`.
///
/// # Errors
/// What is wrong with it.
pub fn check_username(username: &str) -> Result<(), String> {
    let len = username.chars().count();
    if len < USERNAME_LEN.0 || len > USERNAME_LEN.1 {
        return Err(format!(
            "must be {}–{} characters",
            USERNAME_LEN.0, USERNAME_LEN.1
        ));
    }
    if !username
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        return Err("may contain only letters, digits, '.', '_' and '-'".into());
    }
    Ok(())
}

/// A plausible email address: `local@domain.tld`, no spaces, at most 254 characters.
///
/// # Errors
/// What is wrong with it.
pub fn check_email(email: &str) -> Result<(), String> {
    let invalid = || Err("is not a valid email address".to_owned());
    if email.len() > 254 || email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return invalid();
    }
    let Some((local, domain)) = email.rsplit_once('@') else {
        return invalid();
    };
    if local.is_empty() || local.len() > 64 || local.contains('@') {
        return invalid();
    }
    let labels: Vec<&str> = domain.split('.').collect();
    if labels.len() < 2
        || labels
            .iter()
            .any(|l| l.is_empty() || l.starts_with('-') || l.ends_with('-'))
    {
        return invalid();
    }
    Ok(())
}

/// A password: 12–128 characters and not the username or email.
///
/// # Errors
/// What is wrong with it.
pub fn check_password(password: &str, username: &str, email: &str) -> Result<(), String> {
    let len = password.chars().count();
    if len < PASSWORD_LEN.0 || len > PASSWORD_LEN.1 {
        return Err(format!(
            "must be {}–{} characters",
            PASSWORD_LEN.0, PASSWORD_LEN.1
        ));
    }
    if password.eq_ignore_ascii_case(username) || password.eq_ignore_ascii_case(email) {
        return Err("must not be your username or email".into());
    }
    Ok(())
}

/// A display name: at most 100 characters, no control characters.
///
/// # Errors
/// What is wrong with it.
pub fn check_display_name(name: &str) -> Result<(), String> {
    if name.chars().count() > DISPLAY_NAME_MAX {
        return Err(format!("must be at most {DISPLAY_NAME_MAX} characters"));
    }
    if name.chars().any(char::is_control) {
        return Err("must not contain control characters".into());
    }
    Ok(())
}

/// The case-insensitive key usernames and emails are unique by.
pub fn unique_key(value: &str) -> String {
    value.trim().to_lowercase()
}

/// Checks an address for what the contract cannot state, recording violations under
/// `prefix` (e.g. `address`): a required field that is blank. Lengths and the country code
/// are the contract's rules on `Address`.
pub fn check_address(address: &Address, prefix: &str, violations: &mut Violations) {
    let required = [
        ("recipient", &address.recipient),
        ("line1", &address.line1),
        ("city", &address.city),
        ("postal_code", &address.postal_code),
    ];
    for (field, value) in required {
        // Whitespace-only passes the contract's min_len.
        if value.trim().is_empty() {
            violations.add(format!("{prefix}.{field}"), "is required");
        }
    }
}

/// `jane@example.com` → `j***@example.com`, for showing other people's addresses.
pub fn mask_email(email: &str) -> String {
    match email.split_once('@') {
        Some((local, domain)) => {
            let first: String = local.chars().take(1).collect();
            format!("{first}***@{domain}")
        }
        None => "***".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_follow_the_rules() {
        for ok in ["bob", "jane.doe", "a_b-c", "x".repeat(32).as_str()] {
            assert!(check_username(ok).is_ok(), "{ok}");
        }
        for bad in ["ab", "with space", "émile", "a/b", "x".repeat(33).as_str()] {
            assert!(check_username(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn emails_are_checked_for_shape() {
        for ok in ["a@b.co", "jane.doe+shop@example.co.uk"] {
            assert!(check_email(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "plain",
            "@example.com",
            "a@b",
            "a b@c.de",
            "a@-b.com",
            "a@b..com",
        ] {
            assert!(check_email(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn passwords_need_length_and_must_not_be_the_username() {
        assert!(check_password("correct horse battery", "bob", "b@x.io").is_ok());
        assert!(check_password("short", "bob", "b@x.io").is_err());
        assert!(check_password("bobbobbobbob", "BobBobBobBob", "b@x.io").is_err());
    }

    #[test]
    fn emails_are_masked_for_others() {
        assert_eq!(mask_email("jane@example.com"), "j***@example.com");
    }

    #[test]
    fn an_address_needs_its_required_fields_not_blank() {
        let mut v = Violations::new();
        let address = Address {
            id: String::new(),
            recipient: "Jane".into(),
            line1: String::new(),
            line2: String::new(),
            city: "Berlin".into(),
            region: String::new(),
            postal_code: " ".into(),
            country_code: "DE".into(),
        };
        check_address(&address, "address", &mut v);
        let fields: Vec<_> = v.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(fields, ["address.line1", "address.postal_code"]);
    }

    #[test]
    fn uniqueness_ignores_case() {
        assert_eq!(unique_key(" Jane@Example.COM"), "jane@example.com");
    }
}
