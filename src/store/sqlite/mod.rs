//! The embedded SQLite backend (the default).
//!
//! - WAL mode: readers never wait on the writer.
//! - One writer thread owns the only read-write connection. Writes are jobs on a bounded queue;
//!   the writer drains whatever is queued and runs it in one transaction (group commit), each job
//!   inside its own SAVEPOINT so one failing job does not undo the others. Replies are sent only
//!   after COMMIT returns, so an `Ok` is a durable commit: `synchronous=FULL` whenever the batch
//!   holds a link or key write; a batch of click flushes only uses `synchronous=NORMAL` (may lose
//!   the last flushes on power loss, never corrupts).
//! - Two reader threads, each with a read-only connection, serve reads from bounded queues.
//! - Every call is bounded by `store_timeout`; past it the caller gets `Unavailable` (HTTP 503).

mod queries;
mod readers;
mod writer;

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use async_trait::async_trait;
use rusqlite::{Connection, OpenFlags};

use super::code_filter::CodeFilter;
use super::{
    ClickBatch, ClickFlush, CreateOutcome, Cursor, IdempotencyRequest, ListFilter, ScopeClicks,
    StatsRange, Store, StoreError, StoreResult, StoredClicks, UnknownStats,
};
use crate::domain::key::{ApiKey, Scope, new_key_id};
use crate::domain::time::{UnixSeconds, now};
use crate::domain::{ImportLink, ImportOutcome, Link, LinkPatch, NewLink, Role};
use writer::Writer;

const MIGRATIONS: &[&str] = &[
    include_str!("migrations/0001_init.sql"),
    include_str!("migrations/0002_analytics.sql"),
    include_str!("migrations/0003_click_journal.sql"),
    include_str!("migrations/0004_takedown.sql"),
    include_str!("migrations/0005_sessions.sql"),
    include_str!("migrations/0006_imported_clicks.sql"),
];
/// Reader threads (each with its own connection) unless told otherwise (`--sqlite-readers`):
/// the reads that can wait on the disk at once. They share one queue, so an idle reader costs
/// nothing but its connection.
pub const READERS: usize = 4;
/// Page cache of the writer connection, KiB (SQLite's default is 2 MB per connection).
const WRITER_CACHE_KIB: i64 = 64 * 1024;

/// Classifies a rusqlite error: busy/locked/IO are `Unavailable`, constraint violations
/// `Conflict`, the rest `Other`.
pub(crate) fn classify(e: rusqlite::Error) -> StoreError {
    use rusqlite::ErrorCode as C;
    match &e {
        rusqlite::Error::SqliteFailure(f, _) => match f.code {
            C::DatabaseBusy | C::DatabaseLocked | C::SystemIoFailure | C::DiskFull => {
                StoreError::Unavailable(e.to_string())
            }
            C::CannotOpen | C::ReadOnly | C::OutOfMemory => StoreError::Unavailable(e.to_string()),
            C::ConstraintViolation => StoreError::Conflict(e.to_string()),
            _ => StoreError::Other(e.to_string()),
        },
        rusqlite::Error::QueryReturnedNoRows => StoreError::NotFound,
        _ => StoreError::Other(e.to_string()),
    }
}

/// Fields drop in declaration order: the readers close before the writer, whose connection is
/// the last and checkpoints the WAL (a read-only reader closing last could not).
pub struct SqliteStore {
    readers: readers::Readers,
    writer: Writer,
    timeout: Duration,
    path: PathBuf,
    /// Every code in the store, once built ([`Self::start_code_filter`]).
    codes: Arc<CodeFilter>,
    /// The thread (re)building `codes` from a scan, if one runs, and its stop flag.
    filter_build: Mutex<Option<(std::thread::JoinHandle<()>, Arc<AtomicBool>)>>,
    /// Held while the store is open: one process at a time owns the database, which is what
    /// lets the code filter trust that it sees every write.
    _lock: std::fs::File,
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        if let Some((thread, stop)) = self.filter_build.lock().take() {
            stop.store(true, Ordering::Relaxed);
            let _ = thread.join();
        }
    }
}

fn configure(conn: &Connection, timeout: Duration) -> rusqlite::Result<()> {
    conn.busy_timeout(timeout)?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(())
}

impl SqliteStore {
    /// Opens (creating with its directory if needed) and migrates the database at `path`.
    pub fn open(path: &Path, timeout: Duration) -> anyhow::Result<Self> {
        Self::open_with_readers(path, timeout, READERS)
    }

    /// [`Self::open`] with `readers` reader threads (at least one).
    pub fn open_with_readers(
        path: &Path,
        timeout: Duration,
        readers: usize,
    ) -> anyhow::Result<Self> {
        use anyhow::Context;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("creating data directory {}", dir.display()))?;
        }
        let lock = lock_database(path)?;
        let conn = Connection::open(path)
            .with_context(|| format!("opening SQLite database {}", path.display()))?;
        configure(&conn, timeout).context("configuring SQLite")?;
        let mode: String = conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
            .context("enabling WAL")?;
        anyhow::ensure!(
            mode.eq_ignore_ascii_case("wal"),
            "SQLite refused WAL mode ({mode})"
        );
        conn.pragma_update(None, "synchronous", "FULL")?;
        migrate(&conn).context("migrating the database")?;
        queries::register_functions(&conn).context("registering SQL functions")?;
        let replayed = queries::replay_click_journal(&conn).context("folding the click journal")?;
        if replayed > 0 {
            tracing::info!(
                clicks = replayed,
                "clicks journalled before an unclean stop folded into the tables"
            );
        }
        // The click flush upserts rows of thousands of links per second, scattered over the
        // tables: with SQLite's default 2 MB page cache most of them are re-read every flush.
        conn.pragma_update(None, "cache_size", -WRITER_CACHE_KIB)?;

        let reader_count = readers.max(1);
        let mut readers = Vec::with_capacity(reader_count);
        for _ in 0..reader_count {
            let r = Connection::open_with_flags(
                path,
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )
            .context("opening a SQLite reader")?;
            configure(&r, timeout)?;
            readers.push(r);
        }
        Ok(SqliteStore {
            writer: Writer::start(conn, timeout)?,
            readers: readers::Readers::start(readers)?,
            timeout,
            path: path.to_path_buf(),
            codes: Arc::new(CodeFilter::default()),
            filter_build: Mutex::new(None),
            _lock: lock,
        })
    }

    /// Builds the filter of existing codes in the background; until it is ready lookups read
    /// the store as before. The server calls this; one-shot commands (`import`) do not.
    pub fn start_code_filter(&self) {
        // Sized from the highest link id (an upper bound of the codes, read from the index in
        // microseconds), so the first build already fits the store.
        let present = Connection::open_with_flags(&self.path, OpenFlags::SQLITE_OPEN_READ_ONLY)
            .and_then(|c| {
                c.query_row("SELECT coalesce(max(id), 0) FROM links", [], |r| {
                    r.get::<_, i64>(0)
                })
            })
            .map_or(0, |n| n.max(0) as u64);
        self.rebuild_code_filter(present);
    }

    fn rebuild_code_filter(&self, present: u64) {
        let mut running = self.filter_build.lock();
        if let Some((thread, _)) = running.take_if(|(t, _)| t.is_finished()) {
            let _ = thread.join();
        }
        if running.is_some() {
            return;
        }
        // The build begins before the scan's snapshot: a code committed after the snapshot is
        // inserted into the new filter by the writer, so none is missed.
        let build = self.codes.begin_build(present);
        let (codes, path, stop) = (
            self.codes.clone(),
            self.path.clone(),
            Arc::new(AtomicBool::new(false)),
        );
        let stop_flag = stop.clone();
        let spawned = std::thread::Builder::new()
            .name("snip-code-filter".into())
            .spawn(move || {
                let started = Instant::now();
                match queries::scan_codes(&path, &stop_flag, |code| build.insert(code)) {
                    Ok(None) => codes.abandon_build(),
                    Ok(Some(n)) => {
                        codes.finish_build(build, n);
                        tracing::info!(
                            codes = n,
                            elapsed_ms = started.elapsed().as_millis() as u64,
                            "code filter ready"
                        );
                    }
                    Err(e) => {
                        codes.abandon_build();
                        tracing::warn!(error = %e, "could not build the code filter");
                    }
                }
            });
        match spawned {
            Ok(thread) => *running = Some((thread, stop)),
            Err(e) => {
                self.codes.abandon_build();
                tracing::warn!(error = %e, "could not start the code filter build");
            }
        }
    }

    /// After a write added codes: grows the filter when it is full.
    fn after_insert(&self, grow: bool) {
        if grow {
            let present = self.codes.occupancy().map_or(0, |(codes, _)| codes);
            self.rebuild_code_filter(present);
        }
    }

    /// Runs `f` on a read-only connection of a reader thread, bounded by the timeout.
    async fn read<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let started = Instant::now();
        let result = match self.readers.submit(f) {
            Ok(answer) => tokio::time::timeout(self.timeout, answer)
                .await
                .map_err(|_| StoreError::Unavailable("read timed out".into()))
                .and_then(|r| {
                    r.map_err(|_| StoreError::Unavailable("reader dropped the job".into()))?
                }),
            Err(e) => Err(e),
        };
        super::observe("read", started, &result);
        result
    }
}

/// Creates an API key in the SQLite database at `path` while a server may have it open (the
/// recovery path of `snip keys create`): one short write transaction on a connection of its
/// own, waiting for the server's writer if it is committing. The database must exist (and be
/// migrated: a server has run on it).
pub fn create_key_beside_server(
    path: &Path,
    name: &str,
    role: Role,
    hash: &[u8],
) -> anyhow::Result<ApiKey> {
    use anyhow::Context;
    if !path.exists() {
        anyhow::bail!("{} does not exist", path.display());
    }
    let conn = rusqlite::Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .with_context(|| format!("opening {}", path.display()))?;
    conn.busy_timeout(Duration::from_secs(30))?;
    let has_keys: bool = conn
        .query_row(
            "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'api_keys')",
            [],
            |r| r.get(0),
        )
        .context("reading the schema")?;
    if !has_keys {
        anyhow::bail!(
            "{} is not a snip store (no api_keys table): start `snip serve` on it once",
            path.display()
        );
    }
    conn.execute_batch("BEGIN IMMEDIATE")?;
    let key = queries::insert_key(&conn, &new_key_id(), name, role, hash, now())
        .map_err(|e| anyhow::anyhow!("creating the key: {e}"))?;
    conn.execute_batch("COMMIT")?;
    Ok(key)
}

/// Takes `<database>.lock`, refusing to open a database another process has open.
fn lock_database(path: &Path) -> anyhow::Result<std::fs::File> {
    use anyhow::Context;
    let mut lock_path = path.as_os_str().to_owned();
    lock_path.push(".lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .with_context(|| format!("opening lock file {}", Path::new(&lock_path).display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => anyhow::bail!(
            "{} is in use by another snip process (a running `snip serve` or `snip import`): \
             one process at a time opens an embedded store; stop the other one first, or give \
             this one another --database",
            path.display()
        ),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("locking {}", Path::new(&lock_path).display()))
        }
    }
}

fn migrate(conn: &Connection) -> rusqlite::Result<()> {
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        let tx = conn.unchecked_transaction()?;
        tx.execute_batch(sql)?;
        if i == 1 {
            queries::convert_legacy_referrers(&tx)?;
        }
        tx.pragma_update(None, "user_version", i as i64 + 1)?;
        tx.commit()?;
    }
    Ok(())
}

#[async_trait]
impl Store for SqliteStore {
    async fn create_link(
        &self,
        new: NewLink,
        idempotency: Option<IdempotencyRequest>,
    ) -> StoreResult<CreateOutcome> {
        let at = now();
        let codes = self.codes.clone();
        let (outcome, grow) = self
            .writer
            .run(true, move |c| {
                let outcome = queries::create_link(c, &new, idempotency.as_ref(), at)?;
                // Before COMMIT: a code the store may hold is never filtered out.
                let grow = match &outcome {
                    CreateOutcome::Created(link) => codes.insert(link.code.as_str()),
                    _ => false,
                };
                Ok((outcome, grow))
            })
            .await?;
        self.after_insert(grow);
        Ok(outcome)
    }

    async fn import_links(
        &self,
        links: Vec<ImportLink>,
        owner: i64,
    ) -> StoreResult<Vec<ImportOutcome>> {
        let at = now();
        let codes = self.codes.clone();
        let (n, grow) = self
            .writer
            .run(true, move |c| {
                let n = queries::import_links(c, &links, owner, at)?;
                let mut grow = false;
                for link in &links {
                    grow |= codes.insert(link.code.as_str());
                }
                Ok((n, grow))
            })
            .await?;
        self.after_insert(grow);
        Ok(n)
    }

    async fn get_link(&self, code: &str) -> StoreResult<Option<Link>> {
        if !self.codes.may_contain(code) {
            return Ok(None);
        }
        let code = code.to_string();
        self.read(move |c| queries::get_link(c, &code)).await
    }

    async fn update_link(&self, code: &str, scope: Scope, patch: LinkPatch) -> StoreResult<Link> {
        let (code, at, owner) = (code.to_string(), now(), scope.owner());
        self.writer
            .run(true, move |c| {
                queries::update_link(c, &code, owner, &patch, at)
            })
            .await
    }

    async fn delete_link(&self, code: &str, scope: Scope) -> StoreResult<()> {
        let (code, at, owner) = (code.to_string(), now(), scope.owner());
        self.writer
            .run(true, move |c| queries::delete_link(c, &code, owner, at))
            .await
    }

    async fn list_links(
        &self,
        scope: Scope,
        filter: ListFilter,
        cursor: Cursor,
    ) -> StoreResult<Vec<Link>> {
        self.read(move |c| queries::list_links(c, scope.owner(), &filter, cursor))
            .await
    }

    async fn links_by_id(&self, ids: Vec<i64>) -> StoreResult<Vec<Link>> {
        self.read(move |c| queries::links_by_id(c, &ids)).await
    }

    async fn link_tags(&self, scope: Scope, limit: usize) -> StoreResult<Vec<String>> {
        self.read(move |c| queries::link_tags(c, scope.owner(), limit))
            .await
    }

    async fn scope_clicks(
        &self,
        scope: Scope,
        windows: [UnixSeconds; 3],
    ) -> StoreResult<ScopeClicks> {
        self.read(move |c| queries::scope_clicks(c, scope.owner(), windows))
            .await
    }

    async fn add_clicks(&self, batch: Arc<ClickBatch>, durable: bool) -> StoreResult<()> {
        self.writer
            .run(durable, move |c| queries::add_clicks(c, &batch))
            .await
    }

    async fn flush_clicks(&self, flush: Arc<ClickFlush>) -> StoreResult<()> {
        self.writer
            .run(false, move |c| queries::flush_clicks(c, &flush))
            .await
    }

    async fn link_clicks(&self, link_id: i64, range: StatsRange) -> StoreResult<StoredClicks> {
        self.read(move |c| queries::link_clicks(c, link_id, &range))
            .await
    }

    async fn unknown_stats(
        &self,
        window: Range<UnixSeconds>,
        limit: usize,
    ) -> StoreResult<UnknownStats> {
        self.read(move |c| queries::unknown_stats(c, window, limit))
            .await
    }

    async fn roll_up_hours(&self, before_hour: i64) -> StoreResult<u64> {
        self.writer
            .run(false, move |c| queries::roll_up_hours(c, before_hour))
            .await
    }

    async fn visitor_key(&self, day: i64) -> StoreResult<[u8; 16]> {
        self.writer
            .run(true, move |c| queries::visitor_key(c, day))
            .await
    }

    async fn total_clicks(&self, link_id: i64) -> StoreResult<u64> {
        self.read(move |c| queries::total_clicks(c, link_id)).await
    }

    async fn create_key(&self, name: String, role: Role, hash: Vec<u8>) -> StoreResult<ApiKey> {
        let at = now();
        self.writer
            .run(true, move |c| {
                queries::insert_key(c, &new_key_id(), &name, role, &hash, at)
            })
            .await
    }

    async fn ensure_admin_key(&self, hash: Vec<u8>) -> StoreResult<ApiKey> {
        let at = now();
        self.writer
            .run(true, move |c| queries::ensure_admin_key(c, &hash, at))
            .await
    }

    async fn count_keys(&self) -> StoreResult<u64> {
        self.read(queries::count_keys).await
    }

    async fn find_key(&self, hash: Vec<u8>) -> StoreResult<Option<ApiKey>> {
        self.read(move |c| queries::find_key(c, &hash)).await
    }

    async fn list_keys(&self) -> StoreResult<Vec<ApiKey>> {
        self.read(queries::list_keys).await
    }

    async fn revoke_key(&self, id: &str, force: bool) -> StoreResult<()> {
        let (id, at) = (id.to_string(), now());
        self.writer
            .run(true, move |c| queries::revoke_key(c, &id, force, at))
            .await
    }

    async fn purge_idempotency(&self, before: UnixSeconds) -> StoreResult<u64> {
        self.writer
            .run(false, move |c| queries::purge_idempotency(c, before, now()))
            .await
    }

    async fn create_session(
        &self,
        token_hash: Vec<u8>,
        key_row_id: i64,
        expires_at: UnixSeconds,
    ) -> StoreResult<()> {
        let at = now();
        self.writer
            .run(true, move |c| {
                queries::create_session(c, &token_hash, key_row_id, at, expires_at)
            })
            .await
    }

    async fn find_session(
        &self,
        token_hash: Vec<u8>,
        now: UnixSeconds,
    ) -> StoreResult<Option<ApiKey>> {
        self.read(move |c| queries::find_session(c, &token_hash, now))
            .await
    }

    async fn delete_session(&self, token_hash: Vec<u8>) -> StoreResult<()> {
        self.writer
            .run(true, move |c| queries::delete_session(c, &token_hash))
            .await
    }

    fn code_filter_occupancy(&self) -> Option<(u64, u64)> {
        self.codes.occupancy()
    }

    async fn ping(&self) -> StoreResult<Duration> {
        let start = Instant::now();
        self.read(|c| c.query_row("SELECT 1", [], |r| r.get::<_, i64>(0)))
            .await?;
        Ok(start.elapsed())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn dropping_the_store_closes_every_connection_and_checkpoints_the_wal() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("snip.db");
        let store = SqliteStore::open(&path, Duration::from_secs(5)).unwrap();
        store
            .create_key("k".into(), Role::Admin, vec![9; 32])
            .await
            .unwrap();
        assert!(dir.path().join("snip.db-wal").exists());
        // Readers used before the stop (every running server's are): a reader that closes last
        // cannot checkpoint (it is read-only), which once left `snip.db` alone incomplete.
        for _ in 0..8 {
            assert_eq!(store.count_keys().await.unwrap(), 1);
            assert!(store.get_link("nope").await.unwrap().is_none());
        }
        drop(store);
        // The writer closes last and checkpoints the WAL into the database and removes it,
        // so the database file alone is complete (safe to copy or back up).
        assert!(!dir.path().join("snip.db-wal").exists());
        let copy = dir.path().join("copy.db");
        std::fs::copy(&path, &copy).unwrap();
        let reopened = SqliteStore::open(&copy, Duration::from_secs(5)).unwrap();
        assert_eq!(reopened.count_keys().await.unwrap(), 1);
    }

    fn range(from: i64, to: i64, interval: crate::store::Interval) -> StatsRange {
        StatsRange {
            from,
            to,
            interval,
            include_bots: true,
            limit: 50,
        }
    }

    #[tokio::test]
    async fn rolling_hours_up_into_days_keeps_totals_and_daily_series() {
        use crate::store::{ClickBatch, HourCount, Interval};
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("r.db"), Duration::from_secs(5)).unwrap();
        let mut batch = ClickBatch::default();
        for hour in 0..96 {
            batch.hourly.push(HourCount {
                link_id: 1,
                hour,
                clicks: 2,
                bots: 1,
            });
        }
        store.add_clicks(Arc::new(batch), true).await.unwrap();
        let before = store
            .link_stats(1, range(0, 96 * 3600, Interval::Day), ClickBatch::default())
            .await
            .unwrap();
        assert_eq!(
            store.roll_up_hours(72).await.unwrap(),
            72,
            "three days of hours rolled up, each into its own day"
        );
        let after = store
            .link_stats(1, range(0, 96 * 3600, Interval::Day), ClickBatch::default())
            .await
            .unwrap();
        assert_eq!(after, before);
        assert_eq!((after.total, after.bots), (192, 96));
        assert_eq!(
            after.series,
            vec![(0, 48), (86_400, 48), (172_800, 48), (259_200, 48)]
        );
        // Hourly resolution remains for the recent day only; older days show at their start.
        let hourly = store
            .link_stats(
                1,
                range(0, 96 * 3600, Interval::Hour),
                ClickBatch::default(),
            )
            .await
            .unwrap();
        assert_eq!(hourly.series.len(), 3 + 24);
        assert_eq!(hourly.series[0], (0, 48));
        assert_eq!(store.total_clicks(1).await.unwrap(), 192);
        assert_eq!(store.roll_up_hours(72).await.unwrap(), 0, "idempotent");
    }

    #[tokio::test]
    async fn a_first_schema_store_keeps_its_referrers_after_the_analytics_migration() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        {
            let c = Connection::open(&path).unwrap();
            c.execute_batch(MIGRATIONS[0]).unwrap();
            c.pragma_update(None, "user_version", 1).unwrap();
            c.execute_batch(
                "INSERT INTO clicks_hourly VALUES (5, 240, 7); \
                 INSERT INTO referrers_daily VALUES (5, 10, 'news.example', 3);",
            )
            .unwrap();
        }
        let store = SqliteStore::open(&path, Duration::from_secs(5)).unwrap();
        let stats = store
            .link_stats(
                5,
                range(10 * 86_400, 11 * 86_400, crate::store::Interval::Day),
                ClickBatch::default(),
            )
            .await
            .unwrap();
        assert_eq!(stats.total, 7);
        assert_eq!(
            stats.dims[crate::store::Dim::Referrer as usize],
            vec![("(direct)".to_string(), 4), ("news.example".to_string(), 3)]
        );
    }

    /// Not a test: `cargo test --release --lib flush_cost -- --ignored --nocapture` prints what
    /// one flush of a Zipf-like second costs the writer (used to profile the click path).
    #[tokio::test]
    #[ignore]
    async fn flush_cost() {
        use crate::store::{ClickBatch, DayDetail, Dim, DimCount, HourCount, Visitors};
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("f.db"), Duration::from_secs(30)).unwrap();
        let batch = || {
            let mut b = ClickBatch::default();
            for link_id in 1..=15_000 {
                b.hourly.push(HourCount {
                    link_id,
                    hour: 480_000,
                    clicks: 3,
                    bots: 0,
                });
                let mut dims = Vec::new();
                for (dim, keys) in [
                    (
                        Dim::Referrer,
                        &["(direct)", "news.ycombinator.com", "www.reddit.com"][..],
                    ),
                    (Dim::Browser, &["Chrome", "Safari", "Firefox"][..]),
                    (Dim::Os, &["Windows", "iOS", "macOS", "Android"][..]),
                    (Dim::Device, &["desktop", "mobile"][..]),
                    (Dim::Country, &["(unknown)"][..]),
                ] {
                    for k in keys {
                        dims.push(DimCount {
                            dim,
                            key: k.to_string(),
                            human: 1,
                            bot: 0,
                        });
                    }
                }
                let mut humans = Visitors::default();
                for v in 0..4 {
                    humans.insert(v);
                }
                b.days.push(DayDetail {
                    link_id,
                    day: 20_000,
                    dims,
                    humans,
                    bots: Visitors::default(),
                });
            }
            b
        };
        for round in 0..4 {
            let b = batch();
            let t = Instant::now();
            store.add_clicks(Arc::new(b), false).await.unwrap();
            println!("flush {round}: {:?} for 15,000 link-days", t.elapsed());
        }
        let mut only_hourly = batch();
        only_hourly.days.clear();
        let t = Instant::now();
        store
            .add_clicks(Arc::new(only_hourly), false)
            .await
            .unwrap();
        println!("hourly rows only: {:?}", t.elapsed());
    }
}
