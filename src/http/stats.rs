//! `GET /api/v1/links/{code}/stats` (and `stats.csv`): click totals, bots apart, a time series,
//! the dimension lists and unique visitors; `GET /api/v1/stats`: the overview of every link the
//! caller may see; `GET /api/v1/stats/unknown`: unknown-code hits.
//!
//! Reads only flushed clicks: a click shows here at most one flush interval after it happened.
//! `as_of` is the time of the last successful flush of this instance.

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;
use super::error::{ApiError, Result};
use super::extract::{Caller, PathParam, QueryMap};
use super::links::find_visible_link;
use super::views::LinkView;
use crate::domain::time::{now, parse_rfc3339, to_rfc3339};
use crate::service::stats::{self, Interval, StatsRange};

/// Longest series returned, in buckets (a month of hours, ten years of days).
const MAX_BUCKETS: i64 = 3700;
const DEFAULT_RANGE_DAYS: i64 = 30;
const TOP_N: usize = 50;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/links/{code}/stats", get(stats))
        .route("/links/{code}/stats.csv", get(stats_csv))
        .route("/stats", get(overview))
        .route("/stats/unknown", get(unknown))
}

/// Clicks in one bucket of the series.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Point {
    /// The bucket's start.
    #[schema(format = DateTime)]
    pub t: String,
    pub clicks: u64,
}

/// A value of a dimension (a referrer, a browser, a country…) with its clicks.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(as = StatsEntry)]
pub struct Entry {
    pub key: String,
    pub clicks: u64,
}

/// A link's click statistics (flushed clicks: at most one flush interval behind).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(as = LinkStats)]
pub struct Stats {
    pub code: String,
    pub total_clicks: u64,
    pub human_clicks: u64,
    pub bot_clicks: u64,
    /// Estimated (HyperLogLog-style sketch).
    pub unique_visitors: u64,
    #[schema(format = DateTime)]
    pub from: String,
    #[schema(format = DateTime)]
    pub to: String,
    #[schema(value_type = String, pattern = "^(hour|day)$")]
    pub interval: String,
    pub series: Vec<Point>,
    pub referrers: Vec<Entry>,
    pub browsers: Vec<Entry>,
    pub operating_systems: Vec<Entry>,
    pub devices: Vec<Entry>,
    pub countries: Vec<Entry>,
    /// Clicks the shortener this link was imported from had counted (`snip import`); not in
    /// `total_clicks` or the series. 0 for links made here.
    pub imported_clicks: u64,
    /// Clicks up to this time are counted.
    #[schema(format = DateTime)]
    pub as_of: String,
}

fn time_param(query: &QueryMap, name: &str) -> Result<Option<i64>> {
    query
        .get(name)
        .map(|raw| {
            parse_rfc3339(raw).ok_or_else(|| {
                ApiError::InvalidField(format!("{name}: must be an RFC 3339 timestamp"))
            })
        })
        .transpose()
}

/// A parsed stats query.
pub(super) struct Query {
    range: StatsRange,
    /// First bucket start (range start rounded down to the interval).
    first: i64,
    buckets: i64,
    from: i64,
    to: i64,
}

pub(super) fn parse_query(query: &QueryMap) -> Result<Query> {
    let interval = match query.get("interval") {
        None | Some("day") => Interval::Day,
        Some("hour") => Interval::Hour,
        Some(_) => {
            return Err(ApiError::InvalidField(
                "interval: must be hour or day".into(),
            ));
        }
    };
    let include_bots = match query.get("include_bots") {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => {
            return Err(ApiError::InvalidField(
                "include_bots: must be true or false".into(),
            ));
        }
    };
    let to = time_param(query, "to")?.unwrap_or_else(now);
    let from = time_param(query, "from")?.unwrap_or(to - DEFAULT_RANGE_DAYS * 86_400);
    if from >= to {
        return Err(ApiError::InvalidField("from: must be before to".into()));
    }
    let width = interval.seconds();
    let first = from.div_euclid(width) * width;
    let buckets = (to - first + width - 1) / width;
    if buckets > MAX_BUCKETS {
        return Err(ApiError::InvalidField(format!(
            "range too long: at most {MAX_BUCKETS} buckets of one {}",
            interval_name(interval)
        )));
    }
    Ok(Query {
        range: StatsRange {
            from: first,
            to,
            interval,
            include_bots,
            limit: TOP_N,
        },
        first,
        buckets,
        from,
        to,
    })
}

fn interval_name(interval: Interval) -> &'static str {
    match interval {
        Interval::Hour => "hour",
        Interval::Day => "day",
    }
}

fn entries(list: Vec<(String, u64)>) -> Vec<Entry> {
    list.into_iter()
        .map(|(key, clicks)| Entry { key, clicks })
        .collect()
}

async fn compute(app: &AppState, caller: &Caller, code: &str, query: &QueryMap) -> Result<Stats> {
    let q = parse_query(query)?;
    let link = find_visible_link(app, caller, code).await?;
    link_stats(app, &link, q).await
}

/// The statistics of a link the caller may see, for a query of [`parse_query`]'s.
pub(super) async fn link_stats(
    app: &AppState,
    link: &crate::domain::Link,
    q: Query,
) -> Result<Stats> {
    let computed = stats::link(app, link.id, q.range).await?;
    let width = q.range.interval.seconds();
    let mut counted = computed.series.into_iter().peekable();
    let series = (0..q.buckets)
        .map(|i| {
            let t = q.first + i * width;
            let mut clicks = 0;
            while let Some((_, n)) = counted.next_if(|(bt, _)| *bt <= t) {
                clicks += n;
            }
            Point {
                t: to_rfc3339(t),
                clicks,
            }
        })
        .collect();
    let current = now();
    let as_of = app
        .clicks
        .flush_lag()
        .map_or(current, |lag| current - lag.floor() as i64);
    let [referrers, browsers, operating_systems, devices, countries] = computed.dims;
    Ok(Stats {
        code: link.code.to_string(),
        total_clicks: computed.total,
        human_clicks: computed.total.saturating_sub(computed.bots),
        bot_clicks: computed.bots,
        unique_visitors: computed.unique_visitors,
        from: to_rfc3339(q.from),
        to: to_rfc3339(q.to),
        interval: interval_name(q.range.interval).into(),
        series,
        referrers: entries(referrers),
        browsers: entries(browsers),
        operating_systems: entries(operating_systems),
        devices: entries(devices),
        countries: entries(countries),
        imported_clicks: link.imported_clicks,
        as_of: to_rfc3339(as_of),
    })
}

/// The range of a statistics query (documentation of the query string `parse_query` reads).
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub(super) struct RangeParams {
    /// Range start (30 days before `to`).
    #[param(value_type = Option<String>, format = DateTime, pattern = "^\\d{4}-\\d{2}-\\d{2}[Tt ]\\d{2}:\\d{2}:\\d{2}(\\.\\d+)?([Zz]|[+-]\\d{2}:\\d{2})$")]
    from: Option<String>,
    /// Range end (now).
    #[param(value_type = Option<String>, format = DateTime, pattern = "^\\d{4}-\\d{2}-\\d{2}[Tt ]\\d{2}:\\d{2}:\\d{2}(\\.\\d+)?([Zz]|[+-]\\d{2}:\\d{2})$")]
    to: Option<String>,
}

/// The series and bot parameters of a link's statistics query.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub(super) struct SeriesParams {
    /// Series bucket (day).
    #[param(value_type = Option<String>, pattern = "^(hour|day)$")]
    interval: Option<String>,
    /// Count bots in the totals and lists (false).
    include_bots: Option<bool>,
}

/// A link's click statistics.
#[utoipa::path(
    get,
    path = "/api/v1/links/{code}/stats",
    tag = "statistics",
    params(
        ("code" = String, Path, description = "The short code"),
        RangeParams,
        SeriesParams,
    ),
    responses((status = 200, description = "The statistics", body = Stats)),
    security(("bearer" = []))
)]
pub(super) async fn stats(
    State(app): State<AppState>,
    caller: Caller,
    PathParam(code): PathParam,
    query: QueryMap,
) -> Result<Json<Stats>> {
    Ok(Json(compute(&app, &caller, &code, &query).await?))
}

/// Fuzz target (see `crate::fuzzing`): a stats query string never panics, and an accepted one
/// describes a non-empty range of at most [`MAX_BUCKETS`] buckets that covers `from..to`.
pub(crate) fn fuzz_query(raw: &str) {
    let query = QueryMap(
        url::form_urlencoded::parse(raw.as_bytes())
            .into_owned()
            .collect(),
    );
    if let Ok(q) = parse_query(&query) {
        assert!(q.from < q.to, "{raw:?}");
        assert!(q.first <= q.from && q.range.from == q.first, "{raw:?}");
        assert!((1..=MAX_BUCKETS).contains(&q.buckets), "{raw:?}");
        assert!(
            q.first + q.buckets * q.range.interval.seconds() >= q.to,
            "{raw:?}"
        );
    }
}

/// Fuzz target: a CSV cell is one cell (quoted when it holds a separator, quote or line break,
/// with quotes doubled) and never starts a formula.
pub(crate) fn fuzz_csv_cell(value: &str) {
    let cell = csv_cell(value);
    let inner = match cell.strip_prefix('"') {
        Some(rest) => {
            let inner = rest
                .strip_suffix('"')
                .expect("a quoted cell ends with a quote");
            assert!(
                !inner.replace("\"\"", "").contains('"'),
                "{value:?} → {cell:?}"
            );
            inner.replace("\"\"", "\"")
        }
        None => {
            assert!(
                !cell.contains([',', '"', '\n', '\r']),
                "{value:?} → {cell:?}"
            );
            cell.clone()
        }
    };
    assert!(
        !inner.starts_with(['=', '+', '-', '@', '\t', '\r']),
        "{value:?} → {cell:?} starts a formula"
    );
    assert!(
        inner == value || inner.strip_prefix('\'') == Some(value),
        "{value:?} → {cell:?}"
    );
}

/// A CSV cell: quoted when needed, and neutralised when a spreadsheet would read it as a
/// formula (a leading `=`, `+`, `-`, `@`, tab or CR gets a `'` in front).
fn csv_cell(value: &str) -> String {
    let mut v = String::with_capacity(value.len() + 3);
    if value.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        v.push('\'');
    }
    v.push_str(value);
    if v.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", v.replace('"', "\"\""))
    } else {
        v
    }
}

/// The same statistics as CSV: rows of `section,key,clicks` (sections: `total`, `series`,
/// and one per dimension).
#[utoipa::path(
    get,
    path = "/api/v1/links/{code}/stats.csv",
    tag = "statistics",
    params(
        ("code" = String, Path, description = "The short code"),
        RangeParams,
        SeriesParams,
    ),
    responses((status = 200, description = "The statistics as CSV", body = String, content_type = "text/csv",
               headers(("Content-Disposition" = String, description = "An attachment file name")))),
    security(("bearer" = []))
)]
pub(super) async fn stats_csv(
    State(app): State<AppState>,
    caller: Caller,
    PathParam(code): PathParam,
    query: QueryMap,
) -> Result<Response> {
    let code = code
        .strip_suffix(".csv")
        .map(str::to_string)
        .unwrap_or(code);
    let s = compute(&app, &caller, &code, &query).await?;
    let mut out = String::from("section,key,clicks\r\n");
    let mut row = |section: &str, key: &str, clicks: u64| {
        out.push_str(&format!("{section},{},{clicks}\r\n", csv_cell(key)));
    };
    row("total", "total_clicks", s.total_clicks);
    row("total", "human_clicks", s.human_clicks);
    row("total", "bot_clicks", s.bot_clicks);
    row("total", "unique_visitors", s.unique_visitors);
    for p in &s.series {
        row("series", &p.t, p.clicks);
    }
    for (section, list) in [
        ("referrers", &s.referrers),
        ("browsers", &s.browsers),
        ("operating_systems", &s.operating_systems),
        ("devices", &s.devices),
        ("countries", &s.countries),
    ] {
        for e in list.iter() {
            row(section, &e.key, e.clicks);
        }
    }
    let filename = format!("attachment; filename=\"{}-stats.csv\"", s.code);
    let mut response = out.into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    if let Ok(v) = HeaderValue::from_str(&filename) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(response)
}

/// The overview of the links a key may see (an admin: all; a user: its own).
#[derive(Serialize, ToSchema)]
#[schema(as = StatsOverview)]
pub(super) struct OverviewView {
    /// Human clicks in the last 24 hours.
    pub(super) clicks_24h: u64,
    /// Human clicks in the last 7 days.
    pub(super) clicks_7d: u64,
    /// Human clicks in the last 30 days.
    pub(super) clicks_30d: u64,
    /// Human clicks per UTC day over the last 30 days, oldest first, days without clicks
    /// included.
    pub(super) series: Vec<Point>,
    /// The most clicked links of the last 30 days (`key`: the code).
    pub(super) top_links: Vec<Entry>,
    /// The top referrer hosts of the last 30 days.
    pub(super) top_referrers: Vec<Entry>,
    /// The top countries of the last 30 days.
    pub(super) top_countries: Vec<Entry>,
    /// The newest links.
    pub(super) recent_links: Vec<LinkView>,
    /// When it was computed. Clicks count once folded into the store's tables, at most one
    /// fold interval after a flush.
    #[schema(format = DateTime)]
    pub(super) as_of: String,
}

impl OverviewView {
    pub(super) fn new(app: &AppState, o: stats::Overview) -> Self {
        OverviewView {
            clicks_24h: o.clicks[0],
            clicks_7d: o.clicks[1],
            clicks_30d: o.clicks[2],
            series: o
                .per_day
                .into_iter()
                .map(|(t, clicks)| Point {
                    t: to_rfc3339(t),
                    clicks,
                })
                .collect(),
            top_links: entries(o.top_links),
            top_referrers: entries(o.top_referrers),
            top_countries: entries(o.top_countries),
            recent_links: o.recent.iter().map(|l| LinkView::new(app, l)).collect(),
            as_of: to_rfc3339(o.as_of),
        }
    }
}

/// Entries per list of the overview unless `limit` says otherwise.
pub(super) const OVERVIEW_LIMIT: usize = 10;

/// `GET /api/v1/stats`: clicks over the last 24 hours, 7 and 30 days across the caller's
/// links, per day, the top links, referrers and countries, and the newest links.
#[utoipa::path(
    get,
    path = "/api/v1/stats",
    tag = "statistics",
    params(
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "Entries per list (10)"),
    ),
    responses((status = 200, description = "The overview", body = OverviewView)),
    security(("bearer" = []))
)]
pub(super) async fn overview(
    State(app): State<AppState>,
    caller: Caller,
    query: QueryMap,
) -> Result<Json<OverviewView>> {
    let limit = match query.get("limit") {
        None => OVERVIEW_LIMIT,
        Some(raw) => raw
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=100).contains(n))
            .ok_or_else(|| ApiError::InvalidField("limit: must be 1 to 100".into()))?,
    };
    let overview = stats::overview(&app, caller.scope(), limit).await?;
    Ok(Json(OverviewView::new(&app, overview)))
}

/// Requests for codes that do not exist.
#[derive(Serialize, ToSchema)]
#[schema(as = UnknownCodes)]
pub(super) struct Unknown {
    total: u64,
    /// The most requested unknown codes.
    codes: Vec<Entry>,
    #[schema(format = DateTime)]
    from: String,
    #[schema(format = DateTime)]
    to: String,
}

/// `GET /api/v1/stats/unknown` (admin): requests for codes that do not exist, and the most
/// requested of them (scans, typos, broken printed links).
#[utoipa::path(
    get,
    path = "/api/v1/stats/unknown",
    tag = "statistics",
    params(
        RangeParams,
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "Codes listed (50)"),
    ),
    responses((status = 200, description = "Unknown-code hits", body = Unknown)),
    security(("bearer" = []))
)]
pub(super) async fn unknown(
    State(app): State<AppState>,
    caller: Caller,
    query: QueryMap,
) -> Result<Json<Unknown>> {
    caller.require_admin()?;
    let q = parse_query(&query)?;
    let limit = match query.get("limit") {
        None => TOP_N,
        Some(raw) => raw
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=1000).contains(n))
            .ok_or_else(|| ApiError::InvalidField("limit: must be 1 to 1000".into()))?,
    };
    let found = stats::unknown(&app, q.from, q.to, limit).await?;
    Ok(Json(Unknown {
        total: found.total,
        codes: entries(found.codes),
        from: to_rfc3339(q.from),
        to: to_rfc3339(q.to),
    }))
}

#[cfg(test)]
mod tests {
    use super::csv_cell;

    #[test]
    fn csv_cells_never_start_a_formula_and_stay_one_cell() {
        assert_eq!(csv_cell("example.com"), "example.com");
        assert_eq!(csv_cell("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        for bad in ["+1", "-1", "@SUM(A1)", "\tx", "\rx"] {
            assert!(
                csv_cell(bad).trim_start_matches('"').starts_with('\''),
                "{bad:?}"
            );
        }
        assert_eq!(csv_cell("a,b"), "\"a,b\"");
    }
}
