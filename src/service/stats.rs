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
/// newest links. The store's tables, with what this instance has not folded into them yet.
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
    let store = app.store.as_ref();
    let (mut stored, unfolded) = app
        .clicks
        .read_with_unfolded(store.scope_clicks(scope, windows))
        .await
        .map_err(|e| ServiceError::from_store(e, "statistics"))?;
    let unfolded_dims = add_unfolded(app, scope, windows, &mut stored, &unfolded).await?;
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
                .filter(|d| d.0 == day)
                .map(|d| d.1)
                .sum();
            (day * 86_400, n)
        })
        .collect();
    let [referrers, _, _, _, countries] =
        crate::store::dims::scope_dims(&stored.dims, &unfolded_dims, limit);
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

/// Adds the unfolded clicks of the links in `scope` to what the store gave; returns their
/// dimension counts since the first window.
async fn add_unfolded<'a>(
    app: &App,
    scope: Scope,
    windows: [UnixSeconds; 3],
    stored: &mut crate::store::ScopeClicks,
    unfolded: &'a crate::store::ClickBatch,
) -> ServiceResult<Vec<&'a crate::store::DimCount>> {
    let mut ids: Vec<i64> = unfolded.hourly.iter().map(|h| h.link_id).collect();
    ids.extend(unfolded.days.iter().map(|d| d.link_id));
    ids.sort_unstable();
    ids.dedup();
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let links: std::collections::HashMap<i64, String> = app
        .store
        .links_by_id(ids)
        .await
        .map_err(|e| ServiceError::from_store(e, "statistics"))?
        .into_iter()
        .filter(|l| scope.includes(l.owner))
        .map(|l| (l.id, l.code.to_string()))
        .collect();
    for h in unfolded
        .hourly
        .iter()
        .filter(|h| links.contains_key(&h.link_id))
    {
        let (start, human) = (h.hour * 3600, h.clicks.saturating_sub(h.bots));
        if start < windows[0] || human == 0 {
            continue;
        }
        let counts = windows.map(|w| if start >= w { human } else { 0 });
        match stored.per_link.iter_mut().find(|p| p.0 == h.link_id) {
            Some(p) => p.2.iter_mut().zip(counts).for_each(|(a, b)| *a += b),
            None => stored
                .per_link
                .push((h.link_id, links[&h.link_id].clone(), counts)),
        }
        stored.per_day.push((start.div_euclid(86_400), human));
    }
    let first_day = windows[0].div_euclid(86_400);
    Ok(unfolded
        .days
        .iter()
        .filter(|d| d.day >= first_day && links.contains_key(&d.link_id))
        .flat_map(|d| d.dims.iter())
        .collect())
}
