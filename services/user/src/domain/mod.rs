//! The user context's rules: what a valid username, email, password and address are, which
//! roles and statuses exist, and how emails are masked for others. Pure: no I/O.

mod refresh;
mod rules;

pub use refresh::*;
pub use rules::*;

use polyshop_platform::status::Violations;

/// Whether an account may sign in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserStatus {
    /// May sign in.
    Active,
    /// Closed; may not sign in.
    Inactive,
    /// Blocked by an admin; may not sign in.
    Suspended,
}

impl UserStatus {
    /// Stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Inactive => "inactive",
            Self::Suspended => "suspended",
        }
    }

    /// From the stored form.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "active" => Some(Self::Active),
            "inactive" => Some(Self::Inactive),
            "suspended" => Some(Self::Suspended),
            _ => None,
        }
    }
}

/// A role a user holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// Every user.
    Customer,
    /// Manages the shop.
    Admin,
}

impl Role {
    /// Stored form, also the token's role name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Customer => "customer",
            Self::Admin => "admin",
        }
    }

    /// From the stored form.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "customer" => Some(Self::Customer),
            "admin" => Some(Self::Admin),
            _ => None,
        }
    }
}

/// A postal address in a user's address book.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    /// Its id.
    pub id: String,
    /// Who receives parcels.
    pub recipient: String,
    /// Street and number.
    pub line1: String,
    /// Optional second line.
    pub line2: String,
    /// City.
    pub city: String,
    /// Optional region.
    pub region: String,
    /// Postal code.
    pub postal_code: String,
    /// ISO 3166-1 alpha-2, upper case.
    pub country_code: String,
}

/// An account as the rest of the service sees it (no password hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// UUIDv7.
    pub id: String,
    /// Login name as registered.
    pub username: String,
    /// Email as registered.
    pub email: String,
    /// Shown name.
    pub display_name: String,
    /// Status.
    pub status: UserStatus,
    /// Roles, sorted.
    pub roles: Vec<Role>,
    /// Address book, oldest first.
    pub addresses: Vec<Address>,
    /// Epoch ms.
    pub created_at: i64,
    /// Epoch ms.
    pub updated_at: i64,
}

impl User {
    /// Whether the account may sign in and use tokens.
    pub fn is_active(&self) -> bool {
        self.status == UserStatus::Active
    }

    /// Role names for the token.
    pub fn role_names(&self) -> Vec<String> {
        self.roles.iter().map(|r| r.as_str().to_owned()).collect()
    }
}

/// What can go wrong in the user context. Mapped to gRPC in `grpc::status`.
#[derive(Debug, thiserror::Error)]
pub enum UserError {
    /// The request breaks field rules.
    #[error("invalid request: {0}")]
    Invalid(Violations),
    /// The username is in use (case-insensitively).
    #[error("username is taken")]
    UsernameTaken,
    /// The email is in use (case-insensitively).
    #[error("email is already registered")]
    EmailTaken,
    /// No such user.
    #[error("user not found")]
    NotFound,
    /// Unknown login or wrong password: deliberately the same error.
    #[error("invalid login or password")]
    InvalidCredentials,
    /// The account is inactive or suspended.
    #[error("account is {0}")]
    NotActive(&'static str),
    /// A refresh token cannot be exchanged (or a Logout's is missing).
    #[error("{}", .0.message())]
    RefreshRejected(RefreshRejection),
    /// The caller may not act on this user.
    #[error("you may only access your own account")]
    NotOwner,
    /// Every password hashing slot is busy and the queue is full, or the wait ran out.
    #[error("too many sign-ins at once; retry in {retry_after:?}")]
    Busy {
        /// When to try again.
        retry_after: std::time::Duration,
    },
    /// Storage or hashing failed.
    #[error("internal: {0}")]
    Internal(Box<dyn std::error::Error + Send + Sync>),
}

impl From<Violations> for UserError {
    fn from(v: Violations) -> Self {
        Self::Invalid(v)
    }
}
