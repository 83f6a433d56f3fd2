//! Importing links: the wire shape of one link to import ([`ImportRow`], what
//! `POST /api/v1/links/import` takes and `snip import` builds from a source file), its
//! validation (the API's rules, except that an import may bring a past expiry and keeps the
//! creation time and the click total of the shortener it comes from), and [`apply`], which
//! writes a batch to a store: links with a code in one durable transaction (a code already
//! present with the same destination is left as it is, so a re-run imports nothing twice),
//! links without one one by one with an idempotency record derived from the source row.
//!
//! The offline import (`snip import --database`) writes through [`apply`] directly; the server
//! writes through it from `service::links::import`.

pub mod sources;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use crate::domain::link::{CodeChoice, check_max_clicks, check_tags, check_title};
use crate::domain::time::{UnixSeconds, parse_rfc3339};
use crate::domain::{
    ApiKeySecret, Destination, ImportLink, ImportOutcome, NewLink, Role, ShortCode,
};
use crate::store::{CreateOutcome, IdempotencyRequest, Store, StoreOptions, StoreResult};

/// Links in one request of `POST /api/v1/links/import`, and in one batch of `snip import`.
pub const MAX_BATCH: usize = 1000;

/// Name of the key that owns links imported into a store that has no admin key yet. It is
/// revoked as soon as it is created: it can never authenticate; admins see and manage its
/// links, and the first `snip serve` still generates an admin key.
pub const PLACEHOLDER_OWNER: &str = "snip import";

/// One link to import. The fields of a create (`url`, `code`, `title`, `tags`, `expires_at`,
/// `max_clicks`) with the same rules, except that `expires_at` may be past (the link then
/// answers 410, and its code stays reserved), plus what a migration keeps. The rules are
/// checked per link: a link that breaks one is answered `rejected` in its result (the request
/// itself is not refused), so the schema gives only the types. `null` is the same as absent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImportRow {
    pub url: String,
    /// The code to keep; a random one when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::domain::json::whole_number"
    )]
    pub max_clicks: Option<i64>,
    /// When the link was created where it comes from; now when absent. Not in the future.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    /// Clicks the shortener it comes from counted (shown as `imported_clicks` in its stats).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::domain::json::whole_number"
    )]
    pub clicks: Option<i64>,
    /// For a link without `code`: the same key (with the same link) creates one link however
    /// often it is sent (for at least 48 hours). `snip import` derives it from the source row.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
}

/// What happened to one link of an import.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ImportStatus {
    /// A new link.
    Imported,
    /// The code already exists with the same destination (nothing changed).
    Present,
    /// The code is, or was, another destination's.
    Taken,
    /// The link breaks a rule (`detail` says which).
    Rejected,
}

/// The answer for one link, in the order they were sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ImportResult {
    pub status: ImportStatus,
    /// The link's code (the random one given to a link sent without); absent when rejected
    /// without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub code: Option<String>,
    /// Why it was rejected or taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub detail: Option<String>,
}

impl ImportResult {
    pub fn rejected(code: Option<String>, detail: String) -> Self {
        ImportResult {
            status: ImportStatus::Rejected,
            code,
            detail: Some(detail),
        }
    }
}

/// A validated link to import.
#[derive(Debug, Clone)]
pub enum Item {
    /// With its own code: batched.
    Coded(ImportLink),
    /// Without: a random code, one create each, idempotent by the row's key and content.
    Random {
        link: ImportLink,
        idempotency: Option<(String, Vec<u8>)>,
    },
}

impl Item {
    pub fn destination(&self) -> &Destination {
        match self {
            Item::Coded(link) | Item::Random { link, .. } => &link.url,
        }
    }
}

/// Checks a row by the API's rules (`own_origins`: destinations that would loop), at `now`.
pub fn validate(
    row: ImportRow,
    own_origins: &[url::Url],
    now: UnixSeconds,
) -> Result<Item, String> {
    let url = Destination::parse(&row.url, own_origins).map_err(|e| e.to_string())?;
    let code = row
        .code
        .as_deref()
        .map(ShortCode::parse_custom)
        .transpose()
        .map_err(|e| e.to_string())?;
    let time = |field: &str, raw: &Option<String>| {
        raw.as_deref()
            .map(|t| parse_rfc3339(t).ok_or(format!("{field}: must be an RFC 3339 timestamp")))
            .transpose()
    };
    let created_at = time("created_at", &row.created_at)?;
    if created_at.is_some_and(|t| t > now + 300) {
        return Err("created_at: must not be in the future".into());
    }
    let idempotency = match (&row.idempotency_key, &code) {
        (Some(key), None) if key.is_empty() || key.len() > 200 => {
            return Err("idempotency_key: must be 1 to 200 bytes".into());
        }
        (Some(key), None) => Some((key.clone(), row_hash(&row))),
        _ => None,
    };
    let link = ImportLink {
        code: code
            .clone()
            .unwrap_or_else(|| ShortCode::from_trusted(String::new())),
        url,
        title: row.title.map(check_title).transpose()?,
        tags: check_tags(row.tags)?,
        expires_at: time("expires_at", &row.expires_at)?,
        max_clicks: row.max_clicks.map(check_max_clicks).transpose()?,
        created_at,
        imported_clicks: clicks(row.clicks)?,
    };
    Ok(match code {
        Some(_) => Item::Coded(link),
        None => Item::Random { link, idempotency },
    })
}

/// An imported click total: not negative.
fn clicks(raw: Option<i64>) -> Result<u64, String> {
    u64::try_from(raw.unwrap_or(0)).map_err(|_| "clicks: must not be negative".to_string())
}

/// SHA-256 of the row as JSON (its fields in declaration order): a retry with the same key
/// and a different link is a mismatch, not a replay.
fn row_hash(row: &ImportRow) -> Vec<u8> {
    Sha256::digest(serde_json::to_vec(row).unwrap_or_default()).to_vec()
}

/// Writes `items` owned by `owner` (`Err(reason)` items are answered as rejected); random codes
/// have `code_len` characters. One result per item, in order.
pub async fn apply(
    store: &dyn Store,
    owner: i64,
    items: Vec<Result<Item, String>>,
    code_len: usize,
) -> StoreResult<Vec<ImportResult>> {
    let mut results: Vec<Option<ImportResult>> = vec![None; items.len()];
    let mut coded = Vec::new();
    let mut coded_at = Vec::new();
    let mut random = Vec::new();
    for (i, item) in items.into_iter().enumerate() {
        match item {
            Err(why) => results[i] = Some(ImportResult::rejected(None, why)),
            Ok(Item::Coded(link)) => {
                coded_at.push(i);
                coded.push(link);
            }
            Ok(Item::Random { link, idempotency }) => random.push((i, link, idempotency)),
        }
    }
    let codes: Vec<String> = coded.iter().map(|l| l.code.to_string()).collect();
    if !coded.is_empty() {
        let outcomes = store.import_links(coded, owner).await?;
        for ((i, outcome), code) in coded_at.into_iter().zip(outcomes).zip(codes) {
            results[i] = Some(outcome_result(outcome, code));
        }
    }
    for (i, link, idempotency) in random {
        results[i] = Some(create_random(store, owner, link, idempotency, code_len).await?);
    }
    Ok(results.into_iter().flatten().collect())
}

fn outcome_result(outcome: ImportOutcome, code: String) -> ImportResult {
    let (status, detail) = match outcome {
        ImportOutcome::Imported => (ImportStatus::Imported, None),
        ImportOutcome::Present => (ImportStatus::Present, None),
        ImportOutcome::Taken => (
            ImportStatus::Taken,
            Some(format!("code {code} is taken by another destination")),
        ),
    };
    ImportResult {
        status,
        code: Some(code),
        detail,
    }
}

async fn create_random(
    store: &dyn Store,
    owner: i64,
    link: ImportLink,
    idempotency: Option<(String, Vec<u8>)>,
    code_len: usize,
) -> StoreResult<ImportResult> {
    let new = NewLink {
        code: CodeChoice::Random { len: code_len },
        url: link.url,
        title: link.title,
        tags: link.tags,
        owner,
        expires_at: link.expires_at,
        max_clicks: link.max_clicks,
        created_at: link.created_at,
        imported_clicks: link.imported_clicks,
    };
    let idempotency = idempotency.map(|(key, hash)| IdempotencyRequest {
        key_row_id: owner,
        idem_key: format!("import:{key}"),
        request_hash: hash,
    });
    let result = |status, link: crate::domain::Link| ImportResult {
        status,
        code: Some(link.code.to_string()),
        detail: None,
    };
    Ok(match store.create_link(new, idempotency).await? {
        CreateOutcome::Created(link) => result(ImportStatus::Imported, link),
        CreateOutcome::Replayed(link) => result(ImportStatus::Present, link),
        CreateOutcome::IdempotencyMismatch => ImportResult {
            status: ImportStatus::Taken,
            code: None,
            detail: Some("idempotency_key: used before for another link".into()),
        },
    })
}

/// A store opened for an offline import, and the key its links belong to.
pub struct OfflineStore {
    pub store: Arc<dyn Store>,
    pub owner: i64,
}

impl OfflineStore {
    /// Opens (or creates) the store; links are owned by the oldest active admin key, or by a
    /// revoked placeholder key when it has none yet.
    pub async fn open(database: &crate::config::Database) -> anyhow::Result<OfflineStore> {
        // Large batches: a long timeout for each.
        let options = StoreOptions::one_shot(Duration::from_secs(120), 2);
        let store: Arc<dyn Store> = crate::store::open(database, &options).await?;
        let owner = owner(store.as_ref()).await?;
        Ok(OfflineStore { store, owner })
    }

    /// Writes one batch (see [`apply`]).
    pub async fn write(
        &self,
        items: Vec<Result<Item, String>>,
        code_len: usize,
    ) -> anyhow::Result<Vec<ImportResult>> {
        apply(self.store.as_ref(), self.owner, items, code_len)
            .await
            .context("writing a batch of links")
    }
}

/// The oldest active admin key, or a new, revoked placeholder key when there is none.
async fn owner(store: &dyn Store) -> anyhow::Result<i64> {
    if let Some(admin) = store
        .list_keys()
        .await
        .context("listing API keys")?
        .into_iter()
        .find(|k| k.role == Role::Admin)
    {
        return Ok(admin.row_id);
    }
    let placeholder = store
        .create_key(
            PLACEHOLDER_OWNER.into(),
            Role::Admin,
            ApiKeySecret::generate().hash(),
        )
        .await
        .context("creating the owner of imported links")?;
    store
        .revoke_key(&placeholder.id, true)
        .await
        .context("revoking the owner of imported links")?;
    Ok(placeholder.row_id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sqlite::SqliteStore;

    fn row(code: Option<&str>, url: &str) -> ImportRow {
        ImportRow {
            url: url.into(),
            code: code.map(str::to_string),
            ..ImportRow::default()
        }
    }

    #[test]
    fn rows_are_validated_like_the_api_except_for_past_expiry() {
        let now = 2_000_000_000;
        let ok = |r: ImportRow| validate(r, &[], now);
        assert!(matches!(
            ok(row(Some("abc"), "https://e.example/")),
            Ok(Item::Coded(_))
        ));
        assert!(matches!(
            ok(row(None, "https://e.example/")),
            Ok(Item::Random { .. })
        ));
        assert!(
            ok(row(Some("api"), "https://e.example/")).is_err(),
            "reserved"
        );
        assert!(ok(row(Some("abc"), "javascript:alert(1)")).is_err());
        let past = ImportRow {
            expires_at: Some("2001-01-01T00:00:00Z".into()),
            created_at: Some("2000-01-01T00:00:00Z".into()),
            clicks: Some(7),
            ..row(Some("abc"), "https://e.example/")
        };
        let Ok(Item::Coded(link)) = ok(past) else {
            panic!("a past expiry is kept")
        };
        assert_eq!(
            (link.created_at, link.expires_at),
            (Some(946_684_800), Some(978_307_200))
        );
        assert_eq!(link.imported_clicks, 7);
        let future = ImportRow {
            created_at: Some("2100-01-01T00:00:00Z".into()),
            ..row(None, "https://e.example/")
        };
        assert!(ok(future).unwrap_err().contains("created_at"));
        let zero = ImportRow {
            max_clicks: Some(0),
            ..row(None, "https://e.example/")
        };
        assert!(ok(zero).unwrap_err().contains("max_clicks"));
    }

    async fn store_with_admin(dir: &std::path::Path) -> Arc<dyn Store> {
        let store = SqliteStore::open(&dir.join("snip.db"), Duration::from_secs(5)).unwrap();
        store
            .create_key("admin".into(), Role::Admin, vec![1, 2, 3])
            .await
            .unwrap();
        Arc::new(store)
    }

    #[tokio::test]
    async fn a_batch_imports_new_codes_reports_present_and_taken_ones_and_rejects() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_with_admin(dir.path()).await;
        let items = vec![
            validate(row(Some("abc"), "https://a.example/"), &[], 0),
            validate(row(Some("abd"), "https://b.example/"), &[], 0),
            validate(row(Some("abc"), "https://a.example/"), &[], 0),
            validate(row(Some("abc"), "https://c.example/"), &[], 0),
            validate(row(Some("api"), "https://c.example/"), &[], 0),
        ];
        let statuses: Vec<_> = apply(store.as_ref(), 1, items, 7)
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.status)
            .collect();
        use ImportStatus::*;
        assert_eq!(statuses, [Imported, Imported, Present, Taken, Rejected]);
        let link = store.get_link("abc").await.unwrap().unwrap();
        assert_eq!(link.url, "https://a.example/");
    }

    #[tokio::test]
    async fn links_without_a_code_are_created_once_per_idempotency_key() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_with_admin(dir.path()).await;
        let keyed = ImportRow {
            idempotency_key: Some("row-1".into()),
            created_at: Some("2020-01-01T00:00:00Z".into()),
            clicks: Some(3),
            ..row(None, "https://a.example/")
        };
        let now = crate::domain::time::now();
        let first = apply(
            store.as_ref(),
            1,
            vec![validate(keyed.clone(), &[], now)],
            7,
        )
        .await
        .unwrap();
        let again = apply(store.as_ref(), 1, vec![validate(keyed, &[], now)], 7)
            .await
            .unwrap();
        assert_eq!(first[0].status, ImportStatus::Imported);
        assert_eq!(again[0].status, ImportStatus::Present);
        assert_eq!(first[0].code, again[0].code);
        let link = store
            .get_link(first[0].code.as_deref().unwrap())
            .await
            .unwrap()
            .unwrap();
        assert_eq!((link.created_at, link.imported_clicks), (1_577_836_800, 3));
    }

    #[tokio::test]
    async fn an_offline_import_into_a_new_store_leaves_no_usable_key() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("new/snip.db");
        let database =
            crate::config::Database::parse(&format!("sqlite://{}", db.display())).unwrap();
        let offline = OfflineStore::open(&database).await.unwrap();
        let results = offline
            .write(
                vec![validate(row(Some("abc"), "https://a.example/"), &[], 0)],
                7,
            )
            .await
            .unwrap();
        assert_eq!(results[0].status, ImportStatus::Imported);
        drop(offline);
        let store = SqliteStore::open(&db, Duration::from_secs(5)).unwrap();
        assert!(store.get_link("abc").await.unwrap().is_some());
        // The owner is revoked: `serve` still sees a store without keys and generates one.
        assert_eq!(store.count_keys().await.unwrap(), 0);
    }
}
