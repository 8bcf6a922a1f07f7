//! The reservation sweeper: releases HELD reservations whose hold expired, so stock held for
//! an abandoned order returns to sale. [`Sweeper::try_sweep_once`] does one pass at a given
//! time, for tests; [`Sweeper::run`] repeats it on an interval until shutdown.

use std::{sync::Arc, time::Duration};

use polyshop_platform::shutdown::Shutdown;
use tokio::time::MissedTickBehavior;

use super::InventoryRepository;
use crate::domain::{HOLD_EXPIRED, InventoryError, Settlement, Transition};

/// Most reservations released by one pass.
pub const SWEEP_BATCH: u64 = 100;

/// Releases expired holds.
#[derive(Debug)]
pub struct Sweeper<R> {
    repo: Arc<R>,
    every: Duration,
}

impl<R: InventoryRepository> Sweeper<R> {
    /// A sweeper over `repo` that runs every `every`.
    pub fn new(repo: Arc<R>, every: Duration) -> Self {
        Self { repo, every }
    }

    /// Releases up to [`SWEEP_BATCH`] HELD reservations whose hold expired at `now` (epoch ms),
    /// with reason "hold expired", and returns how many it released. A reservation confirmed
    /// or released meanwhile is skipped: the guarded status change lets only one settle it.
    /// One that fails is logged and skipped, so it cannot stall the others.
    ///
    /// # Errors
    /// `Internal` if the expired reservations cannot be listed.
    pub async fn try_sweep_once(&self, now: i64) -> Result<u64, InventoryError> {
        let release = Settlement::Release {
            reason: HOLD_EXPIRED.to_owned(),
        };
        let mut released = 0;
        for id in self.repo.expired(now, SWEEP_BATCH).await? {
            match self.repo.settle(&id, &release, now).await {
                Ok((_, Transition::Apply)) => released += 1,
                Ok((_, Transition::AlreadyDone)) | Err(InventoryError::ReservationConfirmed) => {
                    tracing::debug!(reservation_id = %id, "settled meanwhile; not swept");
                }
                Err(e) => {
                    tracing::warn!(reservation_id = %id, error = %e, "cannot release expired hold")
                }
            }
        }
        Ok(released)
    }

    /// Sweeps at start and then every interval until `stopped` fires. A full batch is
    /// followed at once by another pass.
    pub async fn run(self, stopped: Shutdown) {
        let mut ticks = tokio::time::interval(self.every);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                () = stopped.clone().wait() => break,
            }
            loop {
                match self.try_sweep_once(polyshop_platform::now_millis()).await {
                    Ok(0) => break,
                    Ok(n) => {
                        tracing::info!(released = n, "released expired reservations");
                        if n < SWEEP_BATCH || stopped.is_fired() {
                            break;
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "reservation sweep failed");
                        break;
                    }
                }
            }
        }
        tracing::debug!("reservation sweeper stopped");
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::{
        app::{NewReservation, Reserved},
        domain::{Reservation, ReservationStatus, StockLevel, settle},
    };

    /// Reservations by id; `expired` lists every HELD one past its expiry.
    #[derive(Default)]
    struct FakeRepo {
        reservations: Mutex<Vec<Reservation>>,
        /// Settled by another caller between `expired` and `settle`.
        confirmed_meanwhile: Vec<String>,
    }

    fn held(id: &str, expires_at: i64) -> Reservation {
        Reservation {
            id: id.into(),
            items: Vec::new(),
            status: ReservationStatus::Held,
            expires_at,
            created_at: 0,
            updated_at: 0,
            release_reason: String::new(),
        }
    }

    impl InventoryRepository for FakeRepo {
        async fn stock(&self, _: &str) -> Result<Option<StockLevel>, InventoryError> {
            Ok(None)
        }

        async fn set_on_hand(
            &self,
            product_id: &str,
            _: i32,
            _: i64,
        ) -> Result<StockLevel, InventoryError> {
            Ok(StockLevel::empty(product_id))
        }

        async fn reserve(&self, _: NewReservation) -> Result<Reserved, InventoryError> {
            Err(InventoryError::Internal("not used".into()))
        }

        async fn settle(
            &self,
            id: &str,
            settlement: &Settlement,
            now: i64,
        ) -> Result<(Reservation, Transition), InventoryError> {
            let mut all = self
                .reservations
                .lock()
                .map_err(|_| InventoryError::Internal("poisoned".into()))?;
            let r = all
                .iter_mut()
                .find(|r| r.id == id)
                .ok_or(InventoryError::ReservationNotFound)?;
            if self.confirmed_meanwhile.iter().any(|c| c == id) {
                r.status = ReservationStatus::Confirmed;
            }
            let transition = settle(r.status, settlement)?;
            if transition == Transition::Apply {
                r.status = settlement.target();
                r.updated_at = now;
                if let Settlement::Release { reason } = settlement {
                    r.release_reason.clone_from(reason);
                }
            }
            Ok((r.clone(), transition))
        }

        async fn expired(&self, now: i64, limit: u64) -> Result<Vec<String>, InventoryError> {
            let all = self
                .reservations
                .lock()
                .map_err(|_| InventoryError::Internal("poisoned".into()))?;
            Ok(all
                .iter()
                .filter(|r| r.status == ReservationStatus::Held && r.expires_at <= now)
                .take(usize::try_from(limit).unwrap_or(usize::MAX))
                .map(|r| r.id.clone())
                .collect())
        }
    }

    #[tokio::test]
    async fn a_sweep_releases_only_holds_that_expired() {
        let repo = Arc::new(FakeRepo {
            reservations: Mutex::new(vec![held("old", 1_000), held("fresh", 5_000)]),
            ..FakeRepo::default()
        });
        let sweeper = Sweeper::new(repo.clone(), Duration::from_secs(60));
        assert_eq!(sweeper.try_sweep_once(999).await.expect("sweep"), 0);
        assert_eq!(sweeper.try_sweep_once(1_000).await.expect("sweep"), 1);
        assert_eq!(
            sweeper.try_sweep_once(1_000).await.expect("sweep"),
            0,
            "a second pass finds nothing"
        );
        let all = repo.reservations.lock().expect("lock").clone();
        assert_eq!(all[0].status, ReservationStatus::Released);
        assert_eq!(all[0].release_reason, HOLD_EXPIRED);
        assert_eq!(all[1].status, ReservationStatus::Held);
    }

    #[tokio::test]
    async fn a_sweep_skips_a_reservation_confirmed_while_it_ran() {
        let repo = Arc::new(FakeRepo {
            reservations: Mutex::new(vec![held("raced", 1_000), held("idle", 1_000)]),
            confirmed_meanwhile: vec!["raced".into()],
        });
        let sweeper = Sweeper::new(repo.clone(), Duration::from_secs(60));
        assert_eq!(sweeper.try_sweep_once(2_000).await.expect("sweep"), 1);
        let all = repo.reservations.lock().expect("lock").clone();
        assert_eq!(all[0].status, ReservationStatus::Confirmed);
        assert_eq!(all[1].status, ReservationStatus::Released);
    }

    #[tokio::test]
    async fn the_sweeper_stops_when_shutdown_fires() {
        let repo = Arc::new(FakeRepo::default());
        let (stop, stopped) = polyshop_platform::shutdown::channel();
        let task = tokio::spawn(Sweeper::new(repo, Duration::from_secs(3600)).run(stopped));
        stop.fire();
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("stops promptly")
            .expect("no panic");
    }
}
