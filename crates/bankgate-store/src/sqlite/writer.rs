//! Group commit: one thread owns the SQLite write connection and runs every write job. Jobs that
//! arrive while a commit is in flight wait in the channel and share the next transaction, so one
//! fsync makes a whole batch durable. Each job runs under its own savepoint: a job that fails
//! rolls back alone, and nobody hears back before the commit that holds their write succeeded.

use std::thread::JoinHandle;
use std::time::Instant;

use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

use crate::ObserverSlot;
use crate::sql::StoreError;

/// The most jobs one transaction takes; bounds the latency a batch adds to its first job.
const MAX_BATCH: usize = 512;
/// How many jobs may wait for the writer before callers are slowed down (backpressure).
const QUEUE_DEPTH: usize = 4096;

type Completion = Box<dyn FnOnce(Result<(), StoreError>) + Send>;

trait WriteJob: Send {
    /// Runs the job's statements; returns what to do once the batch's commit is known.
    fn run(self: Box<Self>, conn: &mut Connection) -> Completion;
    /// Tells the caller the job could not run at all.
    fn fail(self: Box<Self>, error: StoreError);
}

struct Job<F, T> {
    work: F,
    /// Whether the job runs under a savepoint of its own. A job of one statement needs none:
    /// SQLite undoes a failed statement by itself.
    savepoint: bool,
    reply: oneshot::Sender<Result<T, StoreError>>,
}

impl<F, T> WriteJob for Job<F, T>
where
    F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send,
    T: Send + 'static,
{
    fn run(self: Box<Self>, conn: &mut Connection) -> Completion {
        let Job {
            work,
            savepoint,
            reply,
        } = *self;
        let begin = if savepoint {
            control(conn, "SAVEPOINT job")
        } else {
            Ok(())
        };
        let outcome = match begin {
            Err(error) => Err(StoreError::from(error)),
            Ok(()) => {
                // A panicking job must not take the writer thread (and every later write) down.
                let outcome =
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(&mut *conn)))
                        .unwrap_or_else(|_| {
                            Err(StoreError::Unavailable("a write job panicked".to_owned()))
                        });
                let end = if !savepoint {
                    Ok(())
                } else if outcome.is_ok() {
                    control(conn, "RELEASE job")
                } else {
                    control(conn, "ROLLBACK TO job").and_then(|()| control(conn, "RELEASE job"))
                };
                match end {
                    Ok(()) => outcome,
                    Err(error) => Err(StoreError::from(error)),
                }
            }
        };
        Box::new(move |commit| {
            let answer = match commit {
                Ok(()) => outcome,
                Err(error) => Err(error),
            };
            // The caller may have gone away (client disconnected); the write stands regardless.
            let _ = reply.send(answer);
        })
    }

    fn fail(self: Box<Self>, error: StoreError) {
        let _ = self.reply.send(Err(error));
    }
}

/// Metrics of one committed batch, for observers (tests, later Prometheus).
#[derive(Debug, Clone, Copy, Default)]
pub struct BatchStats {
    pub batches: u64,
    pub jobs: u64,
    pub largest: usize,
}

/// Handle to the writer thread. Dropping it lets the thread finish the queued jobs and exit.
#[derive(Debug)]
pub struct Writer {
    sender: Option<mpsc::Sender<Box<dyn WriteJob>>>,
    thread: Option<JoinHandle<()>>,
    stats: std::sync::Arc<std::sync::Mutex<BatchStats>>,
}

impl Writer {
    pub fn start(conn: Connection, observer: ObserverSlot) -> Result<Self, StoreError> {
        let (sender, receiver) = mpsc::channel(QUEUE_DEPTH);
        let stats = std::sync::Arc::new(std::sync::Mutex::new(BatchStats::default()));
        let thread_stats = stats.clone();
        let thread = std::thread::Builder::new()
            .name("bankgate-sqlite-writer".to_owned())
            .spawn(move || run(conn, receiver, &thread_stats, &observer))
            .map_err(|error| StoreError::Unavailable(format!("cannot start writer: {error}")))?;
        Ok(Self {
            sender: Some(sender),
            thread: Some(thread),
            stats,
        })
    }

    /// Runs `work` in the next batch; resolves once its batch is committed.
    pub async fn write<T, F>(&self, work: F, savepoint: bool) -> Result<T, StoreError>
    where
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
        T: Send + 'static,
    {
        let sender = self.sender.as_ref().ok_or(StoreError::Closed)?;
        let (reply, answer) = oneshot::channel();
        sender
            .send(Box::new(Job {
                work,
                savepoint,
                reply,
            }))
            .await
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    pub fn stats(&self) -> BatchStats {
        // A poisoned lock still holds the last counts.
        match self.stats.lock() {
            Ok(stats) => *stats,
            Err(poisoned) => *poisoned.into_inner(),
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        // Closing the channel ends the thread after it has drained what is queued; joining makes
        // "the store is closed" mean "every acknowledged write is on disk and the file is free".
        self.sender.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Runs a transaction-control statement, prepared once: these run several times per batch, and
/// parsing them each time showed in profiles.
fn control(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(drop)
}

fn run(
    mut conn: Connection,
    mut receiver: mpsc::Receiver<Box<dyn WriteJob>>,
    stats: &std::sync::Mutex<BatchStats>,
    observer: &ObserverSlot,
) {
    let mut batch: Vec<Box<dyn WriteJob>> = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = receiver.blocking_recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match receiver.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        commit_batch(&mut conn, &mut batch, stats, observer);
    }
}

fn commit_batch(
    conn: &mut Connection,
    batch: &mut Vec<Box<dyn WriteJob>>,
    stats: &std::sync::Mutex<BatchStats>,
    observer: &ObserverSlot,
) {
    let started = Instant::now();
    if let Err(error) = control(conn, "BEGIN IMMEDIATE") {
        let error = StoreError::from(error);
        tracing::error!(%error, "cannot begin a write transaction");
        for job in batch.drain(..) {
            job.fail(error.clone());
        }
        return;
    }
    let completions: Vec<Completion> = batch.drain(..).map(|job| job.run(conn)).collect();
    let commit = control(conn, "COMMIT").map_err(StoreError::from);
    match &commit {
        Ok(()) => {
            tracing::trace!(jobs = completions.len(), "batch committed");
            // Counted before anyone hears back, so a caller reading the stats sees its write.
            let mut stats = stats
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            stats.batches += 1;
            stats.jobs += completions.len() as u64;
            stats.largest = stats.largest.max(completions.len());
            observer.committed(completions.len(), started.elapsed());
        }
        Err(error) => {
            tracing::error!(%error, jobs = completions.len(), "commit failed; batch rolled back");
            let _ = conn.execute_batch("ROLLBACK");
        }
    }
    for complete in completions {
        complete(commit.clone());
    }
}
