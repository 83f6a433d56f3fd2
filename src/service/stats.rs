//! Click statistics: a link's (what the store holds, with what this instance has not flushed
//! yet merged in by `crate::clicks`), and the hits on unknown codes.

use super::error::{ServiceError, ServiceResult};
use crate::domain::time::UnixSeconds;
use crate::service::app::App;
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
