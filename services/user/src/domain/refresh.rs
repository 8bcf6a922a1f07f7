//! Refresh tokens: what one is, how it is stored (its SHA-256, never the token) and when one
//! may be exchanged. A token belongs to a family, the sign-in it was rotated from; presenting a
//! consumed token again revokes its whole family (reuse detection: either the client or a
//! thief holds a copy, and the server cannot tell which).

use sha2::{Digest, Sha256};

/// A stored refresh token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshToken {
    /// Hex SHA-256 of the token.
    pub hash: String,
    /// The sign-in it belongs to.
    pub family_id: String,
    /// Its user.
    pub user_id: String,
    /// Epoch ms.
    pub created_at: i64,
    /// Epoch ms after which it is refused.
    pub expires_at: i64,
    /// When a refresh consumed it.
    pub used_at: Option<i64>,
    /// When it was revoked with its family.
    pub revoked_at: Option<i64>,
}

/// Why a refresh token is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshRejection {
    /// No such token (never issued, or pruned long after it expired).
    Unknown,
    /// Past its lifetime.
    Expired,
    /// Revoked: by Logout, with its account, or after a reuse.
    Revoked,
    /// Consumed before: this refresh revoked its whole family.
    Reused,
}

impl RefreshRejection {
    /// What the client is told.
    pub fn message(self) -> &'static str {
        match self {
            Self::Unknown => "refresh token is not recognized; sign in again",
            Self::Expired => "refresh token has expired; sign in again",
            Self::Revoked => "refresh token has been revoked; sign in again",
            Self::Reused => {
                "refresh token was already used; every refresh token of this sign-in is now \
                 revoked; sign in again"
            }
        }
    }
}

impl RefreshToken {
    /// Whether it may be exchanged at `now` (epoch ms). A consumed token is [`Reused`]
    /// (its family must then be revoked) unless the family is revoked already.
    ///
    /// [`Reused`]: RefreshRejection::Reused
    ///
    /// # Errors
    /// The [`RefreshRejection`].
    pub fn check(&self, now: i64) -> Result<(), RefreshRejection> {
        if self.revoked_at.is_some() {
            Err(RefreshRejection::Revoked)
        } else if self.used_at.is_some() {
            Err(RefreshRejection::Reused)
        } else if now >= self.expires_at {
            Err(RefreshRejection::Expired)
        } else {
            Ok(())
        }
    }
}

/// How a refresh token is stored and looked up: the hex SHA-256 of the token as sent. The
/// token carries 256 random bits, so a plain hash is enough: no salt, nothing to guess.
pub fn refresh_token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.trim().as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token() -> RefreshToken {
        RefreshToken {
            hash: refresh_token_hash("t"),
            family_id: "f".into(),
            user_id: "u".into(),
            created_at: 0,
            expires_at: 100,
            used_at: None,
            revoked_at: None,
        }
    }

    #[test]
    fn a_token_is_refused_once_revoked_used_or_expired() {
        assert_eq!(token().check(99), Ok(()));
        assert_eq!(token().check(100), Err(RefreshRejection::Expired));
        let used = RefreshToken {
            used_at: Some(50),
            ..token()
        };
        assert_eq!(used.check(60), Err(RefreshRejection::Reused));
        let revoked = RefreshToken {
            revoked_at: Some(70),
            ..used
        };
        assert_eq!(revoked.check(80), Err(RefreshRejection::Revoked));
    }

    #[test]
    fn the_hash_is_hex_sha256_of_the_token() {
        let h = refresh_token_hash("abc");
        assert_eq!(
            h,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            refresh_token_hash(" abc "),
            h,
            "surrounding space is ignored"
        );
    }
}
