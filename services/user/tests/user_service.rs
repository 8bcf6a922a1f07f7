//! Black-box tests of the user service through the generated client, against a real server on
//! 127.0.0.1:0 with a fresh SQLite file (and PostgreSQL when configured).

use std::{net::SocketAddr, time::Duration};

use polyshop::user::v1::{self as pb, user_service_client::UserServiceClient};
use polyshop_platform::{
    config::Settings,
    shutdown,
    testing::{self, bearer, eventually, eventually_some, last_message},
};
use tonic::{Code, transport::Channel};
use tonic_types::StatusExt;

const PASSWORD: &str = "correct horse battery";

struct Running {
    addr: SocketAddr,
    stop: shutdown::Trigger,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    fn client(&self) -> UserServiceClient<Channel> {
        UserServiceClient::new(testing::channel(self.addr))
    }

    async fn stop(self) {
        self.stop.fire();
        let _ = tokio::time::timeout(Duration::from_secs(10), self.task).await;
    }
}

async fn start(settings: Settings) -> Running {
    let (listener, addr) = testing::listener().await;
    let (stop, stopped) = shutdown::channel();
    let task = tokio::spawn(async move {
        polyshop_user::serve(settings, listener, stopped.wait())
            .await
            .expect("user service runs");
    });
    // The server answers once migrations ran; wait for that.
    let mut client = UserServiceClient::new(testing::channel(addr));
    eventually("the user server answers", async || {
        client.get_jwks(pb::GetJwksRequest {}).await.is_ok()
    })
    .await;
    Running { addr, stop, task }
}

fn settings(dir: &tempfile::TempDir) -> Settings {
    let mut s = testing::settings(dir.path());
    s.user.admin_password = Some("admin password 123".into());
    s
}

async fn register(client: &mut UserServiceClient<Channel>, name: &str) -> pb::User {
    client
        .register(pb::RegisterRequest {
            username: name.into(),
            email: format!("{name}@example.com"),
            password: PASSWORD.into(),
            display_name: String::new(),
        })
        .await
        .expect("register")
        .into_inner()
        .user
        .expect("user")
}

async fn login(
    client: &mut UserServiceClient<Channel>,
    login: &str,
    password: &str,
) -> Result<String, tonic::Status> {
    Ok(client
        .login(pb::LoginRequest {
            login: login.into(),
            password: password.into(),
        })
        .await?
        .into_inner()
        .access_token)
}

#[tokio::test]
async fn register_login_and_read_your_own_profile() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = start(settings(&dir)).await;
    let mut client = server.client();

    let jane = register(&mut client, "jane").await;
    assert_eq!(jane.display_name, "jane");
    assert_eq!(jane.status, pb::UserStatus::Active as i32);
    assert_eq!(jane.roles, vec![pb::Role::Customer as i32]);

    // Login works by username or email, case-insensitively.
    let token = login(&mut client, "JANE@example.com", PASSWORD)
        .await
        .expect("login");
    let me = client
        .get_user(bearer(
            pb::GetUserRequest {
                user_id: jane.user_id.clone(),
            },
            &token,
        ))
        .await
        .expect("get own user")
        .into_inner()
        .user
        .expect("user");
    assert_eq!(me.email, "jane@example.com");

    // No token: UNAUTHENTICATED.
    let err = client
        .get_user(pb::GetUserRequest {
            user_id: jane.user_id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    server.stop().await;
}

#[tokio::test]
async fn another_users_profile_is_permission_denied() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = start(settings(&dir)).await;
    let mut client = server.client();
    let _jane = register(&mut client, "jane").await;
    let bob = register(&mut client, "bob").await;
    let token = login(&mut client, "jane", PASSWORD).await.expect("login");
    let err = client
        .get_user(bearer(
            pb::GetUserRequest {
                user_id: bob.user_id.clone(),
            },
            &token,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    let err = client
        .delete_user(bearer(
            pb::DeleteUserRequest {
                user_id: bob.user_id,
            },
            &token,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    server.stop().await;
}

#[tokio::test]
async fn bad_registrations_name_every_offending_field() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = start(settings(&dir)).await;
    let mut client = server.client();
    let err = client
        .register(pb::RegisterRequest {
            username: "x".into(),
            email: "not-an-email".into(),
            password: "short".into(),
            display_name: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let details = err.get_error_details();
    let fields: Vec<_> = details
        .bad_request()
        .expect("BadRequest detail")
        .field_violations
        .iter()
        .map(|v| v.field.clone())
        .collect();
    assert_eq!(fields, ["username", "email", "password"]);
    // Within the contract, broken only by the domain's rules: a password that is the
    // username, an email whose domain has one label.
    let err = client
        .register(pb::RegisterRequest {
            username: "janedoe-1234".into(),
            email: "jane@localhost".into(),
            password: "JANEDOE-1234".into(),
            display_name: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let details = err.get_error_details();
    let fields: Vec<_> = details
        .bad_request()
        .expect("BadRequest detail")
        .field_violations
        .iter()
        .map(|v| v.field.clone())
        .collect();
    assert_eq!(fields, ["email", "password"]);
    server.stop().await;
}

#[tokio::test]
async fn usernames_and_emails_are_unique_ignoring_case() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = start(settings(&dir)).await;
    let mut client = server.client();
    register(&mut client, "jane").await;
    let err = client
        .register(pb::RegisterRequest {
            username: "JANE".into(),
            email: "other@example.com".into(),
            password: PASSWORD.into(),
            display_name: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists);
    let err = client
        .register(pb::RegisterRequest {
            username: "janet".into(),
            email: "Jane@Example.com".into(),
            password: PASSWORD.into(),
            display_name: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists);
    assert_eq!(
        err.get_error_details().error_info().expect("info").reason,
        "EMAIL_TAKEN"
    );
    server.stop().await;
}

#[tokio::test]
async fn unknown_user_and_wrong_password_fail_the_same_way() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = start(settings(&dir)).await;
    let mut client = server.client();
    register(&mut client, "jane").await;
    let wrong = login(&mut client, "jane", "wrong password 123")
        .await
        .unwrap_err();
    let unknown = login(&mut client, "nobody", PASSWORD).await.unwrap_err();
    assert_eq!(wrong.code(), Code::Unauthenticated);
    assert_eq!(
        (wrong.code(), wrong.message()),
        (unknown.code(), unknown.message())
    );
    server.stop().await;
}

#[tokio::test]
async fn a_suspended_user_cannot_log_in_and_their_token_stops_working() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = start(settings(&dir)).await;
    let mut client = server.client();
    let jane = register(&mut client, "jane").await;
    let jane_token = login(&mut client, "jane", PASSWORD).await.expect("login");
    let admin_token = login(&mut client, "admin", "admin password 123")
        .await
        .expect("admin login");

    // Customers may not change status; admins may.
    let err = client
        .change_user_status(bearer(
            pb::ChangeUserStatusRequest {
                user_id: jane.user_id.clone(),
                status: pb::UserStatus::Suspended as i32,
                reason: "self".into(),
            },
            &jane_token,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    client
        .change_user_status(bearer(
            pb::ChangeUserStatusRequest {
                user_id: jane.user_id.clone(),
                status: pb::UserStatus::Suspended as i32,
                reason: "fraud check".into(),
            },
            &admin_token,
        ))
        .await
        .expect("admin suspends");

    let err = login(&mut client, "jane", PASSWORD).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    let err = client
        .get_user(bearer(
            pb::GetUserRequest {
                user_id: jane.user_id,
            },
            &jane_token,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    server.stop().await;
}

#[tokio::test]
async fn admins_list_users_page_by_page_with_other_emails_masked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = start(settings(&dir)).await;
    let mut client = server.client();
    for name in ["ann", "ben", "cat", "dan", "eve"] {
        register(&mut client, name).await;
    }
    let customer = login(&mut client, "ann", PASSWORD).await.expect("login");
    let err = client
        .list_users(bearer(
            pb::ListUsersRequest {
                page_size: 2,
                page_token: String::new(),
            },
            &customer,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);

    let admin = login(&mut client, "admin", "admin password 123")
        .await
        .expect("admin login");
    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = client
            .list_users(bearer(
                pb::ListUsersRequest {
                    page_size: 2,
                    page_token: token.clone(),
                },
                &admin,
            ))
            .await
            .expect("list")
            .into_inner();
        assert!(page.users.len() <= 2);
        for u in &page.users {
            if u.username != "admin" {
                assert!(
                    u.email.contains("***@"),
                    "email of another user is masked: {}",
                    u.email
                );
            }
            seen.push(u.username.clone());
        }
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(seen, ["admin", "ann", "ben", "cat", "dan", "eve"]);

    let err = client
        .list_users(bearer(
            pb::ListUsersRequest {
                page_size: 2,
                page_token: "garbage".into(),
            },
            &admin,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    server.stop().await;
}

#[tokio::test]
async fn profile_changes_and_addresses_are_kept_across_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = start(settings(&dir)).await;
    let mut client = server.client();
    let jane = register(&mut client, "jane").await;
    let token = login(&mut client, "jane", PASSWORD).await.expect("login");
    client
        .update_user(bearer(
            pb::UpdateUserRequest {
                user_id: jane.user_id.clone(),
                display_name: Some("Jane Doe".into()),
                email: None,
            },
            &token,
        ))
        .await
        .expect("update");
    let err = client
        .add_address(bearer(
            pb::AddAddressRequest {
                user_id: jane.user_id.clone(),
                address: Some(pb::Address::default()),
            },
            &token,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    client
        .add_address(bearer(
            pb::AddAddressRequest {
                user_id: jane.user_id.clone(),
                address: Some(pb::Address {
                    recipient: "Jane Doe".into(),
                    line1: "Invalidenstr. 1".into(),
                    city: "Berlin".into(),
                    postal_code: "10115".into(),
                    country_code: "DE".into(),
                    ..Default::default()
                }),
            },
            &token,
        ))
        .await
        .expect("add address");
    server.stop().await;

    let server = start(settings(&dir)).await;
    let mut client = server.client();
    let token = login(&mut client, "jane", PASSWORD)
        .await
        .expect("login after restart");
    let me = client
        .get_user(bearer(
            pb::GetUserRequest {
                user_id: jane.user_id,
            },
            &token,
        ))
        .await
        .expect("get")
        .into_inner()
        .user
        .expect("user");
    assert_eq!(me.display_name, "Jane Doe");
    assert_eq!(me.addresses.len(), 1);
    assert_eq!(me.addresses[0].city, "Berlin");
    server.stop().await;
}

#[tokio::test]
async fn tokens_verify_against_the_published_jwks() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = start(settings(&dir)).await;
    let mut client = server.client();
    register(&mut client, "jane").await;
    let token = login(&mut client, "jane", PASSWORD).await.expect("login");
    let jwks = client
        .get_jwks(pb::GetJwksRequest {})
        .await
        .expect("jwks")
        .into_inner();
    let s = settings(&dir);
    let verifier = polyshop_platform::auth::UserTokenVerifier::with_keys(
        s.auth.issuer.clone(),
        s.auth.audience.clone(),
        &jwks.keys,
    );
    let claims = verifier.verify(&token).await.expect("verifies");
    assert_eq!(claims.roles, ["customer"]);
    // A tampered signature does not verify.
    let mut forged = token.clone();
    forged.pop();
    forged.push(if token.ends_with('A') { 'B' } else { 'A' });
    assert!(verifier.verify(&forged).await.is_err());
    server.stop().await;
}

#[tokio::test]
async fn register_and_login_work_on_postgres() {
    let Some(url) = testing::postgres_database("user service").await else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let mut s = settings(&dir);
    s.user.database_url = Some(url.into());
    let server = start(s).await;
    let mut client = server.client();
    let jane = register(&mut client, "jane").await;
    let err = client
        .register(pb::RegisterRequest {
            username: "Jane".into(),
            email: "x@example.com".into(),
            password: PASSWORD.into(),
            display_name: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists);
    let token = login(&mut client, "jane", PASSWORD).await.expect("login");
    client
        .get_user(bearer(
            pb::GetUserRequest {
                user_id: jane.user_id,
            },
            &token,
        ))
        .await
        .expect("get on postgres");
    server.stop().await;
}

#[tokio::test]
async fn account_changes_are_published_as_events_through_the_outbox() {
    use prost::Message;
    let nats = testing::NatsServer::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut s = settings(&dir);
    s.nats.url = Some(nats.url());
    let server = start(s).await;
    let mut client = server.client();
    let jane = register(&mut client, "jane").await;
    let admin = login(&mut client, "admin", "admin password 123")
        .await
        .expect("admin");
    client
        .change_user_status(bearer(
            pb::ChangeUserStatusRequest {
                user_id: jane.user_id.clone(),
                status: pb::UserStatus::Suspended as i32,
                reason: "test".into(),
            },
            &admin,
        ))
        .await
        .expect("suspend");

    let message = eventually_some(
        "user.status_changed is published",
        testing::EVENTUALLY,
        async || last_message(&nats, "polyshop.user.status_changed").await,
    )
    .await;
    let event = pb::UserStatusChanged::decode(message.payload).expect("decodes");
    assert_eq!(event.user_id, jane.user_id);
    assert_eq!(event.status, pb::UserStatus::Suspended as i32);
    let registered = last_message(&nats, "polyshop.user.registered")
        .await
        .expect("user.registered published");
    let event = pb::UserRegistered::decode(registered.payload).expect("decodes");
    assert_eq!(event.user.expect("user").username, "jane");
    assert!(
        registered.headers.get("Nats-Msg-Id").is_some(),
        "published with its event id"
    );
    server.stop().await;
}
