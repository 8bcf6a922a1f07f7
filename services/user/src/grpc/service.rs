//! `polyshop.user.v1.UserService`: each handler converts, calls one use case, converts back.

use std::sync::Arc;

use polyshop::user::v1::{self as pb, user_service_server::UserService};
use polyshop_platform::auth::principal;
use tonic::{Request, Response, Status};

use super::convert;
use crate::{
    app::{self, Hashing, RefreshTokenRepository, Registration, Session, Sessions, UserRepository},
    domain::UserError,
};

/// The user service's gRPC handlers.
#[derive(Debug)]
pub struct UserGrpc<R, T> {
    repo: Arc<R>,
    sessions: Arc<Sessions<T>>,
    hashing: Arc<Hashing>,
}

impl<R, T> UserGrpc<R, T> {
    /// Handlers over `repo`, issuing tokens with `sessions`, hashing passwords with `hashing`.
    pub fn new(repo: Arc<R>, sessions: Arc<Sessions<T>>, hashing: Arc<Hashing>) -> Self {
        Self {
            repo,
            sessions,
            hashing,
        }
    }
}

type Reply<T> = Result<Response<T>, Status>;

fn seconds(at: u64) -> Option<prost_types::Timestamp> {
    Some(prost_types::Timestamp {
        seconds: i64::try_from(at).unwrap_or(i64::MAX),
        nanos: 0,
    })
}

/// A session's tokens, as RefreshToken answers them.
fn refreshed(session: Session) -> pb::RefreshTokenResponse {
    pb::RefreshTokenResponse {
        access_token: session.access_token,
        token_type: "Bearer".into(),
        expire_time: seconds(session.expires_at),
        refresh_token: session.refresh_token,
        refresh_expire_time: Some(polyshop_platform::timestamp(session.refresh_expires_at)),
    }
}

#[tonic::async_trait]
impl<R: UserRepository, T: RefreshTokenRepository> UserService for UserGrpc<R, T> {
    async fn register(&self, request: Request<pb::RegisterRequest>) -> Reply<pb::RegisterResponse> {
        let r = request.into_inner();
        let reg = Registration {
            username: r.username,
            email: r.email,
            password: r.password,
            display_name: r.display_name,
        };
        let user = app::register(self.repo.as_ref(), &self.hashing, reg).await?;
        tracing::info!(user_id = %user.id, "user registered");
        Ok(Response::new(pb::RegisterResponse {
            user: Some(convert::user(user)),
        }))
    }

    async fn login(&self, request: Request<pb::LoginRequest>) -> Reply<pb::LoginResponse> {
        let r = request.into_inner();
        let (repo, hashing) = (self.repo.as_ref(), self.hashing.as_ref());
        let session = app::login(repo, hashing, &self.sessions, &r.login, &r.password).await?;
        Ok(Response::new(pb::LoginResponse {
            access_token: session.access_token,
            token_type: "Bearer".into(),
            expire_time: seconds(session.expires_at),
            refresh_token: session.refresh_token,
            refresh_expire_time: Some(polyshop_platform::timestamp(session.refresh_expires_at)),
            user: Some(convert::user(session.user)),
        }))
    }

    async fn refresh_token(
        &self,
        request: Request<pb::RefreshTokenRequest>,
    ) -> Reply<pb::RefreshTokenResponse> {
        let token = &request.get_ref().refresh_token;
        let session = app::refresh(self.repo.as_ref(), &self.sessions, token).await?;
        Ok(Response::new(refreshed(session)))
    }

    async fn logout(&self, request: Request<pb::LogoutRequest>) -> Reply<pb::LogoutResponse> {
        app::logout(&self.sessions, &request.get_ref().refresh_token).await?;
        Ok(Response::new(pb::LogoutResponse {}))
    }

    async fn get_user(&self, request: Request<pb::GetUserRequest>) -> Reply<pb::GetUserResponse> {
        let caller = principal(&request)?.clone();
        let id = convert::user_id(&request.get_ref().user_id)?;
        let user = app::get_user(self.repo.as_ref(), &caller, id).await?;
        Ok(Response::new(pb::GetUserResponse {
            user: Some(convert::user(user)),
        }))
    }

    async fn update_user(
        &self,
        request: Request<pb::UpdateUserRequest>,
    ) -> Reply<pb::UpdateUserResponse> {
        let caller = principal(&request)?.clone();
        let r = request.into_inner();
        let id = convert::user_id(&r.user_id)?;
        let user =
            app::update_user(self.repo.as_ref(), &caller, id, r.display_name, r.email).await?;
        Ok(Response::new(pb::UpdateUserResponse {
            user: Some(convert::user(user)),
        }))
    }

    async fn change_user_status(
        &self,
        request: Request<pb::ChangeUserStatusRequest>,
    ) -> Reply<pb::ChangeUserStatusResponse> {
        let r = request.into_inner();
        let id = convert::user_id(&r.user_id)?;
        let status = convert::status_in(r.status)?;
        let (previous, user) = app::change_status(self.repo.as_ref(), id, status).await?;
        tracing::info!(user_id = %id, from = previous.as_str(), to = status.as_str(), reason = %r.reason, "user status changed");
        Ok(Response::new(pb::ChangeUserStatusResponse {
            user: Some(convert::user(user)),
        }))
    }

    async fn add_address(
        &self,
        request: Request<pb::AddAddressRequest>,
    ) -> Reply<pb::AddAddressResponse> {
        let caller = principal(&request)?.clone();
        let r = request.into_inner();
        let id = convert::user_id(&r.user_id)?;
        let address = convert::address_in(r.address.unwrap_or_default());
        let stored = app::add_address(self.repo.as_ref(), &caller, id, address).await?;
        Ok(Response::new(pb::AddAddressResponse {
            address: Some(convert::address(stored)),
        }))
    }

    async fn list_users(
        &self,
        request: Request<pb::ListUsersRequest>,
    ) -> Reply<pb::ListUsersResponse> {
        let caller = principal(&request)?.clone();
        let r = request.into_inner();
        let (users, next) =
            app::list_users(self.repo.as_ref(), &caller, r.page_size, &r.page_token).await?;
        Ok(Response::new(pb::ListUsersResponse {
            users: users.into_iter().map(convert::user).collect(),
            next_page_token: next,
        }))
    }

    async fn delete_user(
        &self,
        request: Request<pb::DeleteUserRequest>,
    ) -> Reply<pb::DeleteUserResponse> {
        let caller = principal(&request)?.clone();
        let id = convert::user_id(&request.get_ref().user_id)?;
        app::delete_user(self.repo.as_ref(), &caller, id).await?;
        tracing::info!(user_id = %id, "user deleted");
        Ok(Response::new(pb::DeleteUserResponse {}))
    }

    async fn get_jwks(&self, _request: Request<pb::GetJwksRequest>) -> Reply<pb::GetJwksResponse> {
        Ok(Response::new(pb::GetJwksResponse {
            keys: vec![self.sessions.issuer.jwk()],
        }))
    }
}

// Handlers return `UserError` through `?`; the conversion lives in `status.rs`.
const _: fn(UserError) -> Status = Status::from;
