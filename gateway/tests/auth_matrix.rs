//! The edge's auth matrix: every bad token is a 401 with a Bearer challenge, the wrong role a
//! 403, someone else's data a 403 from the service, and none of them ever a 200.
#![allow(clippy::unwrap_used)]

mod common;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use common::{System, start};
use http::StatusCode;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use polyshop_platform::auth::{Claims, keys};

fn now() -> u64 {
    u64::try_from(chrono_free_now()).unwrap()
}

fn chrono_free_now() -> i64 {
    i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap()
}

fn claims(system: &System, sub: &str) -> Claims {
    Claims {
        iss: system.settings.auth.issuer.clone(),
        sub: sub.into(),
        aud: system.settings.auth.audience.clone(),
        exp: now() + 600,
        iat: now(),
        jti: "t".into(),
        typ: "access".into(),
        roles: vec!["customer".into(), "admin".into()],
    }
}

fn sign(key: &keys::KeyPair, claims: &Claims) -> String {
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some(key.kid.clone());
    jsonwebtoken::encode(
        &header,
        claims,
        &EncodingKey::from_ed_pem(key.pem.as_bytes()).unwrap(),
    )
    .unwrap()
}

#[tokio::test]
async fn every_bad_token_is_rejected_and_none_gets_a_200() {
    let system = start(|_| {}).await;
    let (user_id, token) = system.sign_up("dave").await;
    let (other_id, _) = system.sign_up("erin").await;
    let real =
        keys::load_or_generate(&system.settings.keys_dir().join("user-token-ed25519.pem")).unwrap();
    let other = keys::load_or_generate(&system.settings.keys_dir().join("attacker.pem")).unwrap();
    let base = claims(&system, &user_id);

    let mut forged_kid = other.clone();
    forged_kid.kid = real.kid.clone();
    let none = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#),
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&base).unwrap())
    );
    let mut tampered = token.clone();
    tampered.pop();
    tampered.push(if token.ends_with('A') { 'B' } else { 'A' });
    let cases: Vec<(&str, Option<String>)> = vec![
        ("missing", None),
        ("malformed", Some("not-a-jwt".into())),
        ("bad signature", Some(sign(&forged_kid, &base))),
        ("tampered signature", Some(tampered)),
        ("unknown key", Some(sign(&other, &base))),
        ("alg none", Some(none)),
        (
            "expired",
            Some(sign(
                &real,
                &Claims {
                    exp: now() - 3600,
                    iat: now() - 7200,
                    ..base.clone()
                },
            )),
        ),
        (
            "wrong issuer",
            Some(sign(
                &real,
                &Claims {
                    iss: "evil".into(),
                    ..base.clone()
                },
            )),
        ),
        (
            "wrong audience",
            Some(sign(
                &real,
                &Claims {
                    aud: "elsewhere".into(),
                    ..base.clone()
                },
            )),
        ),
    ];
    for (case, bad) in &cases {
        for path in [
            format!("/v1/users/{user_id}"),
            "/v1/users".to_owned(),
            "/v1/dashboard".to_owned(),
        ] {
            let r = system.get(&path, bad.as_deref()).await;
            assert_eq!(
                r.status,
                StatusCode::UNAUTHORIZED,
                "{case} on {path}: {:?}",
                r.body
            );
            let challenge = r.headers["www-authenticate"].to_str().unwrap();
            assert!(challenge.starts_with("Bearer"), "{case}: {challenge}");
        }
    }
    let basic = system
        .raw(
            http::Method::GET,
            "/v1/users",
            &[("authorization", "Basic YTpi")],
            bytes::Bytes::new(),
        )
        .await;
    assert_eq!(basic.status, StatusCode::UNAUTHORIZED);

    // Right token, wrong role: the edge says 403 before the service is asked.
    let listed = system.get("/v1/users", Some(&token)).await;
    assert_eq!(listed.status, StatusCode::FORBIDDEN, "{:?}", listed.body);
    let status = system
        .post(
            &format!("/v1/users/{other_id}:changeStatus"),
            Some(&token),
            serde_json::json!({"status": "USER_STATUS_SUSPENDED"}),
        )
        .await;
    assert_eq!(status.status, StatusCode::FORBIDDEN);
    // Someone else's data: the service's owner check answers.
    let theirs = system
        .get(&format!("/v1/users/{other_id}"), Some(&token))
        .await;
    assert!(
        theirs.status == StatusCode::FORBIDDEN || theirs.status == StatusCode::NOT_FOUND,
        "{:?} {:?}",
        theirs.status,
        theirs.body
    );
    // The good token works, also repeatedly (from the cache), and an admin may list.
    for _ in 0..3 {
        assert_eq!(
            system
                .get(&format!("/v1/users/{user_id}"), Some(&token))
                .await
                .status,
            StatusCode::OK
        );
    }
    let admin = system.admin_token().await;
    assert_eq!(
        system.get("/v1/users", Some(&admin)).await.status,
        StatusCode::OK
    );
    // Public methods stay public with a bad token.
    assert_eq!(
        system.get("/v1/products", Some("garbage")).await.status,
        StatusCode::OK
    );
    system.stop().await;
}
