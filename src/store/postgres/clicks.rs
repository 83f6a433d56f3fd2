//! Clicks and statistics on PostgreSQL, shared by several instances.
//!
//! Each instance keeps its own click journal (`click_journal`, keyed by instance and flush
//! sequence number), as the embedded store keeps one (see `crate::store::journal`): a flush
//! appends one row holding the clicks it made durable of the links it does not fold, and folds
//! one slice of the links (their hours since their last fold, day details, unknown codes) into
//! the shared tables, in one transaction. So a flush writes the rows of a sixtieth of the links
//! clicked in the last minute, not one row per link clicked since the last flush. The journal
//! row also makes a retried flush a no-op: a retry whose first attempt committed finds it.
//!
//! Another instance's clicks reach the tables (and so this instance's statistics) when that
//! instance folds them: within a fold interval. An instance that crashed cannot replay its
//! own journal (it comes back as another instance), so every flush marks its instance alive in
//! `click_instances`, and holds a session advisory lock on its change feed's connection; every
//! instance now and then replays and deletes the journals of instances whose lock is free (a
//! crash ends the session at once) or that have not flushed for minutes ([`reap_journals`]). The flush and the reaper
//! both start by writing that instance's row, so one of them waits for the other: an instance
//! that was only cut off finds its row gone, and learns that its journal was replayed
//! ([`JOURNAL_REAPED`]; see `ClickFlush::after_reap`), so no click is counted twice.
//!
//! Counts are additive upserts, so instances never overwrite each other. Link-day rows hold
//! blobs that merge only in Rust: they are read `FOR UPDATE`, merged, and written back; rows
//! that are new are inserted with `ON CONFLICT DO NOTHING` and, if another instance inserted
//! one first, merged again. Every batch is written in key order, so two instances flushing the
//! same links lock rows in the same order (no deadlock between flushes). Each statement takes
//! a whole batch as arrays (`UNNEST`): a flush of thousands of rows is a few round trips.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use deadpool_postgres::{GenericClient, Object, Transaction};
use tokio_postgres::IsolationLevel;

use super::{ClickDurability, QueryResult};
use crate::domain::time::UnixSeconds;
use crate::store::dims::{StoredDims, ceil_div, dims_from_bytes, merge_dims};
use crate::store::journal::{self, JOURNAL_REAPED};
use crate::store::{
    ClickBatch, ClickFlush, DayDetail, HourCount, StatsRange, StoreError, StoredClicks,
    UnknownStats, Visitors,
};

/// Rounds of "insert new link-days, merge the ones another instance inserted meanwhile"
/// before a flush gives up (and is retried as it is).
const MERGE_ROUNDS: usize = 8;

/// Adds clicks straight to the tables (exact mode, and tests). `durability`: the click
/// durability, or `None` for the server's `synchronous_commit` (a durable write).
pub async fn add_clicks(
    c: &mut Object,
    batch: &ClickBatch,
    durability: Option<ClickDurability>,
) -> QueryResult<()> {
    let tx = c.transaction().await?;
    if let Some(d) = durability {
        tx.batch_execute(d.set_local()).await?;
    }
    add_hours(&tx, &batch.hourly).await?;
    merge_days(&tx, &batch.days).await?;
    add_unknown(&tx, &batch.unknown).await?;
    tx.commit().await?;
    Ok(())
}

/// Applies one buffered flush (see the module comment); a `(instance, seq)` applied before is
/// not applied again. `registered`: whether a flush of this instance committed before (its
/// `click_instances` row then exists unless another instance replayed its journal).
pub async fn flush_clicks(
    c: &mut Object,
    instance: &str,
    registered: &AtomicBool,
    f: &ClickFlush,
    durability: ClickDurability,
) -> QueryResult<()> {
    let tx = c.transaction().await?;
    tx.batch_execute(durability.set_local()).await?;
    let alive = tx
        .prepare_cached(
            "INSERT INTO click_instances (instance, seen_at) VALUES ($1, now()) \
             ON CONFLICT (instance) DO UPDATE SET seen_at = now() RETURNING xmax = 0",
        )
        .await?;
    let inserted: bool = tx.query_one(&alive, &[&instance]).await?.try_get(0)?;
    if inserted && registered.load(Ordering::Acquire) {
        tx.rollback().await?;
        registered.store(false, Ordering::Release);
        return Err(StoreError::Conflict(JOURNAL_REAPED.into()).into());
    }
    // A retry while the first attempt is still running waits here on the primary key, then
    // finds the row (first attempt committed) or takes it (rolled back).
    let journal = tx
        .prepare_cached(
            "INSERT INTO click_journal (instance, seq, slots, entries) VALUES ($1, $2, $3, $4) \
             ON CONFLICT DO NOTHING",
        )
        .await?;
    let first = tx
        .execute(
            &journal,
            &[&instance, &f.seq, &f.slots.max(1), &f.journal_blob()],
        )
        .await?;
    if first == 0 {
        tx.rollback().await?;
        registered.store(true, Ordering::Release);
        return Ok(());
    }
    let folded = tx
        .prepare_cached("DELETE FROM click_journal WHERE instance = $1 AND seq < $2 AND seq <> $3")
        .await?;
    tx.execute(&folded, &[&instance, &f.keep_from(), &f.seq])
        .await?;
    add_hours(&tx, &f.fold.hourly).await?;
    merge_days(&tx, &f.fold.days).await?;
    add_unknown(&tx, &f.fold.unknown).await?;
    tx.commit().await?;
    registered.store(true, Ordering::Release);
    Ok(())
}

/// Replays into the tables, and deletes, the journals of the instances (other than `instance`)
/// that have not flushed for `stale` or whose session lock is free; returns the clicks
/// replayed. Deleting an instance's
/// `click_instances` row first locks it: a flush of that instance running meanwhile either
/// commits first (the row is then fresh and not taken) or finds the row gone.
pub async fn reap_journals(
    c: &mut Object,
    instance: &str,
    stale: Duration,
    durability: ClickDurability,
) -> QueryResult<u64> {
    let tx = c.transaction().await?;
    tx.batch_execute(durability.set_local()).await?;
    // An instance holds its lock for as long as its change feed is connected (see
    // `changes.rs`): a lock that can be taken belongs to an instance that is gone (or cut off).
    let gone = tx
        .query(
            "DELETE FROM click_instances WHERE instance <> $2 AND \
             (seen_at < now() - make_interval(secs => $1) \
             OR pg_try_advisory_xact_lock(hashtextextended(instance, 0))) \
             RETURNING instance",
            &[&stale.as_secs_f64(), &instance],
        )
        .await?;
    let mut replayed = 0;
    for row in &gone {
        let other: &str = row.try_get(0)?;
        let rows = tx
            .query(
                "DELETE FROM click_journal WHERE instance = $1 RETURNING seq, slots, entries",
                &[&other],
            )
            .await?;
        let mut rows = rows
            .iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
            .collect::<Result<Vec<(i64, i64, Vec<u8>)>, tokio_postgres::Error>>()?;
        rows.sort_unstable_by_key(|r| r.0);
        let hours = journal::unfolded_hours(&rows);
        replayed += hours.iter().map(|h| h.clicks).sum::<u64>();
        add_hours(&tx, &hours).await?;
    }
    tx.commit().await?;
    Ok(replayed)
}

/// Adds hourly counts (summed per link and hour first: one statement may not upsert a row
/// twice).
async fn add_hours(tx: &Transaction<'_>, hourly: &[HourCount]) -> QueryResult<()> {
    let mut sums: BTreeMap<(i64, i64), (i64, i64)> = BTreeMap::new();
    for h in hourly {
        let e = sums.entry((h.link_id, h.hour)).or_default();
        e.0 += h.clicks as i64;
        e.1 += h.bots as i64;
    }
    if sums.is_empty() {
        return Ok(());
    }
    let mut cols: (Vec<i64>, Vec<i64>, Vec<i64>, Vec<i64>) = Default::default();
    for ((link_id, hour), (clicks, bots)) in sums {
        cols.0.push(link_id);
        cols.1.push(hour);
        cols.2.push(clicks);
        cols.3.push(bots);
    }
    let stmt = tx
        .prepare_cached(
            "INSERT INTO clicks_hourly (link_id, hour, clicks, bot_clicks) \
             SELECT * FROM UNNEST($1::int8[], $2::int8[], $3::int8[], $4::int8[]) \
             ON CONFLICT (link_id, hour) DO UPDATE SET \
             clicks = clicks_hourly.clicks + EXCLUDED.clicks, \
             bot_clicks = clicks_hourly.bot_clicks + EXCLUDED.bot_clicks",
        )
        .await?;
    tx.execute(&stmt, &[&cols.0, &cols.1, &cols.2, &cols.3])
        .await?;
    Ok(())
}

async fn add_unknown(tx: &Transaction<'_>, unknown: &[(i64, String, u64)]) -> QueryResult<()> {
    let mut sums: BTreeMap<(i64, &str), i64> = BTreeMap::new();
    for (day, code, hits) in unknown {
        *sums.entry((*day, code.as_str())).or_default() += *hits as i64;
    }
    if sums.is_empty() {
        return Ok(());
    }
    let mut cols: (Vec<i64>, Vec<&str>, Vec<i64>) = Default::default();
    for ((day, code), hits) in sums {
        cols.0.push(day);
        cols.1.push(code);
        cols.2.push(hits);
    }
    let stmt = tx
        .prepare_cached(
            "INSERT INTO unknown_codes (day, code, hits) \
             SELECT * FROM UNNEST($1::int8[], $2::text[], $3::int8[]) \
             ON CONFLICT (day, code) DO UPDATE SET hits = unknown_codes.hits + EXCLUDED.hits",
        )
        .await?;
    tx.execute(&stmt, &[&cols.0, &cols.1, &cols.2]).await?;
    Ok(())
}

/// Rows of `link_days` to write: `(link_id, day)` and the dims and sketch blobs.
#[derive(Default)]
struct DayRows {
    link_ids: Vec<i64>,
    days: Vec<i64>,
    dims: Vec<Vec<u8>>,
    humans: Vec<Vec<u8>>,
    bots: Vec<Vec<u8>>,
}

impl DayRows {
    fn push(&mut self, key: (i64, i64), dims: &StoredDims<'_>, humans: &Visitors, bots: &Visitors) {
        self.link_ids.push(key.0);
        self.days.push(key.1);
        self.dims
            .push(postcard::to_stdvec(dims).unwrap_or_default());
        self.humans.push(humans.to_bytes());
        self.bots.push(bots.to_bytes());
    }

    /// The row `key` holding `dims`, `humans` and `bots` with `details` merged in, in order.
    fn push_merged<'a>(
        &mut self,
        key: (i64, i64),
        (mut dims, mut humans, mut bots): (StoredDims<'a>, Visitors, Visitors),
        details: &[&'a DayDetail],
    ) {
        for d in details {
            merge_dims(&mut dims, borrowed_dims(d));
            humans.merge(&d.humans);
            bots.merge(&d.bots);
        }
        self.push(key, &dims, &humans, &bots);
    }
}

/// The statements of [`merge_days`], prepared in its transaction.
struct DayStatements {
    select: tokio_postgres::Statement,
    update: tokio_postgres::Statement,
    insert: tokio_postgres::Statement,
}

impl DayStatements {
    async fn prepare(tx: &Transaction<'_>) -> QueryResult<Self> {
        let select = tx
            .prepare_cached(
                "SELECT link_id, day, dims, humans, bots FROM link_days \
                 WHERE (link_id, day) IN (SELECT * FROM UNNEST($1::int8[], $2::int8[])) \
                 ORDER BY link_id, day FOR UPDATE",
            )
            .await?;
        let update = tx
            .prepare_cached(
                "UPDATE link_days SET dims = u.dims, humans = u.humans, bots = u.bots \
                 FROM UNNEST($1::int8[], $2::int8[], $3::bytea[], $4::bytea[], $5::bytea[]) \
                 AS u (link_id, day, dims, humans, bots) \
                 WHERE link_days.link_id = u.link_id AND link_days.day = u.day",
            )
            .await?;
        let insert = tx
            .prepare_cached(
                "INSERT INTO link_days (link_id, day, dims, humans, bots) \
                 SELECT * FROM UNNEST($1::int8[], $2::int8[], $3::bytea[], $4::bytea[], $5::bytea[]) \
                 ON CONFLICT (link_id, day) DO NOTHING RETURNING link_id, day",
            )
            .await?;
        Ok(DayStatements {
            select,
            update,
            insert,
        })
    }
}

/// Merges day details into `link_days`, as SQLite's upsert with `snip_merge_dims` and
/// `snip_merge_visitors` does: a new row starts as the first detail, every further detail
/// (in batch order) is merged into the row.
async fn merge_days(tx: &Transaction<'_>, days: &[DayDetail]) -> QueryResult<()> {
    let mut pending: BTreeMap<(i64, i64), Vec<&DayDetail>> = BTreeMap::new();
    for d in days {
        pending.entry((d.link_id, d.day)).or_default().push(d);
    }
    let st = DayStatements::prepare(tx).await?;
    // The first round reads every key; later rounds only the rows another instance inserted
    // after this round's read.
    for _ in 0..MERGE_ROUNDS {
        if pending.is_empty() {
            return Ok(());
        }
        update_existing(tx, &st, &mut pending).await?;
        let fresh = fresh_rows(&pending);
        if fresh.link_ids.is_empty() {
            continue;
        }
        let f = &fresh;
        for row in tx
            .query(
                &st.insert,
                &[&f.link_ids, &f.days, &f.dims, &f.humans, &f.bots],
            )
            .await?
        {
            pending.remove(&(row.try_get(0)?, row.try_get(1)?));
        }
    }
    if pending.is_empty() {
        return Ok(());
    }
    Err(StoreError::Unavailable(
        "link-day rows kept being inserted concurrently; the flush will be retried".into(),
    )
    .into())
}

/// Merges the pending details of the rows that exist (locking them) into them, and takes them
/// off `pending`.
async fn update_existing(
    tx: &Transaction<'_>,
    st: &DayStatements,
    pending: &mut BTreeMap<(i64, i64), Vec<&DayDetail>>,
) -> QueryResult<()> {
    let (ids, day_numbers): (Vec<i64>, Vec<i64>) = pending.keys().copied().unzip();
    let rows = tx.query(&st.select, &[&ids, &day_numbers]).await?;
    let mut existing = DayRows::default();
    for row in &rows {
        let key: (i64, i64) = (row.try_get(0)?, row.try_get(1)?);
        let Some(details) = pending.remove(&key) else {
            continue;
        };
        let stored = (
            dims_from_bytes(row.try_get(2)?),
            Visitors::from_bytes(row.try_get(3)?),
            Visitors::from_bytes(row.try_get(4)?),
        );
        existing.push_merged(key, stored, &details);
    }
    if !existing.link_ids.is_empty() {
        let e = &existing;
        tx.execute(
            &st.update,
            &[&e.link_ids, &e.days, &e.dims, &e.humans, &e.bots],
        )
        .await?;
    }
    Ok(())
}

/// New rows for the pending keys: each the first detail with the others merged in.
fn fresh_rows(pending: &BTreeMap<(i64, i64), Vec<&DayDetail>>) -> DayRows {
    let mut fresh = DayRows::default();
    for (key, details) in pending {
        if let Some((first, rest)) = details.split_first() {
            let first_row = (
                borrowed_dims(first),
                first.humans.clone(),
                first.bots.clone(),
            );
            fresh.push_merged(*key, first_row, rest);
        }
    }
    fresh
}

fn borrowed_dims(d: &DayDetail) -> StoredDims<'_> {
    d.dims
        .iter()
        .map(|c| (c.dim as u8, c.key.as_str(), c.human, c.bot))
        .collect()
}

/// A link's stored click rows for `q`, from one snapshot (`REPEATABLE READ`: a roll-up
/// committing meanwhile cannot count hours twice or not at all).
pub async fn link_clicks(
    c: &mut Object,
    link_id: i64,
    q: &StatsRange,
) -> QueryResult<StoredClicks> {
    let ((first_hour, end_hour), (first_day, end_day)) = StoredClicks::bounds(q);
    let tx = c
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await?;
    let totals = tx
        .query_one(
            "SELECT COALESCE(SUM(clicks), 0)::int8, COALESCE(SUM(bot_clicks), 0)::int8 FROM ( \
             SELECT clicks, bot_clicks FROM clicks_hourly WHERE link_id = $1 \
             UNION ALL SELECT clicks, bot_clicks FROM clicks_daily WHERE link_id = $1) t",
            &[&link_id],
        )
        .await?;
    let rows = tx
        .query(
            "SELECT hour * 3600, clicks, bot_clicks FROM clicks_hourly \
             WHERE link_id = $1 AND hour >= $2 AND hour < $3 \
             UNION ALL SELECT day * 86400, clicks, bot_clicks FROM clicks_daily \
             WHERE link_id = $1 AND day >= $4 AND day < $5",
            &[&link_id, &first_hour, &end_hour, &first_day, &end_day],
        )
        .await?;
    let days = tx
        .query(
            "SELECT dims, humans, bots FROM link_days \
             WHERE link_id = $1 AND day >= $2 AND day < $3",
            &[&link_id, &first_day, &end_day],
        )
        .await?;
    tx.commit().await?;
    Ok(StoredClicks {
        totals: (totals.try_get(0)?, totals.try_get(1)?),
        rows: rows
            .iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
            .collect::<Result<_, tokio_postgres::Error>>()?,
        days: days
            .iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
            .collect::<Result<_, tokio_postgres::Error>>()?,
    })
}

pub async fn unknown_stats(
    c: &impl GenericClient,
    window: std::ops::Range<UnixSeconds>,
    limit: usize,
) -> QueryResult<UnknownStats> {
    let (first_day, end_day) = (
        window.start.div_euclid(86_400),
        ceil_div(window.end, 86_400),
    );
    let total: i64 = c
        .query_one(
            "SELECT COALESCE(SUM(hits), 0)::int8 FROM unknown_codes \
             WHERE code = '' AND day >= $1 AND day < $2",
            &[&first_day, &end_day],
        )
        .await?
        .try_get(0)?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let codes = c
        .query(
            "SELECT code, SUM(hits)::int8 AS n FROM unknown_codes \
             WHERE code <> '' AND day >= $1 AND day < $2 \
             GROUP BY code ORDER BY n DESC, code LIMIT $3",
            &[&first_day, &end_day, &limit],
        )
        .await?
        .iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get::<_, i64>(1)?.max(0) as u64)))
        .collect::<Result<Vec<_>, tokio_postgres::Error>>()?;
    Ok(UnknownStats {
        total: total.max(0) as u64,
        codes,
    })
}

/// Moves hourly rows before `before_hour` into daily rows (same totals), and keeps only the
/// 1,000 most requested unknown codes of each day that is over. The hourly rows are deleted
/// and added up in one statement: a flush adding to one of them meanwhile waits for the row
/// lock, so its clicks land either in the moved sum or in a new hourly row, and two instances
/// rolling up at once move each row once.
pub async fn roll_up_hours(
    c: &mut Object,
    before_hour: i64,
    durability: ClickDurability,
) -> QueryResult<u64> {
    let tx = c.transaction().await?;
    tx.batch_execute(durability.set_local()).await?;
    let removed: i64 = tx
        .query_one(
            "WITH moved AS (DELETE FROM clicks_hourly WHERE hour < $1 \
             RETURNING link_id, hour, clicks, bot_clicks), \
             added AS (INSERT INTO clicks_daily (link_id, day, clicks, bot_clicks) \
             SELECT link_id, hour / 24, SUM(clicks)::int8, SUM(bot_clicks)::int8 FROM moved \
             GROUP BY link_id, hour / 24 \
             ON CONFLICT (link_id, day) DO UPDATE SET \
             clicks = clicks_daily.clicks + EXCLUDED.clicks, \
             bot_clicks = clicks_daily.bot_clicks + EXCLUDED.bot_clicks) \
             SELECT count(*) FROM moved",
            &[&before_hour],
        )
        .await?
        .try_get(0)?;
    tx.execute(
        "DELETE FROM unknown_codes WHERE day < $1 AND code <> '' AND (day, code) NOT IN ( \
         SELECT day, code FROM (SELECT day, code, row_number() OVER \
         (PARTITION BY day ORDER BY hits DESC, code) AS rank FROM unknown_codes \
         WHERE day < $1 AND code <> '') ranked WHERE rank <= 1000)",
        &[&crate::domain::time::now().div_euclid(86_400)],
    )
    .await?;
    tx.commit().await?;
    Ok(removed.max(0) as u64)
}

/// All-time clicks of a link that reached the store.
pub async fn total_clicks(c: &impl GenericClient, link_id: i64) -> QueryResult<u64> {
    let n: i64 = c
        .query_one(
            "SELECT COALESCE(SUM(clicks), 0)::int8 FROM ( \
             SELECT clicks FROM clicks_hourly WHERE link_id = $1 \
             UNION ALL SELECT clicks FROM clicks_daily WHERE link_id = $1) t",
            &[&link_id],
        )
        .await?
        .try_get(0)?;
    Ok(n.max(0) as u64)
}
