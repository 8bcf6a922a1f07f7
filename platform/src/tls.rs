//! TLS between services (`tls.*` settings): one CA, and one certificate per process used at
//! both ends of a call. When it is on, the gRPC server of every service serves TLS only
//! ([`crate::server`]), requiring a client certificate from the CA unless
//! `tls.require_client_cert` is off, and every channel [`crate::discovery`] builds (the
//! edge's, a service's to another, the JWKS fetch of [`crate::auth`]) dials `https://`,
//! trusts only the CA and presents the certificate.
//!
//! A process has one identity, so the settings are installed once per process
//! ([`install`], by `polyshop serve` and by the edge) and read where servers and channels are
//! made ([`current`]). URLs stay as configured and registered (`http://host:port`): with TLS
//! on, every service URL is dialled over TLS ([`ServiceTls::endpoint`]).
//!
//! The crypto provider is ring, as at the edge (tonic's `tls-ring`).

use std::{
    path::{Path, PathBuf},
    sync::{Arc, OnceLock},
    time::Duration,
};

use rustls_pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity, ServerTlsConfig};

use crate::config::TlsSettings;

/// How long a client has to finish the TLS handshake with a service.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the TLS settings cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// Some of `ca_path`, `cert_path` and `key_path` are set, not all.
    #[error("tls.ca_path, tls.cert_path and tls.key_path are set together or not at all")]
    Incomplete,
    /// A file is unreadable, not PEM, or holds nothing of what it should.
    #[error("tls.{key} {path}: {reason}")]
    File {
        /// The setting (`ca_path`, …).
        key: &'static str,
        /// The file.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// tonic (rustls) refused the configuration, e.g. a key that does not fit the certificate.
    #[error("tls: {0}")]
    Config(String),
    /// The process already has another TLS identity.
    #[error("tls: this process already uses other TLS settings")]
    Conflict,
}

/// A process's TLS: the CA it trusts and the identity it serves and calls with.
#[derive(Debug, Clone)]
pub struct ServiceTls {
    settings: TlsSettings,
    ca: Certificate,
    identity: Identity,
}

fn file_error(key: &'static str, path: &Path, reason: impl ToString) -> TlsError {
    TlsError::File {
        key,
        path: path.display().to_string(),
        reason: reason.to_string(),
    }
}

/// The PEM certificates at `path` (at least one).
fn certificates(key: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    let pem = std::fs::read(path).map_err(|e| file_error(key, path, e))?;
    let count = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_error(key, path, e))?
        .len();
    if count == 0 {
        return Err(file_error(key, path, "no CERTIFICATE block"));
    }
    Ok(pem)
}

impl ServiceTls {
    /// The TLS of `settings`; `None` when none of its files is set.
    ///
    /// # Errors
    /// [`TlsError`] when only some are set, a file cannot be read or parsed, or the key does
    /// not fit the certificate.
    pub fn from_settings(settings: &TlsSettings) -> Result<Option<Self>, TlsError> {
        let (ca, cert, key) = match (&settings.ca_path, &settings.cert_path, &settings.key_path) {
            (None, None, None) => return Ok(None),
            (Some(ca), Some(cert), Some(key)) => (ca, cert, key),
            _ => return Err(TlsError::Incomplete),
        };
        let ca_pem = certificates("ca_path", ca)?;
        let cert_pem = certificates("cert_path", cert)?;
        let key_pem = std::fs::read(key).map_err(|e| file_error("key_path", key, e))?;
        PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| file_error("key_path", key, e))?;
        let tls = Self {
            settings: settings.clone(),
            ca: Certificate::from_pem(ca_pem),
            identity: Identity::from_pem(cert_pem, key_pem),
        };
        // Build both ends once, so a bad pair fails the start rather than the first call.
        tonic::transport::Server::builder()
            .tls_config(tls.server_config())
            .map_err(|e| TlsError::Config(error_chain(&e)))?;
        Endpoint::from_static("https://localhost")
            .tls_config(tls.client_config())
            .map_err(|e| TlsError::Config(error_chain(&e)))?;
        Ok(Some(tls))
    }

    /// The settings it was made from.
    pub fn settings(&self) -> &TlsSettings {
        &self.settings
    }

    /// A server's TLS: this identity, and client certificates from the CA (required unless
    /// `tls.require_client_cert` is off).
    pub fn server_config(&self) -> ServerTlsConfig {
        ServerTlsConfig::new()
            .identity(self.identity.clone())
            .client_ca_root(self.ca.clone())
            .client_auth_optional(!self.settings.require_client_cert)
            .timeout(HANDSHAKE_TIMEOUT)
    }

    /// A client's TLS: servers certified by the CA only, this identity presented.
    pub fn client_config(&self) -> ClientTlsConfig {
        ClientTlsConfig::new()
            .ca_certificate(self.ca.clone())
            .identity(self.identity.clone())
            .timeout(HANDSHAKE_TIMEOUT)
    }

    /// The endpoint for `url` over TLS: `http://` becomes `https://` (a service URL names
    /// where to dial; with TLS on, every service is dialled over TLS).
    ///
    /// # Errors
    /// When the URL is malformed.
    pub fn endpoint(&self, url: &str) -> Result<Endpoint, tonic::transport::Error> {
        Endpoint::from_shared(https(url))?.tls_config(self.client_config())
    }

    /// The endpoint for an instance at `url` of a service configured at `configured`: as
    /// [`ServiceTls::endpoint`], but an instance found by address (`dns` discovery resolves a
    /// headless Service to pod IPs) is verified as the configured host name, the name its
    /// certificate is issued for.
    ///
    /// # Errors
    /// When the URL is malformed.
    pub fn endpoint_of(
        &self,
        url: &str,
        configured: &str,
    ) -> Result<Endpoint, tonic::transport::Error> {
        let mut config = self.client_config();
        let host = |u: &str| {
            u.parse::<http::Uri>()
                .ok()
                .and_then(|u| u.host().map(|h| h.trim_matches(['[', ']']).to_owned()))
        };
        if let (Some(instance), Some(name)) = (host(url), host(configured))
            && instance.parse::<std::net::IpAddr>().is_ok()
            && name.parse::<std::net::IpAddr>().is_err()
        {
            config = config.domain_name(name);
        }
        Endpoint::from_shared(https(url))?.tls_config(config)
    }
}

/// `url` with an `http://` scheme made `https://`; anything else unchanged.
pub fn https(url: &str) -> String {
    match url.strip_prefix("http://") {
        Some(rest) => format!("https://{rest}"),
        None => url.to_owned(),
    }
}

/// An error and its sources, `: `-separated (tonic's transport error says little alone).
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}

static PROCESS: OnceLock<Option<Arc<ServiceTls>>> = OnceLock::new();

/// Installs `settings` as this process's TLS (nothing when they set no file). Installing the
/// same settings again is a no-op, so every entry point of a process may call it.
///
/// # Errors
/// [`TlsError`] as [`ServiceTls::from_settings`]; [`TlsError::Conflict`] when the process
/// already has different TLS settings.
pub fn install(settings: &TlsSettings) -> Result<(), TlsError> {
    if let Some(installed) = PROCESS.get() {
        return if same(installed.as_deref(), settings) {
            Ok(())
        } else {
            Err(TlsError::Conflict)
        };
    }
    let tls = ServiceTls::from_settings(settings)?.map(Arc::new);
    if tls.is_some() {
        tracing::info!(
            ca = ?settings.ca_path,
            cert = ?settings.cert_path,
            require_client_cert = settings.require_client_cert,
            "TLS between services"
        );
    }
    // A racing installer of the same settings wins harmlessly; of others, it is a conflict.
    let installed = PROCESS.get_or_init(|| tls);
    if same(installed.as_deref(), settings) {
        Ok(())
    } else {
        Err(TlsError::Conflict)
    }
}

fn same(installed: Option<&ServiceTls>, settings: &TlsSettings) -> bool {
    let paths = |s: &TlsSettings| -> (Option<PathBuf>, Option<PathBuf>, Option<PathBuf>, bool) {
        (
            s.ca_path.clone(),
            s.cert_path.clone(),
            s.key_path.clone(),
            s.require_client_cert,
        )
    };
    match installed {
        Some(tls) => paths(tls.settings()) == paths(settings),
        None => {
            settings.ca_path.is_none()
                && settings.cert_path.is_none()
                && settings.key_path.is_none()
        }
    }
}

/// This process's TLS between services, if it has any.
pub fn current() -> Option<Arc<ServiceTls>> {
    PROCESS.get().cloned().flatten()
}

/// The endpoint for an instance at `url` of a service configured at `configured`: over TLS
/// ([`ServiceTls::endpoint_of`]) when the process has TLS, else plaintext as given.
///
/// # Errors
/// When the URL is malformed.
pub fn instance_endpoint(url: &str, configured: &str) -> Result<Endpoint, tonic::transport::Error> {
    match current() {
        Some(tls) => tls.endpoint_of(url, configured),
        None => Endpoint::from_shared(url.to_owned()),
    }
}

/// The endpoint for `url`: over TLS with this process's identity when it has one, else
/// plaintext as given.
///
/// # Errors
/// When the URL is malformed.
pub fn endpoint(url: &str) -> Result<Endpoint, tonic::transport::Error> {
    match current() {
        Some(tls) => tls.endpoint(url),
        None => Endpoint::from_shared(url.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_urls_become_https_and_others_are_kept() {
        assert_eq!(https("http://127.0.0.1:50051"), "https://127.0.0.1:50051");
        assert_eq!(https("https://user:50051"), "https://user:50051");
    }

    #[test]
    fn half_a_configuration_is_refused_and_none_is_plaintext() {
        assert!(matches!(
            ServiceTls::from_settings(&TlsSettings::default()),
            Ok(None)
        ));
        let half = TlsSettings {
            ca_path: Some("ca.pem".into()),
            ..TlsSettings::default()
        };
        assert!(matches!(
            ServiceTls::from_settings(&half),
            Err(TlsError::Incomplete)
        ));
        let missing = TlsSettings {
            ca_path: Some("/nonexistent/ca.pem".into()),
            cert_path: Some("/nonexistent/cert.pem".into()),
            key_path: Some("/nonexistent/key.pem".into()),
            require_client_cert: true,
        };
        let error = ServiceTls::from_settings(&missing).expect_err("no files");
        assert!(error.to_string().contains("tls.ca_path"), "{error}");
    }
}
