//! Click statistics: a link's (what the store holds, with what this instance has not flushed
//! yet merged in by `crate::clicks`), and the hits on unknown codes.

use super::error::{ServiceError, ServiceResult};
use crate::domain::key::Scope;
use crate::domain::time::UnixSeconds;
use crate::service::app::App;
use crate::store::ListFilter;
pub use crate::store::{Interval, LinkStats, StatsRange, UnknownStats};

/// The statistics of the link with row id `link_id` over `range`.
pub async fn link(app: &App, link_id: i64, range: StatsRange) -> ServiceResult<LinkStats> {
    app.clicks
        .stats(app.store.as_ref(), link_id, range)
        .await
        .map_err(|e| ServiceError::from_store(e, "link"))
}

/// Requests for unknown codes between `from` and `to`, the `limit` most requested listed.
pub async fn unknown(
    app: &App,
    from: UnixSeconds,
    to: UnixSeconds,
    limit: usize,
) -> ServiceResult<UnknownStats> {
    app.store
        .unknown_stats(from..to, limit)
        .await
        .map_err(|e| ServiceError::from_store(e, "statistics"))
}

/// The overview of the links a caller may see: human clicks over the last 24 hours, 7 days
/// and 30 days, per day, the top links, referrers and countries of the last 30 days, and the
/// newest links. Counted from the store's tables: clicks an instance has not folded into them
/// yet (at most one fold interval of them) are not in it.
#[derive(Debug, Clone, Default)]
pub struct Overview {
    /// When it was computed.
    pub as_of: UnixSeconds,
    /// Human clicks in the last 24 hours, 7 days and 30 days.
    pub clicks: [u64; 3],
    /// `(day start, human clicks)` for each of the last 30 days, oldest first, zeros included.
    pub per_day: Vec<(UnixSeconds, u64)>,
    /// `(code, clicks in 30 days)`, most clicked first.
    pub top_links: Vec<(String, u64)>,
    pub top_referrers: Vec<(String, u64)>,
    pub top_countries: Vec<(String, u64)>,
    pub recent: Vec<crate::domain::Link>,
}

/// The windows of the overview, the longest first.
const OVERVIEW_WINDOWS: [i64; 3] = [30 * 86_400, 7 * 86_400, 86_400];

/// The overview of `scope`, lists of at most `limit` entries.
pub async fn overview(app: &App, scope: Scope, limit: usize) -> ServiceResult<Overview> {
    let as_of = crate::domain::time::now();
    let windows = OVERVIEW_WINDOWS.map(|w| as_of - w);
    let stored = app
        .store
        .scope_clicks(scope, windows)
        .await
        .map_err(|e| ServiceError::from_store(e, "statistics"))?;
    let recent = super::links::list(app, scope, ListFilter::default(), None, limit).await?;
    let mut clicks = [0u64; 3];
    for (_, _, n) in &stored.per_link {
        for (total, n) in clicks.iter_mut().zip(n) {
            *total += n;
        }
    }
    let mut top_links: Vec<(String, u64)> = stored
        .per_link
        .into_iter()
        .filter(|(_, _, n)| n[0] > 0)
        .map(|(_, code, n)| (code, n[0]))
        .collect();
    top_links.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    top_links.truncate(limit);
    let first_day = windows[0].div_euclid(86_400);
    let per_day = (first_day..=as_of.div_euclid(86_400))
        .map(|day| {
            let n = stored
                .per_day
                .iter()
                .find(|d| d.0 == day)
                .map_or(0, |d| d.1);
            (day * 86_400, n)
        })
        .collect();
    let [referrers, _, _, _, countries] = crate::store::dims::scope_dims(&stored.dims, limit);
    Ok(Overview {
        as_of,
        clicks: [clicks[2], clicks[1], clicks[0]],
        per_day,
        top_links,
        top_referrers: referrers,
        top_countries: countries,
        recent: recent.links,
    })
}
