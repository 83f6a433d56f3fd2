//! `/api/v1/links`: create (with idempotency), read, update, delete, list.
//!
//! Writes commit in the store first, then invalidate this instance's cache entry for the code,
//! so the next redirect here sees the change.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;

use super::error::{ApiError, Problem, Result};
use super::extract::{Caller, JsonBody, PathParam, QueryMap};
use super::views::LinkView;
use super::{App, AppState};
use crate::domain::json::whole_number;
use crate::domain::link::{CodeChoice, check_max_clicks, check_tags, check_title};
use crate::domain::time::{UnixSeconds, now, parse_rfc3339};
use crate::domain::{Destination, Link, LinkPatch, NewLink, ShortCode};
use crate::service::links::{self, IdempotencyRequest, ListFilter, ListOrder};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/links", get(list).post(create))
        .route("/links/{code}", get(read).patch(update).delete(remove))
        .route(
            "/links/{code}/takedown",
            axum::routing::post(take_down).delete(lift_takedown),
        )
}

/// A link to create. Fields not listed here are ignored.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[schema(as = NewLink)]
pub struct CreateRequest {
    /// The destination: an absolute `http` or `https` URL (docs/api.md, "Destinations").
    #[schema(format = "uri", pattern = "^https?://", max_length = 8192)]
    pub url: String,
    /// A custom code; a random one when absent.
    #[schema(pattern = "^[A-Za-z0-9_-]{3,64}$")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    #[schema(max_length = 512, pattern = "^[^\\x00]*$")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[schema(max_items = 20, value_type = Option<Vec<Tag>>)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<String>>,
    /// A future time; then the link answers 410.
    #[schema(format = DateTime, pattern = "^\\d{4}-\\d{2}-\\d{2}[Tt ]\\d{2}:\\d{2}:\\d{2}(\\.\\d+)?([Zz]|[+-]\\d{2}:\\d{2})$")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    /// Counted clicks after which the link answers 410.
    #[schema(minimum = 1)]
    #[serde(default, deserialize_with = "whole_number")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_clicks: Option<i64>,
}

/// A tag: 1 to 64 printable characters.
#[derive(ToSchema)]
#[schema(value_type = String, min_length = 1, max_length = 64, pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]+$")]
#[allow(dead_code)]
pub(super) struct Tag(String);

fn nullable_integer<'de, D: Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<Option<i64>>, D::Error> {
    whole_number(d).map(Some)
}

/// `Some(None)` for an explicit `null`, `None` when the field is absent.
fn nullable<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> std::result::Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// Changes to a link: absent fields stay as they are; `null` clears `title`, `expires_at` and
/// `max_clicks`.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[schema(as = LinkPatch)]
pub struct PatchRequest {
    #[schema(
        format = "uri",
        pattern = "^https?://",
        max_length = 8192,
        nullable = false
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>, max_length = 512, pattern = "^[^\\x00]*$")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<Option<String>>,
    #[schema(max_items = 20, nullable = false, value_type = Option<Vec<Tag>>)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>, format = DateTime, pattern = "^\\d{4}-\\d{2}-\\d{2}[Tt ]\\d{2}:\\d{2}:\\d{2}(\\.\\d+)?([Zz]|[+-]\\d{2}:\\d{2})$")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable_integer")]
    #[schema(value_type = Option<i64>, minimum = 1)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_clicks: Option<Option<i64>>,
    #[schema(nullable = false)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disabled: Option<bool>,
}

/// A valid destination that the deny list does not refuse.
fn destination(app: &App, raw: &str) -> Result<Destination> {
    let destination = Destination::parse(raw, &app.own_origins)
        .map_err(|e| ApiError::InvalidUrl(e.to_string()))?;
    if let Some(entry) = app.deny.denies_url(destination.url()) {
        metrics::counter!("snip_denied_destinations_total", "at" => "write").increment(1);
        return Err(ApiError::DestinationDenied(entry.into()));
    }
    Ok(destination)
}

fn title(raw: String) -> Result<String> {
    check_title(raw).map_err(ApiError::InvalidField)
}

fn tags(raw: Vec<String>) -> Result<Vec<String>> {
    check_tags(raw).map_err(ApiError::InvalidField)
}

fn expires_at(raw: &str) -> Result<UnixSeconds> {
    let t = parse_rfc3339(raw).ok_or_else(|| {
        ApiError::InvalidField("expires_at: must be an RFC 3339 timestamp".into())
    })?;
    if t <= now() {
        return Err(ApiError::InvalidField(
            "expires_at: must be in the future".into(),
        ));
    }
    Ok(t)
}

fn max_clicks(raw: i64) -> Result<u64> {
    check_max_clicks(raw).map_err(ApiError::InvalidField)
}

/// The `Idempotency-Key` of a create, scoped to the caller, with the body's hash.
fn idempotency(
    headers: &HeaderMap,
    caller: &Caller,
    raw_body: &[u8],
) -> Result<Option<IdempotencyRequest>> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = value
        .to_str()
        .ok()
        .filter(|k| (1..=255).contains(&k.len()))
        .ok_or_else(|| {
            ApiError::BadRequest(
                "Idempotency-Key must be 1 to 255 printable ASCII characters".into(),
            )
        })?;
    let body: serde_json::Value = serde_json::from_slice(raw_body)
        .map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}")))?;
    Ok(Some(links::idempotency(key, caller.0.row_id, &body)))
}

fn created(app: &App, link: &Link) -> Response {
    let mut response = (StatusCode::CREATED, Json(LinkView::new(app, link))).into_response();
    if let Ok(location) = HeaderValue::from_str(&format!("/api/v1/links/{}", link.code)) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

/// Creates a link.
#[utoipa::path(
    post,
    path = "/api/v1/links",
    tag = "links",
    request_body = CreateRequest,
    params(
        ("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 255,
         description = "Retrying a create with the same key and body answers the same link"),
    ),
    responses(
        (status = 201, description = "Created (or the replay of an idempotent create)", body = LinkView,
         headers(("Location" = String, description = "The link's API path"))),
        (status = 409, description = "The custom code exists (`code_taken`)", body = Problem,
         content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub(super) async fn create(
    State(app): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: JsonBody<CreateRequest>,
) -> Result<Response> {
    let idem = idempotency(&headers, &caller, &body.raw)?;
    let new = new_link(&app, &caller, body.value)?;
    let link = links::create(&app, new, idem).await?;
    Ok(created(&app, &link))
}

/// The validated link a create request asks for (the API's JSON, the dashboard's form).
pub(super) fn new_link(app: &App, caller: &Caller, req: CreateRequest) -> Result<NewLink> {
    Ok(NewLink {
        url: destination(app, &req.url)?,
        code: match req.code {
            Some(c) => CodeChoice::Custom(
                ShortCode::parse_custom(&c).map_err(|e| ApiError::InvalidCode(e.to_string()))?,
            ),
            None => CodeChoice::Random {
                len: app.settings.code_length,
            },
        },
        title: req.title.map(title).transpose()?,
        tags: req.tags.map(tags).transpose()?.unwrap_or_default(),
        owner: caller.0.row_id,
        expires_at: req.expires_at.as_deref().map(expires_at).transpose()?,
        max_clicks: req.max_clicks.map(max_clicks).transpose()?,
        created_at: None,
        imported_clicks: 0,
    })
}

/// A live link the caller may see, or 404.
pub(super) async fn find_visible_link(app: &App, caller: &Caller, code: &str) -> Result<Link> {
    Ok(links::find_visible(app, caller.scope(), code).await?)
}

/// Reads one link (a user key sees only its own links).
#[utoipa::path(
    get,
    path = "/api/v1/links/{code}",
    tag = "links",
    params(("code" = String, Path, description = "The short code")),
    responses((status = 200, description = "The link", body = LinkView)),
    security(("bearer" = []))
)]
pub(super) async fn read(
    State(app): State<AppState>,
    caller: Caller,
    PathParam(code): PathParam,
) -> Result<Json<LinkView>> {
    let link = find_visible_link(&app, &caller, &code).await?;
    Ok(Json(LinkView::new(&app, &link)))
}

/// Changes a link; a disabled link answers 410.
#[utoipa::path(
    patch,
    path = "/api/v1/links/{code}",
    tag = "links",
    params(("code" = String, Path, description = "The short code")),
    request_body = PatchRequest,
    responses(
        (status = 200, description = "The changed link", body = LinkView),
        (status = 409, description = "Re-enabling a link an admin took down (`taken_down`)",
         body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub(super) async fn update(
    State(app): State<AppState>,
    caller: Caller,
    PathParam(code): PathParam,
    body: JsonBody<PatchRequest>,
) -> Result<Json<LinkView>> {
    if !ShortCode::could_be_code(&code) {
        return Err(ApiError::NotFound("link"));
    }
    let patch = link_patch(&app, body.value)?;
    let link = links::update(&app, caller.scope(), &code, patch).await?;
    Ok(Json(LinkView::new(&app, &link)))
}

/// The validated change a patch request asks for (the API's JSON, the dashboard's form).
pub(super) fn link_patch(app: &App, req: PatchRequest) -> Result<LinkPatch> {
    Ok(LinkPatch {
        url: req
            .url
            .as_deref()
            .map(|u| destination(app, u))
            .transpose()?,
        title: req.title.map(|t| t.map(title).transpose()).transpose()?,
        tags: req.tags.map(tags).transpose()?,
        expires_at: req
            .expires_at
            .map(|e| e.as_deref().map(expires_at).transpose())
            .transpose()?,
        max_clicks: req
            .max_clicks
            .map(|m| m.map(max_clicks).transpose())
            .transpose()?,
        disabled: req.disabled,
        takedown: None,
    })
}

/// Why a link is taken down.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct TakedownRequest {
    /// 1 to 500 printable characters, shown to visitors of the link.
    #[schema(
        min_length = 1,
        max_length = 500,
        pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]*[^\\s\\x00-\\x1f\\x7f-\\x9f][^\\x00-\\x1f\\x7f-\\x9f]*$"
    )]
    reason: String,
}

/// `POST /api/v1/links/{code}/takedown` (admin): disables the link and records why; its
/// redirect answers 410 `taken_down` with the reason, on every instance (the change is
/// announced like any edit). Taking down a link again replaces the reason.
#[utoipa::path(
    post,
    path = "/api/v1/links/{code}/takedown",
    tag = "links",
    params(("code" = String, Path, description = "The short code")),
    request_body = TakedownRequest,
    responses((status = 200, description = "The link, taken down", body = LinkView)),
    security(("bearer" = []))
)]
pub(super) async fn take_down(
    State(app): State<AppState>,
    caller: Caller,
    PathParam(code): PathParam,
    body: JsonBody<TakedownRequest>,
) -> Result<Json<LinkView>> {
    caller.require_admin()?;
    let reason = body.value.reason.trim().to_string();
    if reason.is_empty() || reason.chars().count() > 500 || reason.chars().any(char::is_control) {
        return Err(ApiError::InvalidField(
            "reason: must be 1 to 500 printable characters".into(),
        ));
    }
    let link = links::take_down(&app, &code, reason).await?;
    Ok(Json(LinkView::new(&app, &link)))
}

/// `DELETE /api/v1/links/{code}/takedown` (admin): lifts a takedown; the link is enabled again.
/// On a link not taken down it changes nothing and answers the link.
#[utoipa::path(
    delete,
    path = "/api/v1/links/{code}/takedown",
    tag = "links",
    params(("code" = String, Path, description = "The short code")),
    responses((status = 200, description = "The link, enabled again (unchanged if it was not taken down)", body = LinkView)),
    security(("bearer" = []))
)]
pub(super) async fn lift_takedown(
    State(app): State<AppState>,
    caller: Caller,
    PathParam(code): PathParam,
) -> Result<Json<LinkView>> {
    caller.require_admin()?;
    let link = links::lift_takedown(&app, &code).await?;
    Ok(Json(LinkView::new(&app, &link)))
}

#[utoipa::path(
    delete,
    path = "/api/v1/links/{code}",
    tag = "links",
    params(("code" = String, Path, description = "The short code")),
    responses((status = 204, description = "Deleted")),
    security(("bearer" = []))
)]
pub(super) async fn remove(
    State(app): State<AppState>,
    caller: Caller,
    PathParam(code): PathParam,
) -> Result<StatusCode> {
    links::delete(&app, caller.scope(), &code).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `clicks=true|false` of a list.
fn with_clicks(query: &QueryMap) -> Result<bool> {
    match query.get("clicks") {
        None | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(_) => Err(ApiError::InvalidField(
            "clicks: must be true or false".into(),
        )),
    }
}

/// A page of links, newest first.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(as = LinkPage)]
pub struct Page {
    pub items: Vec<LinkView>,
    /// Pass as `cursor` for the next page; `null` on the last.
    pub next_cursor: Option<String>,
}

/// Fuzz target (see `crate::fuzzing`): any cursor decodes or is refused without panicking, and
/// every id survives a round trip.
pub(crate) fn fuzz_cursor(raw: &str, id: i64) {
    let _ = decode_cursor(raw);
    assert_eq!(decode_cursor(&encode_cursor(id)), Some(id));
}

fn encode_cursor(id: i64) -> String {
    URL_SAFE_NO_PAD.encode(format!("id:{id}"))
}

fn decode_cursor(raw: &str) -> Option<i64> {
    let bytes = URL_SAFE_NO_PAD.decode(raw).ok()?;
    std::str::from_utf8(&bytes)
        .ok()?
        .strip_prefix("id:")?
        .parse()
        .ok()
}

/// Lists links, newest first unless `sort` says otherwise (a user key: its own), optionally
/// only those matching a search text or carrying a tag.
#[utoipa::path(
    get,
    path = "/api/v1/links",
    tag = "links",
    params(
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "Page size (50)"),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page (with the same filters)"),
        ("q" = Option<String>, Query, max_length = 200, pattern = "^[^\\x00]*$", description = "Only links whose code, destination or title contains this (ASCII case-insensitive)"),
        ("tag" = Option<String>, Query, max_length = 64, pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]*$", description = "Only links with this tag (empty: all)"),
        ("sort" = Option<String>, Query, pattern = "^(newest|oldest)$", description = "`newest` (default) or `oldest` first"),
        ("clicks" = Option<bool>, Query, description = "`true`: each link carries `clicks`, its all-time counted clicks plus imported ones"),
    ),
    responses((status = 200, description = "A page of links", body = Page)),
    security(("bearer" = []))
)]
pub(super) async fn list(
    State(app): State<AppState>,
    caller: Caller,
    query: QueryMap,
) -> Result<Json<Page>> {
    let limit = match query.get("limit") {
        None => 50,
        Some(raw) => raw
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=1000).contains(n))
            .ok_or_else(|| ApiError::InvalidField("limit: must be 1 to 1000".into()))?,
    };
    let before = query
        .get("cursor")
        .filter(|c| !c.is_empty())
        .map(|c| decode_cursor(c).ok_or_else(|| ApiError::InvalidField("cursor: malformed".into())))
        .transpose()?;
    let filter = list_filter(&query)?;
    let page = links::list(&app, caller.scope(), filter, before, limit).await?;
    let next_cursor = page
        .more
        .then(|| page.links.last().map(|l| encode_cursor(l.id)))
        .flatten();
    let mut items: Vec<LinkView> = page.links.iter().map(|l| LinkView::new(&app, l)).collect();
    if with_clicks(&query)? {
        let totals = links::click_totals(&app, &page.links).await?;
        for ((item, link), total) in items.iter_mut().zip(&page.links).zip(totals) {
            item.clicks = Some(total + link.imported_clicks);
        }
    }
    Ok(Json(Page { items, next_cursor }))
}

/// Longest search text of a list.
pub(super) const MAX_SEARCH_LEN: usize = 200;

/// The `q`, `tag` and `sort` of a list query (empty values are no filter).
pub(super) fn list_filter(query: &QueryMap) -> Result<ListFilter> {
    let raw = query.get("q");
    if raw.is_some_and(|q| q.chars().count() > MAX_SEARCH_LEN) {
        return Err(ApiError::InvalidField(format!(
            "q: at most {MAX_SEARCH_LEN} characters"
        )));
    }
    // No store keeps NUL in text (PostgreSQL refuses it), so no link could match it.
    if raw.is_some_and(|q| q.contains('\0')) {
        return Err(ApiError::InvalidField(
            "q: must not contain the NUL character".into(),
        ));
    }
    let text = raw.map(str::trim).filter(|q| !q.is_empty());
    let tag = query.get("tag").filter(|t| !t.is_empty());
    if let Some(tag) = tag
        && tags(vec![tag.to_string()]).is_err()
    {
        return Err(ApiError::InvalidField(format!(
            "tag: must be 1 to {} printable characters",
            crate::domain::link::MAX_TAG_LEN
        )));
    }
    let order = match query.get("sort") {
        None | Some("newest") => ListOrder::NewestFirst,
        Some("oldest") => ListOrder::OldestFirst,
        Some(_) => {
            return Err(ApiError::InvalidField(
                "sort: must be newest or oldest".into(),
            ));
        }
    };
    Ok(ListFilter {
        text: text.map(|q| q.to_ascii_lowercase()),
        tag: tag.map(str::to_string),
        order,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_junk_is_refused() {
        assert_eq!(decode_cursor(&encode_cursor(42)), Some(42));
        assert_eq!(decode_cursor("!!"), None);
        assert_eq!(decode_cursor(&URL_SAFE_NO_PAD.encode("x:1")), None);
    }
}
