//! Ed25519 signing keys: loaded from a PKCS#8 PEM file, or generated into it on first start.
//! Generation is race-free across processes (write a temp file, then hard-link it into place).
//! Also the owner-only files and directories that hold Polyshop's other secrets: a secret is
//! never readable by others, not even between its creation and a chmod.

use std::{
    fs,
    io::Write,
    path::{Path, PathBuf},
};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use ed25519_dalek::{
    SigningKey,
    pkcs8::{DecodePrivateKey, EncodePrivateKey, spki::der::pem::LineEnding},
};
use sha2::{Digest, Sha256};

/// Why a key could not be loaded or created.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// File system trouble.
    #[error("key file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not a PKCS#8 PEM Ed25519 key.
    #[error("key file {path} is not a PKCS#8 PEM Ed25519 private key")]
    Format {
        /// The file.
        path: PathBuf,
    },
}

/// A signing key with what verifiers need to know about it.
#[derive(Clone)]
pub struct KeyPair {
    /// The private key.
    pub signing: SigningKey,
    /// Key id: hex of the first 8 bytes of SHA-256 of the public key.
    pub kid: String,
    /// The PKCS#8 PEM, as jsonwebtoken wants it.
    pub pem: String,
}

impl std::fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyPair")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl KeyPair {
    fn from_signing(signing: SigningKey, path: &Path) -> Result<Self, KeyError> {
        let pem = signing
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|_| KeyError::Format {
                path: path.to_owned(),
            })?
            .to_string();
        let digest = Sha256::digest(signing.verifying_key().as_bytes());
        let kid = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
        Ok(Self { signing, kid, pem })
    }

    /// The public key, base64url without padding (the JWK `x`).
    pub fn public_x(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.signing.verifying_key().as_bytes())
    }
}

/// Loads the key at `path`, generating it first if the file does not exist.
///
/// # Errors
/// [`KeyError`] when the file cannot be read, written or parsed.
pub fn load_or_generate(path: &Path) -> Result<KeyPair, KeyError> {
    let io = |source| KeyError::Io {
        path: path.to_owned(),
        source,
    };
    if !path.exists() {
        let dir = path.parent().unwrap_or(Path::new("."));
        create_private_dir(dir).map_err(io)?;
        let key = SigningKey::generate(&mut rand::rngs::OsRng);
        let pair = KeyPair::from_signing(key, path)?;
        let tmp = dir.join(format!(".{}.tmp", uuid::Uuid::now_v7()));
        write_private(&tmp, pair.pem.as_bytes()).map_err(io)?;
        // Another process may have won the race: then its key is the one.
        let linked = fs::hard_link(&tmp, path);
        let _ = fs::remove_file(&tmp);
        match linked {
            Ok(()) => return Ok(pair),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io(e)),
        }
    }
    let pem = fs::read_to_string(path).map_err(io)?;
    let signing = SigningKey::from_pkcs8_pem(&pem).map_err(|_| KeyError::Format {
        path: path.to_owned(),
    })?;
    KeyPair::from_signing(signing, path)
}

/// Replaces the key at `path` with a newly generated one (a rotation), atomically and
/// owner-only.
///
/// # Errors
/// [`KeyError`] when the file cannot be written.
pub fn replace_with_new(path: &Path) -> Result<KeyPair, KeyError> {
    let io = |source| KeyError::Io {
        path: path.to_owned(),
        source,
    };
    create_private_dir(path.parent().unwrap_or(Path::new("."))).map_err(io)?;
    let pair = KeyPair::from_signing(SigningKey::generate(&mut rand::rngs::OsRng), path)?;
    write_secret_file(path, pair.pem.as_bytes()).map_err(io)?;
    Ok(pair)
}

/// Creates `dir` and any missing parent owner-only (0700 on Unix); an existing one is left as
/// it is.
///
/// # Errors
/// When a directory cannot be created.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// Writes `bytes` to `path`, replacing any file there, as a file only its owner may read:
/// a temp file created 0600 beside it, synced, then renamed into place, so no reader sees it
/// half-written or with wider permissions.
///
/// # Errors
/// When the temp file cannot be written or renamed; the temp file is removed.
pub fn write_secret_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(".{}.tmp", uuid::Uuid::now_v7()));
    let written = write_private(&tmp, bytes).and_then(|()| fs::rename(&tmp, path));
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_generated_once_and_then_loaded() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("keys/k.pem");
        let first = load_or_generate(&path).expect("generate");
        let second = load_or_generate(&path).expect("load");
        assert_eq!(first.kid, second.kid);
        assert_eq!(first.public_x(), second.public_x());
    }

    #[cfg(unix)]
    fn mode(path: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        fs::metadata(path).expect("metadata").permissions().mode() & 0o777
    }

    #[cfg(unix)]
    #[test]
    fn a_generated_key_and_its_new_directory_are_owner_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("keys/k.pem");
        load_or_generate(&path).expect("generate");
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(&dir.path().join("keys")), 0o700);
    }

    #[cfg(unix)]
    #[test]
    fn a_secret_file_is_owner_only_and_replaces_the_old_one_whole() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("a/b/credentials.txt");
        create_private_dir(path.parent().expect("parent")).expect("dirs");
        assert_eq!(mode(&dir.path().join("a")), 0o700);
        assert_eq!(mode(&dir.path().join("a/b")), 0o700);
        write_secret_file(&path, b"first").expect("write");
        write_secret_file(&path, b"second").expect("replace");
        assert_eq!(fs::read_to_string(&path).expect("read"), "second");
        assert_eq!(mode(&path), 0o600);
        let left: Vec<_> = fs::read_dir(dir.path().join("a/b"))
            .expect("list")
            .collect();
        assert_eq!(left.len(), 1, "no temp file is left behind");
    }

    #[test]
    fn garbage_is_a_format_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("k.pem");
        fs::write(&path, "nope").expect("write");
        assert!(matches!(
            load_or_generate(&path),
            Err(KeyError::Format { .. })
        ));
    }
}
