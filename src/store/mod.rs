//! The store: one trait, one module per backend.
//!
//! Handlers and background tasks talk to `dyn Store`; each backend classifies its own errors into
//! [`StoreError`] so that, for example, a unique-constraint violation becomes `Conflict` by type
//! and a locked or unreachable database becomes `Unavailable` (HTTP 503), never a string match.

pub mod code_filter;
pub mod sqlite;

use std::time::Duration;

use async_trait::async_trait;

use crate::domain::key::ApiKey;
use crate::domain::time::UnixSeconds;
use crate::domain::{Destination, Link, LinkPatch, NewLink, Role, ShortCode};

#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    #[error("conflict: {0}")]
    Conflict(String),
    /// The store could not confirm the operation in time (locked, unreachable, overloaded).
    #[error("store unavailable: {0}")]
    Unavailable(String),
    #[error("store error: {0}")]
    Other(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

impl StoreError {
    /// A stable label for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            StoreError::NotFound => "not_found",
            StoreError::Conflict(_) => "conflict",
            StoreError::Unavailable(_) => "unavailable",
            StoreError::Other(_) => "other",
        }
    }
}

/// Records the latency of a store call and, when it failed unexpectedly, its error kind.
pub fn observe<T>(kind: &'static str, started: std::time::Instant, result: &StoreResult<T>) {
    crate::telemetry::latency::store(kind).record(started.elapsed());
    if let Err(e @ (StoreError::Unavailable(_) | StoreError::Other(_))) = result {
        metrics::counter!("snip_store_errors_total", "kind" => kind, "error" => e.kind())
            .increment(1);
    }
}

/// An `Idempotency-Key` attached to a create, scoped to the API key that sent it.
#[derive(Debug, Clone)]
pub struct IdempotencyRequest {
    pub key_row_id: i64,
    pub idem_key: String,
    /// SHA-256 of the canonical request body.
    pub request_hash: Vec<u8>,
}

/// What a create did.
#[derive(Debug, Clone)]
pub enum CreateOutcome {
    Created(Link),
    /// The same idempotency key and body were seen before: the first result.
    Replayed(Link),
    /// The idempotency key was used before with a different body.
    IdempotencyMismatch,
}

/// Buffered clicks drained from memory, written in one transaction.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClickBatch {
    /// `(link_id, hour index = unix / 3600, clicks)`.
    pub hourly: Vec<(i64, i64, u64)>,
    /// `(link_id, day index = unix / 86400, referrer host, clicks)`.
    pub referrers: Vec<(i64, i64, String, u64)>,
}

impl ClickBatch {
    pub fn is_empty(&self) -> bool {
        self.hourly.is_empty() && self.referrers.is_empty()
    }

    pub fn total(&self) -> u64 {
        self.hourly.iter().map(|h| h.2).sum()
    }
}

/// Bucket width of a click series.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interval {
    Hour,
    Day,
}

impl Interval {
    pub fn seconds(self) -> i64 {
        match self {
            Interval::Hour => 3600,
            Interval::Day => 86_400,
        }
    }
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Bulk-inserts links (one durable transaction); codes already taken are skipped.
    /// Returns how many were inserted.
    async fn import_links(
        &self,
        links: Vec<(ShortCode, Destination)>,
        owner: i64,
    ) -> StoreResult<u64>;
    /// Creates a link; the result is durable when this returns `Ok`.
    async fn create_link(
        &self,
        new: NewLink,
        idempotency: Option<IdempotencyRequest>,
    ) -> StoreResult<CreateOutcome>;
    /// A link by code, tombstones included.
    async fn get_link(&self, code: &str) -> StoreResult<Option<Link>>;
    /// Applies a patch to a live (not deleted) link, optionally only if `owner` owns it.
    async fn update_link(
        &self,
        code: &str,
        owner: Option<i64>,
        patch: LinkPatch,
    ) -> StoreResult<Link>;
    /// Turns a live link into a tombstone, optionally only if `owner` owns it.
    async fn delete_link(&self, code: &str, owner: Option<i64>) -> StoreResult<()>;
    /// Live links, newest first, with ids below `before_id`.
    async fn list_links(
        &self,
        owner: Option<i64>,
        before_id: Option<i64>,
        limit: usize,
    ) -> StoreResult<Vec<Link>>;

    /// Adds buffered clicks; `durable` asks for a power-loss-safe commit (exact mode).
    async fn add_clicks(&self, batch: ClickBatch, durable: bool) -> StoreResult<()>;
    /// Clicks of a link per bucket in `[from, to)`, buckets without clicks left out.
    async fn click_series(
        &self,
        link_id: i64,
        from: UnixSeconds,
        to: UnixSeconds,
        interval: Interval,
    ) -> StoreResult<Vec<(UnixSeconds, u64)>>;
    /// All-time clicks of a link that reached the store.
    async fn total_clicks(&self, link_id: i64) -> StoreResult<u64>;
    /// Referrer hosts of a link over the days touching `[from, to)`, most clicks first.
    async fn top_referrers(
        &self,
        link_id: i64,
        from: UnixSeconds,
        to: UnixSeconds,
        limit: usize,
    ) -> StoreResult<Vec<(String, u64)>>;

    async fn create_key(&self, name: String, role: Role, hash: Vec<u8>) -> StoreResult<ApiKey>;
    /// Makes sure a key with this hash exists with the admin role (for `--admin-key`).
    async fn ensure_admin_key(&self, hash: Vec<u8>) -> StoreResult<ApiKey>;
    /// Active (not revoked) keys.
    async fn count_keys(&self) -> StoreResult<u64>;
    /// An active (not revoked) key by the hash of its secret.
    async fn find_key(&self, hash: Vec<u8>) -> StoreResult<Option<ApiKey>>;
    async fn list_keys(&self) -> StoreResult<Vec<ApiKey>>;
    async fn revoke_key(&self, id: &str) -> StoreResult<()>;

    /// Forgets idempotency records created before `before`.
    async fn purge_idempotency(&self, before: UnixSeconds) -> StoreResult<u64>;
    /// One round trip to the store; returns how long it took.
    async fn ping(&self) -> StoreResult<Duration>;

    /// `(codes, capacity)` of the filter of existing codes, once it is built; `None` when this
    /// store has none (lookups of unknown codes then read the store).
    fn code_filter_occupancy(&self) -> Option<(u64, u64)> {
        None
    }
}
