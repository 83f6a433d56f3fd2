//! The SQL of the SQLite backend, as plain functions over a connection. Writer-side functions
//! return [`StoreResult`] with their outcome already classified; reader-side ones plain rusqlite
//! results (classified by the reader pool).

use std::ops::Range;

use rusqlite::{Connection, OptionalExtension, params};

use crate::domain::key::ApiKey;
use crate::domain::time::UnixSeconds;
use crate::domain::{ImportLink, ImportOutcome, Link, LinkPatch, NewLink, Role, ShortCode};
use crate::store::{
    ClickBatch, ClickFlush, CreateOutcome, Cursor, Dim, DimCount, IdempotencyRequest, ListFilter,
    ListOrder, ScopeClicks, StatsRange, StoreError, StoreResult, StoredClicks, UnknownStats,
    Visitors, journal,
};

use super::classify;
use crate::store::DIRECT;
use crate::store::dims::{StoredDims, ceil_div, dims_from_bytes, merge_dims};
use crate::store::rows::{self, key_columns, key_from, link_columns, link_from};

fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _)
        if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
            || f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY)
}

pub fn get_link(c: &Connection, code: &str) -> rusqlite::Result<Option<Link>> {
    c.prepare_cached(concat!(
        "SELECT ",
        link_columns!(),
        " FROM links WHERE code = ?1"
    ))?
    .query_row([code], |r| link_from(r))
    .optional()
}

fn get_link_by_id(c: &Connection, id: i64) -> rusqlite::Result<Link> {
    c.prepare_cached(concat!(
        "SELECT ",
        link_columns!(),
        " FROM links WHERE id = ?1"
    ))?
    .query_row([id], |r| link_from(r))
}

pub fn create_link(
    c: &Connection,
    new: &NewLink,
    idem: Option<&IdempotencyRequest>,
    now: UnixSeconds,
) -> StoreResult<CreateOutcome> {
    if let Some(idem) = idem
        && let Some(seen) = replay(c, idem).map_err(classify)?
    {
        return Ok(seen);
    }
    let id = insert_link(c, new, now)?;
    if let Some(idem) = idem {
        c.prepare_cached(
            "INSERT INTO idempotency (key_row_id, idem_key, request_hash, link_id, created_at) \
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )
        .and_then(|mut s| {
            s.execute(params![
                idem.key_row_id,
                idem.idem_key,
                idem.request_hash,
                id,
                now
            ])
        })
        .map_err(classify)?;
    }
    get_link_by_id(c, id)
        .map(CreateOutcome::Created)
        .map_err(classify)
}

/// The idempotency record's outcome, if (key, Idempotency-Key) was seen before.
fn replay(c: &Connection, idem: &IdempotencyRequest) -> rusqlite::Result<Option<CreateOutcome>> {
    let seen: Option<(Vec<u8>, i64)> = c
        .prepare_cached(
            "SELECT request_hash, link_id FROM idempotency WHERE key_row_id = ?1 AND idem_key = ?2",
        )?
        .query_row(params![idem.key_row_id, idem.idem_key], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()?;
    Ok(match seen {
        None => None,
        Some((hash, _)) if hash != idem.request_hash => Some(CreateOutcome::IdempotencyMismatch),
        Some((_, link_id)) => Some(CreateOutcome::Replayed(get_link_by_id(c, link_id)?)),
    })
}

/// Inserts the link under the `UNIQUE` constraint on `code` and returns its row id: a taken
/// custom code is `Conflict`, a taken random code is redrawn.
fn insert_link(c: &Connection, new: &NewLink, now: UnixSeconds) -> StoreResult<i64> {
    let tags = serde_json::to_string(&new.tags).map_err(|e| StoreError::Other(e.to_string()))?;
    let mut insert = c
        .prepare_cached(
            "INSERT INTO links (code, url, title, tags, owner, created_at, updated_at, expires_at, \
             max_clicks, imported_clicks) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        )
        .map_err(classify)?;
    // Whether the code was free (and is now the link's).
    let mut claim = |code: &ShortCode| {
        let values = params![
            code.as_str(),
            new.url.as_str(),
            new.title,
            tags,
            new.owner,
            new.created_at.unwrap_or(now),
            now,
            new.expires_at,
            new.max_clicks.map(|m| m as i64),
            new.imported_clicks as i64,
        ];
        match insert.execute(values) {
            Ok(_) => Ok(true),
            Err(e) if is_unique_violation(&e) => Ok(false),
            Err(e) => Err(classify(e)),
        }
    };
    for code in rows::candidates(&new.code) {
        if claim(&code)? {
            return Ok(c.last_insert_rowid());
        }
    }
    if let Some((len, space)) = rows::listable_space(&new.code)
        && let Some(code) = free_code(c, len, space).map_err(classify)?
        && claim(&code)?
    {
        return Ok(c.last_insert_rowid());
    }
    Err(rows::all_taken(&new.code))
}

/// Feeds every code in the store to `each`, from its own read-only connection (a long scan
/// must not hold a reader thread). `None` when `stop` was raised before the end.
pub fn scan_codes(
    path: &std::path::Path,
    stop: &std::sync::atomic::AtomicBool,
    mut each: impl FnMut(&str),
) -> rusqlite::Result<Option<u64>> {
    let c = Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    c.busy_timeout(std::time::Duration::from_secs(30))?;
    let mut stmt = c.prepare("SELECT code FROM links")?;
    let mut rows = stmt.query([])?;
    let mut n = 0u64;
    while let Some(row) = rows.next()? {
        each(row.get_ref(0)?.as_str()?);
        n += 1;
        if n.is_multiple_of(4096) && stop.load(std::sync::atomic::Ordering::Relaxed) {
            return Ok(None);
        }
    }
    Ok(Some(n))
}

pub fn import_links(
    c: &Connection,
    links: &[ImportLink],
    owner: i64,
    now: UnixSeconds,
) -> StoreResult<Vec<ImportOutcome>> {
    let mut insert = c
        .prepare_cached(
            "INSERT INTO links (code, url, title, tags, owner, created_at, updated_at, \
             expires_at, max_clicks, imported_clicks) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) ON CONFLICT (code) DO NOTHING",
        )
        .map_err(classify)?;
    let mut existing = c
        .prepare_cached("SELECT url, deleted_at IS NULL FROM links WHERE code = ?1")
        .map_err(classify)?;
    let mut outcomes = Vec::with_capacity(links.len());
    for link in links {
        let tags =
            serde_json::to_string(&link.tags).map_err(|e| StoreError::Other(e.to_string()))?;
        let values = params![
            link.code.as_str(),
            link.url.as_str(),
            link.title,
            tags,
            owner,
            link.created_at.unwrap_or(now),
            now,
            link.expires_at,
            link.max_clicks.map(|m| m as i64),
            link.imported_clicks as i64,
        ];
        if insert.execute(values).map_err(classify)? == 1 {
            outcomes.push(ImportOutcome::Imported);
            continue;
        }
        let (url, live): (String, bool) = existing
            .query_row([link.code.as_str()], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(classify)?;
        outcomes.push(rows::import_outcome(link, &url, live));
    }
    Ok(outcomes)
}

/// A random never-used code of length `len` (`space` codes), if any is left.
fn free_code(c: &Connection, len: usize, space: u64) -> rusqlite::Result<Option<ShortCode>> {
    let mut stmt = c.prepare_cached("SELECT code FROM links WHERE length(code) = ?1")?;
    let taken: std::collections::HashSet<String> = stmt
        .query_map([len as i64], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(ShortCode::random_free(len, space, &taken))
}

/// A live link that `owner` (if given) may change, or `NotFound`.
fn live_link(c: &Connection, code: &str, owner: Option<i64>) -> StoreResult<Link> {
    match get_link(c, code).map_err(classify)? {
        Some(l) if !l.deleted && owner.is_none_or(|o| o == l.owner) => Ok(l),
        _ => Err(StoreError::NotFound),
    }
}

pub fn update_link(
    c: &Connection,
    code: &str,
    owner: Option<i64>,
    patch: &LinkPatch,
    now: UnixSeconds,
) -> StoreResult<Link> {
    let mut link = live_link(c, code, owner)?;
    if let Some(url) = &patch.url {
        link.url = url.as_str().to_string();
    }
    if let Some(title) = &patch.title {
        link.title = title.clone();
    }
    if let Some(tags) = &patch.tags {
        link.tags = tags.clone();
    }
    if let Some(expires_at) = patch.expires_at {
        link.expires_at = expires_at;
    }
    if let Some(max_clicks) = patch.max_clicks {
        link.max_clicks = max_clicks;
    }
    if let Some(disabled) = patch.disabled {
        link.disabled = disabled;
    }
    if let Some(takedown) = &patch.takedown {
        link.takedown = takedown.clone();
    }
    link.updated_at = now;
    let tags = serde_json::to_string(&link.tags).map_err(|e| StoreError::Other(e.to_string()))?;
    c.prepare_cached(
        "UPDATE links SET url = ?2, title = ?3, tags = ?4, expires_at = ?5, max_clicks = ?6, \
         disabled = ?7, updated_at = ?8, takedown_reason = ?9 WHERE id = ?1",
    )
    .and_then(|mut s| {
        s.execute(params![
            link.id,
            link.url,
            link.title,
            tags,
            link.expires_at,
            link.max_clicks.map(|m| m as i64),
            link.disabled,
            link.updated_at,
            link.takedown
        ])
    })
    .map_err(classify)?;
    Ok(link)
}

pub fn delete_link(
    c: &Connection,
    code: &str,
    owner: Option<i64>,
    now: UnixSeconds,
) -> StoreResult<()> {
    let link = live_link(c, code, owner)?;
    c.prepare_cached("UPDATE links SET deleted_at = ?2, updated_at = ?2 WHERE id = ?1")
        .and_then(|mut s| s.execute(params![link.id, now]))
        .map_err(classify)?;
    Ok(())
}

/// The `WHERE` and `ORDER BY` of a list of links: `?1` owner, `?2` cursor id, `?3` limit, `?4`
/// lower-cased text, `?5` tag. (One statement per order, so each can walk the primary key.)
macro_rules! list_links_sql {
    ($past:literal, $order:literal) => {
        concat!(
            "SELECT ",
            link_columns!(),
            " FROM links WHERE deleted_at IS NULL AND (?1 IS NULL OR owner = ?1) AND id ",
            $past,
            " ?2 AND (?4 IS NULL OR instr(lower(code), ?4) > 0 OR instr(lower(url), ?4) > 0 \
             OR instr(lower(coalesce(title, '')), ?4) > 0) \
             AND (?5 IS NULL OR EXISTS (SELECT 1 FROM json_each(links.tags) WHERE value = ?5)) \
             ORDER BY id ",
            $order,
            " LIMIT ?3"
        )
    };
}

pub fn list_links(
    c: &Connection,
    owner: Option<i64>,
    filter: &ListFilter,
    at: Cursor,
) -> rusqlite::Result<Vec<Link>> {
    let (sql, start) = match filter.order {
        ListOrder::NewestFirst => (list_links_sql!("<", "DESC"), i64::MAX),
        ListOrder::OldestFirst => (list_links_sql!(">", "ASC"), i64::MIN),
    };
    let mut stmt = c.prepare_cached(sql)?;
    let rows = stmt.query_map(
        params![
            owner,
            at.past_id.unwrap_or(start),
            at.limit as i64,
            filter.text,
            filter.tag
        ],
        |r| link_from(r),
    )?;
    rows.collect()
}

pub fn links_by_id(c: &Connection, ids: &[i64]) -> rusqlite::Result<Vec<Link>> {
    let ids = serde_json::to_string(ids).unwrap_or_else(|_| "[]".into());
    let mut stmt = c.prepare_cached(concat!(
        "SELECT ",
        link_columns!(),
        " FROM links WHERE deleted_at IS NULL AND id IN (SELECT value FROM json_each(?1))"
    ))?;
    let rows = stmt.query_map([ids], |r| link_from(r))?;
    rows.collect()
}

pub fn link_tags(
    c: &Connection,
    owner: Option<i64>,
    limit: usize,
) -> rusqlite::Result<Vec<String>> {
    let mut stmt = c.prepare_cached(
        "SELECT DISTINCT t.value FROM links, json_each(links.tags) t \
         WHERE links.deleted_at IS NULL AND (?1 IS NULL OR links.owner = ?1) \
         ORDER BY t.value LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![owner, limit as i64], |r| r.get(0))?;
    rows.collect()
}

/// The stored human clicks of one scope's live links since three window starts (see
/// [`crate::store::Store::scope_clicks`]), hourly and daily rows alike.
pub fn scope_clicks(
    c: &Connection,
    owner: Option<i64>,
    windows: [UnixSeconds; 3],
) -> rusqlite::Result<ScopeClicks> {
    const ROWS: &str = "SELECT x.link_id, l.code, x.t, x.n FROM ( \
         SELECT link_id, hour * 3600 AS t, clicks - bot_clicks AS n FROM clicks_hourly \
          WHERE hour >= ?2 / 3600 \
         UNION ALL SELECT link_id, day * 86400, clicks - bot_clicks FROM clicks_daily \
          WHERE day >= ?2 / 86400) x \
         JOIN links l ON l.id = x.link_id \
         WHERE l.deleted_at IS NULL AND (?1 IS NULL OR l.owner = ?1)";
    let [first, second, third] = windows;
    let per_link = {
        let mut stmt = c.prepare_cached(&format!(
            "SELECT link_id, code, SUM(n), SUM(CASE WHEN t >= ?3 THEN n ELSE 0 END), \
             SUM(CASE WHEN t >= ?4 THEN n ELSE 0 END) FROM ({ROWS}) GROUP BY link_id, code"
        ))?;
        let rows = stmt.query_map(params![owner, first, second, third], |r| {
            let n = |i| r.get::<_, i64>(i).map(|n| n.max(0) as u64);
            Ok((r.get(0)?, r.get(1)?, [n(2)?, n(3)?, n(4)?]))
        })?;
        rows.collect::<rusqlite::Result<Vec<_>>>()?
    };
    let per_day = {
        let mut stmt = c.prepare_cached(&format!(
            "SELECT t / 86400 AS day, SUM(n) FROM ({ROWS}) GROUP BY day ORDER BY day"
        ))?;
        let rows = stmt.query_map(params![owner, first], |r| {
            Ok((r.get(0)?, r.get::<_, i64>(1)?.max(0) as u64))
        })?;
        rows.collect::<rusqlite::Result<Vec<_>>>()?
    };
    let dims = {
        let mut stmt = c.prepare_cached(
            "SELECT d.dims FROM link_days d JOIN links l ON l.id = d.link_id \
             WHERE d.day >= ?2 / 86400 AND l.deleted_at IS NULL AND (?1 IS NULL OR l.owner = ?1)",
        )?;
        let rows = stmt.query_map(params![owner, first], |r| r.get(0))?;
        rows.collect::<rusqlite::Result<Vec<_>>>()?
    };
    Ok(ScopeClicks {
        per_link,
        per_day,
        dims,
    })
}

/// The same, owning its keys (for rows built in Rust rather than read).
type OwnedDims = Vec<(u8, String, u64, u64)>;

fn dims_to_bytes(dims: &[DimCount]) -> Vec<u8> {
    let stored: StoredDims<'_> = dims
        .iter()
        .map(|d| (d.dim as u8, d.key.as_str(), d.human, d.bot))
        .collect();
    postcard::to_stdvec(&stored).unwrap_or_default()
}

/// Registers the SQL functions the click flush merges with: `snip_merge_dims(old, new)` and
/// `snip_merge_visitors(old, new)`, so a link-day is one UPSERT, not a read and a write.
pub fn register_functions(c: &Connection) -> rusqlite::Result<()> {
    use rusqlite::functions::FunctionFlags;
    let flags = FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC;
    c.create_scalar_function("snip_merge_dims", 2, flags, |ctx| {
        let mut old = dims_from_bytes(ctx.get_raw(0).as_blob().unwrap_or_default());
        merge_dims(
            &mut old,
            dims_from_bytes(ctx.get_raw(1).as_blob().unwrap_or_default()),
        );
        Ok(postcard::to_stdvec(&old).unwrap_or_default())
    })?;
    c.create_scalar_function("snip_merge_visitors", 2, flags, |ctx| {
        let mut old = Visitors::from_bytes(ctx.get_raw(0).as_blob().unwrap_or_default());
        old.merge(&Visitors::from_bytes(
            ctx.get_raw(1).as_blob().unwrap_or_default(),
        ));
        Ok(old.to_bytes())
    })
}

pub fn add_clicks(c: &Connection, batch: &ClickBatch) -> StoreResult<()> {
    write_clicks(c, batch).map_err(classify)
}

fn write_clicks(c: &Connection, batch: &ClickBatch) -> rusqlite::Result<()> {
    let mut hourly = c.prepare_cached(
        "INSERT INTO clicks_hourly (link_id, hour, clicks, bot_clicks) VALUES (?1, ?2, ?3, ?4) \
         ON CONFLICT (link_id, hour) DO UPDATE SET clicks = clicks + excluded.clicks, \
         bot_clicks = bot_clicks + excluded.bot_clicks",
    )?;
    for h in &batch.hourly {
        hourly.execute(params![h.link_id, h.hour, h.clicks as i64, h.bots as i64])?;
    }
    let mut days = c.prepare_cached(
        "INSERT INTO link_days (link_id, day, dims, humans, bots) VALUES (?1, ?2, ?3, ?4, ?5) \
         ON CONFLICT (link_id, day) DO UPDATE SET dims = snip_merge_dims(dims, excluded.dims), \
         humans = snip_merge_visitors(humans, excluded.humans), \
         bots = snip_merge_visitors(bots, excluded.bots)",
    )?;
    for d in &batch.days {
        days.execute(params![
            d.link_id,
            d.day,
            dims_to_bytes(&d.dims),
            d.humans.to_bytes(),
            d.bots.to_bytes()
        ])?;
    }
    let mut unknown = c.prepare_cached(
        "INSERT INTO unknown_codes (day, code, hits) VALUES (?1, ?2, ?3) \
         ON CONFLICT (day, code) DO UPDATE SET hits = hits + excluded.hits",
    )?;
    for (day, code, hits) in &batch.unknown {
        unknown.execute(params![day, code, *hits as i64])?;
    }
    Ok(())
}

/// Journals and folds one buffered flush (see [`ClickFlush`]); a `seq` already in the journal
/// was applied before (a retry after an unknown outcome) and is not applied again.
pub fn flush_clicks(c: &Connection, f: &ClickFlush) -> StoreResult<()> {
    let run = || -> rusqlite::Result<()> {
        let applied: bool = c
            .prepare_cached("SELECT EXISTS (SELECT 1 FROM click_journal WHERE seq = ?1)")?
            .query_row([f.seq], |r| r.get(0))?;
        if applied {
            return Ok(());
        }
        c.prepare_cached("DELETE FROM click_journal WHERE seq < ?1")?
            .execute([f.keep_from()])?;
        c.prepare_cached("INSERT INTO click_journal (seq, slots, entries) VALUES (?1, ?2, ?3)")?
            .execute(params![f.seq, f.slots.max(1), f.journal_blob()])?;
        write_clicks(c, &f.fold)
    };
    run().map_err(classify)
}

/// After a crash: folds the journalled clicks that are not in the tables yet
/// ([`journal::unfolded_hours`]), and empties the journal. Returns the clicks folded.
pub fn replay_click_journal(c: &Connection) -> rusqlite::Result<u64> {
    let rows: Vec<(i64, i64, Vec<u8>)> = c
        .prepare("SELECT seq, slots, entries FROM click_journal ORDER BY seq")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<rusqlite::Result<_>>()?;
    if rows.is_empty() {
        return Ok(0);
    }
    let batch = ClickBatch {
        hourly: journal::unfolded_hours(&rows),
        ..ClickBatch::default()
    };
    let tx = c.unchecked_transaction()?;
    write_clicks(&tx, &batch)?;
    tx.execute("DELETE FROM click_journal", [])?;
    tx.commit()?;
    Ok(batch.total())
}

/// A link's stored click rows for `q`, from one read snapshot (a roll-up committing meanwhile
/// cannot count hours twice or not at all).
pub fn link_clicks(c: &Connection, link_id: i64, q: &StatsRange) -> rusqlite::Result<StoredClicks> {
    let ((first_hour, end_hour), (first_day, end_day)) = StoredClicks::bounds(q);
    let tx = c.unchecked_transaction()?;
    let totals = tx
        .prepare_cached(
            "SELECT COALESCE(SUM(clicks), 0), COALESCE(SUM(bot_clicks), 0) FROM ( \
             SELECT clicks, bot_clicks FROM clicks_hourly WHERE link_id = ?1 \
             UNION ALL SELECT clicks, bot_clicks FROM clicks_daily WHERE link_id = ?1)",
        )?
        .query_row([link_id], |r| Ok((r.get(0)?, r.get(1)?)))?;
    let rows = tx
        .prepare_cached(
            "SELECT hour * 3600, clicks, bot_clicks FROM clicks_hourly \
             WHERE link_id = ?1 AND hour >= ?2 AND hour < ?3 \
             UNION ALL SELECT day * 86400, clicks, bot_clicks FROM clicks_daily \
             WHERE link_id = ?1 AND day >= ?4 AND day < ?5",
        )?
        .query_map(
            params![link_id, first_hour, end_hour, first_day, end_day],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )?
        .collect::<rusqlite::Result<_>>()?;
    let days = tx
        .prepare_cached(
            "SELECT dims, humans, bots FROM link_days WHERE link_id = ?1 AND day >= ?2 AND day < ?3",
        )?
        .query_map(params![link_id, first_day, end_day], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?
        .collect::<rusqlite::Result<_>>()?;
    Ok(StoredClicks { totals, rows, days })
}

pub fn unknown_stats(
    c: &Connection,
    window: Range<UnixSeconds>,
    limit: usize,
) -> rusqlite::Result<UnknownStats> {
    let (first_day, end_day) = (
        window.start.div_euclid(86_400),
        ceil_div(window.end, 86_400),
    );
    let total: i64 = c
        .prepare_cached(
            "SELECT COALESCE(SUM(hits), 0) FROM unknown_codes WHERE code = '' AND day >= ?1 AND day < ?2",
        )?
        .query_row(params![first_day, end_day], |r| r.get(0))?;
    let codes = c
        .prepare_cached(
            "SELECT code, SUM(hits) AS n FROM unknown_codes WHERE code != '' AND day >= ?1 AND day < ?2 \
             GROUP BY code ORDER BY n DESC, code LIMIT ?3",
        )?
        .query_map(params![first_day, end_day, limit as i64], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?.max(0) as u64))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(UnknownStats {
        total: total.max(0) as u64,
        codes,
    })
}

/// Moves hourly rows before `before_hour` into daily rows (same totals), and keeps only the
/// 1,000 most requested unknown codes of each day that is over.
pub fn roll_up_hours(c: &Connection, before_hour: i64) -> StoreResult<u64> {
    let run = || -> rusqlite::Result<u64> {
        c.prepare_cached(
            "INSERT INTO clicks_daily (link_id, day, clicks, bot_clicks) \
             SELECT link_id, hour / 24, SUM(clicks), SUM(bot_clicks) FROM clicks_hourly \
             WHERE hour < ?1 GROUP BY link_id, hour / 24 \
             ON CONFLICT (link_id, day) DO UPDATE SET clicks = clicks + excluded.clicks, \
             bot_clicks = bot_clicks + excluded.bot_clicks",
        )?
        .execute([before_hour])?;
        let removed = c
            .prepare_cached("DELETE FROM clicks_hourly WHERE hour < ?1")?
            .execute([before_hour])?;
        c.prepare_cached(
            "DELETE FROM unknown_codes WHERE day < ?1 AND code != '' AND (day, code) NOT IN ( \
             SELECT day, code FROM (SELECT day, code, row_number() OVER \
             (PARTITION BY day ORDER BY hits DESC, code) AS rank FROM unknown_codes \
             WHERE day < ?1 AND code != '') WHERE rank <= 1000)",
        )?
        .execute([crate::domain::time::now().div_euclid(86_400)])?;
        Ok(removed as u64)
    };
    run().map_err(classify)
}

pub fn visitor_key(c: &Connection, day: i64) -> StoreResult<[u8; 16]> {
    let run = || -> rusqlite::Result<Vec<u8>> {
        let fresh: [u8; 16] = rand::random();
        c.prepare_cached(
            "INSERT INTO visitor_keys (day, key) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
        )?
        .execute(params![day, fresh.as_slice()])?;
        c.prepare_cached("DELETE FROM visitor_keys WHERE day < ?1")?
            .execute([day - 1])?;
        c.prepare_cached("SELECT key FROM visitor_keys WHERE day = ?1")?
            .query_row([day], |r| r.get(0))
    };
    let key = run().map_err(classify)?;
    key.try_into()
        .map_err(|_| StoreError::Other("visitor key of the wrong length".into()))
}

/// All-time clicks of a link (flushed ones).
pub fn total_clicks(c: &Connection, link_id: i64) -> rusqlite::Result<u64> {
    c.prepare_cached(
        "SELECT COALESCE(SUM(clicks), 0) FROM ( \
         SELECT clicks FROM clicks_hourly WHERE link_id = ?1 \
         UNION ALL SELECT clicks FROM clicks_daily WHERE link_id = ?1)",
    )?
    .query_row([link_id], |r| r.get::<_, i64>(0))
    .map(|n| n.max(0) as u64)
}

/// Migration 2 in Rust: the referrer rows of the first schema become dimension counts of
/// `link_days` (all as human clicks: bots were not told apart then), direct clicks included.
pub fn convert_legacy_referrers(c: &Connection) -> rusqlite::Result<()> {
    let mut per_day: std::collections::BTreeMap<(i64, i64), OwnedDims> = Default::default();
    {
        let mut stmt = c.prepare("SELECT link_id, day, host, clicks FROM referrers_daily")?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let n: i64 = r.get(3)?;
            per_day.entry((r.get(0)?, r.get(1)?)).or_default().push((
                Dim::Referrer as u8,
                r.get(2)?,
                n.max(0) as u64,
                0,
            ));
        }
        let mut stmt = c.prepare(
            "SELECT link_id, hour / 24 AS day, SUM(clicks) FROM clicks_hourly GROUP BY link_id, day",
        )?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let all: i64 = r.get(2)?;
            let dims = per_day.entry((r.get(0)?, r.get(1)?)).or_default();
            let referred: u64 = dims.iter().map(|d| d.2).sum();
            let direct = (all.max(0) as u64).saturating_sub(referred);
            if direct > 0 {
                dims.push((Dim::Referrer as u8, DIRECT.to_string(), direct, 0));
            }
        }
    }
    let mut insert = c.prepare(
        "INSERT INTO link_days (link_id, day, dims, humans, bots) VALUES (?1, ?2, ?3, x'', x'')",
    )?;
    for ((link_id, day), dims) in per_day {
        insert.execute(params![
            link_id,
            day,
            postcard::to_stdvec(&dims).unwrap_or_default()
        ])?;
    }
    c.execute_batch("DROP TABLE referrers_daily")
}

pub fn insert_key(
    c: &Connection,
    id: &str,
    name: &str,
    role: Role,
    hash: &[u8],
    now: UnixSeconds,
) -> StoreResult<ApiKey> {
    c.prepare_cached(
        "INSERT INTO api_keys (id, name, role, key_hash, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
    )
    .and_then(|mut s| s.execute(params![id, name, role.as_str(), hash, now]))
    .map_err(classify)?;
    Ok(ApiKey {
        row_id: c.last_insert_rowid(),
        id: id.to_string(),
        name: name.to_string(),
        role,
        created_at: now,
    })
}

pub fn ensure_admin_key(c: &Connection, hash: &[u8], now: UnixSeconds) -> StoreResult<ApiKey> {
    let existing: Option<(i64, ApiKey)> = c
        .query_row(
            &format!(
                "SELECT {}, revoked_at IS NOT NULL FROM api_keys WHERE key_hash = ?1",
                key_columns!()
            ),
            [hash],
            |r| Ok((r.get::<_, i64>(5)?, key_from(r)?)),
        )
        .optional()
        .map_err(classify)?;
    match existing {
        Some((_, key)) => {
            c.execute(
                "UPDATE api_keys SET role = 'admin', revoked_at = NULL WHERE row_id = ?1",
                [key.row_id],
            )
            .map_err(classify)?;
            Ok(ApiKey {
                role: Role::Admin,
                ..key
            })
        }
        None => insert_key(
            c,
            &crate::domain::key::new_key_id(),
            "admin (from --admin-key)",
            Role::Admin,
            hash,
            now,
        ),
    }
}

pub fn count_keys(c: &Connection) -> rusqlite::Result<u64> {
    c.query_row(
        "SELECT COUNT(*) FROM api_keys WHERE revoked_at IS NULL",
        [],
        |r| r.get::<_, i64>(0),
    )
    .map(|n| n as u64)
}

pub fn find_key(c: &Connection, hash: &[u8]) -> rusqlite::Result<Option<ApiKey>> {
    c.prepare_cached(&format!(
        "SELECT {} FROM api_keys WHERE key_hash = ?1 AND revoked_at IS NULL",
        key_columns!()
    ))?
    .query_row([hash], |r| key_from(r))
    .optional()
}

pub fn list_keys(c: &Connection) -> rusqlite::Result<Vec<ApiKey>> {
    let mut stmt = c.prepare_cached(&format!(
        "SELECT {} FROM api_keys WHERE revoked_at IS NULL ORDER BY row_id",
        key_columns!()
    ))?;
    let rows = stmt.query_map([], |r| key_from(r))?;
    rows.collect()
}

pub fn revoke_key(c: &Connection, id: &str, force: bool, now: UnixSeconds) -> StoreResult<()> {
    // The writer runs one transaction at a time: the count cannot change under us.
    let last_admin: bool = c
        .query_row(
            "SELECT role = 'admin' AND (SELECT COUNT(*) FROM api_keys \
               WHERE role = 'admin' AND revoked_at IS NULL) = 1 \
             FROM api_keys WHERE id = ?1 AND revoked_at IS NULL",
            [id],
            |r| r.get(0),
        )
        .optional()
        .map_err(classify)?
        .ok_or(StoreError::NotFound)?;
    if last_admin && !force {
        return Err(StoreError::Conflict(crate::store::LAST_ADMIN.into()));
    }
    let n = c
        .execute(
            "UPDATE api_keys SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
            params![id, now],
        )
        .map_err(classify)?;
    if n == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

pub fn purge_idempotency(
    c: &Connection,
    before: UnixSeconds,
    now: UnixSeconds,
) -> StoreResult<u64> {
    c.execute("DELETE FROM sessions WHERE expires_at <= ?1", [now])
        .map_err(classify)?;
    c.execute("DELETE FROM idempotency WHERE created_at < ?1", [before])
        .map(|n| n as u64)
        .map_err(classify)
}

pub fn create_session(
    c: &Connection,
    token_hash: &[u8],
    key_row_id: i64,
    now: UnixSeconds,
    expires_at: UnixSeconds,
) -> StoreResult<()> {
    c.prepare_cached(
        "INSERT INTO sessions (token_hash, key_row_id, created_at, expires_at) \
         VALUES (?1, ?2, ?3, ?4)",
    )
    .and_then(|mut s| s.execute(params![token_hash, key_row_id, now, expires_at]))
    .map(|_| ())
    .map_err(classify)
}

pub fn find_session(
    c: &Connection,
    token_hash: &[u8],
    now: UnixSeconds,
) -> rusqlite::Result<Option<ApiKey>> {
    c.prepare_cached(concat!(
        "SELECT ",
        key_columns!(),
        " FROM api_keys WHERE revoked_at IS NULL AND row_id = \
         (SELECT key_row_id FROM sessions WHERE token_hash = ?1 AND expires_at > ?2)"
    ))?
    .query_row(params![token_hash, now], |r| key_from(r))
    .optional()
}

pub fn delete_session(c: &Connection, token_hash: &[u8]) -> StoreResult<()> {
    c.execute("DELETE FROM sessions WHERE token_hash = ?1", [token_hash])
        .map(|_| ())
        .map_err(classify)
}
