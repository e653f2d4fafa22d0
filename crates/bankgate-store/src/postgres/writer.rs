//! Group commit on PostgreSQL, as in `sqlite/writer.rs`: one task per node owns a write
//! connection and runs every write job. Jobs that arrive while a commit is in flight wait in the
//! channel and share the next transaction, so one WAL flush makes a whole batch durable. Each job
//! runs under its own savepoint (when the batch has more than one): a job that fails rolls back
//! alone, and nobody hears back before the commit that holds their write succeeded.
//!
//! Other nodes' writers run beside this one; correctness across nodes comes from each job's
//! statements (conditional UPDATEs, row locks held to the commit), not from this task.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use deadpool_postgres::{ClientWrapper, Object, Pool};
use futures_util::FutureExt;
use tokio::sync::{mpsc, oneshot};

use super::PgError;
use crate::BatchStats;

/// The most jobs one transaction takes; bounds the latency a batch adds to its first job.
const MAX_BATCH: usize = 256;
/// How many jobs may wait for the writer before callers are slowed down (backpressure).
const QUEUE_DEPTH: usize = 4096;

/// What a job returns: a future borrowing the writer's connection.
pub type JobFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, PgError>> + Send + 'a>>;
type Completion = Box<dyn FnOnce(Result<(), PgError>) + Send>;

/// How a job left the transaction.
struct JobEnd {
    /// The job succeeded.
    ok: bool,
    /// The transaction can still commit. PostgreSQL answers COMMIT of an aborted transaction
    /// with a silent ROLLBACK, so a batch that is not intact must be failed explicitly.
    intact: bool,
}

trait WriteJob: Send {
    /// Runs the job's statements; returns what to do once the batch's commit is known.
    fn run<'a>(
        self: Box<Self>,
        conn: &'a ClientWrapper,
        savepoint: bool,
    ) -> Pin<Box<dyn Future<Output = (JobEnd, Completion)> + Send + 'a>>;
    /// Tells the caller the job could not run at all.
    fn fail(self: Box<Self>, error: PgError);
}

struct Job<F, T> {
    work: F,
    reply: oneshot::Sender<Result<T, PgError>>,
}

impl<F, T> WriteJob for Job<F, T>
where
    F: for<'c> FnOnce(&'c ClientWrapper) -> JobFuture<'c, T> + Send + 'static,
    T: Send + 'static,
{
    fn run<'a>(
        self: Box<Self>,
        conn: &'a ClientWrapper,
        savepoint: bool,
    ) -> Pin<Box<dyn Future<Output = (JobEnd, Completion)> + Send + 'a>> {
        Box::pin(async move {
            let Job { work, reply } = *self;
            // `intact`: the transaction can still commit (the savepoint statements worked).
            let (outcome, intact) = if savepoint
                && let Err(error) = conn.batch_execute("SAVEPOINT job").await
            {
                (Err(PgError::from(error)), false)
            } else {
                // A panicking job must not take the writer task (and every later write) down.
                let outcome = AssertUnwindSafe(work(conn))
                    .catch_unwind()
                    .await
                    .unwrap_or_else(|_| Err(PgError::Unavailable("a write job panicked".into())));
                let end = match (savepoint, outcome.is_ok()) {
                    (false, _) => Ok(()),
                    (true, true) => conn.batch_execute("RELEASE job").await,
                    (true, false) => conn.batch_execute("ROLLBACK TO job; RELEASE job").await,
                };
                match end {
                    Ok(()) => (outcome, true),
                    Err(error) => (Err(PgError::from(error)), false),
                }
            };
            let ok = outcome.is_ok() && intact;
            let complete: Completion = Box::new(move |commit| {
                let answer = match commit {
                    Ok(()) => outcome,
                    Err(error) => Err(error),
                };
                // The caller may have gone away (client disconnected); the write stands.
                let _ = reply.send(answer);
            });
            (JobEnd { ok, intact }, complete)
        })
    }

    fn fail(self: Box<Self>, error: PgError) {
        let _ = self.reply.send(Err(error));
    }
}

/// Handle to the writer task. Dropping it lets the task finish the queued jobs and exit.
#[derive(Debug)]
pub struct Writer {
    sender: Option<mpsc::Sender<Box<dyn WriteJob>>>,
    task: Option<tokio::task::JoinHandle<()>>,
    stats: Arc<Mutex<BatchStats>>,
}

impl Writer {
    /// Starts the writer. `batch_timeout` bounds one whole batch (connection, statements,
    /// commit): past it, the batch's callers hear that the database is unavailable and the
    /// connection is thrown away, so a silent network never hangs a request.
    pub fn start(pool: Pool, batch_timeout: Duration) -> Self {
        let (sender, receiver) = mpsc::channel(QUEUE_DEPTH);
        let stats = Arc::new(Mutex::new(BatchStats::default()));
        let task = tokio::spawn(run(pool, receiver, batch_timeout, stats.clone()));
        Self {
            sender: Some(sender),
            task: Some(task),
            stats,
        }
    }

    /// Runs `work` in the next batch; resolves once its batch is committed.
    pub async fn write<T, F>(&self, work: F) -> Result<T, PgError>
    where
        F: for<'c> FnOnce(&'c ClientWrapper) -> JobFuture<'c, T> + Send + 'static,
        T: Send + 'static,
    {
        let sender = self.sender.as_ref().ok_or(PgError::Closed)?;
        let (reply, answer) = oneshot::channel();
        sender
            .send(Box::new(Job { work, reply }))
            .await
            .map_err(|_| PgError::Closed)?;
        // A dropped reply means the batch was abandoned (timeout, lost connection).
        answer.await.map_err(|_| {
            PgError::Unavailable("the database did not confirm the write in time".into())
        })?
    }

    pub fn stats(&self) -> BatchStats {
        *self.stats.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Stops taking jobs and waits until every queued one has been answered.
    pub async fn close(&mut self) {
        self.sender.take();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        // Closing the channel ends the task after it has drained what is queued. Nothing is
        // acknowledged before its commit, so an abandoned queue loses no acknowledged write.
        self.sender.take();
    }
}

async fn run(
    pool: Pool,
    mut receiver: mpsc::Receiver<Box<dyn WriteJob>>,
    batch_timeout: Duration,
    stats: Arc<Mutex<BatchStats>>,
) {
    let mut conn: Option<Object> = None;
    let mut batch: Vec<Box<dyn WriteJob>> = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = receiver.recv().await {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match receiver.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let client = match conn.take() {
            Some(client) if !client.is_closed() => client,
            _ => match pool.get().await {
                Ok(client) => client,
                Err(error) => {
                    let error = PgError::from(error);
                    tracing::warn!(%error, "no database connection for a write batch");
                    for job in batch.drain(..) {
                        job.fail(error.clone());
                    }
                    continue;
                }
            },
        };
        let jobs = std::mem::take(&mut batch);
        let size = jobs.len();
        match tokio::time::timeout(batch_timeout, commit_batch(&client, jobs)).await {
            Ok(Ok(())) => {
                let mut stats = stats.lock().unwrap_or_else(PoisonError::into_inner);
                stats.batches += 1;
                stats.jobs += size as u64;
                stats.largest = stats.largest.max(size);
            }
            Ok(Err(error)) => {
                tracing::warn!(%error, jobs = size, "write batch failed");
            }
            Err(_) => {
                tracing::warn!(jobs = size, ?batch_timeout, "write batch timed out");
                // The connection is in an unknown state: never reuse it.
                drop(Object::take(client));
                continue;
            }
        }
        if client.is_closed() {
            drop(Object::take(client));
        } else {
            conn = Some(client);
        }
    }
}

/// Runs a batch in one transaction and answers its jobs. Errors are reported to the jobs; the
/// returned one is for the log.
async fn commit_batch(conn: &ClientWrapper, jobs: Vec<Box<dyn WriteJob>>) -> Result<(), PgError> {
    if let Err(error) = conn.batch_execute("BEGIN").await {
        let error = PgError::from(error);
        for job in jobs {
            job.fail(error.clone());
        }
        return Err(error);
    }
    // A lone job needs no savepoint: if it fails, the whole transaction rolls back instead.
    let savepoints = jobs.len() > 1;
    let mut completions = Vec::with_capacity(jobs.len());
    let (mut all_ok, mut intact) = (true, true);
    for job in jobs {
        let (end, complete) = job.run(conn, savepoints).await;
        all_ok &= end.ok;
        intact &= end.intact;
        completions.push(complete);
    }
    let commit = if !intact {
        let _ = conn.batch_execute("ROLLBACK").await;
        Err(PgError::Unavailable(
            "a write batch was aborted by the database".into(),
        ))
    } else if !savepoints && !all_ok {
        // The lone job failed: its answer is its own error, and nothing of it may stay.
        conn.batch_execute("ROLLBACK").await.map_err(PgError::from)
    } else {
        let commit = conn.batch_execute("COMMIT").await.map_err(PgError::from);
        if commit.is_err() && !conn.is_closed() {
            let _ = conn.batch_execute("ROLLBACK").await;
        }
        commit
    };
    for complete in completions {
        complete(commit.clone());
    }
    commit
}
