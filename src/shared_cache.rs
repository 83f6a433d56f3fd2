//! The shared second-level redirect cache (Redis, `--redis`): code → destination, shared by
//! the instances so that a code one instance loaded is not read from the database again by
//! every other one. Lookup order on a redirect: in-process cache → Redis → replica → primary.
//!
//! Redis is an optimisation, never a dependency: every call is bounded by [`TIMEOUT`] (50 ms),
//! and a slow, failing or absent Redis is bypassed (counted, and reported by `/health` as
//! `degraded`), never turned into an error or a wrong answer.
//!
//! What is stored: live links without `max_clicks` (their counter needs the store anyway),
//! and "gone" (disabled or deleted) codes, each for `--cache-ttl`; never "unknown", so that a
//! link just created is never hidden by another instance's 404. Writers delete the key after
//! their commit, and once more [`SECOND_DELETE_AFTER`] later: a loader that read the old row
//! before the commit finishes its write within the store timeout, so the second delete
//! removes anything such a loader put back.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use serde::{Deserialize, Serialize};

use crate::cache::Cached;
use crate::domain::Link;

/// Bound of every Redis call.
pub const TIMEOUT: Duration = Duration::from_millis(50);
/// Key prefix (with a format version).
const PREFIX: &str = "snip:v1:code:";

/// What Redis holds for a code.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
enum Stored {
    Redirect {
        link_id: i64,
        url: String,
        expires_at: Option<i64>,
    },
    Gone,
    /// Taken down by an admin (appended: older entries still decode).
    TakenDown(String),
}

pub struct SharedCache {
    conn: ConnectionManager,
    ttl: Duration,
    /// Delay of the second delete after a write (the store timeout plus a margin).
    second_delete_after: Duration,
    healthy: AtomicBool,
    /// After a failure Redis is left alone until this instant (milliseconds since `epoch`),
    /// so that while it is down a redirect does not wait [`TIMEOUT`] for it every time.
    skip_until_ms: AtomicU64,
    epoch: std::time::Instant,
    failures: AtomicU64,
    last_error: Mutex<Option<String>>,
}

/// How long Redis is bypassed after a failed call.
const BACKOFF: Duration = Duration::from_secs(1);
/// Pause between attempts to delete an entry while Redis does not answer.
const DELETE_RETRY: Duration = Duration::from_millis(250);

/// Margin added to the store timeout for the second delete after a write.
pub const SECOND_DELETE_AFTER: Duration = Duration::from_secs(1);

impl SharedCache {
    /// A client for `url`; connects lazily (a Redis that is down at start-up is bypassed until
    /// it answers).
    pub fn new(url: &str, ttl: Duration, store_timeout: Duration) -> anyhow::Result<Arc<Self>> {
        let client = redis::Client::open(url)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_millis(200)))
            .set_response_timeout(Some(TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(1));
        let conn = ConnectionManager::new_lazy_with_config(client, config)?;
        Ok(Arc::new(SharedCache {
            conn,
            ttl,
            second_delete_after: store_timeout + SECOND_DELETE_AFTER,
            healthy: AtomicBool::new(true),
            skip_until_ms: AtomicU64::new(0),
            epoch: std::time::Instant::now(),
            failures: AtomicU64::new(0),
            last_error: Mutex::new(None),
        }))
    }

    fn key(code: &str) -> String {
        format!("{PREFIX}{code}")
    }

    fn outcome<T>(
        &self,
        what: &'static str,
        r: Result<redis::RedisResult<T>, tokio::time::error::Elapsed>,
    ) -> Option<T> {
        let error = match r {
            Ok(Ok(v)) => {
                self.healthy.store(true, Ordering::Relaxed);
                return Some(v);
            }
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!("no answer within {} ms", TIMEOUT.as_millis()),
        };
        self.healthy.store(false, Ordering::Relaxed);
        let now = self.epoch.elapsed().as_millis() as u64;
        self.skip_until_ms
            .store(now + BACKOFF.as_millis() as u64, Ordering::Relaxed);
        self.failures.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("snip_redis_errors_total", "op" => what).increment(1);
        tracing::debug!(error, op = what, "redis bypassed");
        *self.last_error.lock() = Some(error);
        None
    }

    /// Whether Redis failed within the last [`BACKOFF`] (then it is not asked).
    fn resting(&self) -> bool {
        self.epoch.elapsed().as_millis() as u64 <= self.skip_until_ms.load(Ordering::Relaxed)
    }

    /// The cached answer for a code, or None (absent, unreadable, or Redis unavailable).
    pub async fn get(&self, code: &str) -> Option<Cached> {
        if self.resting() {
            return None;
        }
        let mut conn = self.conn.clone();
        let cmd = redis::cmd("GET").arg(Self::key(code)).clone();
        let got: Vec<u8> = self
            .outcome::<Option<Vec<u8>>>(
                "get",
                tokio::time::timeout(TIMEOUT, cmd.query_async(&mut conn)).await,
            )
            .flatten()?;
        match postcard::from_bytes::<Stored>(&got) {
            Ok(Stored::Redirect {
                link_id,
                url,
                expires_at,
            }) => {
                metrics::counter!("snip_redis_hits_total").increment(1);
                Some(Cached::redirect(link_id, &url, expires_at, None, None))
            }
            Ok(Stored::Gone) => Some(Cached::Gone),
            Ok(Stored::TakenDown(reason)) => Some(Cached::TakenDown(reason.into())),
            Err(_) => None,
        }
    }

    /// Shares what this instance read from the store (links with `max_clicks` are not shared).
    pub async fn put(&self, link: &Link) {
        if self.resting() {
            return;
        }
        let stored = if let (false, Some(reason)) = (link.deleted, &link.takedown) {
            Stored::TakenDown(reason.clone())
        } else if link.deleted || link.disabled {
            Stored::Gone
        } else if link.max_clicks.is_some() {
            return;
        } else {
            Stored::Redirect {
                link_id: link.id,
                url: link.url.clone(),
                expires_at: link.expires_at,
            }
        };
        let Ok(bytes) = postcard::to_stdvec(&stored) else {
            return;
        };
        let mut conn = self.conn.clone();
        let cmd = redis::cmd("SET")
            .arg(Self::key(link.code.as_str()))
            .arg(bytes)
            .arg("PX")
            .arg(self.ttl.as_millis() as u64)
            .clone();
        self.outcome::<()>(
            "set",
            tokio::time::timeout(TIMEOUT, cmd.query_async(&mut conn)).await,
        );
    }

    /// Deletes a code's entry; retried until Redis confirms it or the entry has expired
    /// anyway (an entry that a failed delete left behind would otherwise be served until its
    /// TTL).
    async fn delete(&self, code: &str) {
        let key = Self::key(code);
        let give_up = tokio::time::Instant::now() + self.ttl;
        loop {
            let mut conn = self.conn.clone();
            let cmd = redis::cmd("DEL").arg(&key).clone();
            let done = self.outcome::<()>(
                "del",
                tokio::time::timeout(TIMEOUT, cmd.query_async(&mut conn)).await,
            );
            if done.is_some() || tokio::time::Instant::now() >= give_up {
                return;
            }
            tokio::time::sleep(DELETE_RETRY).await;
        }
    }

    /// After a committed write to `code`: delete it now and once more later (see the module
    /// documentation).
    pub fn forget(self: &Arc<Self>, code: &str) {
        let (this, code) = (self.clone(), code.to_string());
        tokio::spawn(async move {
            this.delete(&code).await;
            tokio::time::sleep(this.second_delete_after).await;
            this.delete(&code).await;
        });
    }

    /// `/health`'s view: a PING now (bounded), and what failed last.
    pub async fn health(&self) -> serde_json::Value {
        let mut conn = self.conn.clone();
        let started = std::time::Instant::now();
        let ping =
            tokio::time::timeout(TIMEOUT, redis::cmd("PING").query_async::<String>(&mut conn))
                .await;
        let ok = self.outcome("ping", ping).is_some();
        serde_json::json!({
            "healthy": ok,
            "latency_ms": started.elapsed().as_secs_f64() * 1000.0,
            "errors": self.failures.load(Ordering::Relaxed),
            "last_error": self.last_error.lock().clone(),
        })
    }
}
