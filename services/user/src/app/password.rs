//! argon2id password hashing with OWASP's parameters (19 MiB, 2 passes, 1 lane). Hashing is
//! deliberately slow, so it never runs on a runtime thread; and each run holds 19 MiB, so
//! [`Hashing`] bounds how many run at once and how many wait, refusing the rest at once
//! instead of letting a login flood grow memory without limit.
//!
//! Runs go to a fixed set of threads of their own, one per slot, rather than the blocking
//! pool: the pool starts a new thread whenever none is idle at that instant, and a thread that
//! hashed may keep its 19 MiB cached in its allocator. 300 concurrent Logins with 4 slots under
//! glibc malloc: +655 MiB RSS on the blocking pool, +407 MiB on four threads; under mimalloc
//! (what the `polyshop` binary uses) on four threads: +80 MiB (`tests/login_flood.rs`).

use std::{
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicUsize, Ordering},
        mpsc,
    },
    time::Duration,
};

use argon2::{Algorithm, Argon2, Params, PasswordHasher, PasswordVerifier, Version};
use polyshop_platform::metrics;
use tokio::sync::{OnceCell, Semaphore, SemaphorePermit};

use crate::domain::UserError;

fn argon2() -> Argon2<'static> {
    let params = Params::new(19 * 1024, 2, 1, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// The password hasher of one server: at most `permits` argon2id runs at once, at most
/// `max_waiting` callers queued for a run, each for at most `max_wait`; a caller beyond either
/// bound gets [`UserError::Busy`] at once.
#[derive(Debug)]
pub struct Hashing {
    /// Work for the hashing threads; they end when it is dropped.
    jobs: mpsc::Sender<Job>,
    slots: Semaphore,
    permits: usize,
    waiting: AtomicUsize,
    max_waiting: usize,
    max_wait: Duration,
    running: AtomicUsize,
    peak: AtomicUsize,
    decoy: OnceCell<String>,
}

/// Decrements a count however the guarded section ends (including cancellation).
struct Counted<'a>(&'a AtomicUsize);

impl<'a> Counted<'a> {
    /// Increments `count`; returns the guard and the count before.
    fn enter(count: &'a AtomicUsize) -> (Self, usize) {
        let before = count.fetch_add(1, Ordering::AcqRel);
        (Self(count), before)
    }
}

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

type Job = Box<dyn FnOnce() + Send>;

/// Starts `count` threads that run jobs from the returned sender until it is dropped.
fn hashing_threads(count: usize) -> mpsc::Sender<Job> {
    let (jobs, queue) = mpsc::channel::<Job>();
    let queue = Arc::new(Mutex::new(queue));
    for i in 0..count {
        let queue = queue.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("argon2-{i}"))
            .spawn(move || {
                loop {
                    let job = queue.lock().unwrap_or_else(PoisonError::into_inner).recv();
                    match job {
                        Ok(job) => job(),
                        Err(mpsc::RecvError) => break,
                    }
                }
            });
        if let Err(e) = spawned {
            // Fewer threads only queue the work longer; none at all fails each run.
            tracing::error!(error = %e, "cannot start a password hashing thread");
        }
    }
    jobs
}

/// What a caller that was refused is told to wait before trying again.
pub const RETRY_AFTER: Duration = Duration::from_secs(1);

impl Hashing {
    /// A hasher with `permits` runs at once (at least one).
    pub fn new(permits: usize, max_waiting: usize, max_wait: Duration) -> Self {
        let permits = permits.max(1);
        Self {
            jobs: hashing_threads(permits),
            slots: Semaphore::new(permits),
            permits,
            waiting: AtomicUsize::new(0),
            max_waiting,
            max_wait,
            running: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
            decoy: OnceCell::new(),
        }
    }

    /// How many runs may go at once.
    pub fn permits(&self) -> usize {
        self.permits
    }

    /// The most runs that were ever in progress at once.
    pub fn peak(&self) -> usize {
        self.peak.load(Ordering::Acquire)
    }

    async fn slot(&self) -> Result<SemaphorePermit<'_>, UserError> {
        if let Ok(permit) = self.slots.try_acquire() {
            return Ok(permit);
        }
        let (_waiting, queued) = Counted::enter(&self.waiting);
        let permit = if queued >= self.max_waiting {
            None
        } else {
            tokio::time::timeout(self.max_wait, self.slots.acquire())
                .await
                .ok()
                .and_then(Result::ok)
        };
        permit.ok_or_else(|| {
            metrics::inc(
                "polyshop_password_hashing_refused_total",
                "Logins and registrations refused because every password hashing slot was busy.",
                &[],
            );
            UserError::Busy {
                retry_after: RETRY_AFTER,
            }
        })
    }

    /// Runs `work` on a hashing thread in a slot.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, UserError> {
        let _slot = self.slot().await?;
        let (_running, before) = Counted::enter(&self.running);
        let peak = self
            .peak
            .fetch_max(before + 1, Ordering::AcqRel)
            .max(before + 1);
        metrics::set(
            "polyshop_password_hashing_peak",
            "The most argon2id password hashes that ran at once (at most user.max_concurrent_hashes).",
            &[],
            peak as f64,
        );
        let (done, result) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = done.send(work());
        });
        let lost = || UserError::Internal("the password hashing thread is gone".into());
        self.jobs.send(job).map_err(|_| lost())?;
        // The slot is held until the thread answers: a cancelled caller does not free it while
        // its 19 MiB are still in use.
        result.await.map_err(|_| lost())
    }

    /// A PHC string (`$argon2id$v=19$m=19456,t=2,p=1$…`) with a fresh random salt.
    ///
    /// # Errors
    /// `Busy` when no slot is free in time, `Internal` if hashing fails.
    pub async fn hash(&self, password: String) -> Result<String, UserError> {
        self.run(move || {
            argon2()
                .hash_password(password.as_bytes())
                .map(|h| h.to_string())
                .map_err(|e| UserError::Internal(e.to_string().into()))
        })
        .await?
    }

    /// Whether `password` matches `hash`. A malformed hash never matches.
    ///
    /// # Errors
    /// `Busy` when no slot is free in time, `Internal` if the blocking task fails.
    pub async fn verify(&self, password: String, hash: String) -> Result<bool, UserError> {
        self.run(move || {
            argon2()
                .verify_password(password.as_bytes(), hash.as_str())
                .is_ok()
        })
        .await
    }

    /// A valid hash of a random password, verified against when the login is unknown so that
    /// unknown users and wrong passwords take the same time.
    ///
    /// # Errors
    /// As [`Self::hash`] (a failed attempt is tried again by the next caller).
    pub(crate) async fn decoy(&self) -> Result<String, UserError> {
        self.decoy
            .get_or_try_init(|| self.hash(polyshop_platform::new_id()))
            .await
            .cloned()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[tokio::test]
    async fn hashes_are_argon2id_salted_and_verify() {
        let hashing = Hashing::new(2, 8, Duration::from_secs(30));
        let a = hashing.hash("correct horse battery".into()).await;
        let b = hashing.hash("correct horse battery".into()).await;
        let (a, b) = (a.expect("hash"), b.expect("hash"));
        assert!(a.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{a}");
        assert_ne!(a, b, "each hash has its own salt");
        let verify = |p: &str, h: &str| hashing.verify(p.into(), h.into());
        assert!(verify("correct horse battery", &a).await.expect("verify"));
        assert!(!verify("wrong horse battery", &a).await.expect("verify"));
        assert!(!verify("x", "not a hash").await.expect("verify"));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn runs_at_most_its_permits_at_once_and_refuses_beyond_the_queue() {
        let hashing = Arc::new(Hashing::new(2, 3, Duration::from_secs(30)));
        let hash = hashing.hash("decoy".into()).await.expect("hash");
        let calls: Vec<_> = (0..20)
            .map(|_| {
                let (hashing, hash) = (hashing.clone(), hash.clone());
                tokio::spawn(async move { hashing.verify("guess".into(), hash).await })
            })
            .collect();
        let (mut done, mut busy) = (0, 0);
        for call in calls {
            match call.await.expect("task") {
                Ok(matched) => {
                    assert!(!matched);
                    done += 1;
                }
                Err(UserError::Busy { retry_after }) => {
                    assert_eq!(retry_after, RETRY_AFTER);
                    busy += 1;
                }
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(hashing.peak(), 2, "never more than the permits at once");
        // Two run and three wait; the other fifteen, arriving together, are refused at once.
        assert!(done >= 5, "{done} done, {busy} busy");
        assert!(busy >= 1, "{done} done, {busy} busy");
    }

    #[tokio::test]
    async fn a_wait_that_runs_out_is_refused() {
        let hashing = Hashing::new(1, 8, Duration::from_millis(1));
        let _held = hashing.slots.acquire().await.expect("slot");
        let err = hashing.hash("pw".into()).await.expect_err("no slot");
        assert!(matches!(err, UserError::Busy { .. }), "{err}");
    }
}
