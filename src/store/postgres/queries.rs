//! The SQL of links, keys and housekeeping on PostgreSQL, with the outcomes of SQLite's
//! `queries.rs` (same `StoreError` per case). Clicks and statistics are in `clicks.rs`.
//!
//! Several instances write concurrently here, where SQLite has one writer thread, so each write
//! is one statement or holds the locks it relies on: codes are claimed with
//! `INSERT … ON CONFLICT DO NOTHING` (a taken code is an answer, not an aborted transaction),
//! patches are a single `UPDATE`, the admin key is an upsert.

use deadpool_postgres::{GenericClient, Object};

use super::{QueryError, QueryResult};
use crate::domain::key::ApiKey;
use crate::domain::time::UnixSeconds;
use crate::domain::{ImportLink, ImportOutcome, Link, LinkPatch, NewLink, Role, ShortCode};
use crate::store::rows::{self, key_columns, key_from, link_columns, link_from};
use crate::store::{
    CreateOutcome, Cursor, IdempotencyRequest, ListFilter, ListOrder, ScopeClicks, StoreError,
};

/// Announces a committed change of the link in CTE `l` (see [`super::NOTIFY_CHANNEL`]); the
/// notification is sent only if the transaction commits. Its payload is `INSTANCE CODE`: the
/// sending instance (`snip.instance`, set on each of its sessions) has already updated its
/// own cache, and ignores it.
macro_rules! notify_l {
    () => {
        concat!(
            "pg_notify('",
            notify_channel!(),
            "', coalesce(current_setting('snip.instance', true), '') || ' ' || l.code)"
        )
    };
}

/// The end of an `INSERT INTO links … ` in CTE `l`: a taken code inserts nothing, an inserted
/// link is returned and announced ([`notify_l!`]).
macro_rules! inserted_and_announced {
    () => {
        concat!(
            " ON CONFLICT (code) DO NOTHING RETURNING ",
            link_columns!(),
            ") SELECT l.*, ",
            notify_l!(),
            " FROM l"
        )
    };
}

fn other(e: impl std::fmt::Display) -> QueryError {
    QueryError::Store(StoreError::Other(e.to_string()))
}

/// The idempotency record's outcome, if (key, Idempotency-Key) was seen before.
async fn replay(
    c: &impl GenericClient,
    idem: &IdempotencyRequest,
) -> QueryResult<Option<CreateOutcome>> {
    let stmt = c
        .prepare_cached(
            "SELECT request_hash, link_id FROM idempotency WHERE key_row_id = $1 AND idem_key = $2",
        )
        .await?;
    let Some(row) = c
        .query_opt(&stmt, &[&idem.key_row_id, &idem.idem_key])
        .await?
    else {
        return Ok(None);
    };
    let (hash, link_id): (Vec<u8>, i64) = (row.try_get(0)?, row.try_get(1)?);
    if hash != idem.request_hash {
        return Ok(Some(CreateOutcome::IdempotencyMismatch));
    }
    let stmt = c
        .prepare_cached(concat!(
            "SELECT ",
            link_columns!(),
            " FROM links WHERE id = $1"
        ))
        .await?;
    match c.query_opt(&stmt, &[&link_id]).await? {
        Some(row) => Ok(Some(CreateOutcome::Replayed(link_from(&row)?))),
        None => Err(StoreError::NotFound.into()),
    }
}

/// Creates a link: with an `Idempotency-Key`, in one transaction with its record. A concurrent
/// create with the same key (another instance, a client retrying early) waits on the record's
/// primary key; the loser rolls back its link and answers what the winner recorded.
pub async fn create_link(
    c: &mut Object,
    new: &NewLink,
    idem: Option<&IdempotencyRequest>,
    now: UnixSeconds,
) -> QueryResult<CreateOutcome> {
    let Some(idem) = idem else {
        return insert_link(&*c, new, now).await.map(CreateOutcome::Created);
    };
    let tx = c.transaction().await?;
    if let Some(seen) = replay(&tx, idem).await? {
        return Ok(seen);
    }
    let inserted = insert_link(&tx, new, now).await;
    let raced = match &inserted {
        Ok(link) => !record(&tx, idem, link.id, now).await?,
        // Perhaps taken by a concurrent create with this very key.
        Err(QueryError::Store(StoreError::Conflict(_))) => true,
        Err(_) => false,
    };
    if !raced {
        let link = inserted?;
        tx.commit().await?;
        return Ok(CreateOutcome::Created(link));
    }
    tx.rollback().await?;
    if let Some(seen) = replay(&*c, idem).await? {
        return Ok(seen);
    }
    match inserted {
        Err(e) => Err(e),
        Ok(_) => Err(StoreError::Unavailable(
            "a concurrent create with the same Idempotency-Key left no record; retry".into(),
        )
        .into()),
    }
}

/// Records the idempotency key of a create; `false` if a concurrent create recorded it first
/// (the insert waits for that transaction, then finds the key taken).
async fn record(
    c: &impl GenericClient,
    idem: &IdempotencyRequest,
    link_id: i64,
    now: UnixSeconds,
) -> QueryResult<bool> {
    let stmt = c
        .prepare_cached(
            "INSERT INTO idempotency (key_row_id, idem_key, request_hash, link_id, created_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
        )
        .await?;
    let n = c
        .execute(
            &stmt,
            &[
                &idem.key_row_id,
                &idem.idem_key,
                &idem.request_hash,
                &link_id,
                &now,
            ],
        )
        .await?;
    Ok(n == 1)
}

/// Inserts the link under the `UNIQUE` constraint on `code`: a taken custom code is
/// `Conflict`, a taken random code is redrawn.
pub(super) async fn insert_link(
    c: &impl GenericClient,
    new: &NewLink,
    now: UnixSeconds,
) -> QueryResult<Link> {
    let tags = serde_json::to_string(&new.tags).map_err(other)?;
    let stmt = c
        .prepare_cached(concat!(
            "WITH l AS (INSERT INTO links (code, url, title, tags, owner, created_at, updated_at, \
             expires_at, max_clicks, imported_clicks) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            inserted_and_announced!()
        ))
        .await?;
    let max_clicks = new.max_clicks.map(|m| m as i64);
    let (created_at, imported_clicks) = (new.created_at.unwrap_or(now), new.imported_clicks as i64);
    let try_insert = |code: ShortCode| {
        let (stmt, tags) = (&stmt, &tags);
        async move {
            let row = c
                .query_opt(
                    stmt,
                    &[
                        &code.as_str(),
                        &new.url.as_str(),
                        &new.title,
                        tags,
                        &new.owner,
                        &created_at,
                        &now,
                        &new.expires_at,
                        &max_clicks,
                        &imported_clicks,
                    ],
                )
                .await?;
            row.map(|r| link_from(&r)).transpose()
        }
    };
    for code in rows::candidates(&new.code) {
        if let Some(link) = try_insert(code).await? {
            return Ok(link);
        }
    }
    if let Some((len, space)) = rows::listable_space(&new.code)
        && let Some(code) = free_code(c, len, space).await?
        && let Some(link) = try_insert(code).await?
    {
        return Ok(link);
    }
    Err(rows::all_taken(&new.code).into())
}

/// Inserts several links in one statement, each with the code given (a taken code inserts
/// nothing: its link is missing from the answer). The codes must be distinct. Each inserted
/// link is announced, as by [`insert_link`].
pub(super) async fn insert_links(
    c: &impl GenericClient,
    links: &[(&NewLink, &ShortCode, UnixSeconds)],
) -> QueryResult<Vec<Link>> {
    let stmt = c
        .prepare_cached(concat!(
            "WITH l AS (INSERT INTO links (code, url, title, tags, owner, created_at, updated_at, \
             expires_at, max_clicks, imported_clicks) \
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::int8[], \
             $6::int8[], $7::int8[], $8::int8[], $9::int8[], $10::int8[])",
            inserted_and_announced!()
        ))
        .await?;
    let mut cols = InsertColumns::default();
    for (new, code, now) in links {
        cols.push(new, code, *now)?;
    }
    let rows = c
        .query(
            &stmt,
            &[
                &cols.code,
                &cols.url,
                &cols.title,
                &cols.tags,
                &cols.owner,
                &cols.created_at,
                &cols.updated_at,
                &cols.expires_at,
                &cols.max_clicks,
                &cols.imported_clicks,
            ],
        )
        .await?;
    rows.iter().map(|r| Ok(link_from(r)?)).collect()
}

/// The columns of [`insert_links`], one array each.
#[derive(Default)]
struct InsertColumns<'a> {
    code: Vec<&'a str>,
    url: Vec<&'a str>,
    title: Vec<Option<&'a str>>,
    tags: Vec<String>,
    owner: Vec<i64>,
    created_at: Vec<i64>,
    updated_at: Vec<i64>,
    expires_at: Vec<Option<i64>>,
    max_clicks: Vec<Option<i64>>,
    imported_clicks: Vec<i64>,
}

impl<'a> InsertColumns<'a> {
    fn push(&mut self, new: &'a NewLink, code: &'a ShortCode, now: UnixSeconds) -> QueryResult<()> {
        self.code.push(code.as_str());
        self.url.push(new.url.as_str());
        self.title.push(new.title.as_deref());
        self.tags
            .push(serde_json::to_string(&new.tags).map_err(other)?);
        self.owner.push(new.owner);
        self.created_at.push(new.created_at.unwrap_or(now));
        self.updated_at.push(now);
        self.expires_at.push(new.expires_at);
        self.max_clicks.push(new.max_clicks.map(|m| m as i64));
        self.imported_clicks.push(new.imported_clicks as i64);
        Ok(())
    }
}

/// A random never-used code of length `len` (`space` codes), if any is left.
async fn free_code(
    c: &impl GenericClient,
    len: usize,
    space: u64,
) -> QueryResult<Option<ShortCode>> {
    let rows = c
        .query(
            "SELECT code FROM links WHERE length(code) = $1",
            &[&(len as i32)],
        )
        .await?;
    let taken = rows
        .iter()
        .map(|r| r.try_get::<_, String>(0))
        .collect::<Result<std::collections::HashSet<_>, _>>()?;
    Ok(ShortCode::random_free(len, space, &taken))
}

/// Bulk insert in one statement; codes already taken (or repeated in `links`: the first wins)
/// are skipped. The inserted codes are announced (they may be cached as unknown elsewhere).
pub async fn import_links(
    c: &mut Object,
    links: &[ImportLink],
    owner: i64,
    now: UnixSeconds,
) -> QueryResult<Vec<ImportOutcome>> {
    let codes: Vec<&str> = links.iter().map(|l| l.code.as_str()).collect();
    let urls: Vec<&str> = links.iter().map(|l| l.url.as_str()).collect();
    let titles: Vec<Option<&str>> = links.iter().map(|l| l.title.as_deref()).collect();
    let tags = links
        .iter()
        .map(|l| serde_json::to_string(&l.tags))
        .collect::<Result<Vec<_>, _>>()
        .map_err(other)?;
    let numbers = ImportNumbers::of(links, now);
    let tx = c.transaction().await?;
    let inserted: Vec<String> = tx
        .query(
            "INSERT INTO links (code, url, title, tags, owner, created_at, updated_at, \
             expires_at, max_clicks, imported_clicks) \
             SELECT code, url, title, tags, $9, created_at, $10, expires_at, max_clicks, imported \
             FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::int8[], $6::int8[], \
             $7::int8[], $8::int8[]) \
             AS t (code, url, title, tags, created_at, expires_at, max_clicks, imported) \
             ON CONFLICT (code) DO NOTHING RETURNING code",
            &[
                &codes,
                &urls,
                &titles,
                &tags,
                &numbers.created,
                &numbers.expires,
                &numbers.max_clicks,
                &numbers.imported,
                &owner,
                &now,
            ],
        )
        .await?
        .iter()
        .map(|r| r.try_get(0))
        .collect::<Result<_, _>>()?;
    if !inserted.is_empty() {
        tx.execute(
            concat!(
                "SELECT pg_notify('",
                notify_channel!(),
                "', coalesce(current_setting('snip.instance', true), '') || ' ' || code) \
                 FROM UNNEST($1::text[]) AS code"
            ),
            &[&inserted],
        )
        .await?;
    }
    let existing = stored_links(&tx, &codes).await?;
    tx.commit().await?;
    Ok(import_outcomes(links, inserted, &existing))
}

/// `code → (url, live)` of the stored links among `codes`.
async fn stored_links(
    c: &impl GenericClient,
    codes: &[&str],
) -> QueryResult<std::collections::HashMap<String, (String, bool)>> {
    Ok(c.query(
        "SELECT code, url, deleted_at IS NULL FROM links WHERE code = ANY($1)",
        &[&codes],
    )
    .await?
    .iter()
    .map(|r| Ok((r.try_get(0)?, (r.try_get(1)?, r.try_get(2)?))))
    .collect::<Result<_, tokio_postgres::Error>>()?)
}

/// The number columns of an import, one array each.
struct ImportNumbers {
    created: Vec<i64>,
    expires: Vec<Option<i64>>,
    max_clicks: Vec<Option<i64>>,
    imported: Vec<i64>,
}

impl ImportNumbers {
    fn of(links: &[ImportLink], now: UnixSeconds) -> Self {
        ImportNumbers {
            created: links.iter().map(|l| l.created_at.unwrap_or(now)).collect(),
            expires: links.iter().map(|l| l.expires_at).collect(),
            max_clicks: links
                .iter()
                .map(|l| l.max_clicks.map(|m| m as i64))
                .collect(),
            imported: links.iter().map(|l| l.imported_clicks as i64).collect(),
        }
    }
}

/// What an import did with each of `links`: the first of them with an `inserted` code is
/// imported; the others are compared with the stored link (`existing`: url, live).
fn import_outcomes(
    links: &[ImportLink],
    inserted: Vec<String>,
    existing: &std::collections::HashMap<String, (String, bool)>,
) -> Vec<ImportOutcome> {
    let mut fresh: std::collections::HashSet<String> = inserted.into_iter().collect();
    links
        .iter()
        .map(|link| {
            if fresh.remove(link.code.as_str()) {
                return ImportOutcome::Imported;
            }
            match existing.get(link.code.as_str()) {
                Some((url, live)) => rows::import_outcome(link, url, *live),
                None => ImportOutcome::Taken,
            }
        })
        .collect()
}

/// Applies a patch to a live link that `owner` (if given) owns, in one statement (no lost
/// update between instances); `NotFound` otherwise. `CASE WHEN $flag` distinguishes "leave
/// as it is" from "clear".
pub async fn update_link(
    c: &impl GenericClient,
    code: &str,
    owner: Option<i64>,
    patch: &LinkPatch,
    now: UnixSeconds,
) -> QueryResult<Link> {
    let stmt = c
        .prepare_cached(concat!(
            "WITH l AS (UPDATE links SET url = COALESCE($3::text, url), \
             title = CASE WHEN $4::bool THEN $5::text ELSE title END, \
             tags = COALESCE($6::text, tags), \
             expires_at = CASE WHEN $7::bool THEN $8::int8 ELSE expires_at END, \
             max_clicks = CASE WHEN $9::bool THEN $10::int8 ELSE max_clicks END, \
             disabled = COALESCE($11::bool, disabled), updated_at = $12, \
             takedown_reason = CASE WHEN $13::bool THEN $14::text ELSE takedown_reason END \
             WHERE code = $1 AND deleted_at IS NULL AND ($2::int8 IS NULL OR owner = $2) \
             RETURNING ",
            link_columns!(),
            ") SELECT l.*, ",
            notify_l!(),
            " FROM l"
        ))
        .await?;
    let tags = patch
        .tags
        .as_ref()
        .map(serde_json::to_string)
        .transpose()
        .map_err(other)?;
    let max_clicks = patch.max_clicks.map(|m| m.map(|m| m as i64));
    let row = c
        .query_opt(
            &stmt,
            &[
                &code,
                &owner,
                &patch.url.as_ref().map(|u| u.as_str()),
                &patch.title.is_some(),
                &patch.title.clone().flatten(),
                &tags,
                &patch.expires_at.is_some(),
                &patch.expires_at.flatten(),
                &max_clicks.is_some(),
                &max_clicks.flatten(),
                &patch.disabled,
                &now,
                &patch.takedown.is_some(),
                &patch.takedown.clone().flatten(),
            ],
        )
        .await?;
    match row {
        Some(row) => Ok(link_from(&row)?),
        None => Err(StoreError::NotFound.into()),
    }
}

/// Turns a live link that `owner` (if given) owns into a tombstone; `NotFound` otherwise.
pub async fn delete_link(
    c: &impl GenericClient,
    code: &str,
    owner: Option<i64>,
    now: UnixSeconds,
) -> QueryResult<()> {
    let stmt = c
        .prepare_cached(concat!(
            "WITH l AS (UPDATE links SET deleted_at = $2, updated_at = $2 \
             WHERE code = $1 AND deleted_at IS NULL AND ($3::int8 IS NULL OR owner = $3) \
             RETURNING code) SELECT ",
            notify_l!(),
            " FROM l"
        ))
        .await?;
    match c.execute(&stmt, &[&code, &now, &owner]).await? {
        0 => Err(StoreError::NotFound.into()),
        _ => Ok(()),
    }
}

/// A list of links: `$1` owner, `$2` cursor id, `$3` limit, `$4` lower-cased text, `$5` tag
/// (one statement per order, so each can walk the primary key).
macro_rules! list_links_sql {
    ($past:literal, $order:literal) => {
        concat!(
            "SELECT ",
            link_columns!(),
            " FROM links WHERE deleted_at IS NULL AND ($1::int8 IS NULL OR owner = $1) AND id ",
            $past,
            " $2 AND ($4::text IS NULL OR strpos(lower(code), $4) > 0 \
             OR strpos(lower(url), $4) > 0 OR strpos(lower(coalesce(title, '')), $4) > 0) \
             AND ($5::text IS NULL OR tags::jsonb ? $5) ORDER BY id ",
            $order,
            " LIMIT $3"
        )
    };
}

pub async fn list_links(
    c: &impl GenericClient,
    owner: Option<i64>,
    filter: &ListFilter,
    at: Cursor,
) -> QueryResult<Vec<Link>> {
    let (sql, start) = match filter.order {
        ListOrder::NewestFirst => (list_links_sql!("<", "DESC"), i64::MAX),
        ListOrder::OldestFirst => (list_links_sql!(">", "ASC"), i64::MIN),
    };
    let stmt = c.prepare_cached(sql).await?;
    let limit = i64::try_from(at.limit).unwrap_or(i64::MAX);
    let past = at.past_id.unwrap_or(start);
    c.query(&stmt, &[&owner, &past, &limit, &filter.text, &filter.tag])
        .await?
        .iter()
        .map(|r| link_from(r).map_err(QueryError::from))
        .collect()
}

pub async fn links_by_id(c: &impl GenericClient, ids: &[i64]) -> QueryResult<Vec<Link>> {
    let stmt = c
        .prepare_cached(concat!(
            "SELECT ",
            link_columns!(),
            " FROM links WHERE deleted_at IS NULL AND id = ANY($1)"
        ))
        .await?;
    c.query(&stmt, &[&ids])
        .await?
        .iter()
        .map(|r| link_from(r).map_err(QueryError::from))
        .collect()
}

pub async fn link_tags(
    c: &impl GenericClient,
    owner: Option<i64>,
    limit: usize,
) -> QueryResult<Vec<String>> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = c
        .query(
            "SELECT DISTINCT t FROM links, jsonb_array_elements_text(links.tags::jsonb) t \
             WHERE links.deleted_at IS NULL AND ($1::int8 IS NULL OR links.owner = $1) \
             ORDER BY t LIMIT $2",
            &[&owner, &limit],
        )
        .await?;
    rows.iter()
        .map(|r| r.try_get(0).map_err(QueryError::from))
        .collect()
}

/// The rows `scope_clicks` sums: `$1` owner, `$2` the earliest window start.
const SCOPE_ROWS: &str = "SELECT x.link_id, l.code, x.t, x.n FROM ( \
     SELECT link_id, hour * 3600 AS t, clicks - bot_clicks AS n FROM clicks_hourly \
      WHERE hour >= $2::int8 / 3600 \
     UNION ALL SELECT link_id, day * 86400, clicks - bot_clicks FROM clicks_daily \
      WHERE day >= $2::int8 / 86400) x \
     JOIN links l ON l.id = x.link_id \
     WHERE l.deleted_at IS NULL AND ($1::int8 IS NULL OR l.owner = $1)";

fn count(r: &tokio_postgres::Row, i: usize) -> QueryResult<u64> {
    Ok(r.try_get::<_, i64>(i)?.max(0) as u64)
}

/// Each link's human clicks since each of the three window starts.
async fn per_link_windows(
    c: &impl GenericClient,
    owner: Option<i64>,
    [first, second, third]: [UnixSeconds; 3],
) -> QueryResult<Vec<(i64, String, [u64; 3])>> {
    c.query(
        &format!(
            "SELECT link_id, code, SUM(n)::int8, SUM(CASE WHEN t >= $3 THEN n ELSE 0 END)::int8, \
             SUM(CASE WHEN t >= $4 THEN n ELSE 0 END)::int8 FROM ({SCOPE_ROWS}) r \
             GROUP BY link_id, code"
        ),
        &[&owner, &first, &second, &third],
    )
    .await?
    .iter()
    .map(|r| {
        Ok((
            r.try_get(0)?,
            r.try_get(1)?,
            [count(r, 2)?, count(r, 3)?, count(r, 4)?],
        ))
    })
    .collect()
}

/// The stored human clicks of one scope's live links since three window starts (see
/// [`crate::store::Store::scope_clicks`]), hourly and daily rows alike.
pub async fn scope_clicks(
    c: &impl GenericClient,
    owner: Option<i64>,
    windows: [UnixSeconds; 3],
) -> QueryResult<ScopeClicks> {
    let [first, ..] = windows;
    let per_link = per_link_windows(c, owner, windows).await?;
    let per_day = c
        .query(
            &format!(
                "SELECT t / 86400 AS day, SUM(n)::int8 FROM ({SCOPE_ROWS}) r GROUP BY day ORDER BY day"
            ),
            &[&owner, &first],
        )
        .await?
        .iter()
        .map(|r| Ok((r.try_get(0)?, count(r, 1)?)))
        .collect::<QueryResult<Vec<_>>>()?;
    let dims = c
        .query(
            "SELECT d.dims FROM link_days d JOIN links l ON l.id = d.link_id \
             WHERE d.day >= $2::int8 / 86400 AND l.deleted_at IS NULL \
             AND ($1::int8 IS NULL OR l.owner = $1)",
            &[&owner, &first],
        )
        .await?
        .iter()
        .map(|r| r.try_get(0).map_err(QueryError::from))
        .collect::<QueryResult<Vec<_>>>()?;
    Ok(ScopeClicks {
        per_link,
        per_day,
        dims,
    })
}

pub async fn create_session(
    c: &impl GenericClient,
    token_hash: &[u8],
    key_row_id: i64,
    now: UnixSeconds,
    expires_at: UnixSeconds,
) -> QueryResult<()> {
    c.execute(
        "INSERT INTO sessions (token_hash, key_row_id, created_at, expires_at) \
         VALUES ($1, $2, $3, $4)",
        &[&token_hash, &key_row_id, &now, &expires_at],
    )
    .await?;
    Ok(())
}

pub async fn find_session(
    c: &impl GenericClient,
    token_hash: &[u8],
    now: UnixSeconds,
) -> QueryResult<Option<ApiKey>> {
    let stmt = c
        .prepare_cached(concat!(
            "SELECT ",
            key_columns!(),
            " FROM api_keys WHERE revoked_at IS NULL AND row_id = \
             (SELECT key_row_id FROM sessions WHERE token_hash = $1 AND expires_at > $2)"
        ))
        .await?;
    match c.query_opt(&stmt, &[&token_hash, &now]).await? {
        Some(row) => Ok(Some(key_from(&row)?)),
        None => Ok(None),
    }
}

pub async fn delete_session(c: &impl GenericClient, token_hash: &[u8]) -> QueryResult<()> {
    c.execute("DELETE FROM sessions WHERE token_hash = $1", &[&token_hash])
        .await?;
    Ok(())
}

/// The day's visitor-hash key: the first instance to ask creates it, every other one reads
/// the same; keys of days before `day - 1` are deleted.
pub async fn visitor_key(c: &impl GenericClient, day: i64) -> QueryResult<[u8; 16]> {
    let fresh: [u8; 16] = rand::random();
    c.execute(
        "INSERT INTO visitor_keys (day, key) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        &[&day, &fresh.as_slice()],
    )
    .await?;
    c.execute("DELETE FROM visitor_keys WHERE day < $1", &[&(day - 1)])
        .await?;
    let key: Vec<u8> = c
        .query_opt("SELECT key FROM visitor_keys WHERE day = $1", &[&day])
        .await?
        .ok_or(StoreError::NotFound)?
        .try_get(0)?;
    key.try_into()
        .map_err(|_| other("visitor key of the wrong length"))
}

pub async fn insert_key(
    c: &impl GenericClient,
    id: &str,
    name: &str,
    role: Role,
    hash: &[u8],
    now: UnixSeconds,
) -> QueryResult<ApiKey> {
    let row = c
        .query_one(
            concat!(
                "INSERT INTO api_keys (id, name, role, key_hash, created_at) \
                 VALUES ($1, $2, $3, $4, $5) RETURNING ",
                key_columns!()
            ),
            &[&id, &name, &role.as_str(), &hash, &now],
        )
        .await?;
    Ok(key_from(&row)?)
}

/// Makes sure a key with this hash exists with the admin role, in one upsert: several
/// instances starting with the same `--admin-key` must not race into a conflict.
pub async fn ensure_admin_key(
    c: &impl GenericClient,
    hash: &[u8],
    now: UnixSeconds,
) -> QueryResult<ApiKey> {
    let row = c
        .query_one(
            concat!(
                "INSERT INTO api_keys (id, name, role, key_hash, created_at) \
                 VALUES ($1, 'admin (from --admin-key)', 'admin', $2, $3) \
                 ON CONFLICT (key_hash) DO UPDATE SET role = 'admin', revoked_at = NULL \
                 RETURNING ",
                key_columns!()
            ),
            &[&crate::domain::key::new_key_id(), &hash, &now],
        )
        .await?;
    Ok(key_from(&row)?)
}

pub async fn count_keys(c: &impl GenericClient) -> QueryResult<u64> {
    let n: i64 = c
        .query_one(
            "SELECT COUNT(*) FROM api_keys WHERE revoked_at IS NULL",
            &[],
        )
        .await?
        .try_get(0)?;
    Ok(n.max(0) as u64)
}

pub async fn find_key(c: &impl GenericClient, hash: &[u8]) -> QueryResult<Option<ApiKey>> {
    let stmt = c
        .prepare_cached(concat!(
            "SELECT ",
            key_columns!(),
            " FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL"
        ))
        .await?;
    match c.query_opt(&stmt, &[&hash]).await? {
        Some(row) => Ok(Some(key_from(&row)?)),
        None => Ok(None),
    }
}

pub async fn list_keys(c: &impl GenericClient) -> QueryResult<Vec<ApiKey>> {
    c.query(
        concat!(
            "SELECT ",
            key_columns!(),
            " FROM api_keys WHERE revoked_at IS NULL ORDER BY row_id"
        ),
        &[],
    )
    .await?
    .iter()
    .map(|r| key_from(r).map_err(QueryError::from))
    .collect()
}

pub async fn revoke_key(
    c: &impl GenericClient,
    id: &str,
    force: bool,
    now: UnixSeconds,
) -> QueryResult<()> {
    // One statement: the active admin rows are locked first, so two concurrent revocations of
    // the last two admins cannot both see the other one still active (the second re-reads the
    // rows after the first commits).
    let n = c
        .execute(
            "WITH admins AS (SELECT id FROM api_keys WHERE role = 'admin' AND revoked_at IS NULL \
               FOR UPDATE) \
             UPDATE api_keys SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL \
               AND ($3 OR role <> 'admin' OR EXISTS (SELECT 1 FROM admins WHERE id <> $1))",
            &[&id, &now, &force],
        )
        .await?;
    if n == 0 {
        let active = c
            .query_opt(
                "SELECT 1 FROM api_keys WHERE id = $1 AND revoked_at IS NULL",
                &[&id],
            )
            .await?;
        return Err(match active {
            Some(_) => StoreError::Conflict(crate::store::LAST_ADMIN.into()),
            None => StoreError::NotFound,
        }
        .into());
    }
    Ok(())
}

/// Records of applied click flushes are kept this long: a flush is retried within seconds,
/// never a day later.
const CLICK_FLUSH_RECORD_SECS: i64 = 86_400;

/// Forgets idempotency records created before `before` (the count is returned) and click
/// flush records older than a day.
pub async fn purge(
    c: &impl GenericClient,
    before: UnixSeconds,
    now: UnixSeconds,
) -> QueryResult<u64> {
    c.execute("DELETE FROM sessions WHERE expires_at <= $1", &[&now])
        .await?;
    let n = c
        .execute("DELETE FROM idempotency WHERE created_at < $1", &[&before])
        .await?;
    c.execute(
        "DELETE FROM click_flushes WHERE applied_at < $1",
        &[&(now - CLICK_FLUSH_RECORD_SECS)],
    )
    .await?;
    Ok(n)
}

pub async fn ping(c: &impl GenericClient) -> QueryResult<()> {
    c.query_one("SELECT 1", &[]).await?;
    Ok(())
}
