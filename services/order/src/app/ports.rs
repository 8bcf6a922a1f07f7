//! What the order use cases need from the outside, in domain terms: the participants (gRPC in
//! `grpc::participants`, fakes in [`super::memory`]), the saga log (the store), and the user
//! replica.

use futures::future::BoxFuture;

use crate::{
    domain::{
        Order, OrderError, OrderEvent,
        saga::{Command, Outcome, PricedProduct, Saga},
    },
    store::Created,
};

/// A participant that gave no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Away {
    /// What went wrong.
    pub detail: String,
}

/// The customer's standing, as the user service says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// May order.
    Active,
    /// Suspended or inactive.
    Inactive,
    /// No such account.
    NotFound,
}

/// The saga's participants: user, catalog, inventory, payment.
pub trait Participants: Send + Sync + std::fmt::Debug {
    /// The customer's standing.
    fn standing<'a>(&'a self, user_id: &'a str) -> BoxFuture<'a, Result<Standing, Away>>;

    /// The products found among `ids` (missing ones are left out).
    fn products(&self, ids: Vec<String>) -> BoxFuture<'_, Result<Vec<PricedProduct>, Away>>;

    /// Sends a saga command and answers with its outcome (never an error: failures are
    /// outcomes too).
    fn execute<'a>(&'a self, command: &'a Command) -> BoxFuture<'a, Outcome>;
}

/// The epoch a new saga is stored with, claimed by the instance that creates it.
pub const FIRST_EPOCH: i64 = 1;

/// One instance's claim on a saga, as the store granted it. Every claim bumps the saga's epoch,
/// so a write fenced with an older one is refused: an instance that was paused past its lease
/// and taken over cannot overwrite the new driver's progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    /// The order whose saga is claimed.
    pub order_id: String,
    /// The epoch the claim was granted at.
    pub epoch: i64,
}

/// Where sagas and their orders are kept. Writes to a saga are fenced: they hold only while
/// the stored epoch is the caller's, else they fail with `LeaseLost` and write nothing.
pub trait SagaLog: Send + Sync + std::fmt::Debug {
    /// Stores a new saga with its order's first events under the request's idempotency key,
    /// claimed by `owner` until `lease_until` at [`FIRST_EPOCH`], or finds the order an earlier
    /// call placed under it.
    fn create<'a>(
        &'a self,
        events: &'a [OrderEvent],
        saga: &'a Saga,
        owner: &'a str,
        lease_until: i64,
    ) -> BoxFuture<'a, Result<Created, OrderError>>;

    /// Claims the saga of `order_id` for `owner` until `lease_until` if nobody holds it at
    /// `now` (unclaimed, or the holder's lease ran out), bumping its epoch; `None` if another
    /// instance holds it or there is no such saga.
    fn claim<'a>(
        &'a self,
        order_id: &'a str,
        owner: &'a str,
        now: i64,
        lease_until: i64,
    ) -> BoxFuture<'a, Result<Option<Fence>, OrderError>>;

    /// Extends the claim to `lease_until`.
    fn renew<'a>(
        &'a self,
        fence: &'a Fence,
        lease_until: i64,
    ) -> BoxFuture<'a, Result<(), OrderError>>;

    /// Gives the claim up so any instance may resume the saga when it is due.
    fn release<'a>(&'a self, fence: &'a Fence) -> BoxFuture<'a, Result<(), OrderError>>;

    /// The order placed by `user_id` under idempotency `key`, if any.
    fn placed_under<'a>(
        &'a self,
        user_id: &'a str,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, OrderError>>;

    /// Saves the saga's progress under `fence`.
    fn save<'a>(
        &'a self,
        saga: &'a Saga,
        fence: &'a Fence,
    ) -> BoxFuture<'a, Result<(), OrderError>>;

    /// Appends `events` to the order's stream, expecting it at `current`'s version, with the
    /// saga's progress (under its fence) if given, in one transaction; returns the new state.
    fn append<'a>(
        &'a self,
        current: &'a Order,
        events: &'a [OrderEvent],
        saga: Option<(&'a Saga, &'a Fence)>,
    ) -> BoxFuture<'a, Result<Order, OrderError>>;

    /// A saga.
    fn saga<'a>(&'a self, order_id: &'a str) -> BoxFuture<'a, Result<Option<Saga>, OrderError>>;

    /// An order as its events (and snapshot) say.
    fn order<'a>(&'a self, order_id: &'a str) -> BoxFuture<'a, Result<Option<Order>, OrderError>>;

    /// Order ids of unfinished sagas due at `now` that no instance holds, oldest first, at
    /// most `limit`.
    fn due(&self, now: i64, limit: u64) -> BoxFuture<'_, Result<Vec<String>, OrderError>>;
}

/// The user replica fed by user events, for when the user service is away.
pub trait AccountReplica: Send + Sync + std::fmt::Debug {
    /// The replicated status (`active`, `suspended`, `deleted`, ...) if the user is known.
    fn status<'a>(&'a self, user_id: &'a str) -> BoxFuture<'a, Result<Option<String>, OrderError>>;
}
