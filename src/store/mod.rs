//! The store: one trait, one module per backend.
//!
//! Handlers and background tasks talk to `dyn Store`; each backend classifies its own errors into
//! [`StoreError`] so that, for example, a unique-constraint violation becomes `Conflict` by type
//! and a locked or unreachable database becomes `Unavailable` (HTTP 503), never a string match.

pub mod code_filter;
#[cfg(test)]
mod contract;
pub(crate) mod dims;
pub mod journal;
pub mod postgres;
pub(crate) mod rows;
pub mod sqlite;

use std::time::Duration;

use async_trait::async_trait;

pub use crate::analytics::sketch::Visitors;
use crate::domain::key::{ApiKey, Scope};
use crate::domain::time::UnixSeconds;
use crate::domain::{ImportLink, ImportOutcome, Link, LinkPatch, NewLink, Role};

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

/// The `Conflict` message of refusing to revoke the last active admin key.
pub const LAST_ADMIN: &str = "this is the last active admin key";

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

/// Where a store's change feed ([`Store::follow_changes`]) reports.
pub trait ChangeSink: Send + Sync + 'static {
    /// The feed listens: every change from now on is reported. `after_gap`: it listens again
    /// after an interruption, and whatever changed meanwhile is unknown.
    fn listening(&self, after_gap: bool);
    /// The feed broke off; it tries again after `retry_in`.
    fn interrupted(&self, error: &anyhow::Error, retry_in: std::time::Duration);
    /// Another instance committed a change to the link `code`.
    fn changed(&self, code: &str);
}

/// How to reach the store besides its address.
pub struct StoreOptions {
    pub timeout: std::time::Duration,
    pub replicas: Vec<String>,
    pub pool_size: usize,
    pub click_durability: crate::config::ClickDurability,
    /// PostgreSQL: the level link and key writes commit at (`None`: the server's setting).
    pub write_consistency: Option<crate::config::Consistency>,
    /// SQLite: build the in-memory filter of existing codes (the server answers unknown codes
    /// from it). One-shot commands do not need it, and an import would rebuild it as it grows.
    pub code_filter: bool,
    /// SQLite: reader threads (`--sqlite-readers`).
    pub sqlite_readers: usize,
}

/// Opens (and migrates) the store `database` names: the embedded SQLite file, whose filter of
/// existing codes starts building in the background (when `options` asks), or a PostgreSQL
/// primary with its
/// replicas. The one place outside the backends that picks one.
pub async fn open(
    database: &crate::config::Database,
    options: &StoreOptions,
) -> anyhow::Result<std::sync::Arc<dyn Store>> {
    use anyhow::Context;
    use std::sync::Arc;
    match database {
        crate::config::Database::Sqlite(path) => {
            let sqlite = sqlite::SqliteStore::open_with_readers(
                path,
                options.timeout,
                options.sqlite_readers,
            )
            .context("opening the store")?;
            if options.code_filter {
                sqlite.start_code_filter();
            }
            Ok(Arc::new(sqlite))
        }
        crate::config::Database::Postgres(url) => {
            let pg = postgres::PgStore::connect(
                url.expose(),
                &options.replicas,
                postgres::PgOptions {
                    timeout: options.timeout,
                    pool_size: options.pool_size,
                    click_durability: options.click_durability,
                    write_consistency: options.write_consistency,
                },
            )
            .await
            .context("connecting to PostgreSQL")?;
            Ok(Arc::new(pg))
        }
    }
}

impl StoreOptions {
    /// For a one-shot command (`snip import`, `snip keys create`): no replicas, a small pool,
    /// and `timeout` for each call.
    pub fn one_shot(timeout: std::time::Duration, pool_size: usize) -> Self {
        StoreOptions {
            timeout,
            replicas: Vec::new(),
            pool_size,
            click_durability: crate::config::ClickDurability::Local,
            write_consistency: None,
            code_filter: false,
            sqlite_readers: sqlite::READERS,
        }
    }
}

/// The referrer key of clicks that came without a usable `Referer`.
pub const DIRECT: &str = "(direct)";

/// A dimension of click analytics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Dim {
    Referrer = 0,
    Browser = 1,
    Os = 2,
    Device = 3,
    Country = 4,
}

impl Dim {
    pub const ALL: [Dim; 5] = [
        Dim::Referrer,
        Dim::Browser,
        Dim::Os,
        Dim::Device,
        Dim::Country,
    ];

    pub fn from_u8(n: u8) -> Option<Dim> {
        Dim::ALL.get(n as usize).copied()
    }
}

/// Clicks of one link in one hour.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HourCount {
    pub link_id: i64,
    /// unix / 3600
    pub hour: i64,
    /// Every click, bots included.
    pub clicks: u64,
    pub bots: u64,
}

/// Clicks of one link and day with one value of one dimension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DimCount {
    pub dim: Dim,
    pub key: String,
    pub human: u64,
    pub bot: u64,
}

/// The breakdown of one link's clicks in one day: dimensions and visitor sketches.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DayDetail {
    pub link_id: i64,
    /// unix / 86400
    pub day: i64,
    pub dims: Vec<DimCount>,
    pub humans: Visitors,
    pub bots: Visitors,
}

/// Buffered clicks drained from memory, written in one transaction.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClickBatch {
    pub hourly: Vec<HourCount>,
    pub days: Vec<DayDetail>,
    /// Requests for codes that do not exist: `(day, code, hits)`; the code `""` carries the
    /// day's total (a code is never empty).
    pub unknown: Vec<(i64, String, u64)>,
}

impl ClickBatch {
    pub fn is_empty(&self) -> bool {
        self.hourly.is_empty() && self.days.is_empty() && self.unknown.is_empty()
    }

    /// Clicks on links in this batch (unknown codes are not clicks).
    pub fn total(&self) -> u64 {
        self.hourly.iter().map(|h| h.clicks).sum()
    }
}

/// One click flush (see `crate::clicks::buffer`): the clicks not yet journalled, appended to
/// the store's click journal, and the whole unfolded data of one slice of the links, folded
/// into the tables, in one transaction. Flush `seq` folds the links of slice `seq` modulo
/// `slots`, so after a crash the journal rows tell exactly which of their clicks are not in the
/// tables yet ([`fold_slot`] tells a link's slice, [`journal`] the rest); a `full` flush folds
/// every link and empties the journal. Applying the same `seq` twice is a no-op, so a flush
/// whose outcome is unknown (timed out) is simply retried.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClickFlush {
    pub seq: i64,
    pub slots: i64,
    pub full: bool,
    pub journal: Vec<HourCount>,
    pub fold: ClickBatch,
}

/// Links folded together: runs of this many consecutive ids share a slice, so a fold updates
/// neighbouring rows (a few pages) rather than rows scattered over the whole table.
const FOLD_RUN: i64 = 256;

/// The slice (0..slots) whose flushes fold `link_id`'s clicks.
pub fn fold_slot(link_id: i64, slots: i64) -> i64 {
    link_id.div_euclid(FOLD_RUN).rem_euclid(slots.max(1))
}

impl ClickFlush {
    /// Clicks this flush makes durable (the journalled ones; the folded ones were journalled
    /// by this or an earlier flush).
    pub fn journalled(&self) -> u64 {
        self.journal.iter().map(|h| h.clicks).sum()
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct LinkStats {
    /// All-time, flushed clicks, bots included.
    pub total: u64,
    /// All-time, flushed bot clicks.
    pub bots: u64,
    /// `(bucket start, clicks)`, human clicks unless bots are included.
    pub series: Vec<(UnixSeconds, u64)>,
    /// Per dimension (in [`Dim::ALL`] order): `(key, clicks)` ordered by clicks, descending.
    pub dims: [Vec<(String, u64)>; 5],
    pub unique_visitors: u64,
}

/// Unknown-code requests over a range.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UnknownStats {
    pub total: u64,
    /// `(code, hits)`, most requested first.
    pub codes: Vec<(String, u64)>,
}

/// What a stats query asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatsRange {
    pub from: UnixSeconds,
    pub to: UnixSeconds,
    pub interval: Interval,
    pub include_bots: bool,
    /// Entries kept per dimension list.
    pub limit: usize,
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

/// A link's click rows as stored, for a [`StatsRange`]: what [`dims::link_stats`] sums.
#[derive(Debug, Clone, Default)]
pub struct StoredClicks {
    /// All-time `(clicks, bots)`.
    pub totals: (i64, i64),
    /// `(start, clicks, bots)`: the hourly rows of the hours overlapping the range, and the
    /// rolled-up daily rows of the days overlapping it (at the day's start).
    pub rows: Vec<(UnixSeconds, i64, i64)>,
    /// `(dimension blob, human visitors sketch, bot visitors sketch)` of each link-day
    /// overlapping the range.
    pub days: Vec<(Vec<u8>, Vec<u8>, Vec<u8>)>,
}

impl StoredClicks {
    /// The `(first, end)` hours and days whose rows a range reads.
    pub fn bounds(range: &StatsRange) -> ((i64, i64), (i64, i64)) {
        let hours = (range.from.div_euclid(3600), dims::ceil_div(range.to, 3600));
        let days = (
            range.from.div_euclid(86_400),
            dims::ceil_div(range.to, 86_400),
        );
        (hours, days)
    }
}

/// Where a page of a list starts, and how long it is.
#[derive(Debug, Clone, Copy)]
pub struct Cursor {
    /// Only links past this id in the list's order (`None`: from the first).
    pub past_id: Option<i64>,
    pub limit: usize,
}

/// Which links a list shows, and in which order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListFilter {
    /// Only links whose code, destination or title contains this, ASCII case-insensitively
    /// (already lower-cased).
    pub text: Option<String>,
    /// Only links carrying this tag.
    pub tag: Option<String>,
    pub order: ListOrder,
}

/// The order of a list of links (by id, which is creation order).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ListOrder {
    #[default]
    NewestFirst,
    OldestFirst,
}

/// Human clicks on the links of a scope since the start of a window, as stored (what the
/// overview sums; see [`Store::scope_clicks`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ScopeClicks {
    /// `(link_id, code, [human clicks since each of the three window starts])`, links with
    /// clicks.
    pub per_link: Vec<(i64, String, [u64; 3])>,
    /// `(day, human clicks)`: days (unix / 86400) since the first window start with clicks.
    pub per_day: Vec<(i64, u64)>,
    /// The dimension blobs of every link-day since the first window start.
    pub dims: Vec<Vec<u8>>,
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Bulk-inserts links owned by `owner` (one durable transaction); a code already taken
    /// (or repeated in `links`: the first wins) is left as it is. One outcome per link, in
    /// order.
    async fn import_links(
        &self,
        links: Vec<ImportLink>,
        owner: i64,
    ) -> StoreResult<Vec<ImportOutcome>>;
    /// Creates a link; the result is durable when this returns `Ok`.
    async fn create_link(
        &self,
        new: NewLink,
        idempotency: Option<IdempotencyRequest>,
    ) -> StoreResult<CreateOutcome>;
    /// A link by code, tombstones included (from a replica when the store has replicas; a
    /// code a replica does not have is looked up on the primary).
    async fn get_link(&self, code: &str) -> StoreResult<Option<Link>>;
    /// A link by code from the primary, for a code written recently (a replica may still
    /// have the row from before the write).
    async fn get_link_primary(&self, code: &str) -> StoreResult<Option<Link>> {
        self.get_link(code).await
    }
    /// Applies a patch to a live (not deleted) link in `scope` (`NotFound` outside it).
    async fn update_link(&self, code: &str, scope: Scope, patch: LinkPatch) -> StoreResult<Link>;
    /// Turns a live link in `scope` into a tombstone.
    async fn delete_link(&self, code: &str, scope: Scope) -> StoreResult<()>;
    /// Live links in `scope` that pass `filter`, in its order, from the cursor on.
    async fn list_links(
        &self,
        scope: Scope,
        filter: ListFilter,
        cursor: Cursor,
    ) -> StoreResult<Vec<Link>>;
    /// The live links among `ids` (any order).
    async fn links_by_id(&self, ids: Vec<i64>) -> StoreResult<Vec<Link>>;
    /// The tags of the live links in `scope`, sorted, at most `limit`.
    async fn link_tags(&self, scope: Scope, limit: usize) -> StoreResult<Vec<String>>;
    /// The stored human clicks of the live links in `scope` since each of `windows` (three
    /// window starts, the earliest first), per link and per day, with the dimension blobs of
    /// the link-days since the earliest start. Clicks an instance has not folded into the
    /// tables yet are not in it.
    async fn scope_clicks(
        &self,
        scope: Scope,
        windows: [UnixSeconds; 3],
    ) -> StoreResult<ScopeClicks>;

    /// Adds clicks straight to the tables; `durable` asks for a power-loss-safe commit (exact
    /// mode).
    async fn add_clicks(&self, batch: std::sync::Arc<ClickBatch>, durable: bool)
    -> StoreResult<()>;
    /// Journals and folds one buffered flush (see [`ClickFlush`]) in one transaction.
    async fn flush_clicks(&self, flush: std::sync::Arc<ClickFlush>) -> StoreResult<()>;
    /// A link's stored click rows for `range` (see [`StoredClicks`]), read from one snapshot.
    async fn link_clicks(&self, link_id: i64, range: StatsRange) -> StoreResult<StoredClicks>;

    /// A link's statistics: all-time totals, and over `[from, to)` the series (buckets without
    /// clicks left out), the dimension lists (whole UTC days overlapping the range, top `limit`
    /// per dimension) and unique visitors; bots excluded from all but the totals unless
    /// `include_bots`. `unfolded` is what this instance holds in memory for the link and has
    /// not folded into the tables yet, counted as if stored. The same on every backend: the
    /// stored rows of [`Store::link_clicks`], summed by [`dims::link_stats`].
    async fn link_stats(
        &self,
        link_id: i64,
        range: StatsRange,
        unfolded: ClickBatch,
    ) -> StoreResult<LinkStats> {
        let stored = self.link_clicks(link_id, range).await?;
        Ok(dims::link_stats(link_id, &range, &stored, &unfolded))
    }

    /// Visits to codes that do not exist, over whole days overlapping `window`.
    async fn unknown_stats(
        &self,
        window: std::ops::Range<UnixSeconds>,
        limit: usize,
    ) -> StoreResult<UnknownStats>;

    /// Rolls hourly click rows before `before_hour` up into daily rows; returns rows removed.
    async fn roll_up_hours(&self, before_hour: i64) -> StoreResult<u64>;

    /// The visitor-hash key of `day`, created (randomly) if no instance made one yet; keys of
    /// days before `day - 1` are deleted.
    async fn visitor_key(&self, day: i64) -> StoreResult<[u8; 16]>;
    /// All-time clicks of a link that reached the store.
    async fn total_clicks(&self, link_id: i64) -> StoreResult<u64>;
    async fn create_key(&self, name: String, role: Role, hash: Vec<u8>) -> StoreResult<ApiKey>;
    /// Makes sure a key with this hash exists with the admin role (for `--admin-key`).
    async fn ensure_admin_key(&self, hash: Vec<u8>) -> StoreResult<ApiKey>;
    /// Active (not revoked) keys.
    async fn count_keys(&self) -> StoreResult<u64>;
    /// An active (not revoked) key by the hash of its secret.
    async fn find_key(&self, hash: Vec<u8>) -> StoreResult<Option<ApiKey>>;
    async fn list_keys(&self) -> StoreResult<Vec<ApiKey>>;
    /// Revokes an active key. Unless `force`, the last active admin key is kept: that is a
    /// `Conflict` ([`LAST_ADMIN`]), since revoking it would lock every admin out.
    async fn revoke_key(&self, id: &str, force: bool) -> StoreResult<()>;

    /// Forgets idempotency records created before `before`, and expired dashboard sessions;
    /// returns how many idempotency records went.
    async fn purge_idempotency(&self, before: UnixSeconds) -> StoreResult<u64>;

    /// Records a dashboard session: the SHA-256 of its token, the key it acts as, its end.
    async fn create_session(
        &self,
        token_hash: Vec<u8>,
        key_row_id: i64,
        expires_at: UnixSeconds,
    ) -> StoreResult<()>;
    /// The active key of an unexpired session (read from the primary: a session is used the
    /// moment it is created, possibly on another instance).
    async fn find_session(
        &self,
        token_hash: Vec<u8>,
        now: UnixSeconds,
    ) -> StoreResult<Option<ApiKey>>;
    /// Ends a session (a no-op for an unknown one).
    async fn delete_session(&self, token_hash: Vec<u8>) -> StoreResult<()>;
    /// One round trip to the store; returns how long it took.
    async fn ping(&self) -> StoreResult<Duration>;

    /// Replays into the tables, and deletes, the click journals of other instances that have
    /// not flushed for `stale` (they crashed or were cut off); returns the clicks replayed. A
    /// store that only this process writes has nothing to reap.
    async fn reap_click_journals(&self, _stale: Duration) -> StoreResult<u64> {
        Ok(0)
    }

    /// Whether other instances may write to this store behind this one's back (so that what
    /// this instance caches can go stale).
    fn shared_by_instances(&self) -> bool {
        false
    }

    /// A task reporting the link changes other instances commit to `sink` until `stop`, for a
    /// store shared by several instances; `None` for one that only this process writes.
    fn follow_changes(
        &self,
        _sink: std::sync::Arc<dyn ChangeSink>,
        _stop: tokio::sync::watch::Receiver<bool>,
    ) -> Option<futures_util::future::BoxFuture<'static, ()>> {
        None
    }

    /// This process's name among the instances sharing the store (PostgreSQL), as it appears
    /// in the change notifications it sends.
    fn instance_id(&self) -> Option<&str> {
        None
    }

    /// `(codes, capacity)` of the filter of existing codes, once it is built; `None` when this
    /// store has none (lookups of unknown codes then read the store).
    fn code_filter_occupancy(&self) -> Option<(u64, u64)> {
        None
    }
}
