//! Two order instances over one database (a shared SQLite file, and PostgreSQL when
//! `POLYSHOP_TEST_POSTGRES_URL` is set): each saga is driven by one instance at a time under its
//! claim, the instance holding work is killed mid-run and the other takes its sagas over once
//! the lease runs out, and a write under a claim that was taken over is refused.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, MutexGuard, PoisonError},
    time::Duration,
};

use futures::future::BoxFuture;
use polyshop_order::{
    app::{
        SagaRunner,
        ports::{AccountReplica, Away, FIRST_EPOCH, Fence, Participants, Standing},
    },
    domain::{
        Money, Order, OrderError, OrderEvent, OrderStatus, PlaceOrder, RequestedLine,
        ShippingAddress,
        saga::{Command, Outcome, PricedProduct, Saga, Step, Timing},
    },
    store::{self, EventStore, SagaJournal, SagaStore, StoredSagas},
};
use polyshop_platform::{db, events::outbox::OutboxSignal, testing};
use sea_orm::DatabaseConnection;
use tokio::runtime::Runtime;

const ORDERS: usize = 100;
/// Every tenth order's card is declined: its saga compensates (releases the stock).
const DECLINED_EVERY: usize = 10;
const STOCK: i32 = 1000;
/// How long a participant takes to answer; its effect happens at once, so an instance killed
/// meanwhile has caused the effect but never learns of it.
const LATENCY: Duration = Duration::from_millis(100);
const LEASE: Duration = Duration::from_millis(1000);
const RENEW: Duration = Duration::from_millis(200);
const RESUME_EVERY: Duration = Duration::from_millis(20);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One participant call, as the participants saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Call {
    instance: &'static str,
    command: &'static str,
    /// The idempotency key (reservation id, charge or refund key) it carried.
    key: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hold {
    Held,
    Sold,
    Released,
}

/// What the participants hold, shared by both instances like the real services are: stock by
/// reservation id and charges by key (so a repeat under the same key has no second effect).
#[derive(Debug, Default)]
struct World {
    on_hand: i32,
    holds: HashMap<String, (Hold, i32)>,
    /// Charges by key: (payment id, refunded).
    charges: HashMap<String, (String, bool)>,
    /// Calls by order, in the order they arrived.
    calls: HashMap<String, Vec<Call>>,
    /// Calls being answered, by order.
    in_flight: HashMap<String, usize>,
    /// Orders that had two calls in flight at once: two drivers.
    overlaps: Vec<String>,
}

/// The order a command belongs to (its keys are `order-<id>...`).
fn order_of(command: &Command) -> String {
    let key = match command {
        Command::Reserve { reservation_id, .. }
        | Command::ConfirmReservation { reservation_id }
        | Command::Release { reservation_id, .. } => reservation_id,
        Command::Charge { order, .. } => return order.id.clone(),
        Command::Refund { key, .. } => key,
        Command::VoidCharges { order_id } => return order_id.clone(),
        Command::Finish => return String::new(),
    };
    let id = key.strip_prefix("order-").unwrap_or(key);
    // Order ids are UUIDs (five dash-separated groups); refund keys add a suffix.
    id.split('-').take(5).collect::<Vec<_>>().join("-")
}

fn key_of(command: &Command) -> String {
    match command {
        Command::Reserve { reservation_id, .. }
        | Command::ConfirmReservation { reservation_id }
        | Command::Release { reservation_id, .. } => reservation_id.clone(),
        Command::Charge { key, .. } | Command::Refund { key, .. } => key.clone(),
        Command::VoidCharges { order_id } => order_id.clone(),
        Command::Finish => String::new(),
    }
}

impl World {
    fn apply(&mut self, command: &Command) -> Outcome {
        match command {
            Command::Reserve {
                reservation_id,
                items,
            } => {
                if self.holds.contains_key(reservation_id) {
                    return Outcome::Reserved;
                }
                let qty: i32 = items.iter().map(|i| i.quantity).sum();
                self.on_hand -= qty;
                self.holds.insert(reservation_id.clone(), (Hold::Held, qty));
                Outcome::Reserved
            }
            Command::Charge {
                key,
                payment_method_token,
                ..
            } => {
                if payment_method_token == "tok_declined" {
                    return Outcome::Declined {
                        detail: "card_declined".into(),
                    };
                }
                let n = self.charges.len();
                let (id, _) = self
                    .charges
                    .entry(key.clone())
                    .or_insert_with(|| (format!("pay{n}"), false));
                Outcome::Charged {
                    payment_id: id.clone(),
                }
            }
            Command::ConfirmReservation { reservation_id } => {
                match self.holds.get_mut(reservation_id) {
                    Some((hold @ (Hold::Held | Hold::Sold), _)) => {
                        *hold = Hold::Sold;
                        Outcome::ReservationConfirmed
                    }
                    _ => Outcome::ReservationLapsed {
                        detail: "gone".into(),
                    },
                }
            }
            Command::Refund { payment_id, .. } => {
                for (id, refunded) in self.charges.values_mut() {
                    if id == payment_id {
                        *refunded = true;
                    }
                }
                Outcome::Refunded
            }
            Command::Release { reservation_id, .. } => {
                if let Some((hold, qty)) = self.holds.get_mut(reservation_id)
                    && *hold != Hold::Released
                {
                    *hold = Hold::Released;
                    self.on_hand += *qty;
                }
                Outcome::Released
            }
            Command::VoidCharges { order_id } => {
                if let Some((_, refunded)) = self.charges.get_mut(&format!("order-{order_id}")) {
                    *refunded = true;
                }
                Outcome::Voided
            }
            Command::Finish => Outcome::Finished,
        }
    }
}

/// The participants as one instance reaches them.
#[derive(Debug)]
struct Reached {
    instance: &'static str,
    world: Arc<Mutex<World>>,
}

/// Takes a call out of the in-flight count when it is answered or dropped with its instance.
struct InFlight {
    world: Arc<Mutex<World>>,
    order_id: String,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Some(n) = lock(&self.world).in_flight.get_mut(&self.order_id) {
            *n -= 1;
        }
    }
}

impl Participants for Reached {
    fn standing<'a>(&'a self, _user_id: &'a str) -> BoxFuture<'a, Result<Standing, Away>> {
        Box::pin(async { Ok(Standing::Active) })
    }

    fn products(&self, ids: Vec<String>) -> BoxFuture<'_, Result<Vec<PricedProduct>, Away>> {
        Box::pin(async move {
            Ok(ids
                .into_iter()
                .map(|product_id| PricedProduct {
                    product_id,
                    name: "Mug".into(),
                    active: true,
                    price: Some(Money {
                        amount_minor: 800,
                        currency: "USD".into(),
                    }),
                })
                .collect())
        })
    }

    fn execute<'a>(&'a self, command: &'a Command) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            let order_id = order_of(command);
            let outcome = {
                let mut w = lock(&self.world);
                let n = w.in_flight.entry(order_id.clone()).or_default();
                *n += 1;
                if *n > 1 {
                    w.overlaps.push(order_id.clone());
                }
                w.calls.entry(order_id.clone()).or_default().push(Call {
                    instance: self.instance,
                    command: command.name(),
                    key: key_of(command),
                });
                w.apply(command)
            };
            let _answering = InFlight {
                world: self.world.clone(),
                order_id,
            };
            tokio::time::sleep(LATENCY).await;
            outcome
        })
    }
}

#[derive(Debug)]
struct NoReplica;

impl AccountReplica for NoReplica {
    fn status<'a>(
        &'a self,
        _user_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, OrderError>> {
        Box::pin(async { Ok(None) })
    }
}

/// Where the instances' database is.
#[derive(Debug, Clone)]
enum Database {
    Sqlite(std::path::PathBuf),
    Postgres(String),
}

async fn open(database: &Database) -> DatabaseConnection {
    match database {
        Database::Sqlite(dir) => db::connect(dir, "order", &Default::default()).await,
        Database::Postgres(url) => db::connect_url(url, "order").await,
    }
    .expect("open the order database")
}

/// An order instance: its own runtime (own threads), connections, journal and resumer.
struct Instance {
    runtime: Runtime,
    runner: Arc<SagaRunner>,
}

impl Instance {
    fn start(name: &'static str, database: &Database, world: &Arc<Mutex<World>>) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name(name)
            .enable_all()
            .build()
            .expect("runtime");
        let participants = Arc::new(Reached {
            instance: name,
            world: world.clone(),
        });
        let runner = runtime.block_on(async {
            let conn = open(database).await;
            let log = StoredSagas::new(EventStore::new(conn, 5), OutboxSignal::new());
            let timing = Timing {
                base_ms: 50,
                max_ms: 200,
                horizon_ms: 120_000,
            };
            Arc::new(
                SagaRunner::new(Arc::new(log), participants, Arc::new(NoReplica))
                    .with_timing(timing, Duration::from_millis(20))
                    .with_lease(LEASE, RENEW),
            )
        });
        let resumer = runner.clone();
        runtime.spawn(async move {
            loop {
                resumer.resume_all().await;
                tokio::time::sleep(RESUME_EVERY).await;
            }
        });
        Self { runtime, runner }
    }

    /// Dies: nothing it holds is released, its tasks stop wherever they are.
    fn kill(self) {
        self.runtime.shutdown_background();
    }
}

fn place_order(key: &str, token: &str) -> PlaceOrder {
    PlaceOrder {
        idempotency_key: key.into(),
        lines: vec![RequestedLine {
            product_id: "p1".into(),
            quantity: 1,
        }],
        shipping: ShippingAddress {
            recipient: "Jane Doe".into(),
            line1: "Invalidenstr. 1".into(),
            city: "Berlin".into(),
            postal_code: "10115".into(),
            country_code: "DE".into(),
            ..ShippingAddress::default()
        },
        payment_method_token: token.into(),
    }
}

fn token(i: usize) -> &'static str {
    if i.is_multiple_of(DECLINED_EVERY) {
        "tok_declined"
    } else {
        "tok_visa"
    }
}

/// Checks each order's calls: one driver at a time, each driver sends each command once, and
/// the instance taking a saga over repeats only commands the killed one sent, under the same
/// key (the saga stores what it learnt before the step that needs it, so a takeover may resend
/// a command whose answer died with the killed instance; the key makes that a no-op).
fn check_calls(order_id: &str, calls: &[Call]) {
    let first_b = calls
        .iter()
        .position(|c| c.instance == "b")
        .unwrap_or(calls.len());
    let (by_a, by_b) = calls.split_at(first_b);
    assert!(
        by_b.iter().all(|c| c.instance == "b"),
        "{order_id}: instance a called after b took the saga over: {calls:?}"
    );
    for driver in [by_a, by_b] {
        for (i, call) in driver.iter().enumerate() {
            assert!(
                driver[i + 1..].iter().all(|c| c.command != call.command),
                "{order_id}: one driver sent {} twice: {calls:?}",
                call.command
            );
        }
    }
    for repeat in by_b {
        if let Some(sent) = by_a.iter().find(|c| c.command == repeat.command) {
            assert_eq!(
                sent.key, repeat.key,
                "{order_id}: {} repeated under another key: {calls:?}",
                repeat.command
            );
        }
    }
}

async fn wait_until_done(store: &SagaStore, ids: &[String]) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let mut open = 0;
        for id in ids {
            let saga = store.get(id).await.expect("saga").expect("stored");
            if !saga.is_done() {
                open += 1;
            }
        }
        if open == 0 {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{open} sagas never finished"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn two_instances_share_the_sagas_and_take_over_a_killed_one(database: &Database) {
    let check = tokio::runtime::Runtime::new().expect("runtime");
    check.block_on(async {
        store::migrate(&open(database).await)
            .await
            .expect("migrate")
    });
    let world = Arc::new(Mutex::new(World {
        on_hand: STOCK,
        ..World::default()
    }));
    let b = Instance::start("b", database, &world);
    let a = Instance::start("a", database, &world);

    // Instance a takes every order; b's resumer runs all along and must leave a's sagas alone.
    let placing: Vec<_> = (0..ORDERS)
        .map(|i| {
            let runner = a.runner.clone();
            a.runtime.spawn(async move {
                runner
                    .place("u1", place_order(&format!("k{i}"), token(i)))
                    .await
            })
        })
        .collect();
    let placed: Vec<Order> = a.runtime.block_on(async {
        let mut placed = Vec::new();
        for task in placing {
            placed.push(task.await.expect("task").expect("placed"));
        }
        placed
    });
    let ids: Vec<String> = placed.iter().map(|o| o.id.clone()).collect();
    // Both resumers run a round or two while a drives (each saga's steps take a few
    // LATENCY), then a dies mid-run.
    std::thread::sleep(LATENCY / 2);
    a.kill();

    let conn = check.block_on(open(database));
    let sagas = SagaStore::new(conn.clone());
    let events = EventStore::new(conn, 5);
    // Nobody can take a's sagas over for a lease, so this is how a left them.
    let unfinished = check.block_on(async {
        let mut n = 0;
        for id in &ids {
            n += usize::from(!sagas.get(id).await.expect("get").expect("saga").is_done());
        }
        n
    });
    // How far a got depends on the machine's load; what matters is that it left sagas
    // behind for b to take over.
    assert!(
        unfinished > 0,
        "a was killed mid-run, yet it had finished every saga"
    );
    check.block_on(wait_until_done(&sagas, &ids));
    b.kill();

    let w = lock(&world);
    assert!(
        w.overlaps.is_empty(),
        "two drivers at once: {:?}",
        w.overlaps
    );
    let taken_over = ids
        .iter()
        .filter(|id| {
            w.calls
                .get(*id)
                .is_some_and(|c| c.iter().any(|c| c.instance == "b"))
        })
        .count();
    assert!(taken_over > 0, "b took over a's unfinished sagas");
    let mut confirmed = 0;
    for (i, id) in ids.iter().enumerate() {
        check_calls(id, w.calls.get(id).map_or(&[][..], Vec::as_slice));
        let history = check.block_on(events.history(id)).expect("history");
        let ends: Vec<_> = history
            .iter()
            .filter(|r| r.kind == "confirmed" || r.kind == "rejected")
            .map(|r| r.kind.as_str())
            .collect();
        let order = check
            .block_on(events.load(id))
            .expect("load")
            .expect("order");
        let charge = w.charges.get(&format!("order-{id}"));
        if token(i) == "tok_visa" {
            confirmed += 1;
            assert_eq!(ends, ["confirmed"], "{id}: driven to its end once");
            assert_eq!(order.status, OrderStatus::Confirmed, "{id}");
            assert!(
                matches!(charge, Some((_, false))),
                "{id}: charged once, kept"
            );
        } else {
            assert_eq!(ends, ["rejected"], "{id}: driven to its end once");
            assert_eq!(order.status, OrderStatus::Rejected, "{id}");
            assert!(charge.is_none(), "{id}: a declined card is not charged");
        }
    }
    assert_eq!(
        w.charges.len(),
        confirmed,
        "one charge per confirmed order, none twice"
    );
    assert_eq!(
        w.on_hand,
        STOCK - i32::try_from(confirmed).expect("count"),
        "stock sold once per confirmed order"
    );
    assert!(
        w.holds.values().all(|(h, _)| *h != Hold::Held),
        "no hold left behind"
    );
}

#[test]
fn a_killed_instance_s_sagas_are_finished_by_the_other_each_driven_once_on_sqlite() {
    let dir = tempfile::tempdir().expect("tempdir");
    two_instances_share_the_sagas_and_take_over_a_killed_one(&Database::Sqlite(
        dir.path().to_owned(),
    ));
}

#[test]
fn a_killed_instance_s_sagas_are_finished_by_the_other_each_driven_once_on_postgres() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let Some(url) = runtime.block_on(testing::postgres_database("order instances")) else {
        return;
    };
    drop(runtime);
    two_instances_share_the_sagas_and_take_over_a_killed_one(&Database::Postgres(url));
}

fn created(order_id: &str) -> OrderEvent {
    OrderEvent::Created(Box::new(Order::placed(
        order_id.into(),
        "u1".into(),
        vec![],
        Money {
            amount_minor: 990,
            currency: "USD".into(),
        },
        ShippingAddress::default(),
    )))
}

async fn stale_claims_are_fenced_off(conn: DatabaseConnection) {
    store::migrate(&conn).await.expect("migrate");
    let events = EventStore::new(conn.clone(), 10);
    let journal = SagaJournal::start(events.clone());
    let sagas = SagaStore::new(conn.clone());
    let t = 1_000_000;

    let saga = Saga::started("order-f", "u1", place_order("f", "tok_visa"));
    let placed = match journal
        .create(&[created("order-f")], &saga, "a", t + 1000)
        .await
        .expect("create")
    {
        store::Created::New(order) => *order,
        store::Created::Existing(_) => panic!("fresh database"),
    };
    let a = Fence {
        order_id: "order-f".into(),
        epoch: FIRST_EPOCH,
    };
    assert_eq!(
        sagas
            .claim("order-f", "b", t + 999, t + 5000)
            .await
            .expect("claim"),
        None,
        "held while a's lease lasts"
    );
    assert!(
        sagas.due(t + 999, 10).await.expect("due").is_empty(),
        "a held saga is not due for resuming"
    );

    // a is paused past its lease; b takes the saga over.
    let b = sagas
        .claim("order-f", "b", t + 1001, t + 5000)
        .await
        .expect("claim")
        .expect("the lapsed lease is taken over");
    assert_eq!(b.epoch, FIRST_EPOCH + 1);

    let mut stale = saga.clone();
    stale.step = Step::Charge;
    let lost = |r: Result<_, OrderError>| matches!(r, Err(OrderError::LeaseLost { .. }));
    assert!(lost(journal.save(&stale, &a).await), "a's save is refused");
    let confirm = placed.confirm("pay-1").expect("pending");
    assert!(
        lost(
            journal
                .append(Some(&placed), &[confirm], &stale, &a)
                .await
                .map(|_| ())
        ),
        "a's append is refused"
    );
    assert!(lost(sagas.renew(&a, t + 9000).await), "a cannot renew");
    sagas.release(&a).await.expect("release");
    assert_eq!(
        events.history("order-f").await.expect("history").len(),
        1,
        "nothing of a's append was written"
    );
    let stored = sagas.get("order-f").await.expect("get").expect("saga");
    assert_eq!(stored.step, saga.step, "nothing of a's save was written");

    // b's writes hold, and a's release did not free b's claim.
    journal.save(&stale, &b).await.expect("b saves");
    assert_eq!(
        sagas
            .claim("order-f", "c", t + 4999, t + 9000)
            .await
            .expect("claim"),
        None
    );
    sagas.release(&b).await.expect("release");
    assert!(
        sagas
            .claim("order-f", "c", t + 5, t + 9000)
            .await
            .expect("claim")
            .is_some(),
        "a released saga is claimed at once"
    );
}

#[tokio::test]
async fn a_write_under_a_claim_that_was_taken_over_fails_with_lease_lost() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sqlite = db::connect(dir.path(), "order", &Default::default())
        .await
        .expect("db");
    stale_claims_are_fenced_off(sqlite).await;
    if let Some(url) = testing::postgres_database("stale claims").await {
        stale_claims_are_fenced_off(db::connect_url(&url, "order").await.expect("postgres")).await;
    }
}
