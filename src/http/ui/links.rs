//! The dashboard's links: the list (search, tag filter, order, pages, click totals), create
//! (with the custom code's availability hint), a link's page (statistics with the clicks chart,
//! QR code, CSV export), edit, disable and enable, delete after a confirmation.

use askama::Template;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Serialize;

use super::session::{Fields, Form, Signed};
use super::{Chrome, error_page, page, show_time};
use crate::domain::time::{now, to_rfc3339};
use crate::domain::{Link, LinkPatch};
use crate::http::AppState;
use crate::http::error::{ApiError, Result};
use crate::http::extract::{Caller, PathParam, QueryMap};
use crate::http::links::{CreateRequest, PatchRequest, link_patch, list_filter, new_link};
use crate::http::stats::{Entry, link_stats, parse_query};
use crate::service::links::{self, ListOrder};

/// Links per page of the list.
const PAGE: usize = 50;
/// Tags offered by the list's filter.
const MAX_TAGS_LISTED: usize = 200;

/// One row of the list.
struct Row {
    code: String,
    url: String,
    title: String,
    tags: String,
    clicks: u64,
    status: &'static str,
    status_class: &'static str,
}

/// The badge class of a status.
fn status_class(status: &str) -> &'static str {
    match status {
        "Active" => "badge status-active",
        "Expired" | "Used up" => "badge status-expired",
        _ => "badge status-disabled",
    }
}

/// What a link's status shows: active, disabled (or taken down), expired, used up.
fn status(link: &Link, clicks: u64) -> &'static str {
    if link.takedown.is_some() {
        "Taken down"
    } else if link.disabled {
        "Disabled"
    } else if link.expires_at.is_some_and(|t| t <= now()) {
        "Expired"
    } else if link.max_clicks.is_some_and(|m| clicks >= m) {
        "Used up"
    } else {
        "Active"
    }
}

#[derive(Template)]
#[template(path = "links.html")]
struct ListPage {
    chrome: Chrome,
    rows: Vec<Row>,
    tags: Vec<String>,
    q: String,
    tag: String,
    oldest: bool,
    filtered: bool,
    next: Option<String>,
    notice: Option<String>,
}

fn query_string(pairs: &[(&str, &str)]) -> String {
    let mut out = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs.iter().filter(|(_, v)| !v.is_empty()) {
        out.append_pair(k, v);
    }
    out.finish()
}

pub async fn list(State(app): State<AppState>, signed: Signed, query: QueryMap) -> Response {
    let chrome = Chrome::signed(&signed, "links");
    match list_page(&app, &signed, &query).await {
        Ok(page_data) => page(
            StatusCode::OK,
            &ListPage {
                chrome,
                ..page_data
            },
        ),
        Err(e) => error_page(chrome, e),
    }
}

async fn list_page(app: &AppState, signed: &Signed, query: &QueryMap) -> Result<ListPage> {
    let scope = Caller(signed.key.clone()).scope();
    let filter = list_filter(query)?;
    let past = query.get("after").and_then(|a| a.parse::<i64>().ok());
    let found = links::list(app, scope, filter.clone(), past, PAGE).await?;
    let totals = links::click_totals(app, &found.links).await?;
    let tags = links::tags(app, scope, MAX_TAGS_LISTED).await?;
    let q = query.get("q").unwrap_or_default().trim().to_string();
    let tag = filter.tag.clone().unwrap_or_default();
    let oldest = filter.order == ListOrder::OldestFirst;
    let next = found
        .more
        .then(|| found.links.last())
        .flatten()
        .map(|last| {
            let after = last.id.to_string();
            let sort = if oldest { "oldest" } else { "" };
            format!(
                "/ui/links?{}",
                query_string(&[("q", &q), ("tag", &tag), ("sort", sort), ("after", &after)])
            )
        });
    let rows = found
        .links
        .iter()
        .zip(totals)
        .map(|(l, clicks)| Row {
            code: l.code.to_string(),
            url: l.url.clone(),
            title: l.title.clone().unwrap_or_default(),
            tags: l.tags.join(", "),
            clicks,
            status: status(l, clicks),
            status_class: status_class(status(l, clicks)),
        })
        .collect();
    Ok(ListPage {
        chrome: Chrome::anonymous(),
        rows,
        tags,
        filtered: !q.is_empty() || !tag.is_empty(),
        q,
        tag,
        oldest,
        next,
        notice: query
            .get("deleted")
            .map(|code| format!("The link {code} was deleted.")),
    })
}

/// The fields of the create and edit forms, as typed.
#[derive(Default)]
struct LinkForm {
    url: String,
    code: String,
    title: String,
    tags: String,
    expires_at: String,
    max_clicks: String,
}

impl LinkForm {
    fn from_fields(f: &Fields) -> LinkForm {
        let get = |name| f.get(name).unwrap_or_default().to_string();
        LinkForm {
            url: get("url"),
            code: get("code"),
            title: get("title"),
            tags: get("tags"),
            expires_at: get("expires_at"),
            max_clicks: get("max_clicks"),
        }
    }

    fn from_link(link: &Link) -> LinkForm {
        LinkForm {
            url: link.url.clone(),
            code: link.code.to_string(),
            title: link.title.clone().unwrap_or_default(),
            tags: link.tags.join(", "),
            expires_at: link
                .expires_at
                .and_then(|t| chrono::DateTime::from_timestamp(t, 0))
                .map(|d| d.format("%Y-%m-%dT%H:%M").to_string())
                .unwrap_or_default(),
            max_clicks: link.max_clicks.map(|m| m.to_string()).unwrap_or_default(),
        }
    }

    fn opt(value: &str) -> Option<String> {
        Some(value.to_string()).filter(|v| !v.is_empty())
    }

    fn tags(&self) -> Vec<String> {
        self.tags
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(String::from)
            .collect()
    }

    /// A `datetime-local` value (minutes, maybe seconds) read as UTC, as RFC 3339.
    fn expires_at(&self) -> Option<String> {
        let v = self.expires_at.as_str();
        match v.len() {
            0 => None,
            16 => Some(format!("{v}:00Z")),
            _ => Some(format!("{v}Z")),
        }
    }

    fn max_clicks(&self) -> Result<Option<i64>> {
        Self::opt(&self.max_clicks)
            .map(|m| {
                m.parse::<i64>().map_err(|_| {
                    ApiError::InvalidField("max_clicks: must be a whole number".into())
                })
            })
            .transpose()
    }
}

#[derive(Template)]
#[template(path = "link_form.html")]
struct LinkFormPage {
    chrome: Chrome,
    /// `None`: a new link; `Some(code)`: editing it.
    editing: Option<String>,
    form: LinkForm,
    error: Option<String>,
}

fn form_page(chrome: Chrome, editing: Option<String>, form: LinkForm, e: ApiError) -> Response {
    let problem = e.problem();
    page(
        problem.status_code(),
        &LinkFormPage {
            chrome,
            editing,
            form,
            error: Some(problem.detail),
        },
    )
}

pub async fn new(signed: Signed) -> Response {
    page(
        StatusCode::OK,
        &LinkFormPage {
            chrome: Chrome::signed(&signed, "links"),
            editing: None,
            form: LinkForm::default(),
            error: None,
        },
    )
}

pub async fn create(State(app): State<AppState>, form: Form) -> Response {
    let typed = LinkForm::from_fields(&form.fields);
    let caller = Caller(form.signed.key.clone());
    let created = async {
        let req = CreateRequest {
            url: typed.url.clone(),
            code: LinkForm::opt(&typed.code),
            title: LinkForm::opt(&typed.title),
            tags: Some(typed.tags()),
            expires_at: typed.expires_at(),
            max_clicks: typed.max_clicks()?,
        };
        let new = new_link(&app, &caller, req)?;
        Ok::<_, ApiError>(links::create(&app, new, None).await?)
    }
    .await;
    match created {
        Ok(link) => Redirect::to(&format!("/ui/links/{}?created=1", link.code)).into_response(),
        Err(e) => form_page(Chrome::signed(&form.signed, "links"), None, typed, e),
    }
}

#[derive(Serialize)]
struct Availability {
    code: String,
    available: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
}

/// `GET /ui/code-available?code=…`: whether a custom code is free (the create form's hint).
pub async fn code_available(
    State(app): State<AppState>,
    _signed: Signed,
    query: QueryMap,
) -> Response {
    let code = query.get("code").unwrap_or_default().to_string();
    match links::code_available(&app, &code).await {
        Ok(Ok(available)) => Json(Availability {
            code,
            available,
            reason: None,
        })
        .into_response(),
        Ok(Err(reason)) => Json(Availability {
            code,
            available: false,
            reason: Some(reason),
        })
        .into_response(),
        Err(e) => ApiError::from(e).into_response(),
    }
}

/// One bucket of the clicks chart.
struct Bucket {
    label: String,
    clicks: u64,
}

#[derive(Template)]
#[template(path = "link.html")]
struct DetailPage {
    chrome: Chrome,
    code: String,
    heading: String,
    short_url: String,
    url: String,
    status: &'static str,
    status_class: &'static str,
    created_at: String,
    expires_at: String,
    max_clicks: String,
    tags: String,
    disabled: bool,
    taken_down: Option<String>,
    created: bool,
    // The statistics and the form that chose them.
    interval: &'static str,
    from: String,
    to: String,
    bots: bool,
    refresh: String,
    csv: String,
    range_clicks: u64,
    total_clicks: u64,
    /// Clicks the shortener it was imported from had counted.
    imported_clicks: u64,
    unique_visitors: u64,
    as_of: String,
    as_of_shown: String,
    series_json: String,
    buckets: Vec<Bucket>,
    dims: Vec<(&'static str, Vec<Entry>)>,
}

/// The range of a link page's statistics: `from` and `to` are UTC days (inclusive); by
/// default the last 2 days by the hour, the last 30 by the day.
struct Range {
    interval: &'static str,
    from: chrono::NaiveDate,
    to: chrono::NaiveDate,
    bots: bool,
}

impl Range {
    /// The start of the first day and the end of the last.
    fn bounds(&self) -> (i64, i64) {
        (day_start(self.from), day_start(self.to) + 86_400)
    }

    /// The same range as the API's statistics query.
    fn api_query(&self) -> QueryMap {
        let (from, to) = self.bounds();
        QueryMap(
            [
                ("interval", self.interval.to_string()),
                ("include_bots", self.bots.to_string()),
                ("from", to_rfc3339(from)),
                ("to", to_rfc3339(to)),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
        )
    }

    /// The page's own URL with this range (what the live refresh fetches), and the API's CSV
    /// export of it.
    fn urls(&self, code: &str) -> (String, String) {
        let (from, to) = self.bounds();
        let (from_day, to_day) = (self.from.to_string(), self.to.to_string());
        let page = query_string(&[
            ("interval", self.interval),
            ("from", &from_day),
            ("to", &to_day),
            ("bots", if self.bots { "1" } else { "" }),
        ]);
        let csv = query_string(&[
            ("interval", self.interval),
            ("from", &to_rfc3339(from)),
            ("to", &to_rfc3339(to)),
            ("include_bots", if self.bots { "true" } else { "" }),
        ]);
        (
            format!("/ui/links/{code}?{page}"),
            format!("/api/v1/links/{code}/stats.csv?{csv}"),
        )
    }
}

fn stats_range(query: &QueryMap) -> Result<Range> {
    let interval = match query.get("interval") {
        Some("hour") => "hour",
        None | Some("" | "day") => "day",
        Some(_) => {
            return Err(ApiError::InvalidField(
                "interval: must be hour or day".into(),
            ));
        }
    };
    let date = |name: &str| -> Result<Option<chrono::NaiveDate>> {
        query
            .get(name)
            .filter(|v| !v.is_empty())
            .map(|v| {
                chrono::NaiveDate::parse_from_str(v, "%Y-%m-%d").map_err(|_| {
                    ApiError::InvalidField(format!("{name}: must be a date (YYYY-MM-DD)"))
                })
            })
            .transpose()
    };
    let today = chrono::DateTime::from_timestamp(now(), 0)
        .map(|d| d.date_naive())
        .unwrap_or_default();
    let to = date("to")?.unwrap_or(today);
    let span = if interval == "hour" { 1 } else { 29 };
    let from = date("from")?.unwrap_or(to - chrono::Days::new(span));
    if from > to {
        return Err(ApiError::InvalidField("from: must not be after to".into()));
    }
    Ok(Range {
        interval,
        from,
        to,
        bots: query.get("bots") == Some("1"),
    })
}

/// The clicks chart's points (`(start, clicks)`, one per bucket of the range), as JSON, and
/// its table's rows.
fn chart(
    range: &Range,
    series: &[crate::http::stats::Point],
) -> (Vec<(i64, u64)>, String, Vec<Bucket>) {
    let width = if range.interval == "hour" {
        3600
    } else {
        86_400
    };
    let from = range.bounds().0;
    let points: Vec<(i64, u64)> = (0..series.len())
        .map(|i| from + i as i64 * width)
        .zip(series.iter().map(|p| p.clicks))
        .collect();
    let series_json = serde_json::to_string(&points).unwrap_or_default();
    let buckets = points
        .iter()
        .map(|&(t, clicks)| Bucket {
            label: if width == 3600 {
                show_time(t)
            } else {
                show_time(t).get(..10).unwrap_or_default().to_string()
            },
            clicks,
        })
        .collect();
    (points, series_json, buckets)
}

fn day_start(d: chrono::NaiveDate) -> i64 {
    d.and_hms_opt(0, 0, 0)
        .map_or(0, |t| t.and_utc().timestamp())
}

pub async fn detail(
    State(app): State<AppState>,
    signed: Signed,
    PathParam(code): PathParam,
    query: QueryMap,
) -> Response {
    let chrome = Chrome::signed(&signed, "links");
    match detail_page(&app, &signed, &code, &query).await {
        Ok(data) => page(StatusCode::OK, &DetailPage { chrome, ..data }),
        Err(e) => error_page(chrome, e),
    }
}

async fn detail_page(
    app: &AppState,
    signed: &Signed,
    code: &str,
    query: &QueryMap,
) -> Result<DetailPage> {
    let scope = Caller(signed.key.clone()).scope();
    let link = links::find_visible(app, scope, code).await?;
    let range = stats_range(query)?;
    let api_query = range.api_query();
    let stats = link_stats(app, &link, parse_query(&api_query)?).await?;
    let (points, series_json, buckets) = chart(&range, &stats.series);
    let (from_s, to_s) = (range.from.to_string(), range.to.to_string());
    let (refresh, csv) = range.urls(link.code.as_str());
    let total = stats.total_clicks;
    let as_of_time = crate::domain::time::parse_rfc3339(&stats.as_of).unwrap_or_else(now);
    Ok(DetailPage {
        chrome: Chrome::anonymous(),
        code: link.code.to_string(),
        heading: link.title.clone().unwrap_or_else(|| link.code.to_string()),
        short_url: app.short_url(link.code.as_str()),
        url: link.url.clone(),
        status: status(&link, total),
        status_class: status_class(status(&link, total)),
        created_at: show_time(link.created_at),
        expires_at: link
            .expires_at
            .map(show_time)
            .unwrap_or_else(|| "Never".into()),
        max_clicks: link
            .max_clicks
            .map_or_else(|| "No limit".into(), |m| m.to_string()),
        tags: link.tags.join(", "),
        disabled: link.disabled,
        taken_down: link.takedown.clone(),
        created: query.get("created") == Some("1"),
        interval: range.interval,
        from: from_s,
        to: to_s,
        bots: range.bots,
        refresh,
        csv,
        range_clicks: points.iter().map(|p| p.1).sum(),
        total_clicks: total,
        imported_clicks: link.imported_clicks,
        unique_visitors: stats.unique_visitors,
        as_of_shown: show_time(as_of_time),
        as_of: stats.as_of.clone(),
        series_json,
        buckets,
        dims: dim_tables(stats),
    })
}

/// The dimension tables of a link's page, captioned.
fn dim_tables(stats: crate::http::stats::Stats) -> Vec<(&'static str, Vec<Entry>)> {
    vec![
        ("Referrers", stats.referrers),
        ("Countries", stats.countries),
        ("Browsers", stats.browsers),
        ("Operating systems", stats.operating_systems),
        ("Devices", stats.devices),
    ]
}

/// A page about one link the signed-in key may see (404 page otherwise).
async fn with_link(
    app: &AppState,
    signed: &Signed,
    code: &str,
    render: impl FnOnce(Chrome, Link) -> Response,
) -> Response {
    let chrome = Chrome::signed(signed, "links");
    let scope = Caller(signed.key.clone()).scope();
    match links::find_visible(app, scope, code).await {
        Ok(link) => render(chrome, link),
        Err(e) => error_page(chrome, e.into()),
    }
}

pub async fn edit(
    State(app): State<AppState>,
    signed: Signed,
    PathParam(code): PathParam,
) -> Response {
    with_link(&app, &signed, &code, |chrome, link| {
        page(
            StatusCode::OK,
            &LinkFormPage {
                chrome,
                editing: Some(link.code.to_string()),
                form: LinkForm::from_link(&link),
                error: None,
            },
        )
    })
    .await
}

pub async fn save(State(app): State<AppState>, PathParam(code): PathParam, form: Form) -> Response {
    let mut typed = LinkForm::from_fields(&form.fields);
    typed.code = code.clone();
    let caller = Caller(form.signed.key.clone());
    let saved = async {
        let req = PatchRequest {
            url: Some(typed.url.clone()),
            title: Some(LinkForm::opt(&typed.title)),
            tags: Some(typed.tags()),
            expires_at: Some(typed.expires_at()),
            max_clicks: Some(typed.max_clicks()?),
            disabled: None,
        };
        let patch = link_patch(&app, req)?;
        Ok::<_, ApiError>(links::update(&app, caller.scope(), &code, patch).await?)
    }
    .await;
    match saved {
        Ok(link) => Redirect::to(&format!("/ui/links/{}", link.code)).into_response(),
        Err(e) => form_page(Chrome::signed(&form.signed, "links"), Some(code), typed, e),
    }
}

async fn set_disabled(app: &AppState, code: &str, form: Form, disabled: bool) -> Response {
    let scope = Caller(form.signed.key.clone()).scope();
    let patch = LinkPatch {
        disabled: Some(disabled),
        ..LinkPatch::default()
    };
    match links::update(app, scope, code, patch).await {
        Ok(link) => Redirect::to(&format!("/ui/links/{}", link.code)).into_response(),
        Err(e) => error_page(Chrome::signed(&form.signed, "links"), e.into()),
    }
}

pub async fn disable(
    State(app): State<AppState>,
    PathParam(code): PathParam,
    form: Form,
) -> Response {
    set_disabled(&app, &code, form, true).await
}

pub async fn enable(
    State(app): State<AppState>,
    PathParam(code): PathParam,
    form: Form,
) -> Response {
    set_disabled(&app, &code, form, false).await
}

#[derive(Template)]
#[template(path = "delete.html")]
struct DeletePage {
    chrome: Chrome,
    code: String,
    short_url: String,
    url: String,
}

pub async fn confirm_delete(
    State(app): State<AppState>,
    signed: Signed,
    PathParam(code): PathParam,
) -> Response {
    with_link(&app, &signed, &code, |chrome, link| {
        page(
            StatusCode::OK,
            &DeletePage {
                chrome,
                short_url: app.short_url(link.code.as_str()),
                code: link.code.to_string(),
                url: link.url,
            },
        )
    })
    .await
}

pub async fn delete(
    State(app): State<AppState>,
    PathParam(code): PathParam,
    form: Form,
) -> Response {
    let scope = Caller(form.signed.key.clone()).scope();
    match links::delete(&app, scope, &code).await {
        Ok(()) => Redirect::to(&format!(
            "/ui/links?{}",
            query_string(&[("deleted", &code)])
        ))
        .into_response(),
        Err(e) => error_page(Chrome::signed(&form.signed, "links"), e.into()),
    }
}
