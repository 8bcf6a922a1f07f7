//! Refresh tokens against a real user server (127.0.0.1:0, fresh SQLite file): Login returns
//! one, RefreshToken rotates it (the old one is refused afterwards, and presenting it again
//! revokes the whole sign-in, the newest token too), Logout revokes, a suspended or deleted
//! user cannot refresh, only the token's hash is stored, and an access token TTL above 15
//! minutes is refused by the configuration.

use std::{net::SocketAddr, time::Duration};

use figment::{Figment, providers::Serialized};
use polyshop::user::v1::{self as pb, user_service_client::UserServiceClient};
use polyshop_platform::{
    config::Settings,
    shutdown,
    testing::{self, bearer, eventually},
};
use sea_orm::{ConnectionTrait, Database, Statement};
use tonic::{Code, transport::Channel};
use tonic_types::StatusExt;

const PASSWORD: &str = "correct horse battery";
const ADMIN_PASSWORD: &str = "admin password 123";

struct Running {
    stop: shutdown::Trigger,
    task: tokio::task::JoinHandle<()>,
    addr: SocketAddr,
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

async fn start(dir: &tempfile::TempDir) -> Running {
    start_with(dir, |_| {}).await
}

async fn start_with(dir: &tempfile::TempDir, configure: impl FnOnce(&mut Settings)) -> Running {
    let mut settings = testing::settings(dir.path());
    settings.user.admin_password = Some(ADMIN_PASSWORD.into());
    configure(&mut settings);
    let (listener, addr) = testing::listener().await;
    let (stop, stopped) = shutdown::channel();
    let task = tokio::spawn(async move {
        polyshop_user::serve(settings, listener, stopped.wait())
            .await
            .expect("user service runs");
    });
    let mut client = UserServiceClient::new(testing::channel(addr));
    eventually("the user server answers", async || {
        client.get_jwks(pb::GetJwksRequest {}).await.is_ok()
    })
    .await;
    Running { stop, task, addr }
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
    name: &str,
    password: &str,
) -> pb::LoginResponse {
    client
        .login(pb::LoginRequest {
            login: name.into(),
            password: password.into(),
        })
        .await
        .expect("login")
        .into_inner()
}

async fn refresh(
    client: &mut UserServiceClient<Channel>,
    token: &str,
) -> Result<pb::RefreshTokenResponse, tonic::Status> {
    client
        .refresh_token(pb::RefreshTokenRequest {
            refresh_token: token.into(),
        })
        .await
        .map(tonic::Response::into_inner)
}

/// Asserts `result` is UNAUTHENTICATED with reason INVALID_REFRESH_TOKEN and a message
/// containing `says`.
fn refused<T: std::fmt::Debug>(result: Result<T, tonic::Status>, says: &str) {
    let status = result.expect_err("the refresh token is refused");
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    assert!(status.message().contains(says), "{status:?}");
    let info = status.get_error_details();
    let info = info.error_info().expect("ErrorInfo");
    assert_eq!(info.reason, "INVALID_REFRESH_TOKEN");
    assert_eq!(info.domain, "polyshop.user");
}

#[tokio::test]
async fn a_refresh_rotates_the_token_and_a_replay_revokes_the_whole_sign_in() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = start(&dir).await;
    let mut client = server.client();
    let jane = register(&mut client, "jane").await;

    let session = login(&mut client, "jane", PASSWORD).await;
    let first = session.refresh_token.clone();
    // 256 bits, base64url without padding.
    assert_eq!(first.len(), 43, "{first}");
    assert!(
        first
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    );
    let refresh_expiry = session.refresh_expire_time.expect("refresh expiry").seconds;
    let access_expiry = session.expire_time.expect("expiry").seconds;
    assert!(
        refresh_expiry > access_expiry + 86_400,
        "refresh tokens outlive access tokens"
    );

    // A refresh returns a working access token and a new refresh token.
    let second = refresh(&mut client, &first).await.expect("refresh");
    assert_eq!(second.token_type, "Bearer");
    assert_ne!(second.refresh_token, first);
    assert!(second.refresh_expire_time.is_some() && second.expire_time.is_some());
    client
        .get_user(bearer(
            pb::GetUserRequest {
                user_id: jane.user_id.clone(),
            },
            &second.access_token,
        ))
        .await
        .expect("the refreshed access token works");
    let third = refresh(&mut client, &second.refresh_token)
        .await
        .expect("the new refresh token works");

    // The consumed token is refused, and presenting it revokes its whole sign-in...
    refused(refresh(&mut client, &first).await, "already used");
    // ...so the newest token of that sign-in no longer works either.
    refused(refresh(&mut client, &third.refresh_token).await, "revoked");
    refused(refresh(&mut client, &second.refresh_token).await, "revoked");

    // Other sign-ins of the same user are not affected.
    let other = login(&mut client, "jane", PASSWORD).await;
    refresh(&mut client, &other.refresh_token)
        .await
        .expect("another sign-in still refreshes");

    // Unknown and empty tokens.
    refused(refresh(&mut client, "not-a-token").await, "not recognized");
    let empty = refresh(&mut client, "").await.expect_err("empty");
    assert_eq!(empty.code(), Code::InvalidArgument);
    server.stop().await;
}

#[tokio::test]
async fn logout_revokes_the_sign_in_and_is_idempotent() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = start(&dir).await;
    let mut client = server.client();
    register(&mut client, "jane").await;
    let session = login(&mut client, "jane", PASSWORD).await;
    let next = refresh(&mut client, &session.refresh_token)
        .await
        .expect("refresh");

    // Logging out with the current token ends the sign-in.
    for _ in 0..2 {
        client
            .logout(pb::LogoutRequest {
                refresh_token: next.refresh_token.clone(),
            })
            .await
            .expect("logout, again and again");
    }
    refused(refresh(&mut client, &next.refresh_token).await, "revoked");
    // An unknown token is signed out already.
    client
        .logout(pb::LogoutRequest {
            refresh_token: "never-issued".into(),
        })
        .await
        .expect("logout of an unknown token");
    server.stop().await;
}

#[tokio::test]
async fn a_suspended_or_deleted_user_cannot_refresh() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = start(&dir).await;
    let mut client = server.client();
    let jane = register(&mut client, "jane").await;
    let bob = register(&mut client, "bob").await;
    let admin = login(&mut client, "admin", ADMIN_PASSWORD)
        .await
        .access_token;
    let jane_session = login(&mut client, "jane", PASSWORD).await;
    let bob_session = login(&mut client, "bob", PASSWORD).await;

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
    refused(
        refresh(&mut client, &jane_session.refresh_token).await,
        "revoked",
    );
    // Re-activation does not bring the revoked sign-in back: she signs in again.
    client
        .change_user_status(bearer(
            pb::ChangeUserStatusRequest {
                user_id: jane.user_id.clone(),
                status: pb::UserStatus::Active as i32,
                reason: "test".into(),
            },
            &admin,
        ))
        .await
        .expect("re-activate");
    refused(
        refresh(&mut client, &jane_session.refresh_token).await,
        "revoked",
    );
    let again = login(&mut client, "jane", PASSWORD).await;
    refresh(&mut client, &again.refresh_token)
        .await
        .expect("a new sign-in refreshes");

    // Deleting an account drops its refresh tokens.
    client
        .delete_user(bearer(
            pb::DeleteUserRequest {
                user_id: bob.user_id.clone(),
            },
            &bob_session.access_token,
        ))
        .await
        .expect("bob deletes his account");
    refused(
        refresh(&mut client, &bob_session.refresh_token).await,
        "not recognized",
    );
    server.stop().await;
}

/// The user database of the server that ran in `dir`.
async fn database(dir: &tempfile::TempDir) -> sea_orm::DatabaseConnection {
    let url = format!("sqlite://{}", dir.path().join("user.db").display());
    Database::connect(url)
        .await
        .expect("open the user database")
}

/// Runs `sql` on the user database of `dir` (while no server uses it).
async fn execute(dir: &tempfile::TempDir, sql: &str) {
    let db = database(dir).await;
    db.execute_raw(Statement::from_string(db.get_database_backend(), sql))
        .await
        .expect("update refresh tokens");
    db.close().await.expect("close");
}

async fn stored_tokens(dir: &tempfile::TempDir) -> usize {
    let db = database(dir).await;
    let rows = db
        .query_all_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT token_hash FROM refresh_tokens",
        ))
        .await
        .expect("read refresh tokens");
    let _ = db.close().await;
    rows.len()
}

#[tokio::test]
async fn an_expired_token_is_refused_and_pruned_a_day_later() {
    let dir = tempfile::tempdir().expect("tempdir");
    let prune_often = |s: &mut Settings| s.events.prune_interval_secs = 1;
    let server = start_with(&dir, prune_often).await;
    let mut client = server.client();
    register(&mut client, "jane").await;
    let session = login(&mut client, "jane", PASSWORD).await;
    server.stop().await;

    // Expired a second ago: refused as expired, and kept for now.
    let now = polyshop_platform::now_millis();
    execute(
        &dir,
        &format!("UPDATE refresh_tokens SET expires_at = {}", now - 1000),
    )
    .await;
    let server = start_with(&dir, prune_often).await;
    let mut client = server.client();
    refused(
        refresh(&mut client, &session.refresh_token).await,
        "expired",
    );
    assert_eq!(stored_tokens(&dir).await, 1);
    server.stop().await;

    // Expired two days ago: the retention pass deletes it.
    execute(
        &dir,
        &format!(
            "UPDATE refresh_tokens SET expires_at = {}",
            now - 2 * 86_400_000
        ),
    )
    .await;
    let server = start_with(&dir, prune_often).await;
    let mut client = server.client();
    eventually("the expired refresh token to be pruned", async || {
        stored_tokens(&dir).await == 0
    })
    .await;
    refused(
        refresh(&mut client, &session.refresh_token).await,
        "not recognized",
    );
    server.stop().await;
}

#[tokio::test]
async fn only_the_hash_of_a_refresh_token_is_stored() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = start(&dir).await;
    let mut client = server.client();
    register(&mut client, "jane").await;
    let session = login(&mut client, "jane", PASSWORD).await;
    server.stop().await;

    let db = database(&dir).await;
    let rows = db
        .query_all_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT token_hash, family_id, user_id FROM refresh_tokens",
        ))
        .await
        .expect("read refresh tokens");
    assert_eq!(rows.len(), 1);
    let hash: String = rows[0].try_get("", "token_hash").expect("hash");
    assert_eq!(hash.len(), 64, "hex SHA-256");
    for column in ["token_hash", "family_id", "user_id"] {
        let value: String = rows[0].try_get("", column).expect("column");
        assert_ne!(
            value, session.refresh_token,
            "the token itself is not stored"
        );
    }
}

#[test]
fn an_access_token_ttl_above_15_minutes_is_refused() {
    let validated = |ttl: u64| {
        let mut settings = Settings::default();
        settings.auth.token_ttl_secs = ttl;
        Settings::from_figment(Figment::from(Serialized::defaults(settings)))
    };
    let err = validated(901).expect_err("16 minutes is too long");
    let err = err.to_string();
    assert!(err.contains("auth.token_ttl_secs"), "{err}");
    assert!(err.contains("at most 15 minutes"), "{err}");
    assert!(validated(86_400).is_err());
    let ok = validated(900).expect("15 minutes is allowed");
    assert!(ok.auth.token_ttl_secs <= 900);
    assert!(
        Settings::default().auth.token_ttl_secs <= 900,
        "the default is at most 15 minutes"
    );
    assert!(Settings::default().user.refresh_token_ttl_secs >= 86_400);
}
