//! Group commit: writes that tasks submit at the same moment share one transaction, so the
//! connection is taken once and one commit (one fsync on SQLite) makes all of them durable. A
//! write is answered only after the transaction holding it committed. If any write of a group
//! fails, the group is rolled back and each of its writes runs in a transaction of its own,
//! exactly as without grouping, so one write's failure never fails another.

use std::sync::Arc;

use futures::future::BoxFuture;
use sea_orm::{DatabaseConnection, DatabaseTransaction, DbErr, TransactionTrait};
use tokio::sync::{mpsc, oneshot};
use tracing::Instrument as _;

/// The most writes one transaction takes.
const GROUP: usize = 64;

/// Writes that can share a transaction.
pub trait Grouped: Send + Sync + 'static {
    /// One write.
    type Write: Send + Sync + 'static;
    /// What a write answers.
    type Output: Send + 'static;
    /// Why a write failed.
    type Error: Send + 'static;
    /// Rows the writes of a transaction leave to [`Grouped::flush`], which writes them with one
    /// statement per table instead of one per write; `()` when every write writes itself.
    type Deferred: Default + Send;

    /// Applies `write` inside `txn`, which others' writes share, leaving rows in `deferred`
    /// if it likes; `Err` when nothing of it may be kept (the group then falls back to
    /// [`Grouped::alone`] for every write).
    fn apply<'a>(
        &'a self,
        txn: &'a DatabaseTransaction,
        write: &'a Self::Write,
        deferred: &'a mut Self::Deferred,
    ) -> BoxFuture<'a, Result<Self::Output, Self::Error>>;

    /// Writes what the transaction's writes deferred, just before it commits; `Err` fails
    /// every write of it (a group then falls back to [`Grouped::alone`] for each).
    fn flush<'a>(
        &'a self,
        txn: &'a DatabaseTransaction,
        deferred: Self::Deferred,
    ) -> BoxFuture<'a, Result<(), Self::Error>> {
        let _ = (txn, deferred);
        Box::pin(async { Ok(()) })
    }

    /// The connection a write runs on when it runs alone.
    fn db(&self) -> &DatabaseConnection;

    /// `e` as a write's error.
    fn db_error(e: DbErr) -> Self::Error;

    /// Runs `write` in a transaction of its own: committed when [`Grouped::apply`] succeeds,
    /// rolled back at once when it fails (not on drop: SQLite has one pooled connection).
    fn alone(&self, write: Self::Write) -> BoxFuture<'_, Result<Self::Output, Self::Error>> {
        Box::pin(in_own_transaction(self, write))
    }

    /// Called after a group committed (e.g. to wake the outbox relay).
    fn committed(&self) {}

    /// The error a write gets when the committing task has stopped.
    fn stopped() -> Self::Error;
}

/// What [`Grouped::alone`] does by default; an override that only shortcuts some writes
/// hands the others here.
///
/// # Errors
/// The write's own error, or the database's.
pub async fn in_own_transaction<G: Grouped + ?Sized>(
    grouped: &G,
    write: G::Write,
) -> Result<G::Output, G::Error> {
    let txn = grouped.db().begin().await.map_err(G::db_error)?;
    let mut deferred = G::Deferred::default();
    let applied = match grouped.apply(&txn, &write, &mut deferred).await {
        Ok(output) => grouped.flush(&txn, deferred).await.map(|()| output),
        Err(e) => Err(e),
    };
    match applied {
        Ok(output) => {
            txn.commit().await.map_err(G::db_error)?;
            grouped.committed();
            Ok(output)
        }
        Err(e) => {
            let _ = txn.rollback().await;
            Err(e)
        }
    }
}

struct Job<G: Grouped> {
    write: G::Write,
    /// The caller's span: what the write logs carries the trace of the request behind it.
    span: tracing::Span,
    reply: oneshot::Sender<Result<G::Output, G::Error>>,
}

/// Hands writes to the task that commits them in groups.
pub struct GroupCommit<G: Grouped> {
    jobs: mpsc::UnboundedSender<Job<G>>,
}

impl<G: Grouped> Clone for GroupCommit<G> {
    fn clone(&self) -> Self {
        Self {
            jobs: self.jobs.clone(),
        }
    }
}

impl<G: Grouped> std::fmt::Debug for GroupCommit<G> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupCommit").finish_non_exhaustive()
    }
}

impl<G: Grouped> GroupCommit<G> {
    /// Starts the committing task on `db` (inside a Tokio runtime).
    pub fn start(db: DatabaseConnection, grouped: Arc<G>) -> Self {
        let (jobs, queue) = mpsc::unbounded_channel();
        tokio::spawn(commit_groups(db, grouped, queue));
        Self { jobs }
    }

    /// Submits `write`; answers once it is committed (or failed).
    ///
    /// # Errors
    /// The write's own error, or [`Grouped::stopped`].
    pub async fn submit(&self, write: G::Write) -> Result<G::Output, G::Error> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Job {
                write,
                span: tracing::Span::current(),
                reply,
            })
            .map_err(|_| G::stopped())?;
        answer.await.map_err(|_| G::stopped())?
    }
}

/// Takes whatever writes are waiting (at least one) and commits them together.
async fn commit_groups<G: Grouped>(
    db: DatabaseConnection,
    grouped: Arc<G>,
    mut queue: mpsc::UnboundedReceiver<Job<G>>,
) {
    while let Some(first) = queue.recv().await {
        let mut group = vec![first];
        while group.len() < GROUP
            && let Ok(job) = queue.try_recv()
        {
            group.push(job);
        }
        if group.len() > 1
            && let Some(outputs) = together(&db, grouped.as_ref(), &group).await
        {
            grouped.committed();
            for (job, output) in group.into_iter().zip(outputs) {
                let _ = job.reply.send(Ok(output));
            }
            continue;
        }
        for job in group {
            let result = grouped.alone(job.write).instrument(job.span).await;
            let _ = job.reply.send(result);
        }
    }
}

/// Every write of `group` in one transaction, or `None` (nothing kept) if any fails.
async fn together<G: Grouped>(
    db: &DatabaseConnection,
    grouped: &G,
    group: &[Job<G>],
) -> Option<Vec<G::Output>> {
    let txn = db.begin().await.ok()?;
    let mut outputs = Vec::with_capacity(group.len());
    let mut deferred = G::Deferred::default();
    let mut failed = false;
    for job in group {
        match grouped
            .apply(&txn, &job.write, &mut deferred)
            .instrument(job.span.clone())
            .await
        {
            Ok(output) => outputs.push(output),
            Err(_) => {
                failed = true;
                break;
            }
        }
    }
    if failed || grouped.flush(&txn, deferred).await.is_err() {
        // Roll back now rather than on drop: SQLite has one pooled connection.
        let _ = txn.rollback().await;
        return None;
    }
    txn.commit().await.ok()?;
    Some(outputs)
}

#[cfg(test)]
mod tests {
    use sea_orm::{ConnectionTrait, DbBackend, Statement};

    use super::*;

    /// Inserts an id; a write marked to fail inserts and then fails.
    struct Ids(DatabaseConnection);

    async fn insert(conn: &impl ConnectionTrait, id: &str, fail: bool) -> Result<String, String> {
        conn.execute_raw(Statement::from_sql_and_values(
            DbBackend::Sqlite,
            "INSERT INTO t (id) VALUES (?)",
            [id.into()],
        ))
        .await
        .map_err(|e: DbErr| e.to_string())?;
        if fail {
            return Err(format!("{id} refused"));
        }
        Ok(id.to_owned())
    }

    impl Grouped for Ids {
        type Write = (String, bool);
        type Output = String;
        type Error = String;
        type Deferred = ();

        fn apply<'a>(
            &'a self,
            txn: &'a DatabaseTransaction,
            (id, fail): &'a (String, bool),
            (): &'a mut (),
        ) -> BoxFuture<'a, Result<String, String>> {
            Box::pin(insert(txn, id, *fail))
        }

        fn db(&self) -> &DatabaseConnection {
            &self.0
        }

        fn db_error(e: DbErr) -> String {
            e.to_string()
        }

        fn stopped() -> String {
            "stopped".into()
        }
    }

    #[tokio::test]
    async fn a_failing_write_in_a_group_fails_alone_and_the_others_commit() {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("g.db").display());
        let db = crate::db::connect_url(&url, "g").await.expect("connect");
        db.execute_unprepared("CREATE TABLE t (id TEXT PRIMARY KEY)")
            .await
            .expect("table");
        let group = GroupCommit::start(db.clone(), Arc::new(Ids(db.clone())));
        // Submitted together, so the committing task finds them queued as one group.
        let results =
            futures::future::join_all((0..10).map(|i| group.submit((format!("id{i}"), i == 3))))
                .await;
        for (i, result) in results.iter().enumerate() {
            if i == 3 {
                assert_eq!(result, &Err("id3 refused".to_owned()));
            } else {
                assert_eq!(result, &Ok(format!("id{i}")));
            }
        }
        let rows = db
            .query_all_raw(Statement::from_string(
                DbBackend::Sqlite,
                "SELECT id FROM t ORDER BY id",
            ))
            .await
            .expect("read");
        let ids: Vec<String> = rows
            .iter()
            .map(|r| r.try_get("", "id").expect("id"))
            .collect();
        let expected: Vec<String> = (0..10)
            .filter(|i| *i != 3)
            .map(|i| format!("id{i}"))
            .collect();
        assert_eq!(ids, expected, "the refused write left nothing behind");
    }
}
