//! Revocation reaches the catalog service through user events: an admin suspended by the user
//! service (its `polyshop.user.status_changed` event on a real nats-server) is refused within
//! seconds, and passes again once re-activated.

use std::time::Duration;

use async_nats::jetstream;
use polyshop::{
    api::v1::Money,
    catalog::v1::{self as pb, catalog_service_client::CatalogServiceClient},
    user::v1::{UserStatus, UserStatusChanged},
};
use polyshop_platform::{
    events, shutdown,
    testing::{self, NatsServer, TestTokens, bearer, eventually, eventually_some},
};
use tonic::{Code, transport::Channel};

/// Publishes a status change of `user_id` as the user service's outbox relay does.
async fn status_changed(js: &jetstream::Context, user_id: &str, status: UserStatus) {
    let event = events::event(&UserStatusChanged {
        user_id: user_id.into(),
        status: status as i32,
        ..Default::default()
    });
    testing::publish_event(js, event).await;
}

/// What CreateProduct with `token` answers: OK or the error code.
async fn create_code(client: &mut CatalogServiceClient<Channel>, token: &str) -> Code {
    let request = pb::CreateProductRequest {
        request_id: String::new(),
        name: "Kettle".into(),
        description: String::new(),
        category: "kitchen".into(),
        price: Some(Money {
            amount_minor: 2500,
            currency_code: "EUR".into(),
        }),
        active: true,
    };
    match client.create_product(bearer(request, token)).await {
        Ok(_) => Code::Ok,
        Err(status) => status.code(),
    }
}

#[tokio::test]
async fn a_suspended_users_token_is_refused_within_seconds_and_works_again_after_reactivation() {
    let nats = NatsServer::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut settings = testing::settings(dir.path());
    settings.nats.url = Some(nats.url());
    let tokens = TestTokens::new(&settings);
    let auth = tokens.authenticator(polyshop_catalog::SERVICE_NAME);
    let (listener, addr) = testing::listener().await;
    let (stop, stopped) = shutdown::channel();
    let task = tokio::spawn(async move {
        polyshop_catalog::serve_with_auth(settings, listener, auth, stopped.wait())
            .await
            .expect("catalog service runs");
    });
    let mut client = CatalogServiceClient::new(testing::channel(addr));
    let admin = tokens.admin("admin-1");
    eventually("the admin may create products", async || {
        create_code(&mut client, &admin).await == Code::Ok
    })
    .await;

    let js = testing::jetstream(&nats).await;
    // The catalog creates the streams in the background: make sure they are there first.
    events::streams::ensure(&js, 1).await.expect("streams");
    status_changed(&js, "admin-1", UserStatus::Suspended).await;
    let within = Duration::from_secs(5);
    eventually_some("the suspended admin is refused", within, async || {
        (create_code(&mut client, &admin).await == Code::Unauthenticated).then_some(())
    })
    .await;
    let other = tokens.admin("admin-2");
    assert_eq!(
        create_code(&mut client, &other).await,
        Code::Ok,
        "others pass"
    );

    status_changed(&js, "admin-1", UserStatus::Active).await;
    eventually_some("the re-activated admin passes", within, async || {
        (create_code(&mut client, &admin).await == Code::Ok).then_some(())
    })
    .await;

    stop.fire();
    let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
}
