//! Who a process is to NATS. A broker with authorization (what `polyshop up` starts, see
//! decision 0016) knows one user per identity: each context service (`user`, `catalog`, …),
//! the edge (`gateway`) and `admin` (the cli, `polyshop admin`, stream preparation), each
//! allowed only the subjects its job needs.
//!
//! A process authenticates with, in this order: `nats.credentials_file` (a NATS `.creds`
//! file), `nats.user` + `nats.password` (what `up` hands each child through
//! `POLYSHOP_NATS_USER` / `POLYSHOP_NATS_PASSWORD`), or the password `up` generated for its
//! identity under the data dir (`<data>/nats-users/<identity>.password`, mode 0600), so a
//! `polyshop admin` or an extra `polyshop serve` on an `up` data dir finds its own. With none
//! of these it connects without credentials, as against a broker without authorization.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use secrecy::{ExposeSecret, SecretString};

/// The directory under the data dir where `polyshop up` keeps the generated passwords.
pub const USERS_DIR: &str = "nats-users";

/// The identity of `polyshop admin`, the cli and stream preparation: every subject.
pub const ADMIN: &str = "admin";

/// Where `polyshop up` keeps the password of `identity`: `<data>/nats-users/<identity>.password`.
pub fn password_file(data_dir: &Path, identity: &str) -> PathBuf {
    data_dir
        .join(USERS_DIR)
        .join(format!("{identity}.password"))
}

/// The identity of a process named `polyshop-<identity>` (`polyshop-catalog` → `catalog`).
pub fn of_process(name: &str) -> &str {
    name.strip_prefix("polyshop-").unwrap_or(name)
}

/// How a process authenticates to NATS.
#[derive(Clone)]
pub enum Credentials {
    /// Not at all (a broker without authorization).
    None,
    /// A user and its password.
    Password {
        /// The user.
        user: String,
        /// Its password.
        password: SecretString,
    },
    /// A NATS credentials file (user JWT and nkey seed).
    File(PathBuf),
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::None => f.write_str("None"),
            Self::Password { user, .. } => write!(f, "Password {{ user: {user:?}, .. }}"),
            Self::File(path) => write!(f, "File({})", path.display()),
        }
    }
}

impl Credentials {
    /// What `settings` configure, else the password `up` generated for `identity` under the
    /// data dir, else none.
    ///
    /// # Errors
    /// When the settings pair them wrongly: `nats.user` without `nats.password` or the other
    /// way round, or both with `nats.credentials_file`.
    pub fn of(settings: &crate::config::Settings, identity: &str) -> Result<Self, String> {
        let nats = &settings.nats;
        match (&nats.credentials_file, &nats.user, &nats.password) {
            (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
                Err("set nats.credentials_file or nats.user and nats.password, not both".into())
            }
            (Some(file), None, None) => Ok(Self::File(file.clone())),
            (None, Some(user), Some(password)) => Ok(Self::Password {
                user: user.clone(),
                password: password.clone(),
            }),
            (None, Some(_), None) | (None, None, Some(_)) => {
                Err("nats.user and nats.password are set together".into())
            }
            (None, None, None) => {
                Ok(Self::generated(&settings.data_dir, identity).unwrap_or(Self::None))
            }
        }
    }

    /// The password `up` generated for `identity` under `data_dir`, if there is one.
    pub fn generated(data_dir: &Path, identity: &str) -> Option<Self> {
        let text = std::fs::read_to_string(password_file(data_dir, identity)).ok()?;
        let password = text.trim();
        (!password.is_empty()).then(|| Self::Password {
            user: identity.to_owned(),
            password: SecretString::from(password.to_owned()),
        })
    }

    /// The user, if any.
    pub fn user(&self) -> Option<&str> {
        match self {
            Self::Password { user, .. } => Some(user),
            _ => None,
        }
    }
}

/// Connects to NATS as `credentials`, retrying in the background if it is not up yet (see
/// [`super::connect`]).
///
/// # Errors
/// When a URL is invalid, or the credentials file cannot be read.
pub async fn connect(
    url: &str,
    name: &str,
    credentials: &Credentials,
) -> Result<async_nats::Client, async_nats::ConnectError> {
    // async-nats parses a `&str` as one address: a comma-separated list must be split here.
    let servers: Vec<&str> = url.split(',').map(str::trim).collect();
    let options = match credentials {
        Credentials::None => async_nats::ConnectOptions::new(),
        Credentials::Password { user, password } => async_nats::ConnectOptions::new()
            .user_and_password(user.clone(), password.expose_secret().to_owned()),
        Credentials::File(path) => async_nats::ConnectOptions::with_credentials_file(path)
            .await
            .map_err(|e| {
                async_nats::ConnectError::with_source(async_nats::ConnectErrorKind::Io, e)
            })?,
    };
    options
        .name(name)
        .retry_on_initial_connect()
        .connection_timeout(Duration::from_secs(2))
        .connect(servers)
        .await
}

/// Connects to `settings`' NATS as the process `name` (`polyshop-<identity>`), with the
/// credentials [`Credentials::of`] finds for its identity.
///
/// # Errors
/// As [`connect`], and the settings' error of [`Credentials::of`].
pub async fn connect_as(
    settings: &crate::config::Settings,
    name: &str,
) -> Result<async_nats::Client, async_nats::ConnectError> {
    let credentials = Credentials::of(settings, of_process(name)).map_err(|e| {
        async_nats::ConnectError::with_source(
            async_nats::ConnectErrorKind::Io,
            std::io::Error::new(std::io::ErrorKind::InvalidInput, e),
        )
    })?;
    connect(&settings.nats_url(), name, &credentials).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configured_credentials_win_over_generated_ones() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut settings = crate::config::Settings {
            data_dir: dir.path().to_owned(),
            ..Default::default()
        };
        assert!(matches!(
            Credentials::of(&settings, "catalog"),
            Ok(Credentials::None)
        ));
        std::fs::create_dir_all(dir.path().join(USERS_DIR)).expect("dir");
        std::fs::write(password_file(dir.path(), "catalog"), "s3cret\n").expect("write");
        let found = Credentials::of(&settings, of_process("polyshop-catalog")).expect("valid");
        assert_eq!(found.user(), Some("catalog"));
        let Credentials::Password { password, .. } = &found else {
            panic!("{found:?}");
        };
        assert_eq!(password.expose_secret(), "s3cret");
        assert!(!format!("{found:?}").contains("s3cret"));

        settings.nats.user = Some("other".into());
        assert!(
            Credentials::of(&settings, "catalog").is_err(),
            "a user needs its password"
        );
        settings.nats.password = Some(SecretString::from("pw".to_owned()));
        let configured = Credentials::of(&settings, "catalog").expect("valid");
        assert_eq!(configured.user(), Some("other"));
        settings.nats.credentials_file = Some("x.creds".into());
        assert!(Credentials::of(&settings, "catalog").is_err(), "not both");
    }
}
