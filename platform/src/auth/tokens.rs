//! Signed JWTs (EdDSA only): user access tokens issued by the user service and verified
//! everywhere through its JWKS, and short-lived service-to-service tokens (issuer = caller,
//! audience = callee), each service signing with its own key (see [`super::service_keys`]).

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex, RwLock,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use crate::discovery::Balanced;
use jsonwebtoken::{
    Algorithm, DecodingKey, EncodingKey, Header, Validation, decode, decode_header,
};
use serde::{Deserialize, Serialize};

use super::{
    keys::KeyPair,
    service_keys::{ServiceSigner, ServiceTrust},
};
use polyshop::user::v1::{GetJwksRequest, JsonWebKey, user_service_client::UserServiceClient};

/// `typ` of a user access token.
pub const TYPE_ACCESS: &str = "access";
/// `typ` of a service token.
pub const TYPE_SERVICE: &str = "service";
/// Clock skew tolerated on `exp`.
const LEEWAY_SECS: u64 = 30;
/// JWKS refetches on an unknown `kid` are at most this frequent.
const JWKS_REFRESH_MIN: Duration = Duration::from_secs(5);

/// The claims of every Polyshop token.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    /// Issuer.
    pub iss: String,
    /// Subject: user id, or the calling service's name.
    pub sub: String,
    /// Audience.
    pub aud: String,
    /// Expiry, seconds since the epoch.
    pub exp: u64,
    /// Issued at, seconds since the epoch.
    pub iat: u64,
    /// Token id.
    pub jti: String,
    /// `access` or `service`.
    pub typ: String,
    /// Role names (`customer`, `admin`) of a user token.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
}

/// Why a token was not accepted. Kept coarse on purpose: the wire says only "invalid token".
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// Bad signature, algorithm, issuer, audience, expiry or shape.
    #[error("invalid token: {0}")]
    Invalid(String),
    /// The key set could not be fetched.
    #[error("cannot fetch the JWKS: {0}")]
    KeysUnavailable(String),
}

fn now_secs() -> u64 {
    u64::try_from(chrono::Utc::now().timestamp()).unwrap_or(0)
}

fn validation(issuer: Option<&str>, audience: &str) -> Validation {
    let mut v = Validation::new(Algorithm::EdDSA);
    v.algorithms = vec![Algorithm::EdDSA];
    v.leeway = LEEWAY_SECS;
    v.set_audience(&[audience]);
    if let Some(iss) = issuer {
        v.set_issuer(&[iss]);
    }
    v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    v
}

fn sign(key: &KeyPair, claims: &Claims) -> Result<String, TokenError> {
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some(key.kid.clone());
    let encoding = EncodingKey::from_ed_pem(key.pem.as_bytes())
        .map_err(|e| TokenError::Invalid(format!("signing key: {e}")))?;
    jsonwebtoken::encode(&header, claims, &encoding)
        .map_err(|e| TokenError::Invalid(format!("signing: {e}")))
}

/// Issues user access tokens (held by the user service only).
#[derive(Debug)]
pub struct TokenIssuer {
    key: KeyPair,
    issuer: String,
    audience: String,
    ttl: Duration,
}

impl TokenIssuer {
    /// An issuer signing with `key`.
    pub fn new(key: KeyPair, issuer: String, audience: String, ttl: Duration) -> Self {
        Self {
            key,
            issuer,
            audience,
            ttl,
        }
    }

    /// A token for `user_id` with `roles`, and its expiry in seconds since the epoch.
    ///
    /// # Errors
    /// [`TokenError`] if signing fails.
    pub fn issue(&self, user_id: &str, roles: Vec<String>) -> Result<(String, u64), TokenError> {
        let iat = now_secs();
        let claims = Claims {
            iss: self.issuer.clone(),
            sub: user_id.to_owned(),
            aud: self.audience.clone(),
            exp: iat + self.ttl.as_secs(),
            iat,
            jti: crate::new_id(),
            typ: TYPE_ACCESS.into(),
            roles,
        };
        Ok((sign(&self.key, &claims)?, claims.exp))
    }

    /// The public half as a JWK.
    pub fn jwk(&self) -> JsonWebKey {
        jwk_of(&self.key)
    }
}

/// The JWK (RFC 8037 OKP) of a key pair's public half.
pub fn jwk_of(key: &KeyPair) -> JsonWebKey {
    JsonWebKey {
        kty: "OKP".into(),
        crv: "Ed25519".into(),
        x: key.public_x(),
        kid: key.kid.clone(),
        alg: "EdDSA".into(),
        r#use: "sig".into(),
    }
}

/// Verified tokens kept at most; past this, expired ones are dropped, then all.
const VERIFIED_MAX: usize = 10_000;

/// Tokens whose signature and claims were checked, until they expire: a client's steady
/// stream of calls pays one signature check, not one per call.
#[derive(Debug, Default)]
struct Verified(RwLock<HashMap<Box<str>, Claims>>);

impl Verified {
    fn get(&self, token: &str, now: u64) -> Option<Claims> {
        self.0
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(token)
            .filter(|c| c.exp > now)
            .cloned()
    }

    fn clear(&self) {
        self.0
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clear();
    }

    fn put(&self, token: &str, claims: &Claims, now: u64) {
        if claims.exp <= now {
            return;
        }
        let mut map = self
            .0
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if map.len() >= VERIFIED_MAX {
            map.retain(|_, c| c.exp > now);
            if map.len() >= VERIFIED_MAX {
                map.clear();
            }
        }
        map.insert(token.into(), claims.clone());
    }
}

/// Verifies user access tokens against the user service's JWKS, cached by `kid` and refetched
/// when a token names a key it has not seen; verified tokens are remembered until they expire.
#[derive(Debug)]
pub struct UserTokenVerifier {
    issuer: String,
    audience: String,
    keys: RwLock<HashMap<String, DecodingKey>>,
    verified: Verified,
    source: RwLock<Option<UserServiceClient<Balanced>>>,
    // Async: concurrent verifiers of an unknown kid wait for the one fetch in flight.
    last_fetch: tokio::sync::Mutex<Option<Instant>>,
}

impl UserTokenVerifier {
    /// A verifier that knows exactly `keys` (the user service verifying its own tokens).
    pub fn with_keys(issuer: String, audience: String, keys: &[JsonWebKey]) -> Self {
        let verifier = Self {
            issuer,
            audience,
            keys: RwLock::default(),
            verified: Verified::default(),
            source: RwLock::new(None),
            last_fetch: tokio::sync::Mutex::new(None),
        };
        verifier.install(keys);
        verifier
    }

    /// A verifier that fetches the JWKS from the user service through `users` when needed.
    pub fn remote(issuer: String, audience: String, users: Balanced) -> Self {
        Self {
            issuer,
            audience,
            keys: RwLock::default(),
            verified: Verified::default(),
            source: RwLock::new(Some(UserServiceClient::new(users))),
            last_fetch: tokio::sync::Mutex::new(None),
        }
    }

    /// Fetches the JWKS through `users` from now on (a remote verifier made before discovery
    /// was up moves to the discovered instances).
    pub fn fetch_from(&self, users: Balanced) {
        let mut source = self
            .source
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if source.is_some() {
            *source = Some(UserServiceClient::new(users));
        }
    }

    fn install(&self, jwks: &[JsonWebKey]) {
        let mut keys = self
            .keys
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for jwk in jwks.iter().filter(|k| k.kty == "OKP" && k.crv == "Ed25519") {
            if let Ok(key) = DecodingKey::from_ed_components(&jwk.x) {
                keys.insert(jwk.kid.clone(), key);
            }
        }
    }

    fn key(&self, kid: &str) -> Option<DecodingKey> {
        self.keys
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(kid)
            .cloned()
    }

    async fn refresh(&self, kid: &str) -> Result<(), TokenError> {
        let client = self
            .source
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let Some(mut client) = client else {
            return Ok(());
        };
        let mut last = self.last_fetch.lock().await;
        // Someone else's fetch may have brought the key while we waited.
        if self.key(kid).is_some() || last.is_some_and(|t| t.elapsed() < JWKS_REFRESH_MIN) {
            return Ok(());
        }
        *last = Some(Instant::now());
        let response = client
            .get_jwks(GetJwksRequest {})
            .await
            .map_err(|s| TokenError::KeysUnavailable(s.message().to_owned()))?;
        self.install(&response.into_inner().keys);
        Ok(())
    }

    /// The claims of `token` if it was verified before and has not expired.
    pub fn cached(&self, token: &str) -> Option<Claims> {
        self.verified
            .get(token, jsonwebtoken::get_current_timestamp())
    }

    /// Verifies signature (EdDSA only), issuer, audience, expiry and type.
    ///
    /// # Errors
    /// [`TokenError`] naming what failed.
    pub async fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        let now = jsonwebtoken::get_current_timestamp();
        if let Some(claims) = self.verified.get(token, now) {
            return Ok(claims);
        }
        let header = decode_header(token).map_err(|e| TokenError::Invalid(e.to_string()))?;
        if header.alg != Algorithm::EdDSA {
            return Err(TokenError::Invalid(format!(
                "algorithm {:?} not allowed",
                header.alg
            )));
        }
        let kid = header
            .kid
            .ok_or_else(|| TokenError::Invalid("no kid".into()))?;
        let key = match self.key(&kid) {
            Some(key) => key,
            None => {
                self.refresh(&kid).await?;
                self.key(&kid)
                    .ok_or_else(|| TokenError::Invalid(format!("unknown kid {kid}")))?
            }
        };
        let claims = decode::<Claims>(token, &key, &validation(Some(&self.issuer), &self.audience))
            .map_err(|e| TokenError::Invalid(e.to_string()))?
            .claims;
        if claims.typ != TYPE_ACCESS {
            return Err(TokenError::Invalid("not an access token".into()));
        }
        self.verified.put(token, &claims, now);
        Ok(claims)
    }
}

/// Mints this service's service-to-service tokens (with its own key) and verifies those of
/// the others (against the trusted public keys, each bound to one issuer).
#[derive(Debug)]
pub struct ServiceTokens {
    signer: ServiceSigner,
    trust: Arc<ServiceTrust>,
    name: String,
    ttl: Duration,
    minted: Mutex<HashMap<String, (String, u64)>>,
    verified: Verified,
    /// The trust generation the remembered verdicts were made under.
    generation: AtomicU64,
}

impl ServiceTokens {
    /// Tokens of the service called `name` (e.g. `polyshop-order`), signed by `signer`,
    /// verified against `trust`.
    pub fn new(signer: ServiceSigner, trust: Arc<ServiceTrust>, name: &str, ttl: Duration) -> Self {
        Self {
            signer,
            generation: AtomicU64::new(trust.generation()),
            trust,
            name: name.to_owned(),
            ttl,
            minted: Mutex::default(),
            verified: Verified::default(),
        }
    }

    /// This service's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether `kid` names a trusted service key, i.e. the token is a service token.
    pub fn knows(&self, kid: &str) -> bool {
        self.trust.knows(kid)
    }

    /// A token for calling `audience`, reused until a third of its life is left (or until
    /// this service's key is rotated).
    ///
    /// # Errors
    /// [`TokenError`] if signing fails.
    pub fn token_for(&self, audience: &str) -> Result<String, TokenError> {
        let now = now_secs();
        let (key, rotated) = self.signer.key();
        let mut minted = self
            .minted
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if rotated {
            minted.clear();
        }
        if let Some((token, exp)) = minted.get(audience)
            && *exp > now + self.ttl.as_secs() / 3
        {
            return Ok(token.clone());
        }
        let claims = Claims {
            iss: self.name.clone(),
            sub: self.name.clone(),
            aud: audience.to_owned(),
            exp: now + self.ttl.as_secs(),
            iat: now,
            jti: crate::new_id(),
            typ: TYPE_SERVICE.into(),
            roles: Vec::new(),
        };
        let token = sign(&key, &claims)?;
        minted.insert(audience.to_owned(), (token.clone(), claims.exp));
        Ok(token)
    }

    /// Drops remembered verdicts when the trusted keys changed (a key removed or retired).
    fn forget_if_keys_changed(&self) {
        let now = self.trust.generation();
        if self.generation.swap(now, Ordering::Relaxed) != now {
            self.verified.clear();
        }
    }

    /// The claims of `token` if it was verified before, has not expired, and its key is
    /// still trusted.
    pub fn cached(&self, token: &str) -> Option<Claims> {
        self.forget_if_keys_changed();
        self.verified
            .get(token, jsonwebtoken::get_current_timestamp())
    }

    /// Verifies a token addressed to this service by another Polyshop service: signed by a
    /// trusted key, whose issuer it names.
    ///
    /// # Errors
    /// [`TokenError`] naming what failed.
    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        // A caller reuses its token for most of its lifetime: check the signature once.
        self.forget_if_keys_changed();
        let now = jsonwebtoken::get_current_timestamp();
        if let Some(claims) = self.verified.get(token, now) {
            return Ok(claims);
        }
        let kid = decode_header(token)
            .map_err(|e| TokenError::Invalid(e.to_string()))?
            .kid
            .unwrap_or_default();
        let claims = self
            .trust
            .with_key(&kid, |iss, key| {
                decode::<Claims>(token, key, &validation(Some(iss), &self.name))
                    .map_err(|e| TokenError::Invalid(e.to_string()))
            })
            .ok_or_else(|| TokenError::Invalid(format!("unknown service key {kid}")))??
            .claims;
        if claims.typ != TYPE_SERVICE || claims.sub != claims.iss {
            return Err(TokenError::Invalid("not a service token".into()));
        }
        self.verified.put(token, &claims, now);
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn issuer_and_verifier() -> (TokenIssuer, UserTokenVerifier, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("tempdir");
        let key = super::super::keys::load_or_generate(&dir.path().join("k.pem")).expect("key");
        let issuer = TokenIssuer::new(key, "iss".into(), "aud".into(), Duration::from_secs(60));
        let verifier = UserTokenVerifier::with_keys("iss".into(), "aud".into(), &[issuer.jwk()]);
        (issuer, verifier, dir)
    }

    #[tokio::test]
    async fn a_verified_token_is_remembered_and_a_bad_one_is_not() {
        let (issuer, verifier, _dir) = issuer_and_verifier();
        let (token, _) = issuer.issue("u1", vec!["customer".into()]).expect("sign");
        let claims = verifier.verify(&token).await.expect("valid");
        assert_eq!(claims.sub, "u1");
        // Without keys only the remembered verdict can accept it.
        verifier
            .keys
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clear();
        assert_eq!(verifier.verify(&token).await.expect("remembered"), claims);
        let (other, _) = issuer.issue("u2", vec![]).expect("sign");
        assert!(verifier.verify(&other).await.is_err(), "never verified");
        let mut tampered = token.clone();
        tampered.push('x');
        assert!(verifier.verify(&tampered).await.is_err());
    }

    #[test]
    fn expired_verdicts_are_not_served() {
        let verified = Verified::default();
        let claims = Claims {
            iss: "iss".into(),
            sub: "u1".into(),
            aud: "aud".into(),
            exp: 100,
            iat: 0,
            jti: "j".into(),
            typ: TYPE_ACCESS.into(),
            roles: vec![],
        };
        verified.put("t", &claims, 50);
        assert_eq!(verified.get("t", 99), Some(claims.clone()));
        assert_eq!(verified.get("t", 100), None);
        verified.put("late", &claims, 100);
        assert_eq!(
            verified.get("late", 0),
            None,
            "an expired token is not stored"
        );
    }
}
