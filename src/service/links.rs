//! Creating, reading, changing and deleting links. Writes commit in the store first, then
//! invalidate this instance's caches for the code (and Redis's), so the next redirect here
//! sees the change; other instances hear of it from the store's change feed (`coherence`).

use sha2::{Digest, Sha256};

use super::error::{ServiceError, ServiceResult};
use crate::domain::key::Scope;
use crate::domain::{Link, LinkPatch, NewLink, ShortCode};
use crate::import::{ImportResult, ImportRow, ImportStatus};
use crate::service::app::App;
pub use crate::store::IdempotencyRequest;
use crate::store::{CreateOutcome, Cursor};
pub use crate::store::{ListFilter, ListOrder};

/// A page of links, and whether more follow.
pub struct Page {
    pub links: Vec<Link>,
    pub more: bool,
}

/// The idempotency record of a create: `key` (the `Idempotency-Key`) scoped to the key row
/// `caller`, with the hash of `body`'s canonical form (sorted members, no whitespace), so
/// that formatting does not matter.
pub fn idempotency(key: &str, caller: i64, body: &serde_json::Value) -> IdempotencyRequest {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    IdempotencyRequest {
        key_row_id: caller,
        idem_key: key.to_string(),
        request_hash: Sha256::digest(&bytes).to_vec(),
    }
}

/// Creates a link (or replays the create that used the same idempotency record).
pub async fn create(
    app: &App,
    new: NewLink,
    idempotency: Option<IdempotencyRequest>,
) -> ServiceResult<Link> {
    let created = app
        .store
        .create_link(new, idempotency)
        .await
        .map_err(|e| ServiceError::from_store(e, "link"))?;
    match created {
        CreateOutcome::Created(link) => {
            // A negative-cache entry for this code must not outlive its creation.
            app.cache.invalidate(link.code.as_str());
            Ok(link)
        }
        // The link this request created was deleted since: answer as a read of it would,
        // rather than replay a link that no longer exists.
        CreateOutcome::Replayed(link) if link.deleted => Err(ServiceError::NotFound("link")),
        CreateOutcome::Replayed(link) => Ok(link),
        CreateOutcome::IdempotencyMismatch => Err(ServiceError::IdempotencyMismatch),
    }
}

/// Imports `rows` owned by the key `owner` (see [`crate::import`]): each validated like a
/// create (the deny list included), then written in one batch. One result per row, in order.
pub async fn import(
    app: &App,
    owner: i64,
    rows: Vec<ImportRow>,
) -> ServiceResult<Vec<ImportResult>> {
    let now = crate::domain::time::now();
    let items = rows
        .into_iter()
        .map(|row| {
            let item = crate::import::validate(row, &app.own_origins, now)?;
            match app.deny.denies_url(item.destination().url()) {
                Some(entry) => {
                    metrics::counter!("snip_denied_destinations_total", "at" => "write")
                        .increment(1);
                    Err(format!("destination_denied: {entry}"))
                }
                None => Ok(item),
            }
        })
        .collect();
    let results = crate::import::apply(app.store.as_ref(), owner, items, app.settings.code_length)
        .await
        .map_err(|e| ServiceError::from_store(e, "link"))?;
    for code in results
        .iter()
        .filter(|r| r.status == ImportStatus::Imported)
        .filter_map(|r| r.code.as_deref())
    {
        // A negative-cache entry for this code must not outlive its creation.
        app.cache.invalidate(code);
    }
    Ok(results)
}

/// A live link in `scope`.
pub async fn find_visible(app: &App, scope: Scope, code: &str) -> ServiceResult<Link> {
    if !ShortCode::could_be_code(code) {
        return Err(ServiceError::NotFound("link"));
    }
    match app.store.get_link(code).await {
        Ok(Some(link)) if !link.deleted && scope.includes(link.owner) => Ok(link),
        Ok(_) => Err(ServiceError::NotFound("link")),
        Err(e) => Err(ServiceError::from_store(e, "link")),
    }
}

/// Whether a custom code could be given to a new link: well-formed, not reserved, and never
/// used (a deleted link's code is never reissued). `Err(reason)` for a code that cannot be.
pub async fn code_available(app: &App, raw: &str) -> ServiceResult<Result<bool, String>> {
    let code = match ShortCode::parse_custom(raw) {
        Ok(code) => code,
        Err(e) => return Ok(Err(e.to_string())),
    };
    match app.store.get_link(code.as_str()).await {
        Ok(found) => Ok(Ok(found.is_none())),
        Err(e) => Err(ServiceError::from_store(e, "link")),
    }
}

/// Applies `patch` to a link in `scope`. Re-enabling a link an admin took down is
/// refused: only [`lift_takedown`] does that.
pub async fn update(app: &App, scope: Scope, code: &str, patch: LinkPatch) -> ServiceResult<Link> {
    if !ShortCode::could_be_code(code) {
        return Err(ServiceError::NotFound("link"));
    }
    if patch.disabled == Some(false) && find_visible(app, scope, code).await?.takedown.is_some() {
        return Err(ServiceError::TakenDown);
    }
    write(app, scope, code, patch).await
}

/// Takes a link down (admin): disabled, with the reason its redirect gives. Taking it down
/// again replaces the reason.
pub async fn take_down(app: &App, code: &str, reason: String) -> ServiceResult<Link> {
    set_takedown(app, code, Some(reason)).await
}

/// Lifts a takedown (admin): the link is enabled again. On a link not taken down it changes
/// nothing and answers the link (a retried lift answers like the first one, and a link its
/// owner disabled stays disabled).
pub async fn lift_takedown(app: &App, code: &str) -> ServiceResult<Link> {
    let link = find_visible(app, Scope::All, code).await?;
    if link.takedown.is_none() {
        return Ok(link);
    }
    set_takedown(app, code, None).await
}

async fn set_takedown(app: &App, code: &str, reason: Option<String>) -> ServiceResult<Link> {
    if !ShortCode::could_be_code(code) {
        return Err(ServiceError::NotFound("link"));
    }
    let taking_down = reason.is_some();
    let patch = LinkPatch {
        disabled: Some(taking_down),
        takedown: Some(reason),
        ..LinkPatch::default()
    };
    let link = write(app, Scope::All, code, patch).await?;
    tracing::warn!(
        code,
        taken_down = taking_down,
        "link takedown changed by an admin"
    );
    Ok(link)
}

/// The store write of a change, then this instance's caches.
async fn write(app: &App, scope: Scope, code: &str, patch: LinkPatch) -> ServiceResult<Link> {
    let generation = app.cache.generation();
    let link = app
        .store
        .update_link(code, scope, patch)
        .await
        .map_err(|e| ServiceError::from_store(e, "link"))?;
    app.link_changed_to(code, &link, generation);
    Ok(link)
}

/// Deletes a link in `scope`: its code answers 404 from then on and is never reissued.
pub async fn delete(app: &App, scope: Scope, code: &str) -> ServiceResult<()> {
    if !ShortCode::could_be_code(code) {
        return Err(ServiceError::NotFound("link"));
    }
    app.store
        .delete_link(code, scope)
        .await
        .map_err(|e| ServiceError::from_store(e, "link"))?;
    app.link_changed(code);
    Ok(())
}

/// Up to `limit` live links in `scope` that pass `filter`, in its order, past the link with
/// id `past` (the last one of the previous page).
pub async fn list(
    app: &App,
    scope: Scope,
    filter: ListFilter,
    past: Option<i64>,
    limit: usize,
) -> ServiceResult<Page> {
    let mut links = app
        .store
        .list_links(
            scope,
            filter,
            Cursor {
                past_id: past,
                limit: limit + 1,
            },
        )
        .await
        .map_err(|e| ServiceError::from_store(e, "link"))?;
    let more = links.len() > limit;
    links.truncate(limit);
    Ok(Page { links, more })
}

/// The tags used by the links of `scope` (for a filter), at most `limit`.
pub async fn tags(app: &App, scope: Scope, limit: usize) -> ServiceResult<Vec<String>> {
    app.store
        .link_tags(scope, limit)
        .await
        .map_err(|e| ServiceError::from_store(e, "link"))
}

/// All-time clicks of each link (stored, and what this instance holds unfolded).
pub async fn click_totals(app: &App, links: &[Link]) -> ServiceResult<Vec<u64>> {
    let mut totals = Vec::with_capacity(links.len());
    for link in links {
        let total = app
            .clicks
            .total(app.store.as_ref(), link.id)
            .await
            .map_err(|e| ServiceError::from_store(e, "statistics"))?;
        totals.push(total);
    }
    Ok(totals)
}
