//! Checkpoints on a thread of their own. SQLite's automatic checkpoint runs inside the commit
//! that crosses its threshold, so one request in a thousand pages paid for copying the WAL into
//! the database file and syncing it, and every write queued behind that commit waited too (the
//! p99). Here a passive checkpoint runs every [`INTERVAL`] beside the writer and the readers,
//! blocking neither.

use std::path::Path;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::Connection;

use crate::sql::StoreError;

/// How often the WAL is copied back into the database file.
const INTERVAL: Duration = Duration::from_millis(200);

/// Handle to the checkpoint thread; dropping it stops the thread after a last checkpoint.
#[derive(Debug)]
pub struct Checkpointer {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    pub fn start(path: &Path) -> Result<Self, StoreError> {
        let conn = Connection::open(path)?;
        super::configure(&conn)?;
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("bankgate-sqlite-checkpoint".to_owned())
            .spawn(move || {
                // Ends when the handle is dropped (the sender goes away).
                while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(INTERVAL) {
                    checkpoint(&conn);
                }
                checkpoint(&conn);
            })
            .map_err(|error| {
                StoreError::Unavailable(format!("cannot start the checkpoint thread: {error}"))
            })?;
        Ok(Self {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

fn checkpoint(conn: &Connection) {
    // PASSIVE: copies what no reader still needs, waits for nobody. A failure is only logged: the
    // WAL keeps every commit durable meanwhile, and the next round tries again.
    if let Err(error) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
        tracing::warn!(%error, "SQLite checkpoint failed; will retry");
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.stop.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
