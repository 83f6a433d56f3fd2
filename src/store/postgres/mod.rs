//! The PostgreSQL backend: one database shared by several stateless instances.
//!
//! - Connection pools (deadpool): the primary's, for every write and most reads, and one per
//!   read replica. Replicas serve only the redirect path's [`Store::get_link`] (round robin); a
//!   code a replica does not have, or a replica that fails or is slow, is read from the primary
//!   before the answer is "no such code".
//! - Every call is bounded by [`PgOptions::timeout`]: waiting for a pooled connection,
//!   connecting, and the whole operation. Past it the caller gets `Unavailable` (HTTP 503).
//! - A connection whose call timed out, or which failed at the connection level (closed, the
//!   server shutting down, a primary demoted to a read-only standby), is detached from its pool
//!   and closed: its state is unknown, and a fresh connection finds the current primary
//!   (`target_session_attrs=read-write` in the URL). A write that timed out is abandoned on the
//!   client only, never cancelled on the server (no `statement_timeout`, no cancel request), so
//!   its outcome is unknown, exactly as with the SQLite writer; a retry with the same
//!   `Idempotency-Key` is safe.
//! - Link and key writes commit at [`PgOptions::write_consistency`], by default the server's
//!   `synchronous_commit` (an `Ok` is as durable as that makes commits); creates without an
//!   `Idempotency-Key` may share a commit (`group_commit.rs`); click writes set
//!   [`PgOptions::click_durability`] for their transaction.
//! - Every committed create, change or delete of a link is announced on [`NOTIFY_CHANNEL`]
//!   (`pg_notify` in the same transaction, naming the writing instance) so other instances drop
//!   the code from their caches.
//! - Lookups by code ([`Store::get_link`], [`Store::get_link_primary`]) waiting at the same time
//!   share one query per pool (`read_batch.rs`).
//! - Clicks: a journal per instance, folded a slice of the links per flush, idempotent per
//!   (instance, sequence number); the journals of instances that stop flushing are replayed by
//!   the others (see `clicks.rs`).

use std::future::Future;
use std::ops::Range;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use deadpool_postgres::{Manager, Object, Pool};
use tokio::time::Instant;
use tokio_postgres::NoTls;

use super::{
    ClickBatch, ClickFlush, CreateOutcome, Cursor, IdempotencyRequest, ListFilter, ScopeClicks,
    StatsRange, Store, StoreError, StoreResult, StoredClicks, UnknownStats,
};
use crate::domain::key::{ApiKey, Scope, new_key_id};
use crate::domain::time::{UnixSeconds, now};
use crate::domain::{ImportLink, ImportOutcome, Link, LinkPatch, NewLink, Role};

/// The channel name as a literal, for SQL built with `concat!` (see [`NOTIFY_CHANNEL`]).
macro_rules! notify_channel {
    () => {
        "snip_links"
    };
}

/// The channel committed link changes are announced on, with `INSTANCE CODE` as payload (the
/// cache coherence listener subscribes to it).
pub const NOTIFY_CHANNEL: &str = notify_channel!();

pub mod changes;
mod clicks;
mod group_commit;
mod queries;
mod read_batch;
mod schema;
#[cfg(test)]
pub(crate) mod tests;

/// Connections per pool unless configured otherwise.
pub const DEFAULT_POOL_SIZE: usize = 16;

/// How the PostgreSQL store reaches its servers besides their URLs.
#[derive(Debug, Clone)]
pub struct PgOptions {
    /// Bound on every store call: pool wait + connect + query. Past it: `Unavailable`.
    pub timeout: Duration,
    /// Maximum connections per pool (the primary's, and each replica's).
    pub pool_size: usize,
    /// `synchronous_commit` of click writes.
    pub click_durability: ClickDurability,
    /// The level every other write commits at: the `synchronous_commit` of the primary pool's
    /// sessions (`None`: the server's setting).
    pub write_consistency: Option<Consistency>,
}

impl Default for PgOptions {
    fn default() -> Self {
        PgOptions {
            timeout: Duration::from_secs(5),
            pool_size: DEFAULT_POOL_SIZE,
            click_durability: ClickDurability::Local,
            write_consistency: None,
        }
    }
}

/// How click writes commit (`SET LOCAL synchronous_commit` in their transactions). Clicks are
/// an eventually consistent counter: waiting for synchronous standbys (or, with `Off`, for the
/// local WAL flush) on every flush buys little; links and keys commit at
/// [`PgOptions::write_consistency`] (by default the server's setting).
pub use crate::config::{ClickDurability, Consistency};

impl ClickDurability {
    fn set_local(self) -> &'static str {
        match self {
            ClickDurability::Local => "SET LOCAL synchronous_commit = local",
            ClickDurability::Off => "SET LOCAL synchronous_commit = off",
            ClickDurability::Quorum => "SET LOCAL synchronous_commit = on",
            ClickDurability::All => "SET LOCAL synchronous_commit = remote_apply",
        }
    }
}

/// What a query failed with: a PostgreSQL error (classified, and checked for a broken
/// connection, by [`settle`]), an outcome the query already classified, or the call's deadline.
#[derive(Debug)]
enum QueryError {
    Pg(tokio_postgres::Error),
    Store(StoreError),
    TimedOut,
}

impl From<tokio_postgres::Error> for QueryError {
    fn from(e: tokio_postgres::Error) -> Self {
        QueryError::Pg(e)
    }
}

impl From<StoreError> for QueryError {
    fn from(e: StoreError) -> Self {
        QueryError::Store(e)
    }
}

type QueryResult<T> = Result<T, QueryError>;

/// SQLSTATEs after which the store may answer soon: connection exceptions (08), insufficient
/// resources (53), operator intervention (57: shutdown, cancel), a read-only transaction
/// (25006: this server is a standby now), serialization failures and deadlocks (40001, 40P01).
fn is_transient(code: &str) -> bool {
    code.starts_with("08")
        || code.starts_with("53")
        || code.starts_with("57")
        || matches!(code, "25006" | "40001" | "40P01")
}

/// Classifies a PostgreSQL error: integrity constraint violations (class 23, above all 23505
/// unique_violation) are `Conflict`, as SQLite's constraint violations are; transient server
/// states and lost connections `Unavailable`; the rest `Other`.
fn classify(e: &tokio_postgres::Error) -> StoreError {
    match e.code().map(|c| c.code()) {
        Some(code) if code.starts_with("23") => StoreError::Conflict(e.to_string()),
        Some(code) if is_transient(code) => StoreError::Unavailable(e.to_string()),
        Some(_) => StoreError::Other(e.to_string()),
        None if e.is_closed() || is_io(e) => StoreError::Unavailable(e.to_string()),
        None => StoreError::Other(e.to_string()),
    }
}

fn is_io(e: &tokio_postgres::Error) -> bool {
    std::error::Error::source(e).is_some_and(|s| s.is::<std::io::Error>())
}

/// Whether the connection that returned `e` must not be used again: the server closed it or is
/// going away (08, 57P0x), it is a standby now (25006), or the failure was not the server's
/// answer to a query (I/O, protocol) and the connection's state is unknown.
fn breaks_connection(e: &tokio_postgres::Error) -> bool {
    match e.code().map(|c| c.code()) {
        Some(code) => code.starts_with("08") || code.starts_with("57P") || code == "25006",
        None => true,
    }
}

/// Runs `work` until `deadline`.
async fn within<T>(
    deadline: Instant,
    work: impl Future<Output = QueryResult<T>>,
) -> QueryResult<T> {
    tokio::time::timeout_at(deadline, work)
        .await
        .unwrap_or(Err(QueryError::TimedOut))
}

/// A connection of `pool`, waiting (and connecting) until `deadline` at most.
async fn lease(pool: &Pool, deadline: Instant) -> StoreResult<Object> {
    match tokio::time::timeout_at(deadline, pool.get()).await {
        Ok(Ok(conn)) => Ok(conn),
        Ok(Err(e)) => Err(StoreError::Unavailable(format!("no connection: {e}"))),
        Err(_) => Err(StoreError::Unavailable(
            "timed out waiting for a connection".into(),
        )),
    }
}

/// Ends a call on `conn`: a healthy connection goes back to its pool; one whose call timed out
/// (a query may still be in flight) or failed at the connection level is detached and closed.
fn settle<T>(conn: Object, result: QueryResult<T>) -> StoreResult<T> {
    match result {
        Ok(v) => Ok(v),
        Err(QueryError::Store(e)) => Err(e),
        Err(QueryError::Pg(e)) => {
            if breaks_connection(&e) {
                drop(Object::take(conn));
            }
            Err(classify(&e))
        }
        Err(QueryError::TimedOut) => {
            drop(Object::take(conn));
            Err(StoreError::Unavailable(
                "the store did not answer in time".into(),
            ))
        }
    }
}

/// Records the latency and failures of one store call (`kind`: "read" or "write").
async fn observed<T>(
    kind: &'static str,
    call: impl Future<Output = StoreResult<T>>,
) -> StoreResult<T> {
    let started = std::time::Instant::now();
    let result = call.await;
    super::observe(kind, started, &result);
    result
}

/// The connection settings of one URL (libpq style, several hosts allowed), with our defaults
/// for what the URL leaves out.
fn pg_config(url: &str, timeout: Duration) -> anyhow::Result<tokio_postgres::Config> {
    // The parse error never repeats the URL, which may hold a password.
    let mut config = tokio_postgres::Config::from_str(url).context("unusable PostgreSQL URL")?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(timeout);
    }
    if config.get_application_name().is_none() {
        config.application_name("snip");
    }
    // A server that vanishes without closing its sockets is noticed by TCP keepalives rather
    // than by the next query's timeout.
    config
        .keepalives(true)
        .keepalives_idle(Duration::from_secs(5))
        .keepalives_interval(Duration::from_secs(2))
        .keepalives_retries(3);
    Ok(config)
}

fn pool(config: tokio_postgres::Config, size: usize) -> anyhow::Result<Pool> {
    Pool::builder(Manager::new(config, NoTls))
        .max_size(size.max(1))
        .build()
        .context("building a connection pool")
}

pub struct PgStore {
    primary: Pool,
    replicas: Vec<Pool>,
    /// Round-robin position over `replicas`.
    next_replica: AtomicUsize,
    timeout: Duration,
    /// The primary's connection settings, for the change feed's own connection.
    primary_config: tokio_postgres::Config,
    click_durability: ClickDurability,
    /// Random per store (per process): names this instance's click journal, its flushes and the
    /// change notifications it sends.
    instance: String,
    /// Whether a click flush of this instance has committed (see `clicks::flush_clicks`).
    journal_registered: std::sync::atomic::AtomicBool,
    /// The group commit of creates, started on the first create (on the runtime).
    group: std::sync::OnceLock<group_commit::GroupCommit>,
    /// Batched lookups by code on the primary and on each replica (see `read_batch.rs`).
    primary_reads: std::sync::OnceLock<read_batch::LinkReads>,
    replica_reads: Vec<std::sync::OnceLock<read_batch::LinkReads>>,
}

impl PgStore {
    /// Connects (the URL may list several hosts and carry `target_session_attrs=read-write`),
    /// runs the migrations under an advisory lock (safe when several instances start at once),
    /// and returns the store. `replicas`: extra read-only URLs (may be empty), connected to
    /// lazily: a replica that is down does not stop the start.
    pub async fn connect(
        primary: &str,
        replicas: &[String],
        opts: PgOptions,
    ) -> anyhow::Result<PgStore> {
        let config = pg_config(primary, opts.timeout).context("--database")?;
        let applied = schema::migrate(&config, opts.timeout)
            .await
            .context("migrating the PostgreSQL database")?;
        if applied > 0 {
            tracing::info!(migrations = applied, "PostgreSQL schema migrated");
        }
        PgStore::unmigrated(config, replicas, opts)
    }

    /// The store over pools that connect on first use, without touching the schema.
    fn unmigrated(
        primary: tokio_postgres::Config,
        replicas: &[String],
        opts: PgOptions,
    ) -> anyhow::Result<PgStore> {
        let instance = hex::encode(rand::random::<[u8; 16]>());
        // Every session of the primary's pool knows its instance, so that the notifications
        // it sends name their sender (see `queries::notify_l`), and commits at the configured
        // level (click flushes set theirs per transaction).
        let mut primary = primary;
        let level = opts
            .write_consistency
            .map(|c| format!(" -c synchronous_commit={}", c.synchronous_commit()))
            .unwrap_or_default();
        let options = format!(
            "{} -c snip.instance={instance}{level}",
            primary.get_options().unwrap_or_default()
        );
        primary.options(options.trim());
        let replicas = replicas
            .iter()
            .enumerate()
            .map(|(i, url)| {
                pg_config(url, opts.timeout)
                    .and_then(|c| pool(c, opts.pool_size))
                    .with_context(|| format!("replica {}", i + 1))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(PgStore {
            primary: pool(primary.clone(), opts.pool_size)?,
            primary_config: primary,
            next_replica: AtomicUsize::new(0),
            timeout: opts.timeout,
            click_durability: opts.click_durability,
            instance,
            journal_registered: Default::default(),
            group: std::sync::OnceLock::new(),
            primary_reads: std::sync::OnceLock::new(),
            replica_reads: (0..replicas.len())
                .map(|_| std::sync::OnceLock::new())
                .collect(),
            replicas,
        })
    }

    fn deadline(&self) -> Instant {
        Instant::now() + self.timeout
    }

    /// The next replica's lookups, if there are replicas: batched on its pool, each batch
    /// bounded by half the store timeout (a hung replica leaves the primary time to answer).
    fn replica_reads(&self) -> Option<&read_batch::LinkReads> {
        if self.replicas.is_empty() {
            return None;
        }
        let i = self.next_replica.fetch_add(1, Ordering::Relaxed) % self.replicas.len();
        let (pool, reads) = (self.replicas.get(i)?, self.replica_reads.get(i)?);
        Some(reads.get_or_init(|| read_batch::LinkReads::start(pool.clone(), self.timeout / 2)))
    }

    /// The primary's lookups, batched (started on the first, on the runtime).
    fn primary_reads(&self) -> &read_batch::LinkReads {
        self.primary_reads
            .get_or_init(|| read_batch::LinkReads::start(self.primary.clone(), self.timeout))
    }
}

/// Runs `$work`, an expression over the leased primary connection `$conn`, as one store call
/// of `$kind` ("read" or "write"): bounded by the timeout from lease to answer, settled (see
/// [`settle`]) and observed.
macro_rules! on_primary {
    ($store:ident, $kind:literal, |$conn:ident| $work:expr) => {{
        let deadline = $store.deadline();
        observed($kind, async {
            #[allow(unused_mut)]
            let mut $conn = lease(&$store.primary, deadline).await?;
            let result = within(deadline, $work).await;
            settle($conn, result)
        })
        .await
    }};
}

#[async_trait]
impl Store for PgStore {
    async fn import_links(
        &self,
        links: Vec<ImportLink>,
        owner: i64,
    ) -> StoreResult<Vec<ImportOutcome>> {
        on_primary!(self, "write", |c| queries::import_links(
            &mut c,
            &links,
            owner,
            now()
        ))
    }

    async fn create_link(
        &self,
        new: NewLink,
        idempotency: Option<IdempotencyRequest>,
    ) -> StoreResult<CreateOutcome> {
        if idempotency.is_none() {
            let deadline = self.deadline();
            let group = self.group.get_or_init(|| {
                group_commit::GroupCommit::start(self.primary.clone(), self.timeout)
            });
            return observed("write", group.create(new, now(), deadline)).await;
        }
        on_primary!(self, "write", |c| queries::create_link(
            &mut c,
            &new,
            idempotency.as_ref(),
            now()
        ))
    }

    async fn get_link(&self, code: &str) -> StoreResult<Option<Link>> {
        let deadline = self.deadline();
        observed("read", async {
            if let Some(replica) = self.replica_reads() {
                // Half the time for the replica, so a hung one leaves the primary time to
                // answer within the call's bound.
                let replica_deadline = Instant::now() + self.timeout / 2;
                match replica.get(code, replica_deadline).await {
                    Ok(Some(link)) => return Ok(Some(link)),
                    // Maybe created since the replica last replayed the primary's WAL.
                    Ok(None) => {}
                    Err(e) => {
                        metrics::counter!("snip_store_replica_fallbacks_total").increment(1);
                        tracing::debug!(error = %e, "replica read failed; reading the primary");
                    }
                }
            }
            self.primary_reads().get(code, deadline).await
        })
        .await
    }

    async fn get_link_primary(&self, code: &str) -> StoreResult<Option<Link>> {
        let deadline = self.deadline();
        observed("read", self.primary_reads().get(code, deadline)).await
    }

    async fn update_link(&self, code: &str, scope: Scope, patch: LinkPatch) -> StoreResult<Link> {
        on_primary!(self, "write", |c| queries::update_link(
            &c,
            code,
            scope.owner(),
            &patch,
            now()
        ))
    }

    async fn delete_link(&self, code: &str, scope: Scope) -> StoreResult<()> {
        on_primary!(self, "write", |c| queries::delete_link(
            &c,
            code,
            scope.owner(),
            now()
        ))
    }

    async fn list_links(
        &self,
        scope: Scope,
        filter: ListFilter,
        cursor: Cursor,
    ) -> StoreResult<Vec<Link>> {
        on_primary!(self, "read", |c| queries::list_links(
            &c,
            scope.owner(),
            &filter,
            cursor
        ))
    }

    async fn links_by_id(&self, ids: Vec<i64>) -> StoreResult<Vec<Link>> {
        on_primary!(self, "read", |c| queries::links_by_id(&c, &ids))
    }

    async fn link_tags(&self, scope: Scope, limit: usize) -> StoreResult<Vec<String>> {
        on_primary!(self, "read", |c| queries::link_tags(
            &c,
            scope.owner(),
            limit
        ))
    }

    async fn scope_clicks(
        &self,
        scope: Scope,
        windows: [UnixSeconds; 3],
    ) -> StoreResult<ScopeClicks> {
        on_primary!(self, "read", |c| queries::scope_clicks(
            &c,
            scope.owner(),
            windows
        ))
    }

    async fn add_clicks(&self, batch: Arc<ClickBatch>, durable: bool) -> StoreResult<()> {
        // A durable (exact mode) click commits like a link write.
        let durability = (!durable).then_some(self.click_durability);
        on_primary!(self, "write", |c| clicks::add_clicks(
            &mut c, &batch, durability
        ))
    }

    async fn flush_clicks(&self, flush: Arc<ClickFlush>) -> StoreResult<()> {
        on_primary!(self, "write", |c| clicks::flush_clicks(
            &mut c,
            &self.instance,
            &self.journal_registered,
            &flush,
            self.click_durability
        ))
    }

    async fn reap_click_journals(&self, stale: Duration) -> StoreResult<u64> {
        on_primary!(self, "write", |c| clicks::reap_journals(
            &mut c,
            &self.instance,
            stale,
            self.click_durability
        ))
    }

    async fn link_clicks(&self, link_id: i64, range: StatsRange) -> StoreResult<StoredClicks> {
        on_primary!(self, "read", |c| clicks::link_clicks(
            &mut c, link_id, &range
        ))
    }

    async fn unknown_stats(
        &self,
        window: Range<UnixSeconds>,
        limit: usize,
    ) -> StoreResult<UnknownStats> {
        on_primary!(self, "read", |c| clicks::unknown_stats(
            &c,
            window.clone(),
            limit
        ))
    }

    async fn roll_up_hours(&self, before_hour: i64) -> StoreResult<u64> {
        on_primary!(self, "write", |c| clicks::roll_up_hours(
            &mut c,
            before_hour,
            self.click_durability
        ))
    }

    async fn visitor_key(&self, day: i64) -> StoreResult<[u8; 16]> {
        on_primary!(self, "write", |c| queries::visitor_key(&c, day))
    }

    async fn total_clicks(&self, link_id: i64) -> StoreResult<u64> {
        on_primary!(self, "read", |c| clicks::total_clicks(&c, link_id))
    }

    async fn create_key(&self, name: String, role: Role, hash: Vec<u8>) -> StoreResult<ApiKey> {
        let id = new_key_id();
        on_primary!(self, "write", |c| queries::insert_key(
            &c,
            &id,
            &name,
            role,
            &hash,
            now()
        ))
    }

    async fn ensure_admin_key(&self, hash: Vec<u8>) -> StoreResult<ApiKey> {
        on_primary!(self, "write", |c| queries::ensure_admin_key(
            &c,
            &hash,
            now()
        ))
    }

    async fn count_keys(&self) -> StoreResult<u64> {
        on_primary!(self, "read", |c| queries::count_keys(&c))
    }

    async fn find_key(&self, hash: Vec<u8>) -> StoreResult<Option<ApiKey>> {
        on_primary!(self, "read", |c| queries::find_key(&c, &hash))
    }

    async fn list_keys(&self) -> StoreResult<Vec<ApiKey>> {
        on_primary!(self, "read", |c| queries::list_keys(&c))
    }

    async fn revoke_key(&self, id: &str, force: bool) -> StoreResult<()> {
        on_primary!(self, "write", |c| queries::revoke_key(&c, id, force, now()))
    }

    async fn purge_idempotency(&self, before: UnixSeconds) -> StoreResult<u64> {
        on_primary!(self, "write", |c| queries::purge(&c, before, now()))
    }

    async fn create_session(
        &self,
        token_hash: Vec<u8>,
        key_row_id: i64,
        expires_at: UnixSeconds,
    ) -> StoreResult<()> {
        on_primary!(self, "write", |c| queries::create_session(
            &c,
            &token_hash,
            key_row_id,
            now(),
            expires_at
        ))
    }

    async fn find_session(
        &self,
        token_hash: Vec<u8>,
        now: UnixSeconds,
    ) -> StoreResult<Option<ApiKey>> {
        on_primary!(self, "read", |c| queries::find_session(
            &c,
            &token_hash,
            now
        ))
    }

    async fn delete_session(&self, token_hash: Vec<u8>) -> StoreResult<()> {
        on_primary!(self, "write", |c| queries::delete_session(&c, &token_hash))
    }

    async fn ping(&self) -> StoreResult<Duration> {
        let started = std::time::Instant::now();
        on_primary!(self, "read", |c| queries::ping(&c))?;
        Ok(started.elapsed())
    }

    fn instance_id(&self) -> Option<&str> {
        Some(&self.instance)
    }

    fn shared_by_instances(&self) -> bool {
        true
    }

    fn follow_changes(
        &self,
        sink: std::sync::Arc<dyn crate::store::ChangeSink>,
        stop: tokio::sync::watch::Receiver<bool>,
    ) -> Option<futures_util::future::BoxFuture<'static, ()>> {
        Some(Box::pin(changes::follow(
            self.primary_config.clone(),
            self.instance.clone(),
            self.timeout,
            sink,
            stop,
        )))
    }
}
