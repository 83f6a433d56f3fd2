//! The SQL of the SQLite backend, as plain functions over a connection. Writer-side functions
//! return [`StoreResult`] with their outcome already classified; reader-side ones plain rusqlite
//! results (classified by the reader pool).

use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::domain::key::ApiKey;
use crate::domain::link::CodeChoice;
use crate::domain::time::UnixSeconds;
use crate::domain::{Link, LinkPatch, NewLink, Role, ShortCode};
use crate::store::{
    ClickBatch, CreateOutcome, IdempotencyRequest, Interval, StoreError, StoreResult,
};

use super::classify;
use crate::clicks::buffer::DIRECT;

/// Attempts at a fresh random code before giving up (the code space is nearly full).
const RANDOM_CODE_ATTEMPTS: usize = 16;

const LINK_COLUMNS: &str = "id, code, url, title, tags, owner, created_at, updated_at, \
     expires_at, max_clicks, disabled, deleted_at";

fn link_from_row(r: &Row<'_>) -> rusqlite::Result<Link> {
    let tags: String = r.get(4)?;
    Ok(Link {
        id: r.get(0)?,
        code: ShortCode::from_trusted(r.get(1)?),
        url: r.get(2)?,
        title: r.get(3)?,
        tags: serde_json::from_str(&tags).unwrap_or_default(),
        owner: r.get(5)?,
        created_at: r.get(6)?,
        updated_at: r.get(7)?,
        expires_at: r.get(8)?,
        max_clicks: r.get::<_, Option<i64>>(9)?.map(|m| m.max(0) as u64),
        disabled: r.get(10)?,
        deleted: r.get::<_, Option<i64>>(11)?.is_some(),
    })
}

fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _)
        if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
            || f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY)
}

pub fn get_link(c: &Connection, code: &str) -> rusqlite::Result<Option<Link>> {
    c.prepare_cached(&format!("SELECT {LINK_COLUMNS} FROM links WHERE code = ?1"))?
        .query_row([code], link_from_row)
        .optional()
}

fn get_link_by_id(c: &Connection, id: i64) -> rusqlite::Result<Link> {
    c.prepare_cached(&format!("SELECT {LINK_COLUMNS} FROM links WHERE id = ?1"))?
        .query_row([id], link_from_row)
}

pub fn create_link(
    c: &Connection,
    new: &NewLink,
    idem: Option<&IdempotencyRequest>,
    now: UnixSeconds,
) -> StoreResult<CreateOutcome> {
    if let Some(idem) = idem {
        let seen: Option<(Vec<u8>, i64)> = c
            .prepare_cached(
                "SELECT request_hash, link_id FROM idempotency WHERE key_row_id = ?1 AND idem_key = ?2",
            )
            .and_then(|mut s| {
                s.query_row(params![idem.key_row_id, idem.idem_key], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
                .optional()
            })
            .map_err(classify)?;
        if let Some((hash, link_id)) = seen {
            if hash != idem.request_hash {
                return Ok(CreateOutcome::IdempotencyMismatch);
            }
            let link = get_link_by_id(c, link_id).map_err(classify)?;
            return Ok(CreateOutcome::Replayed(link));
        }
    }
    let tags = serde_json::to_string(&new.tags).map_err(|e| StoreError::Other(e.to_string()))?;
    let mut insert = c
        .prepare_cached(
            "INSERT INTO links (code, url, title, tags, owner, created_at, updated_at, expires_at, max_clicks) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6, ?7, ?8)",
        )
        .map_err(classify)?;
    let mut try_insert = |code: &ShortCode| {
        insert.execute(params![
            code.as_str(),
            new.url.as_str(),
            new.title,
            tags,
            new.owner,
            now,
            new.expires_at,
            new.max_clicks.map(|m| m as i64),
        ])
    };
    match &new.code {
        CodeChoice::Custom(code) => match try_insert(code) {
            Ok(_) => {}
            Err(e) if is_unique_violation(&e) => {
                return Err(StoreError::Conflict(format!("code {code} is taken")));
            }
            Err(e) => return Err(classify(e)),
        },
        CodeChoice::Random { len } => {
            let mut inserted = false;
            for _ in 0..RANDOM_CODE_ATTEMPTS {
                match try_insert(&ShortCode::random(*len)) {
                    Ok(_) => {
                        inserted = true;
                        break;
                    }
                    Err(e) if is_unique_violation(&e) => continue,
                    Err(e) => return Err(classify(e)),
                }
            }
            if !inserted {
                // In a small code space the last free codes are hard to hit at random: pick
                // one of them directly (still inserted under the UNIQUE constraint).
                if let Some(code) = free_code(c, *len).map_err(classify)? {
                    try_insert(&code).map_err(classify)?;
                    inserted = true;
                }
            }
            if !inserted {
                return Err(StoreError::Unavailable(format!(
                    "no free random code of length {len} after {RANDOM_CODE_ATTEMPTS} attempts; \
                     raise --code-length"
                )));
            }
        }
    }
    let id = c.last_insert_rowid();
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
    links: &[(ShortCode, crate::domain::Destination)],
    owner: i64,
    now: UnixSeconds,
) -> StoreResult<u64> {
    let mut insert = c
        .prepare_cached(
            "INSERT INTO links (code, url, owner, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?4) \
             ON CONFLICT (code) DO NOTHING",
        )
        .map_err(classify)?;
    let mut inserted = 0;
    for (code, url) in links {
        inserted += insert
            .execute(params![code.as_str(), url.as_str(), owner, now])
            .map_err(classify)? as u64;
    }
    Ok(inserted)
}

/// Code spaces up to this size are searched exhaustively when random attempts fail.
const SMALL_CODE_SPACE: u64 = 250_000;

/// A random never-used base62 code of length `len`, if the space is small enough to list.
fn free_code(c: &Connection, len: usize) -> rusqlite::Result<Option<ShortCode>> {
    let space = 62u64.checked_pow(len as u32).unwrap_or(u64::MAX);
    if space > SMALL_CODE_SPACE {
        return Ok(None);
    }
    let mut stmt = c.prepare_cached("SELECT code FROM links WHERE length(code) = ?1")?;
    let taken: std::collections::HashSet<String> = stmt
        .query_map([len as i64], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    if taken.len() as u64 >= space {
        return Ok(None);
    }
    use crate::domain::code::BASE62;
    let free: Vec<String> = (0..space)
        .map(|mut n| {
            let mut code = vec![0u8; len];
            for slot in code.iter_mut().rev() {
                *slot = BASE62[(n % 62) as usize];
                n /= 62;
            }
            String::from_utf8(code).unwrap_or_default()
        })
        .filter(|code| !taken.contains(code))
        .collect();
    let pick = free[rand::random_range(0..free.len())].clone();
    Ok(Some(ShortCode::from_trusted(pick)))
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
    link.updated_at = now;
    let tags = serde_json::to_string(&link.tags).map_err(|e| StoreError::Other(e.to_string()))?;
    c.prepare_cached(
        "UPDATE links SET url = ?2, title = ?3, tags = ?4, expires_at = ?5, max_clicks = ?6, \
         disabled = ?7, updated_at = ?8 WHERE id = ?1",
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
            link.updated_at
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

pub fn list_links(
    c: &Connection,
    owner: Option<i64>,
    before_id: Option<i64>,
    limit: usize,
) -> rusqlite::Result<Vec<Link>> {
    let mut stmt = c.prepare_cached(&format!(
        "SELECT {LINK_COLUMNS} FROM links \
         WHERE deleted_at IS NULL AND (?1 IS NULL OR owner = ?1) AND id < ?2 \
         ORDER BY id DESC LIMIT ?3"
    ))?;
    let rows = stmt.query_map(
        params![owner, before_id.unwrap_or(i64::MAX), limit as i64],
        link_from_row,
    )?;
    rows.collect()
}

pub fn add_clicks(c: &Connection, batch: &ClickBatch) -> StoreResult<()> {
    let run = || -> rusqlite::Result<()> {
        let mut hourly = c.prepare_cached(
            "INSERT INTO clicks_hourly (link_id, hour, clicks) VALUES (?1, ?2, ?3) \
             ON CONFLICT (link_id, hour) DO UPDATE SET clicks = clicks + excluded.clicks",
        )?;
        for (link_id, hour, clicks) in &batch.hourly {
            hourly.execute(params![link_id, hour, *clicks as i64])?;
        }
        let mut referrers = c.prepare_cached(
            "INSERT INTO referrers_daily (link_id, day, host, clicks) VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT (link_id, day, host) DO UPDATE SET clicks = clicks + excluded.clicks",
        )?;
        // Direct clicks are not stored: they are the day's clicks minus the referred ones.
        for (link_id, day, host, clicks) in batch.referrers.iter().filter(|r| r.2 != DIRECT) {
            referrers.execute(params![link_id, day, host, *clicks as i64])?;
        }
        Ok(())
    };
    run().map_err(classify)
}

pub fn click_series(
    c: &Connection,
    link_id: i64,
    from: UnixSeconds,
    to: UnixSeconds,
    interval: Interval,
) -> rusqlite::Result<Vec<(UnixSeconds, u64)>> {
    let width = interval.seconds();
    let mut stmt = c.prepare_cached(
        "SELECT (hour * 3600 / ?4) * ?4 AS bucket, SUM(clicks) FROM clicks_hourly \
         WHERE link_id = ?1 AND hour >= ?2 AND hour < ?3 GROUP BY bucket ORDER BY bucket",
    )?;
    let rows = stmt.query_map(
        params![link_id, from.div_euclid(3600), ceil_div(to, 3600), width],
        |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?.max(0) as u64)),
    )?;
    rows.collect()
}

fn ceil_div(a: i64, b: i64) -> i64 {
    -((-a).div_euclid(b))
}

pub fn top_referrers(
    c: &Connection,
    link_id: i64,
    from: UnixSeconds,
    to: UnixSeconds,
    limit: usize,
) -> rusqlite::Result<Vec<(String, u64)>> {
    let (first_day, end_day) = (from.div_euclid(86_400), ceil_div(to, 86_400));
    let mut stmt = c.prepare_cached(
        "SELECT host, SUM(clicks) AS n FROM referrers_daily \
         WHERE link_id = ?1 AND day >= ?2 AND day < ?3 GROUP BY host ORDER BY n DESC, host LIMIT ?4",
    )?;
    let mut top = stmt
        .query_map(params![link_id, first_day, end_day, limit as i64], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?.max(0) as u64))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let referred: i64 = c
        .prepare_cached(
            "SELECT COALESCE(SUM(clicks), 0) FROM referrers_daily \
             WHERE link_id = ?1 AND day >= ?2 AND day < ?3",
        )?
        .query_row(params![link_id, first_day, end_day], |r| r.get(0))?;
    let all: i64 = c
        .prepare_cached(
            "SELECT COALESCE(SUM(clicks), 0) FROM clicks_hourly \
             WHERE link_id = ?1 AND hour >= ?2 AND hour < ?3",
        )?
        .query_row(params![link_id, first_day * 24, end_day * 24], |r| r.get(0))?;
    let direct = (all - referred).max(0) as u64;
    if direct > 0 {
        top.push((DIRECT.to_string(), direct));
        top.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        top.truncate(limit);
    }
    Ok(top)
}

/// All-time clicks of a link (flushed ones).
pub fn total_clicks(c: &Connection, link_id: i64) -> rusqlite::Result<u64> {
    c.prepare_cached("SELECT COALESCE(SUM(clicks), 0) FROM clicks_hourly WHERE link_id = ?1")?
        .query_row([link_id], |r| r.get::<_, i64>(0))
        .map(|n| n.max(0) as u64)
}

const KEY_COLUMNS: &str = "row_id, id, name, role, created_at";

fn key_from_row(r: &Row<'_>) -> rusqlite::Result<ApiKey> {
    let role: String = r.get(3)?;
    Ok(ApiKey {
        row_id: r.get(0)?,
        id: r.get(1)?,
        name: r.get(2)?,
        role: Role::parse(&role).unwrap_or(Role::User),
        created_at: r.get(4)?,
    })
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
                "SELECT {KEY_COLUMNS}, revoked_at IS NOT NULL FROM api_keys WHERE key_hash = ?1"
            ),
            [hash],
            |r| Ok((r.get::<_, i64>(5)?, key_from_row(r)?)),
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
        "SELECT {KEY_COLUMNS} FROM api_keys WHERE key_hash = ?1 AND revoked_at IS NULL"
    ))?
    .query_row([hash], key_from_row)
    .optional()
}

pub fn list_keys(c: &Connection) -> rusqlite::Result<Vec<ApiKey>> {
    let mut stmt = c.prepare_cached(&format!(
        "SELECT {KEY_COLUMNS} FROM api_keys WHERE revoked_at IS NULL ORDER BY row_id"
    ))?;
    let rows = stmt.query_map([], key_from_row)?;
    rows.collect()
}

pub fn revoke_key(c: &Connection, id: &str, now: UnixSeconds) -> StoreResult<()> {
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

pub fn purge_idempotency(c: &Connection, before: UnixSeconds) -> StoreResult<u64> {
    c.execute("DELETE FROM idempotency WHERE created_at < ?1", [before])
        .map(|n| n as u64)
        .map_err(classify)
}
