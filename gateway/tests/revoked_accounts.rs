//! The edge refuses the token of a suspended or deleted user within seconds, not when the
//! token expires: with a real nats-server, the edge follows the user events (the user
//! service's outbox relay publishes them) and answers 401 "account is not active".
//!
//! The probe is `GET /v1/notifications`, whose service is down in the test system: a token
//! the edge accepts gets 503 from the missing upstream, so a 401 can only be the edge's own.
//!
//! Also: refresh tokens through the edge's JSON routes (`/v1/auth/refresh`, `/v1/auth/logout`).
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{PASSWORD, System, start, status_name};
use http::StatusCode;
use polyshop::user::v1 as pb;
use polyshop_platform::{
    events::{self, streams},
    testing::{NatsServer, eventually_some, jetstream, publish_event},
};
use serde_json::json;

/// How soon a status change must reach the edge.
const WITHIN: Duration = Duration::from_secs(5);

const PROBE: &str = "/v1/notifications";

/// Asserts the edge lets `token` through now (the absent upstream answers, not the edge).
async fn passes(system: &System, token: &str, who: &str) {
    let r = system.get(PROBE, Some(token)).await;
    assert_ne!(r.status, StatusCode::UNAUTHORIZED, "{who}: {:?}", r.body);
    assert_ne!(r.status, StatusCode::FORBIDDEN, "{who}: {:?}", r.body);
}

/// Waits, for at most [`WITHIN`], until the edge refuses `token` as an account's that is not
/// active.
async fn refused_soon(system: &System, token: &str, who: &str) {
    let r = eventually_some(
        &format!("the edge to refuse {who}'s token"),
        WITHIN,
        async || {
            let r = system.get(PROBE, Some(token)).await;
            (r.status == StatusCode::UNAUTHORIZED).then_some(r)
        },
    )
    .await;
    assert_eq!(status_name(&r), "UNAUTHENTICATED");
    let message = r.body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("account is not active"), "{:?}", r.body);
    assert!(r.headers.contains_key(http::header::WWW_AUTHENTICATE));
}

#[tokio::test]
async fn a_suspended_or_deleted_users_token_is_refused_at_the_edge_within_seconds() {
    let nats = NatsServer::start().await;
    let js = jetstream(&nats).await;
    streams::ensure(&js, 1).await.expect("streams");
    let url = nats.url();
    let system = start(move |s| s.nats.url = Some(url)).await;

    let (jane, jane_token) = system.sign_up("jane").await;
    let (bob, bob_token) = system.sign_up("bob").await;
    let (_carl, carl_token) = system.sign_up("carl").await;
    for (token, who) in [(&jane_token, "jane"), (&bob_token, "bob")] {
        passes(&system, token, who).await;
    }

    // An admin suspends Jane through the edge; the user service's event reaches the edge.
    let admin = system.admin_token().await;
    let r = system
        .post(
            &format!("/v1/users/{jane}:changeStatus"),
            Some(&admin),
            json!({"status": "USER_STATUS_SUSPENDED", "reason": "test"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "suspend: {:?}", r.body);
    refused_soon(&system, &jane_token, "jane").await;

    // Bob's deletion arrives only as an event (as from another user instance): the edge's own
    // replica of the user events refuses him, whatever the services say.
    let deleted = events::event(&pb::UserDeleted {
        user_id: bob.clone(),
        occur_time: None,
    });
    publish_event(&js, deleted).await;
    refused_soon(&system, &bob_token, "bob").await;

    // Everyone else still passes, and public calls stay anonymous for a refused token.
    passes(&system, &carl_token, "carl").await;
    passes(&system, &admin, "the admin").await;
    let public = system
        .get("/v1/products?pageSize=1", Some(&jane_token))
        .await;
    assert_eq!(public.status, StatusCode::OK, "{:?}", public.body);

    // Re-activated, Jane's unexpired token passes the edge again.
    let r = system
        .post(
            &format!("/v1/users/{jane}:changeStatus"),
            Some(&admin),
            json!({"status": "USER_STATUS_ACTIVE", "reason": "test"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "re-activate: {:?}", r.body);
    eventually_some("the edge to pass jane again", WITHIN, async || {
        let r = system.get(PROBE, Some(&jane_token)).await;
        (r.status != StatusCode::UNAUTHORIZED).then_some(())
    })
    .await;
    system.stop().await;
}

#[tokio::test]
async fn refresh_and_logout_work_through_the_edge_as_json() {
    let system = start(|_| {}).await;
    let (jane, _) = system.sign_up("jane").await;
    let login = system
        .post(
            "/v1/auth/login",
            None,
            json!({"login": "jane", "password": PASSWORD}),
        )
        .await;
    assert_eq!(login.status, StatusCode::OK, "{:?}", login.body);
    let first = login.body["refreshToken"].as_str().unwrap().to_owned();
    assert!(
        login.body["refreshExpireTime"].is_string(),
        "{:?}",
        login.body
    );

    let refreshed = system
        .post("/v1/auth/refresh", None, json!({"refreshToken": first}))
        .await;
    assert_eq!(refreshed.status, StatusCode::OK, "{:?}", refreshed.body);
    assert_eq!(refreshed.body["tokenType"], "Bearer");
    let access = refreshed.body["accessToken"].as_str().unwrap();
    let second = refreshed.body["refreshToken"].as_str().unwrap().to_owned();
    assert_ne!(second, first);
    let me = system.get(&format!("/v1/users/{jane}"), Some(access)).await;
    assert_eq!(me.status, StatusCode::OK, "{:?}", me.body);

    // The used token is refused: 401 with the user context's reason.
    let again = system
        .post("/v1/auth/refresh", None, json!({"refreshToken": first}))
        .await;
    assert_eq!(again.status, StatusCode::UNAUTHORIZED, "{:?}", again.body);
    assert!(
        again.body.to_string().contains("INVALID_REFRESH_TOKEN"),
        "{:?}",
        again.body
    );

    // Logout answers 200 every time.
    for _ in 0..2 {
        let out = system
            .post("/v1/auth/logout", None, json!({"refreshToken": second}))
            .await;
        assert_eq!(out.status, StatusCode::OK, "{:?}", out.body);
    }
    system.stop().await;
}
