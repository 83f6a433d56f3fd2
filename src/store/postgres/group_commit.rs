//! Group commit of link creates: creates waiting at the same time share one transaction, so
//! one COMMIT (one WAL flush, one wait for the synchronous standbys) acknowledges them all.
//!
//! A create without an `Idempotency-Key` is queued (bounded) for one of [`WORKERS`] tasks. A
//! worker takes every create waiting, up to [`MAX_BATCH`], runs their inserts pipelined in one
//! transaction on one connection, and commits; each caller gets its outcome only after COMMIT
//! returned, so "acknowledged = committed" (at the configured level) holds exactly as with a
//! transaction each. A worker that finds one create runs it alone with no added wait: batches
//! form only while every worker is busy committing, that is under load.
//!
//! The batch's creates are inserted by one multi-row `INSERT … ON CONFLICT DO NOTHING` (one
//! statement for the server to run, not one per create).
//!
//! Failures: a taken custom code is that create's `Conflict` (its row is not inserted and the
//! transaction goes on); a random code that happens to be taken is drawn again, alone. Any other error aborts the transaction, which is rolled back, and its
//! creates are then run one by one, so one bad create cannot fail the others. A COMMIT that
//! fails or does not answer in time leaves every create of the batch unknown (`Unavailable`),
//! as one create's would be; a client that must know retries with an `Idempotency-Key` (those
//! creates are not grouped: their record is read and written in their own transaction).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use deadpool_postgres::{Object, Pool};
use tokio::sync::{Mutex, mpsc, oneshot};
use tokio::time::Instant;

use super::{QueryError, QueryResult, lease, queries, settle, within};
use crate::domain::link::CodeChoice;
use crate::domain::time::UnixSeconds;
use crate::domain::{Link, NewLink, ShortCode};
use crate::store::rows;
use crate::store::{CreateOutcome, StoreError, StoreResult};

/// Tasks committing creates, each on its own connection when busy.
pub const WORKERS: usize = 4;
/// Creates committed together at most.
pub const MAX_BATCH: usize = 256;
/// Creates waiting for a worker at most; past it a create waits to be queued (within its
/// deadline).
const QUEUE: usize = 4096;

struct Pending {
    new: NewLink,
    now: UnixSeconds,
    reply: oneshot::Sender<StoreResult<CreateOutcome>>,
}

/// The queue of creates and its workers (which stop when this is dropped).
pub struct GroupCommit {
    queue: mpsc::Sender<Pending>,
    /// Creates committed in a transaction with others, since the start (read by the tests).
    #[cfg_attr(not(test), allow(dead_code))]
    grouped: Arc<AtomicU64>,
}

impl GroupCommit {
    /// Starts the workers (on the current runtime) over `pool`; each batch is bounded by
    /// `timeout` from lease to COMMIT.
    pub fn start(pool: Pool, timeout: Duration) -> GroupCommit {
        let (queue, waiting) = mpsc::channel(QUEUE);
        let waiting = Arc::new(Mutex::new(waiting));
        let grouped = Arc::new(AtomicU64::new(0));
        for _ in 0..WORKERS {
            let worker = Worker {
                pool: pool.clone(),
                timeout,
                grouped: grouped.clone(),
            };
            tokio::spawn(worker.work(waiting.clone()));
        }
        GroupCommit { queue, grouped }
    }

    /// Creates committed in a transaction with others so far.
    #[cfg(test)]
    pub fn grouped(&self) -> u64 {
        self.grouped.load(Ordering::Relaxed)
    }

    /// Creates `new` (random code redrawn when taken, custom code `Conflict` when taken), its
    /// commit possibly shared with other creates; waits until `deadline` at most.
    pub async fn create(
        &self,
        new: NewLink,
        now: UnixSeconds,
        deadline: Instant,
    ) -> StoreResult<CreateOutcome> {
        let (reply, answer) = oneshot::channel();
        let pending = Pending { new, now, reply };
        match tokio::time::timeout_at(deadline, self.queue.send(pending)).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return Err(StoreError::Unavailable("the store is closing".into())),
            Err(_) => {
                return Err(StoreError::Unavailable(
                    "timed out waiting for the store to take the write".into(),
                ));
            }
        }
        match tokio::time::timeout_at(deadline, answer).await {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(_)) => Err(StoreError::Unavailable(
                "the write's outcome is unknown".into(),
            )),
            Err(_) => Err(StoreError::Unavailable(
                "the store did not answer in time".into(),
            )),
        }
    }
}

struct Worker {
    pool: Pool,
    timeout: Duration,
    grouped: Arc<AtomicU64>,
}

impl Worker {
    /// Takes what is waiting, commits it, answers; until the queue closes.
    async fn work(self, waiting: Arc<Mutex<mpsc::Receiver<Pending>>>) {
        loop {
            let mut batch = Vec::new();
            {
                let mut queue = waiting.lock().await;
                if queue.recv_many(&mut batch, MAX_BATCH).await == 0 {
                    return;
                }
            }
            // A caller that gave up has answered its client "unknown": not writing it is the
            // simpler of the two outcomes it allowed.
            batch.retain(|p| !p.reply.is_closed());
            let deadline = Instant::now() + self.timeout;
            match batch.len() {
                0 => {}
                1 => {
                    if let Some(p) = batch.pop() {
                        alone(&self.pool, p, deadline).await;
                    }
                }
                n => {
                    metrics::counter!("snip_store_group_commits_total").increment(1);
                    metrics::counter!("snip_store_group_committed_creates_total")
                        .increment(n as u64);
                    self.grouped.fetch_add(n as u64, Ordering::Relaxed);
                    together(&self.pool, batch, deadline).await;
                }
            }
        }
    }
}

/// Runs one create in its own statement (autocommit).
async fn alone(pool: &Pool, p: Pending, deadline: Instant) {
    let outcome = match lease(pool, deadline).await {
        Ok(mut conn) => {
            let result = within(
                deadline,
                queries::create_link(&mut conn, &p.new, None, p.now),
            )
            .await;
            settle(conn, result)
        }
        Err(e) => Err(e),
    };
    let _ = p.reply.send(outcome);
}

/// Runs `batch` in one transaction (see the module comment).
async fn together(pool: &Pool, batch: Vec<Pending>, deadline: Instant) {
    let outcome = match lease(pool, deadline).await {
        Ok(mut conn) => {
            let result = within(deadline, insert_all(&mut conn, &batch)).await;
            settle(conn, result)
        }
        Err(e) => Err(e),
    };
    match outcome {
        Ok(Some(outcomes)) => {
            for (p, outcome) in batch.into_iter().zip(outcomes) {
                let _ = p.reply.send(outcome);
            }
        }
        Ok(None) => {
            let one_by_one = batch.into_iter().map(|p| alone(pool, p, deadline));
            futures_util::future::join_all(one_by_one).await;
        }
        Err(e) => {
            for p in batch {
                let _ = p.reply.send(Err(e.clone()));
            }
        }
    }
}

/// The batch's inserts in one transaction, and COMMIT: each create's outcome, or `None` when an
/// insert failed and the transaction was rolled back. One multi-row `INSERT` tries every
/// create's first code; a custom code that was taken (or asked twice in the batch: the first
/// asks) is that create's conflict, a random one that was taken is drawn again alone.
async fn insert_all(
    c: &mut Object,
    batch: &[Pending],
) -> QueryResult<Option<Vec<StoreResult<CreateOutcome>>>> {
    let tx = c.transaction().await?;
    let firsts: Vec<Option<ShortCode>> = batch
        .iter()
        .map(|p| rows::candidates(&p.new.code).next())
        .collect();
    let mut asked = HashSet::new();
    let together: Vec<(&NewLink, &ShortCode, UnixSeconds)> = batch
        .iter()
        .zip(&firsts)
        .filter_map(|(p, code)| code.as_ref().map(|code| (&p.new, code, p.now)))
        .filter(|(_, code, _)| asked.insert(code.as_str()))
        .collect();
    let inserted = match queries::insert_links(&tx, &together).await {
        Ok(links) => links,
        Err(_) => {
            tx.rollback().await?;
            return Ok(None);
        }
    };
    // Each inserted link goes to the first create that asked for its code.
    let mut by_code: HashMap<String, Link> = inserted
        .into_iter()
        .map(|l| (l.code.as_str().to_owned(), l))
        .collect();
    let mut outcomes = Vec::with_capacity(batch.len());
    for (p, code) in batch.iter().zip(&firsts) {
        let link = code.as_ref().and_then(|c| by_code.remove(c.as_str()));
        let outcome = match (link, &p.new.code) {
            (Some(link), _) => Ok(CreateOutcome::Created(link)),
            (None, CodeChoice::Custom(_)) => Err(rows::all_taken(&p.new.code)),
            (None, CodeChoice::Random { .. }) => {
                match queries::insert_link(&tx, &p.new, p.now).await {
                    Ok(link) => Ok(CreateOutcome::Created(link)),
                    // No free code left: that create's answer.
                    Err(QueryError::Store(e)) => Err(e),
                    Err(QueryError::Pg(_) | QueryError::TimedOut) => {
                        tx.rollback().await?;
                        return Ok(None);
                    }
                }
            }
        };
        outcomes.push(outcome);
    }
    tx.commit().await?;
    Ok(Some(outcomes))
}
