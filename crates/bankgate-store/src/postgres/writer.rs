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
use std::time::{Duration, Instant};

use deadpool_postgres::{ClientWrapper, Object, Pool};
use futures_util::FutureExt;
use tokio::sync::{mpsc, oneshot};

use super::PgError;
use crate::{BatchStats, ObserverSlot};

/// The most jobs one transaction takes; bounds the latency a batch adds to its first job, and
/// keeps a batch's subtransactions (one per job) within what PostgreSQL caches per backend (64):
/// past that, every session's visibility checks slow down.
const MAX_BATCH: usize = 64;
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
    /// Sends `control` (transaction and savepoint statements) and runs the job's statements;
    /// returns what to do once the batch's commit is known.
    fn run<'a>(
        self: Box<Self>,
        conn: &'a ClientWrapper,
        control: String,
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
        control: String,
    ) -> Pin<Box<dyn Future<Output = (JobEnd, Completion)> + Send + 'a>> {
        Box::pin(async move {
            let Job { work, reply } = *self;
            // `control` is sent ahead of the job's first statement without waiting for its
            // answer: the connection pipelines them in order, so savepoints cost no round trip.
            // A panicking job must not take the writer task (and every later write) down.
            let (control, outcome) = futures_util::future::join(
                conn.batch_execute(&control),
                AssertUnwindSafe(work(conn)).catch_unwind(),
            )
            .await;
            let outcome = outcome
                .unwrap_or_else(|_| Err(PgError::Unavailable("a write job panicked".into())));
            // `intact`: the transaction can still commit (the control statements worked).
            let (outcome, intact) = match control {
                Ok(()) => (outcome, true),
                Err(error) => (Err(PgError::from(error)), false),
            };
            let ok = outcome.is_ok();
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
    pub fn start(pool: Pool, batch_timeout: Duration, observer: ObserverSlot) -> Self {
        let (sender, receiver) = mpsc::channel(QUEUE_DEPTH);
        let stats = Arc::new(Mutex::new(BatchStats::default()));
        let task = tokio::spawn(run(pool, receiver, batch_timeout, stats.clone(), observer));
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
    observer: ObserverSlot,
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
        let started = Instant::now();
        let reusable = match tokio::time::timeout(batch_timeout, commit_batch(&client, jobs)).await
        {
            Ok((Ok(()), reusable)) => {
                observer.committed(size, started.elapsed());
                let mut stats = stats.lock().unwrap_or_else(PoisonError::into_inner);
                stats.batches += 1;
                stats.jobs += size as u64;
                stats.largest = stats.largest.max(size);
                reusable
            }
            Ok((Err(error), reusable)) => {
                tracing::warn!(%error, jobs = size, "write batch failed");
                reusable
            }
            Err(_) => {
                tracing::warn!(jobs = size, ?batch_timeout, "write batch timed out");
                false
            }
        };
        // A connection in an unknown state (timed out mid-batch, failed commit) is never reused.
        if !reusable || client.is_closed() {
            drop(Object::take(client));
        } else {
            conn = Some(client);
        }
    }
}

/// Runs a batch in one transaction and answers its jobs. Errors are reported to the jobs; the
/// returned one is for the log. `false` beside it: the connection must not be reused.
async fn commit_batch(
    conn: &ClientWrapper,
    jobs: Vec<Box<dyn WriteJob>>,
) -> (Result<(), PgError>, bool) {
    // A lone job needs no savepoint: if it fails, the whole transaction rolls back instead.
    let savepoints = jobs.len() > 1;
    let mut completions = Vec::with_capacity(jobs.len());
    let (mut all_ok, mut intact) = (true, true);
    // What must run before the next job: how the previous one ended, and its savepoint. Each
    // released savepoint still counts towards PostgreSQL's 64 cached subtransactions, which is
    // why MAX_BATCH stays at 64.
    let mut before = String::from("BEGIN");
    for job in jobs {
        let control = if savepoints {
            format!("{before}; SAVEPOINT job")
        } else {
            before.clone()
        };
        let (end, complete) = job.run(conn, control).await;
        all_ok &= end.ok;
        intact &= end.intact;
        completions.push(complete);
        before = if end.ok {
            "RELEASE job".to_owned()
        } else {
            "ROLLBACK TO job; RELEASE job".to_owned()
        };
    }
    let (commit, reusable) = if !intact {
        let _ = conn.batch_execute("ROLLBACK").await;
        (
            Err(PgError::Unavailable(
                "a write batch was aborted by the database".into(),
            )),
            false,
        )
    } else if !savepoints && !all_ok {
        // The lone job failed: its answer is its own error, and nothing of it may stay.
        let rollback = conn.batch_execute("ROLLBACK").await.map_err(PgError::from);
        let reusable = rollback.is_ok();
        (rollback, reusable)
    } else {
        let end = if savepoints {
            format!("{before}; COMMIT")
        } else {
            "COMMIT".to_owned()
        };
        let commit = conn.batch_execute(&end).await.map_err(PgError::from);
        let reusable = commit.is_ok();
        (commit, reusable)
    };
    for complete in completions {
        complete(commit.clone());
    }
    (commit, reusable)
}
