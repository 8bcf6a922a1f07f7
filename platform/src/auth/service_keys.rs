//! Service-token keys. Each service signs with its own Ed25519 key; verifiers trust a
//! directory of public keys (one JSON file per key, JWKS-style), each bound to the one issuer
//! that may sign with it. The directory is re-read every [`RESCAN`], and on an unknown `kid`
//! when its modification time moved (so a stream of forged kids costs one stat each), so a published key starts verifying, and a removed or retired key stops, without restarts.
//! A rotation marks the old key `retire_at` (now + a grace that outlives the tokens it
//! signed) and publishes the new one; signers pick up their new private key by file change.

use std::{
    collections::HashMap,
    fs,
    path::{Path, PathBuf},
    sync::{Mutex, RwLock},
    time::{Duration, Instant, SystemTime},
};

use jsonwebtoken::DecodingKey;
use serde::{Deserialize, Serialize};

use super::keys::{self, KeyError, KeyPair};

/// How often a verifier re-reads the trust directory.
pub const RESCAN: Duration = Duration::from_secs(2);
/// How often a signer checks whether its key file was replaced.
const RELOAD_CHECK: Duration = Duration::from_secs(1);

/// One trusted public key: the file `<iss>.<kid>.json` in the trust directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrustEntry {
    /// Key id.
    pub kid: String,
    /// The Ed25519 public key, base64url (JWK `x`).
    pub x: String,
    /// The only issuer (`polyshop-order`) whose tokens this key may sign.
    pub iss: String,
    /// Seconds since the epoch after which the key no longer verifies (set by a rotation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retire_at: Option<u64>,
}

impl TrustEntry {
    /// The entry publishing `key` for issuer `iss`.
    pub fn of(key: &KeyPair, iss: &str) -> Self {
        Self {
            kid: key.kid.clone(),
            x: key.public_x(),
            iss: iss.to_owned(),
            retire_at: None,
        }
    }

    fn file_name(&self) -> String {
        format!("{}.{}.json", self.iss, self.kid)
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn io_error(path: &Path) -> impl Fn(std::io::Error) -> KeyError + '_ {
    move |source| KeyError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Writes `entry` into `dir`, replacing an older version of it (public data: plain rename).
///
/// # Errors
/// When the directory or file cannot be written.
pub fn write_entry(dir: &Path, entry: &TrustEntry) -> Result<(), KeyError> {
    fs::create_dir_all(dir).map_err(io_error(dir))?;
    let path = dir.join(entry.file_name());
    let tmp = dir.join(format!(".{}.tmp", uuid::Uuid::now_v7()));
    let json = serde_json::to_vec_pretty(entry).unwrap_or_default();
    let written = fs::write(&tmp, json).and_then(|()| fs::rename(&tmp, &path));
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written.map_err(io_error(&path))
}

/// Publishes `key` for `iss` unless it is published already (an existing entry may carry a
/// `retire_at` that must survive a restart).
///
/// # Errors
/// When the directory or file cannot be written.
pub fn publish(dir: &Path, key: &KeyPair, iss: &str) -> Result<(), KeyError> {
    let entry = TrustEntry::of(key, iss);
    if dir.join(entry.file_name()).exists() {
        return Ok(());
    }
    write_entry(dir, &entry)
}

/// Reads every entry of the trust directory (unreadable files are skipped with a warning: one
/// bad file must not take every key down).
pub fn read_entries(dir: &Path) -> Vec<TrustEntry> {
    let Ok(files) = fs::read_dir(dir) else {
        return Vec::new();
    };
    files
        .flatten()
        .filter(|f| f.file_name().to_string_lossy().ends_with(".json"))
        .filter_map(|f| {
            let read = fs::read(f.path()).map_err(|e| e.to_string());
            match read.and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string())) {
                Ok(entry) => Some(entry),
                Err(e) => {
                    tracing::warn!(file = %f.path().display(), error = %e, "skipping trust entry");
                    None
                }
            }
        })
        .collect()
}

/// Rotates service `iss`'s key: a new private key at `key_path`, published; the old one
/// retired `grace` from now. Returns the old and new key ids.
///
/// # Errors
/// When a key or entry cannot be read or written.
pub fn rotate(
    key_path: &Path,
    trust_dir: &Path,
    iss: &str,
    grace: Duration,
) -> Result<(String, String), KeyError> {
    let old = keys::load_or_generate(key_path)?;
    let new = keys::replace_with_new(key_path)?;
    publish(trust_dir, &new, iss)?;
    let mut retired = TrustEntry::of(&old, iss);
    retired.retire_at = Some(now_secs() + grace.as_secs());
    write_entry(trust_dir, &retired)?;
    Ok((old.kid, new.kid))
}

struct Trusted {
    iss: String,
    decoding: DecodingKey,
}

struct TrustState {
    keys: HashMap<String, Trusted>,
    /// kid → iss of the keys in force, to tell whether a re-read changed anything.
    fingerprint: Vec<(String, String)>,
    scanned: Instant,
    /// The directory's modification time at that read.
    dir_modified: Option<SystemTime>,
    generation: u64,
}

/// The public keys this process trusts for service tokens.
pub struct ServiceTrust {
    dir: PathBuf,
    state: RwLock<TrustState>,
}

impl std::fmt::Debug for ServiceTrust {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceTrust")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl ServiceTrust {
    /// Trusts the keys published in `dir`.
    pub fn new(dir: PathBuf) -> Self {
        let trust = Self {
            dir,
            state: RwLock::new(TrustState {
                keys: HashMap::new(),
                fingerprint: Vec::new(),
                scanned: Instant::now(),
                dir_modified: None,
                generation: 0,
            }),
        };
        trust.rescan();
        trust
    }

    /// The directory read.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Re-reads the directory now; the generation changes when the keys in force changed.
    pub fn rescan(&self) {
        let now = now_secs();
        let dir_modified = modified(&self.dir);
        let mut keys = HashMap::new();
        for entry in read_entries(&self.dir) {
            if entry.retire_at.is_some_and(|at| at <= now) {
                continue;
            }
            match DecodingKey::from_ed_components(&entry.x) {
                Ok(decoding) => {
                    keys.insert(
                        entry.kid,
                        Trusted {
                            iss: entry.iss,
                            decoding,
                        },
                    );
                }
                Err(e) => tracing::warn!(kid = %entry.kid, error = %e, "bad public key"),
            }
        }
        let mut fingerprint: Vec<(String, String)> = keys
            .iter()
            .map(|(kid, t)| (kid.clone(), t.iss.clone()))
            .collect();
        fingerprint.sort();
        let mut state = self
            .state
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if state.fingerprint != fingerprint {
            state.generation += 1;
            state.fingerprint = fingerprint;
        }
        state.keys = keys;
        state.scanned = Instant::now();
        state.dir_modified = dir_modified;
    }

    fn rescan_if_older_than(&self, age: Duration) {
        let stale = self
            .state
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .scanned
            .elapsed()
            >= age;
        if stale {
            self.rescan();
        }
    }

    /// Changes whenever the set of keys in force changes (so remembered verdicts are dropped).
    pub fn generation(&self) -> u64 {
        self.rescan_if_older_than(RESCAN);
        self.state
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .generation
    }

    /// Whether `kid` names a trusted service key (re-reading the directory if it is unknown).
    pub fn knows(&self, kid: &str) -> bool {
        self.with_key(kid, |_, _| ()).is_some()
    }

    /// Runs `f` with the issuer and key of `kid`, if trusted.
    pub fn with_key<R>(&self, kid: &str, f: impl Fn(&str, &DecodingKey) -> R) -> Option<R> {
        self.rescan_if_older_than(RESCAN);
        let lookup = |state: &TrustState| state.keys.get(kid).map(|t| f(&t.iss, &t.decoding));
        let found = lookup(
            &self
                .state
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        if found.is_some() {
            return found;
        }
        // A key published since the last read changed the directory: one stat tells.
        let seen = self
            .state
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .dir_modified;
        if modified(&self.dir) == seen {
            return None;
        }
        self.rescan();
        lookup(
            &self
                .state
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }
}

/// This service's own signing key, re-read when its file is replaced (a rotation).
pub struct ServiceSigner {
    path: PathBuf,
    trust_dir: PathBuf,
    iss: String,
    current: RwLock<(KeyPair, Option<SystemTime>)>,
    checked: Mutex<Instant>,
}

impl std::fmt::Debug for ServiceSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceSigner")
            .field("path", &self.path)
            .field("iss", &self.iss)
            .finish_non_exhaustive()
    }
}

fn modified(path: &Path) -> Option<SystemTime> {
    fs::metadata(path).and_then(|m| m.modified()).ok()
}

impl ServiceSigner {
    /// Loads (or generates) the key at `path` and publishes its public half in `trust_dir`.
    ///
    /// # Errors
    /// [`KeyError`] when the key cannot be loaded or published.
    pub fn load(path: PathBuf, trust_dir: PathBuf, iss: &str) -> Result<Self, KeyError> {
        let key = keys::load_or_generate(&path)?;
        // A read-only trust directory (a Kubernetes ConfigMap) is published by the operator.
        if let Err(e) = publish(&trust_dir, &key, iss) {
            tracing::debug!(error = %e, "not publishing the service key");
        }
        Ok(Self {
            current: RwLock::new((key, modified(&path))),
            path,
            trust_dir,
            iss: iss.to_owned(),
            checked: Mutex::new(Instant::now()),
        })
    }

    /// The key to sign with now; `true` when it changed since the last call.
    pub fn key(&self) -> (KeyPair, bool) {
        let due = {
            let mut checked = self
                .checked
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let due = checked.elapsed() >= RELOAD_CHECK;
            if due {
                *checked = Instant::now();
            }
            due
        };
        if due {
            let on_disk = modified(&self.path);
            let stale = self
                .current
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .1
                != on_disk;
            if stale {
                match keys::load_or_generate(&self.path) {
                    Ok(key) => {
                        if let Err(e) = publish(&self.trust_dir, &key, &self.iss) {
                            tracing::debug!(error = %e, "not publishing the service key");
                        }
                        tracing::info!(kid = %key.kid, "service key reloaded");
                        *self
                            .current
                            .write()
                            .unwrap_or_else(std::sync::PoisonError::into_inner) =
                            (key.clone(), on_disk);
                        return (key, true);
                    }
                    Err(e) => tracing::warn!(error = %e, "keeping the old service key"),
                }
            }
        }
        let current = self
            .current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        (current.0.clone(), false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_published_key_is_trusted_for_its_issuer_and_a_retired_one_is_not() {
        let dir = tempfile::tempdir().expect("tempdir");
        let trust_dir = dir.path().join("trust");
        let key_path = dir.path().join("order.pem");
        let signer = ServiceSigner::load(key_path.clone(), trust_dir.clone(), "polyshop-order")
            .expect("key");
        let trust = ServiceTrust::new(trust_dir.clone());
        let kid = signer.key().0.kid;
        assert_eq!(
            trust.with_key(&kid, |iss, _| iss.to_owned()).as_deref(),
            Some("polyshop-order")
        );
        let before = trust.generation();
        let (old, new) =
            rotate(&key_path, &trust_dir, "polyshop-order", Duration::ZERO).expect("rotate");
        assert_eq!(old, kid);
        trust.rescan();
        assert!(!trust.knows(&old), "retired with no grace");
        assert!(trust.knows(&new));
        assert_ne!(trust.generation(), before);
        fs::remove_file(trust_dir.join(format!("polyshop-order.{new}.json"))).expect("rm");
        trust.rescan();
        assert!(!trust.knows(&new), "a removed key stops verifying");
    }
}
