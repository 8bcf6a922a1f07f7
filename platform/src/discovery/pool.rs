//! A context's live instances as a caller sees them: one client per instance (kept while the
//! instance stays), its calls in flight and its outlier record. Membership follows a
//! [`Members`] feed; each pick applies the caller's [`Policy`] to the instances not ejected.

use std::{
    collections::BTreeMap,
    sync::{
        Arc, Mutex, RwLock,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    time::Instant,
};

use rand::Rng;

use super::{
    Instance, Members,
    outlier::{Outcome, Outlier, OutlierSettings},
    policy::{self, Candidate, Policy},
};

/// How a caller balances and ejects.
#[derive(Debug, Clone, Default)]
pub struct Balancing {
    /// The pick policy.
    pub policy: Policy,
    /// When an instance is ejected.
    pub outlier: OutlierSettings,
    /// Weight by instance version, over the instance's own (a canary's share).
    pub version_weights: BTreeMap<String, u32>,
}

/// One instance and this caller's client of it.
#[derive(Debug)]
pub struct Member<T> {
    /// What the registry says of it.
    pub instance: Instance,
    /// The caller's client (a channel, a connection pool).
    pub client: T,
    weight: u32,
    outstanding: AtomicUsize,
    outlier: Mutex<Outlier>,
    settings: Arc<Balancing>,
}

impl<T> Member<T> {
    /// Calls in flight to it.
    pub fn outstanding(&self) -> usize {
        self.outstanding.load(Ordering::Relaxed)
    }

    /// Whether it is ejected now.
    pub fn is_ejected(&self) -> bool {
        lock(&self.outlier).is_ejected(Instant::now())
    }
}

/// A picked instance: counts as a call in flight until dropped.
#[derive(Debug)]
pub struct Picked<T> {
    member: Arc<Member<T>>,
}

impl<T> Picked<T> {
    /// The instance's client.
    pub fn client(&self) -> &T {
        &self.member.client
    }

    /// The instance.
    pub fn instance(&self) -> &Instance {
        &self.member.instance
    }

    /// Takes in how the call ended.
    pub fn record(&self, outcome: Outcome) {
        let ejected = {
            let mut outlier = lock(&self.member.outlier);
            let before = outlier.is_ejected(Instant::now());
            outlier.record(outcome, Instant::now(), &self.member.settings.outlier);
            !before && outlier.is_ejected(Instant::now())
        };
        if ejected {
            tracing::warn!(
                service = %self.member.instance.service,
                instance = %self.member.instance.instance,
                url = %self.member.instance.url,
                ?outcome,
                "instance ejected"
            );
        }
    }

    fn same(&self, other: &Arc<Member<T>>) -> bool {
        Arc::ptr_eq(&self.member, other)
    }
}

impl<T> Drop for Picked<T> {
    fn drop(&mut self) {
        self.member.outstanding.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The instances of one context, for one caller.
pub struct Pool<T> {
    service: String,
    members: RwLock<Arc<Vec<Arc<Member<T>>>>>,
    settings: Arc<Balancing>,
    turn: AtomicU64,
}

impl<T> std::fmt::Debug for Pool<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let urls: Vec<String> = self
            .members()
            .iter()
            .map(|m| m.instance.url.clone())
            .collect();
        f.debug_struct("Pool")
            .field("service", &self.service)
            .field("instances", &urls)
            .finish_non_exhaustive()
    }
}

impl<T: Send + Sync + 'static> Pool<T> {
    /// A pool over `members`, kept up to date in the background while the feed lives;
    /// `client` makes the client of a new instance (`None` skips it: a bad URL).
    pub fn follow(
        service: &str,
        mut members: Members,
        settings: Balancing,
        client: impl Fn(&Instance) -> Option<T> + Send + Sync + 'static,
    ) -> Arc<Self> {
        let pool = Arc::new(Self {
            service: service.to_owned(),
            members: RwLock::default(),
            settings: Arc::new(settings),
            turn: AtomicU64::new(0),
        });
        let current = members.borrow_and_update().clone();
        pool.update(&current, &client);
        let weak = Arc::downgrade(&pool);
        tokio::spawn(async move {
            while members.changed().await.is_ok() {
                let Some(pool) = weak.upgrade() else { return };
                let listed = members.borrow_and_update().clone();
                pool.update(&listed, &client);
            }
        });
        pool
    }

    /// Replaces the membership with `listed`, keeping the member (client, counters, record)
    /// of every instance still listed.
    fn update(&self, listed: &[Instance], client: &impl Fn(&Instance) -> Option<T>) {
        let old = self.members();
        let mut next = Vec::with_capacity(listed.len());
        for instance in listed {
            if let Some(kept) = old.iter().find(|m| m.instance.same_as(instance)) {
                // Weight, health and tags may change under the same instance.
                if kept.instance == *instance {
                    next.push(kept.clone());
                    continue;
                }
            }
            let Some(made) = client(instance) else {
                tracing::warn!(service = %self.service, url = %instance.url, "unusable instance URL");
                continue;
            };
            let weight = self
                .settings
                .version_weights
                .get(&instance.version)
                .copied()
                .unwrap_or(instance.weight);
            next.push(Arc::new(Member {
                instance: instance.clone(),
                client: made,
                weight,
                outstanding: AtomicUsize::new(0),
                outlier: Mutex::default(),
                settings: self.settings.clone(),
            }));
        }
        for gone in old
            .iter()
            .filter(|m| !next.iter().any(|n| Arc::ptr_eq(m, n)))
        {
            tracing::info!(service = %self.service, url = %gone.instance.url, "instance left the pool");
        }
        for new in next
            .iter()
            .filter(|n| !old.iter().any(|m| Arc::ptr_eq(m, n)))
        {
            tracing::info!(service = %self.service, url = %new.instance.url, "instance joined the pool");
        }
        *self.members.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(next);
    }
}

impl<T> Pool<T> {
    /// The context's name.
    pub fn service(&self) -> &str {
        &self.service
    }

    /// Every member now.
    pub fn members(&self) -> Arc<Vec<Arc<Member<T>>>> {
        self.members
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// An instance to call, other than `not` (the one a retry moves away from) when there is
    /// another. Ejected and unhealthy instances are passed over while any other is left;
    /// with none left, any instance is better than failing without trying (Envoy's panic
    /// mode). `None` only when the context has no instance at all.
    pub fn pick(&self, not: Option<&Picked<T>>) -> Option<Picked<T>> {
        let members = self.members();
        let now = Instant::now();
        let others: Vec<&Arc<Member<T>>> = members
            .iter()
            .filter(|m| not.is_none_or(|p| !p.same(m)))
            .collect();
        let pool: Vec<&Arc<Member<T>>> = if others.is_empty() {
            members.iter().collect()
        } else {
            others
        };
        let usable: Vec<&Arc<Member<T>>> = pool
            .iter()
            .copied()
            .filter(|m| m.instance.healthy && !lock(&m.outlier).is_ejected(now))
            .collect();
        let candidates = if usable.is_empty() { pool } else { usable };
        let view: Vec<Candidate> = candidates
            .iter()
            .map(|m| Candidate {
                weight: m.weight,
                outstanding: m.outstanding(),
            })
            .collect();
        let turn = self.turn.fetch_add(1, Ordering::Relaxed);
        let mut rng = rand::thread_rng();
        let i = policy::choose(self.settings.policy, &view, turn, &mut |n| {
            rng.gen_range(0..n.max(1))
        })?;
        let member = candidates[i].clone();
        member.outstanding.fetch_add(1, Ordering::Relaxed);
        Some(Picked { member })
    }
}

fn lock(outlier: &Mutex<Outlier>) -> std::sync::MutexGuard<'_, Outlier> {
    outlier.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn instance(id: &str, weight: u32, version: &str) -> Instance {
        Instance {
            weight,
            version: version.into(),
            ..Instance::new("catalog", id, format!("http://{id}:1"))
        }
    }

    fn pool(listed: Vec<Instance>, settings: Balancing) -> Arc<Pool<String>> {
        let (_feed, members) = tokio::sync::watch::channel(Arc::new(listed));
        Pool::follow("catalog", members, settings, |i| Some(i.url.clone()))
    }

    fn shares(pool: &Pool<String>, picks: usize) -> BTreeMap<String, f64> {
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        for _ in 0..picks {
            let picked = pool.pick(None).expect("an instance");
            *counts
                .entry(picked.instance().instance.clone())
                .or_default() += 1;
        }
        counts
            .into_iter()
            .map(|(k, v)| (k, v as f64 / picks as f64))
            .collect()
    }

    #[tokio::test]
    async fn a_canary_version_weight_splits_traffic_90_10() {
        let settings = Balancing {
            version_weights: BTreeMap::from([("2.0.0-canary".to_owned(), 10)]),
            ..Balancing::default()
        };
        let p = pool(
            vec![
                instance("stable", 90, "1.0.0"),
                instance("canary", 90, "2.0.0-canary"),
            ],
            settings,
        );
        let s = shares(&p, 10_000);
        assert!((s["stable"] - 0.9).abs() < 0.02, "{s:?}");
        assert!((s["canary"] - 0.1).abs() < 0.02, "{s:?}");
    }

    #[tokio::test]
    async fn an_ejected_instance_gets_nothing_until_its_ejection_ends() {
        let p = pool(
            vec![instance("a", 100, ""), instance("b", 100, "")],
            Balancing::default(),
        );
        let first = p.pick(None).expect("a pick");
        first.record(Outcome::Refused);
        let dead = first.instance().instance.clone();
        drop(first);
        for _ in 0..200 {
            assert_ne!(p.pick(None).expect("a pick").instance().instance, dead);
        }
    }

    #[tokio::test]
    async fn a_retry_goes_to_another_instance_and_with_all_ejected_one_is_still_tried() {
        let p = pool(
            vec![instance("a", 100, ""), instance("b", 100, "")],
            Balancing::default(),
        );
        for _ in 0..50 {
            let first = p.pick(None).expect("a pick");
            let second = p.pick(Some(&first)).expect("another");
            assert_ne!(first.instance().instance, second.instance().instance);
        }
        for m in p.members().iter() {
            lock(&m.outlier).record(
                Outcome::Refused,
                Instant::now(),
                &OutlierSettings::default(),
            );
        }
        assert!(p.pick(None).is_some(), "panic mode: try an ejected one");
    }

    #[tokio::test]
    async fn picks_count_as_outstanding_until_dropped() {
        let p = pool(vec![instance("a", 1, "")], Balancing::default());
        let a = p.pick(None).expect("a");
        let b = p.pick(None).expect("b");
        assert_eq!(p.members()[0].outstanding(), 2);
        drop((a, b));
        assert_eq!(p.members()[0].outstanding(), 0);
    }

    #[tokio::test]
    async fn membership_follows_the_feed_and_keeps_a_staying_instances_record() {
        let (feed, members) = tokio::sync::watch::channel(Arc::new(vec![instance("a", 1, "")]));
        let p = Pool::follow("catalog", members, Balancing::default(), |i| {
            Some(i.url.clone())
        });
        p.pick(None).expect("a").record(Outcome::Refused);
        feed.send(Arc::new(vec![instance("a", 1, ""), instance("b", 1, "")]))
            .expect("send");
        until(|| p.members().len() == 2).await;
        assert!(p.members()[0].is_ejected(), "a's record kept");
        feed.send(Arc::new(vec![instance("b", 1, "")]))
            .expect("send");
        until(|| p.members().len() == 1).await;
        assert_eq!(p.members()[0].instance.instance, "b");
    }

    async fn until(check: impl Fn() -> bool) {
        for _ in 0..200 {
            if check() {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!("the pool never followed the feed");
    }

    #[tokio::test]
    async fn an_unhealthy_instance_is_passed_over() {
        let mut sick = instance("sick", 100, "");
        sick.healthy = false;
        let p = pool(vec![sick, instance("well", 100, "")], Balancing::default());
        let s = shares(&p, 200);
        assert_eq!(s.get("sick"), None, "{s:?}");
    }
}
