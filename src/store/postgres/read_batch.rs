//! Batched link lookups: redirects that miss the cache at the same time share one query.
//!
//! A lookup by code costs PostgreSQL a round trip, a parse-free execution and an index probe,
//! and costs snip a connection lease and several task wake-ups; the probe is the smallest
//! part. So a lookup is queued (bounded) for one of [`WORKERS`] tasks per pool, and a worker
//! takes every lookup waiting, up to [`MAX_BATCH`], and answers them all from one `SELECT …
//! WHERE code = ANY($1)`. A worker that finds one lookup runs it alone at once: batches form
//! only while every worker is busy, that is under load, so a lookup never waits for others.
//!
//! A query that fails or does not answer within the worker's bound fails every lookup of its
//! batch, as it would have failed each of them alone; each caller also waits no longer than its
//! own deadline.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use deadpool_postgres::{GenericClient, Pool};
use tokio::sync::{Mutex, mpsc, oneshot};
use tokio::time::Instant;

use super::{QueryResult, lease, settle, within};
use crate::domain::Link;
use crate::store::rows::{link_columns, link_from};
use crate::store::{StoreError, StoreResult};

/// Tasks reading links from one pool, each on its own connection when busy.
pub const WORKERS: usize = 4;
/// Lookups answered by one query at most.
pub const MAX_BATCH: usize = 128;
/// Lookups waiting for a worker at most; past it a lookup waits to be queued (within its
/// deadline).
const QUEUE: usize = 4096;

type Reply = oneshot::Sender<StoreResult<Option<Link>>>;
/// The lookups waiting for a worker, shared by the workers.
type Waiting = Arc<Mutex<mpsc::Receiver<(Box<str>, Reply)>>>;

/// The queue of lookups on one pool and its workers (which stop when this is dropped).
pub struct LinkReads {
    queue: mpsc::Sender<(Box<str>, Reply)>,
    /// Lookups answered by a query with others, since the start (read by the tests).
    #[cfg_attr(not(test), allow(dead_code))]
    batched: Arc<AtomicU64>,
}

impl LinkReads {
    /// Starts the workers (on the current runtime) over `pool`; each query is bounded by
    /// `timeout` from lease to answer.
    pub fn start(pool: Pool, timeout: Duration) -> LinkReads {
        let (queue, waiting) = mpsc::channel(QUEUE);
        let waiting = Arc::new(Mutex::new(waiting));
        let batched = Arc::new(AtomicU64::new(0));
        for _ in 0..WORKERS {
            let worker = work(pool.clone(), timeout, waiting.clone(), batched.clone());
            tokio::spawn(worker);
        }
        LinkReads { queue, batched }
    }

    /// Lookups answered by a query with others so far.
    #[cfg(test)]
    pub fn batched(&self) -> u64 {
        self.batched.load(Ordering::Relaxed)
    }

    /// The link `code`, possibly read together with other lookups; waits until `deadline` at
    /// most.
    pub async fn get(&self, code: &str, deadline: Instant) -> StoreResult<Option<Link>> {
        let (reply, answer) = oneshot::channel();
        match tokio::time::timeout_at(deadline, self.queue.send((code.into(), reply))).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return Err(StoreError::Unavailable("the store is closing".into())),
            Err(_) => {
                return Err(StoreError::Unavailable(
                    "timed out waiting for the store to take the read".into(),
                ));
            }
        }
        match tokio::time::timeout_at(deadline, answer).await {
            Ok(Ok(found)) => found,
            Ok(Err(_)) | Err(_) => Err(StoreError::Unavailable(
                "the store did not answer in time".into(),
            )),
        }
    }
}

/// Takes what is waiting, reads it, answers; until the queue closes.
async fn work(pool: Pool, timeout: Duration, waiting: Waiting, batched: Arc<AtomicU64>) {
    loop {
        let mut batch = Vec::new();
        {
            let mut queue = waiting.lock().await;
            if queue.recv_many(&mut batch, MAX_BATCH).await == 0 {
                return;
            }
        }
        // Callers that gave up need no answer.
        batch.retain(|(_, reply)| !reply.is_closed());
        if batch.is_empty() {
            continue;
        }
        let mut replies: HashMap<Box<str>, Vec<Reply>> = HashMap::with_capacity(batch.len());
        for (code, reply) in batch {
            replies.entry(code).or_default().push(reply);
        }
        let codes: Vec<&str> = replies.keys().map(|c| &**c).collect();
        if codes.len() > 1 {
            metrics::counter!("snip_store_batched_reads_total").increment(1);
            metrics::counter!("snip_store_batched_lookups_total").increment(codes.len() as u64);
            batched.fetch_add(codes.len() as u64, Ordering::Relaxed);
        }
        let deadline = Instant::now() + timeout;
        let found = match lease(&pool, deadline).await {
            Ok(conn) => {
                let result = within(deadline, read_links(&conn, &codes)).await;
                settle(conn, result)
            }
            Err(e) => Err(e),
        };
        answer(replies, found);
    }
}

/// Sends each waiting lookup its link (or `None`), or the batch's error.
fn answer(replies: HashMap<Box<str>, Vec<Reply>>, found: StoreResult<Vec<Link>>) {
    match found {
        Ok(links) => {
            let mut links: HashMap<&str, &Link> =
                links.iter().map(|l| (l.code.as_str(), l)).collect();
            for (code, waiting) in replies {
                let link = links.remove(&*code);
                for reply in waiting {
                    let _ = reply.send(Ok(link.cloned()));
                }
            }
        }
        Err(e) => {
            for reply in replies.into_values().flatten() {
                let _ = reply.send(Err(e.clone()));
            }
        }
    }
}

/// The links of `codes` that exist.
async fn read_links(c: &impl GenericClient, codes: &[&str]) -> QueryResult<Vec<Link>> {
    let stmt = c
        .prepare_cached(concat!(
            "SELECT ",
            link_columns!(),
            " FROM links WHERE code = ANY($1::text[])"
        ))
        .await?;
    c.query(&stmt, &[&codes])
        .await?
        .iter()
        .map(|row| Ok(link_from(row)?))
        .collect()
}
