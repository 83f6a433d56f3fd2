//! The single SQLite writer with group commit.
//!
//! Jobs arrive on a bounded queue. The writer thread takes the first job, drains up to
//! `MAX_BATCH - 1` more that are already waiting, and runs them all in one `BEGIN IMMEDIATE`
//! transaction, each in its own SAVEPOINT. Only after `COMMIT` succeeds are the callers told:
//! a reply of `Ok` always means "committed", and one fsync covers the whole batch.

use std::time::Duration;

use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

use super::classify;
use crate::store::{StoreError, StoreResult};

const QUEUE: usize = 4096;
const MAX_BATCH: usize = 512;

/// Tells a caller how its job ended once the batch's COMMIT is known.
type Reply = Box<dyn FnOnce(Option<StoreError>) + Send>;

struct Done {
    /// Whether the job's own work succeeded (otherwise its savepoint is rolled back).
    ok: bool,
    reply: Reply,
}

/// Runs a job inside the open transaction, or reports to its caller why it could not run.
type RunJob = Box<dyn FnOnce(Result<&Connection, StoreError>) -> Done + Send>;

struct Job {
    durable: bool,
    run: RunJob,
}

impl Done {
    fn nothing() -> Self {
        Done {
            ok: false,
            reply: Box::new(|_| {}),
        }
    }
}

pub struct Writer {
    jobs: mpsc::Sender<Job>,
    timeout: Duration,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Writer {
    /// Closes the queue and waits for the thread, so the connection is closed (and the WAL
    /// checkpointed) before the process exits.
    fn drop(&mut self) {
        let (closed, _) = mpsc::channel(1);
        drop(std::mem::replace(&mut self.jobs, closed));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Writer {
    pub fn start(conn: Connection, timeout: Duration) -> anyhow::Result<Self> {
        let (tx, rx) = mpsc::channel(QUEUE);
        let thread = std::thread::Builder::new()
            .name("snip-sqlite-writer".into())
            .spawn(move || writer_loop(conn, rx))?;
        Ok(Writer {
            jobs: tx,
            timeout,
            thread: Some(thread),
        })
    }

    /// Queues `f` and waits until its transaction has committed (or failed, or timed out).
    pub async fn run<T, F>(&self, durable: bool, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel::<StoreResult<T>>();
        let job = Job {
            durable,
            run: Box::new(move |conn| {
                let conn = match conn {
                    Ok(conn) => conn,
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        return Done::nothing();
                    }
                };
                // A caller that gave up (timed out, disconnected) is not written for: nobody
                // could be told about the result.
                if tx.is_closed() {
                    return Done::nothing();
                }
                let result = f(conn);
                Done {
                    ok: result.is_ok(),
                    reply: Box::new(move |commit_error| {
                        let _ = tx.send(match commit_error {
                            Some(e) => Err(e),
                            None => result,
                        });
                    }),
                }
            }),
        };
        let wait = async {
            self.jobs
                .send(job)
                .await
                .map_err(|_| StoreError::Unavailable("writer stopped".into()))?;
            rx.await
                .map_err(|_| StoreError::Unavailable("writer dropped the job".into()))?
        };
        let started = std::time::Instant::now();
        let result = tokio::time::timeout(self.timeout, wait)
            .await
            .map_err(|_| StoreError::Unavailable("the store did not confirm in time".into()))
            .and_then(|r| r);
        crate::store::observe("write", started, &result);
        result
    }
}

fn writer_loop(conn: Connection, mut rx: mpsc::Receiver<Job>) {
    let mut synchronous_full = true;
    while let Some(first) = rx.blocking_recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let durable = batch.iter().any(|j| j.durable);
        if durable != synchronous_full {
            let level = if durable { "FULL" } else { "NORMAL" };
            match conn.pragma_update(None, "synchronous", level) {
                Ok(()) => synchronous_full = durable,
                // Never commit a durable batch below FULL.
                Err(e) if durable => {
                    let err = classify(e);
                    for job in batch {
                        (job.run)(Err(err.clone()));
                    }
                    continue;
                }
                Err(_) => {}
            }
        }
        run_batch(&conn, batch);
    }
    // The queue is closed: the store is being dropped, after its readers (see `SqliteStore`'s
    // field order). Fold the WAL into the database so that `snip.db` alone is complete; closing
    // this last connection then removes the WAL file.
    if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
        r.get::<_, i64>(0)
    }) {
        tracing::warn!(error = %e, "checkpointing the WAL at close failed");
    }
}

fn run_batch(conn: &Connection, batch: Vec<Job>) {
    if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
        let err = classify(e);
        tracing::warn!(error = %err, jobs = batch.len(), "could not start a write transaction");
        for job in batch {
            (job.run)(Err(err.clone()));
        }
        return;
    }
    let mut done = Vec::with_capacity(batch.len());
    for job in batch {
        if let Err(e) = conn.execute_batch("SAVEPOINT job") {
            (job.run)(Err(classify(e)));
            continue;
        }
        let d = (job.run)(Ok(conn));
        let end = if d.ok {
            "RELEASE job"
        } else {
            "ROLLBACK TO job; RELEASE job"
        };
        if let Err(e) = conn.execute_batch(end) {
            tracing::error!(error = %e, "closing a savepoint failed");
        }
        done.push(d);
    }
    let commit_error = conn.execute_batch("COMMIT").err().map(|e| {
        let _ = conn.execute_batch("ROLLBACK");
        let err = classify(e);
        tracing::error!(error = %err, "write transaction failed to commit");
        err
    });
    for d in done {
        (d.reply)(commit_error.clone());
    }
}
