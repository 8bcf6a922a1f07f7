//! Which nats-server `polyshop up` runs, and whether it is recent enough.
//!
//! The lookup is the one `just` does: `just` finds its justfile in the current directory or a
//! parent and puts that directory's `.tools/bin` (where `just tools` provisions nats-server)
//! before PATH. So: `.tools/bin/nats-server` in the current directory or its nearest parent
//! that has one, else the first `nats-server` on PATH. The running executable's location is
//! not used: builds often live outside the repository (`CARGO_TARGET_DIR`, `cargo install`).
//!
//! The version is checked before anything starts: an old server (Debian ships 2.9) rejects the
//! configuration `up` writes, and restarting it in a loop would only hide why.

use std::{
    ffi::OsStr,
    fmt,
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use anyhow::{Context, bail};

/// The oldest nats-server `up` runs: the one `just tools` provisions at least.
pub const MINIMUM: Version = Version {
    major: 2,
    minor: 11,
    patch: 0,
};

/// Where `just tools` provisions nats-server, relative to the repository root.
const PROVISIONED: &str = ".tools/bin/nats-server";
const PROGRAM: &str = "nats-server";
/// `nats-server --version` answers at once; one that hangs is not a usable server.
const VERSION_TIMEOUT: Duration = Duration::from_secs(5);

/// A nats-server version, e.g. 2.9.11. Ordered by major, then minor, then patch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// The nats-server `up` will run.
#[derive(Debug, Clone)]
pub struct NatsServer {
    /// Its path, absolute when the current directory or PATH entry was.
    pub path: PathBuf,
    /// What `--version` said.
    pub version: Version,
}

/// Finds nats-server (see the module docs) and checks that it is at least [`MINIMUM`].
///
/// # Errors
/// If there is none, it cannot be run, its version cannot be read, or it is too old; each
/// message says what was found and points to `just tools`.
pub async fn find() -> anyhow::Result<NatsServer> {
    let cwd = std::env::current_dir().ok();
    let path_var = std::env::var_os("PATH");
    let Some(path) = locate(cwd.as_deref(), path_var.as_deref()) else {
        let here = cwd.map_or_else(
            || "the current directory".into(),
            |d| d.display().to_string(),
        );
        bail!(
            "nats-server not found: no {PROVISIONED} in {here} or its parents, and none on PATH. \
             Run `just tools` in the repository to provision nats-server >= {} there, \
             or set POLYSHOP_NATS_URL to use a running server",
            minimum()
        );
    };
    let output = version_output(&path).await?;
    let Some(version) = parse_version(&output) else {
        bail!(
            "cannot tell the version of {} from `--version` ({:?}); polyshop up needs \
             nats-server >= {}: run `just tools` to provision one",
            path.display(),
            output.trim(),
            minimum()
        );
    };
    ensure_recent(&path, version)?;
    Ok(NatsServer { path, version })
}

/// `.tools/bin/nats-server` in `cwd` or its nearest ancestor that has one, else the first
/// executable `nats-server` in `path_var` (a PATH value). Empty PATH entries are skipped.
pub fn locate(cwd: Option<&Path>, path_var: Option<&OsStr>) -> Option<PathBuf> {
    let provisioned = cwd
        .into_iter()
        .flat_map(Path::ancestors)
        .map(|dir| dir.join(PROVISIONED));
    let on_path = path_var
        .into_iter()
        .flat_map(std::env::split_paths)
        .filter(|dir| !dir.as_os_str().is_empty())
        .map(|dir| dir.join(PROGRAM));
    provisioned.chain(on_path).find(|p| is_executable(p))
}

/// A file (after following symlinks: `.tools/bin` links into a venv) that may be executed.
fn is_executable(path: &Path) -> bool {
    let Ok(meta) = std::fs::metadata(path) else {
        return false;
    };
    #[cfg(unix)]
    let runnable = {
        use std::os::unix::fs::PermissionsExt;
        meta.permissions().mode() & 0o111 != 0
    };
    #[cfg(not(unix))]
    let runnable = true;
    meta.is_file() && runnable
}

/// What `program --version` prints (stdout, else stderr).
async fn version_output(program: &Path) -> anyhow::Result<String> {
    let run = tokio::process::Command::new(program)
        .arg("--version")
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(VERSION_TIMEOUT, run)
        .await
        .map_err(|_| {
            anyhow::anyhow!(
                "{} --version did not answer within {VERSION_TIMEOUT:?}",
                program.display()
            )
        })?
        .with_context(|| {
            format!(
                "cannot run {} (`just tools` provisions nats-server >= {})",
                program.display(),
                minimum()
            )
        })?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    Ok(if stdout.trim().is_empty() {
        String::from_utf8_lossy(&output.stderr).into_owned()
    } else {
        stdout.into_owned()
    })
}

/// The first `vMAJOR.MINOR[.PATCH]` (the `v` optional) in `--version` output, such as
/// `nats-server: v2.9.11`; a suffix such as `-RC.1` is ignored.
pub fn parse_version(output: &str) -> Option<Version> {
    output.split_whitespace().find_map(|word| {
        let word = word.strip_prefix('v').unwrap_or(word);
        let mut parts = word.split('.');
        let number = |part: Option<&str>| -> Option<u32> {
            let part = part?;
            let digits = part
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(part.len());
            part[..digits].parse().ok()
        };
        let major = number(parts.next())?;
        let minor = number(parts.next())?;
        let patch = number(parts.next()).unwrap_or(0);
        Some(Version {
            major,
            minor,
            patch,
        })
    })
}

/// Fails, naming both versions and the fix, when `version` is older than [`MINIMUM`].
///
/// # Errors
/// If `version` < [`MINIMUM`].
pub fn ensure_recent(path: &Path, version: Version) -> anyhow::Result<()> {
    if version < MINIMUM {
        bail!(
            "{} is nats-server {version}, but polyshop up needs nats-server {} or later. \
             Run `just tools` in the repository to provision a recent one into .tools/bin \
             (found before PATH), or put a newer nats-server first on PATH",
            path.display(),
            minimum()
        );
    }
    Ok(())
}

/// [`MINIMUM`] as people write it: `2.11`.
fn minimum() -> String {
    format!("{}.{}", MINIMUM.major, MINIMUM.minor)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(major: u32, minor: u32, patch: u32) -> Version {
        Version {
            major,
            minor,
            patch,
        }
    }

    #[test]
    fn versions_are_read_from_what_nats_server_prints() {
        for (output, expected) in [
            ("nats-server: v2.9.11\n", Some(v(2, 9, 11))),
            ("nats-server: v2.15.1", Some(v(2, 15, 1))),
            ("nats-server: v2.12.0-RC.1", Some(v(2, 12, 0))),
            ("nats-server version 2.11", Some(v(2, 11, 0))),
            ("v3.0.0", Some(v(3, 0, 0))),
            ("nats-server: unknown", None),
            ("", None),
        ] {
            assert_eq!(parse_version(output), expected, "{output:?}");
        }
    }

    #[test]
    fn versions_compare_by_number_not_by_text() {
        // As text, "2.9" sorts after "2.11".
        assert!(v(2, 9, 11) < MINIMUM);
        assert!(v(2, 10, 99) < MINIMUM);
        assert!(v(1, 99, 0) < MINIMUM);
        assert!(v(2, 11, 0) >= MINIMUM);
        assert!(v(2, 15, 1) >= MINIMUM);
        assert!(v(3, 0, 0) >= MINIMUM);
    }

    #[test]
    fn an_old_version_is_refused_naming_both_versions_and_the_fix() {
        let path = Path::new("/usr/sbin/nats-server");
        let message = ensure_recent(path, v(2, 9, 11))
            .expect_err("2.9.11 is too old")
            .to_string();
        for expected in ["/usr/sbin/nats-server", "2.9.11", "2.11", "just tools"] {
            assert!(message.contains(expected), "{expected} in {message}");
        }
        assert!(ensure_recent(path, v(2, 11, 0)).is_ok());
    }

    /// An executable `nats-server` script in `dir`.
    fn fake_server(dir: &Path) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        std::fs::create_dir_all(dir).expect("mkdir");
        let path = dir.join(PROGRAM);
        std::fs::write(&path, "#!/bin/sh\necho 'nats-server: v2.15.1'\n").expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        path
    }

    #[test]
    fn the_provisioned_server_in_a_parent_directory_comes_before_path() {
        let root = tempfile::tempdir().expect("tempdir");
        let provisioned = fake_server(&root.path().join(".tools/bin"));
        let on_path = fake_server(&root.path().join("usr/bin"));
        let cwd = root.path().join("cli/src");
        std::fs::create_dir_all(&cwd).expect("mkdir");
        let path_var = std::env::join_paths([on_path.parent().expect("dir")]).expect("PATH");

        assert_eq!(
            locate(Some(&cwd), Some(&path_var)),
            Some(provisioned.clone())
        );
        assert_eq!(
            locate(Some(root.path()), Some(&path_var)),
            Some(provisioned)
        );
    }

    #[test]
    fn without_a_provisioned_server_the_first_executable_one_on_path_is_used() {
        let root = tempfile::tempdir().expect("tempdir");
        let cwd = root.path().join("elsewhere");
        std::fs::create_dir_all(&cwd).expect("mkdir");
        // Not executable: skipped, like a shell would.
        let not_executable = root.path().join("a");
        std::fs::create_dir_all(&not_executable).expect("mkdir");
        std::fs::write(not_executable.join(PROGRAM), "").expect("write");
        let second = fake_server(&root.path().join("b"));
        let path_var = std::env::join_paths([
            Path::new(""),
            &not_executable,
            &root.path().join("missing"),
            second.parent().expect("dir"),
        ])
        .expect("PATH");

        assert_eq!(locate(Some(&cwd), Some(&path_var)), Some(second));
        assert_eq!(locate(Some(&cwd), None), None);
    }
}
