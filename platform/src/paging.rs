//! Page sizes and opaque page tokens. A token wraps the sort key of the last row returned
//! (keyset pagination: stable under inserts, no OFFSET scans).

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};

/// Default page size when the request says 0.
pub const DEFAULT_PAGE_SIZE: u64 = 20;
/// Largest page served.
pub const MAX_PAGE_SIZE: u64 = 100;

const PREFIX: &str = "p1:";

/// The page size to use, or a description of why the requested one is invalid.
///
/// # Errors
/// A message for a `page_size` field violation when negative or above [`MAX_PAGE_SIZE`].
pub fn page_size(requested: i32) -> Result<u64, String> {
    match requested {
        0 => Ok(DEFAULT_PAGE_SIZE),
        n if n < 0 => Err("must not be negative".into()),
        n if u64::try_from(n).unwrap_or(u64::MAX) > MAX_PAGE_SIZE => {
            Err(format!("must be at most {MAX_PAGE_SIZE}"))
        }
        n => Ok(u64::try_from(n).unwrap_or(DEFAULT_PAGE_SIZE)),
    }
}

/// Wraps the last row's key into a token.
pub fn encode_token(last_key: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{PREFIX}{last_key}"))
}

/// The key inside a token; `None` for the first page (empty token).
///
/// # Errors
/// A message for a `page_token` field violation when the token was not issued by us.
pub fn decode_token(token: &str) -> Result<Option<String>, String> {
    if token.is_empty() {
        return Ok(None);
    }
    URL_SAFE_NO_PAD
        .decode(token)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .and_then(|s| s.strip_prefix(PREFIX).map(str::to_owned))
        .filter(|key| !key.is_empty())
        .map(Some)
        .ok_or_else(|| "is not a token from a previous page".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_garbage_is_rejected() {
        let token = encode_token("0190-abc");
        assert_eq!(decode_token(&token), Ok(Some("0190-abc".into())));
        assert_eq!(decode_token(""), Ok(None));
        assert!(decode_token("not base64 !").is_err());
        assert!(decode_token(&URL_SAFE_NO_PAD.encode("other:x")).is_err());
    }

    #[test]
    fn page_sizes_default_and_are_bounded() {
        assert_eq!(page_size(0), Ok(DEFAULT_PAGE_SIZE));
        assert_eq!(page_size(7), Ok(7));
        assert!(page_size(-1).is_err());
        assert!(page_size(101).is_err());
    }
}
