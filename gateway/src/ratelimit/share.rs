//! Rate limits shared by the edges behind one load balancer, by gossip over NATS core pub/sub
//! (decision 0014). Every `gateway.rate_share_ms` an edge publishes on [`SUBJECT`] how many
//! requests it admitted per class and principal since its last message; every edge debits
//! what the others admitted from its own buckets, into debt if need be. A principal then gets
//! its rate once over all edges, give or take what passed in the last interval elsewhere.
//!
//! Best effort on purpose: a lost message only lets a principal overshoot by one interval's
//! worth, and without NATS (or outside `discovery.mode = "nats"`) each edge limits alone.

use std::{collections::HashMap, sync::Arc, time::Duration};

use bytes::Bytes;
use futures::StreamExt;
use polyshop_platform::{discovery::Discovery, shutdown::Shutdown};
use serde::{Deserialize, Serialize};
use tokio::time::MissedTickBehavior;

use super::{Kind, RateLimiter};
use crate::edge::Edge;

/// The subject the edges gossip admissions on. Core NATS, not JetStream: a stale debit is
/// worth nothing, so nothing should store or redeliver one.
pub const SUBJECT: &str = "polyshop.ratelimit.admitted";

/// Keys per message, so that however many principals are active a message stays far below
/// NATS's default 1 MB payload limit.
const KEYS_PER_MESSAGE: usize = 4096;

/// How long to wait before subscribing again after a failed attempt.
const RESUBSCRIBE_AFTER: Duration = Duration::from_secs(1);

/// One message: what the edge `edge` admitted per key since its previous message.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Admitted {
    edge: String,
    #[serde(default, skip_serializing_if = "HashMap::is_empty")]
    standard: HashMap<String, u32>,
    #[serde(default, skip_serializing_if = "HashMap::is_empty")]
    credentials: HashMap<String, u32>,
    /// Per-account login buckets; absent in messages from edges that predate them.
    #[serde(default, skip_serializing_if = "HashMap::is_empty")]
    account: HashMap<String, u32>,
}

impl Admitted {
    fn len(&self) -> usize {
        self.standard.len() + self.credentials.len() + self.account.len()
    }

    fn kind(&mut self, kind: Kind) -> &mut HashMap<String, u32> {
        match kind {
            Kind::Standard => &mut self.standard,
            Kind::Credentials => &mut self.credentials,
            Kind::Account => &mut self.account,
        }
    }
}

/// One edge's side of the gossip: its id, the messages it sends and how it applies others'.
#[derive(Debug, Clone)]
pub struct Gossip {
    edge: String,
}

impl Gossip {
    /// Gossip for the edge `edge`, an id no other edge has.
    pub fn new(edge: String) -> Self {
        Self { edge }
    }

    /// The messages telling the other edges what `limiter` admitted since the last call
    /// (none when nothing passed); the counts are then forgotten.
    pub fn outgoing(&self, limiter: &RateLimiter) -> Vec<Bytes> {
        let mut messages = Vec::new();
        let mut next = self.empty();
        for kind in Kind::ALL {
            for (key, n) in limiter.take_admitted(kind) {
                next.kind(kind).insert(key, n);
                if next.len() == KEYS_PER_MESSAGE {
                    messages.push(std::mem::replace(&mut next, self.empty()));
                }
            }
        }
        if next.len() > 0 {
            messages.push(next);
        }
        messages
            .iter()
            .filter_map(|m| serde_json::to_vec(m).ok())
            .map(Bytes::from)
            .collect()
    }

    /// Debits what another edge admitted from `limiter`'s buckets; this edge's own messages
    /// change nothing. Returns how many keys were debited.
    ///
    /// # Errors
    /// When `payload` is not an admissions message.
    pub fn apply(&self, limiter: &RateLimiter, payload: &[u8]) -> Result<usize, serde_json::Error> {
        let message: Admitted = serde_json::from_slice(payload)?;
        if message.edge == self.edge {
            return Ok(0);
        }
        let now = std::time::Instant::now();
        for (kind, counts) in [
            (Kind::Standard, &message.standard),
            (Kind::Credentials, &message.credentials),
            (Kind::Account, &message.account),
        ] {
            for (key, n) in counts {
                limiter.debit(kind, key, *n, now);
            }
        }
        Ok(message.len())
    }

    fn empty(&self) -> Admitted {
        Admitted {
            edge: self.edge.clone(),
            ..Admitted::default()
        }
    }
}

/// Shares `edge`'s rate limits with the other edges until `stopped`, when the edge has NATS
/// (`nats` discovery mode, or `nats.url` set) and `gateway.rate_share_ms` is not 0;
/// otherwise says once that limits are per edge.
pub fn start(edge: &Arc<Edge>, discovery: &Discovery, stopped: Shutdown) {
    let every = Duration::from_millis(edge.settings.rate_share_ms);
    let client = discovery
        .jetstream()
        .filter(|_| !every.is_zero())
        .map(|js| js.client());
    let Some(client) = client else {
        tracing::info!(
            "rate limits are per edge: sharing needs NATS (discovery.mode = \"nats\" or nats.url) and gateway.rate_share_ms > 0"
        );
        return;
    };
    let gossip = Gossip::new(polyshop_platform::new_id());
    let edge = Arc::clone(edge);
    edge.limiter.count_admissions(true);
    tokio::spawn(async move {
        let stop = stopped.wait();
        tokio::pin!(stop);
        let mut incoming = loop {
            match client.subscribe(SUBJECT).await {
                Ok(subscriber) => break subscriber,
                Err(e) => tracing::warn!(error = %e, "cannot subscribe to shared rate limits"),
            }
            tokio::select! {
                () = &mut stop => return edge.limiter.count_admissions(false),
                () = tokio::time::sleep(RESUBSCRIBE_AFTER) => {}
            }
        };
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut shared = true;
        loop {
            tokio::select! {
                () = &mut stop => break,
                _ = ticks.tick() => {
                    let messages = gossip.outgoing(&edge.limiter);
                    // While disconnected, async-nats queues publishes and sends them all on
                    // reconnect: the other edges would then debit minutes of admissions at
                    // once. Counts made while NATS is away are dropped instead. (The state is
                    // matched by name: the gateway does not depend on async-nats directly.)
                    let connected = client.connection_state().to_string() == "connected";
                    if connected != shared {
                        shared = connected;
                        if connected {
                            tracing::info!("NATS is back: rate limits are shared by the edges again");
                        } else {
                            tracing::warn!("NATS is unreachable: rate limits are per edge until it is back");
                        }
                    }
                    if !connected {
                        continue;
                    }
                    for message in messages {
                        if let Err(e) = client.publish(SUBJECT, message).await {
                            tracing::warn!(error = %e, "cannot publish admitted requests");
                        }
                    }
                }
                message = incoming.next() => {
                    let Some(message) = message else {
                        tracing::warn!("shared rate limits ended: rate limits are per edge");
                        break;
                    };
                    if let Err(e) = gossip.apply(&edge.limiter, &message.payload) {
                        tracing::warn!(error = %e, "ignored a malformed rate-limit message");
                    }
                }
            }
        }
        edge.limiter.count_admissions(false);
    });
}

#[cfg(test)]
mod tests {
    use polyshop_platform::config::GatewaySettings;

    use super::*;
    use crate::routes::LimitClass;

    fn limiter() -> RateLimiter {
        let l = RateLimiter::new(&GatewaySettings {
            rate_per_sec: 1,
            rate_burst: 5,
            ..GatewaySettings::default()
        });
        l.count_admissions(true);
        l
    }

    #[test]
    fn what_one_edge_admitted_is_debited_by_the_other() {
        let (a, b) = (limiter(), limiter());
        let (ga, gb) = (Gossip::new("a".into()), Gossip::new("b".into()));
        for _ in 0..3 {
            a.check(LimitClass::Standard, "user:1")
                .expect("within burst");
        }
        a.check(LimitClass::Credentials, "ip:1")
            .expect("within burst");
        let messages = ga.outgoing(&a);
        assert_eq!(messages.len(), 1);
        assert!(ga.outgoing(&a).is_empty(), "counts are sent once");
        assert_eq!(gb.apply(&b, &messages[0]).expect("decodes"), 2);
        for _ in 0..2 {
            b.check(LimitClass::Standard, "user:1").expect("5 - 3");
        }
        b.check(LimitClass::Standard, "user:1")
            .expect_err("3 on a, 2 on b");
        // What b admitted is b's own, not a's debit sent on again.
        let back = gb.outgoing(&b);
        assert_eq!(back.len(), 1);
        let counts: Admitted = serde_json::from_slice(&back[0]).expect("json");
        assert_eq!(counts.standard["user:1"], 2);
        assert!(counts.credentials.is_empty());
    }

    #[test]
    fn an_edge_ignores_its_own_messages() {
        let a = limiter();
        let ga = Gossip::new("a".into());
        for _ in 0..5 {
            a.check(LimitClass::Standard, "user:1")
                .expect("within burst");
        }
        let messages = ga.outgoing(&a);
        assert_eq!(ga.apply(&a, &messages[0]).expect("decodes"), 0);
        // Not debited twice: the bucket is empty, not 5 in debt, so a second refills a token.
        let later = std::time::Instant::now() + Duration::from_millis(1_050);
        a.check_at(Kind::Standard, "user:1", later)
            .expect("one token refilled");
    }

    #[test]
    fn many_principals_are_split_over_several_messages() {
        let a = RateLimiter::new(&GatewaySettings::default());
        a.count_admissions(true);
        for i in 0..KEYS_PER_MESSAGE + 10 {
            a.check(LimitClass::Standard, &format!("ip:{i}"))
                .expect("a new key");
        }
        let messages = Gossip::new("a".into()).outgoing(&a);
        assert_eq!(messages.len(), 2);
        let b = RateLimiter::new(&GatewaySettings::default());
        let gb = Gossip::new("b".into());
        let applied: usize = messages
            .iter()
            .map(|m| gb.apply(&b, m).expect("decodes"))
            .sum();
        assert_eq!(applied, KEYS_PER_MESSAGE + 10);
    }

    #[test]
    fn a_malformed_message_is_an_error() {
        let l = limiter();
        assert!(Gossip::new("a".into()).apply(&l, b"not json").is_err());
    }
}
