//! The stored form of a link-day's dimension counts, shared by both backends so that they
//! store, merge and bound them identically (their `link_stats` are compared in the tests).

use std::collections::HashMap;

use super::{ClickBatch, Dim, LinkStats, Visitors};

/// Dimension counts of one link and day, as stored: `(dim, key, human, bot)`, postcard-encoded,
/// borrowing the keys from the blob or detail they come from (merging allocates no strings).
pub(crate) type StoredDims<'a> = Vec<(u8, &'a str, u64, u64)>;

/// Values kept per dimension and link-day; rarer ones are summed into [`OTHER`]. Bounds the
/// storage of a link whatever its referrers (browsers, systems, devices and countries are
/// bounded sets anyway).
pub const MAX_VALUES_PER_DAY: usize = 100;
pub const OTHER: &str = "(other)";

/// Stored dimension counts; unreadable bytes count as none.
pub(crate) fn dims_from_bytes(bytes: &[u8]) -> StoredDims<'_> {
    postcard::from_bytes(bytes).unwrap_or_default()
}

/// Adds `add` into `into`, keeping at most [`MAX_VALUES_PER_DAY`] values per dimension.
pub(crate) fn merge_dims<'a>(into: &mut StoredDims<'a>, add: StoredDims<'a>) {
    for (dim, key, human, bot) in add {
        if let Some(e) = into.iter_mut().find(|e| e.0 == dim && e.1 == key) {
            e.2 += human;
            e.3 += bot;
            continue;
        }
        let values = into.iter().filter(|e| e.0 == dim).count();
        if values + 1 < MAX_VALUES_PER_DAY || key == OTHER {
            into.push((dim, key, human, bot));
        } else if let Some(e) = into.iter_mut().find(|e| e.0 == dim && e.1 == OTHER) {
            e.2 += human;
            e.3 += bot;
        } else {
            into.push((dim, OTHER, human, bot));
        }
    }
}

/// `a / b` rounded up (for `b > 0`).
pub(crate) fn ceil_div(a: i64, b: i64) -> i64 {
    -((-a).div_euclid(b))
}

/// A link's statistics from its stored rows and what an instance holds for it unfolded (see
/// [`super::Store::link_stats`]).
pub(crate) fn link_stats(
    link_id: i64,
    q: &super::StatsRange,
    stored: &super::StoredClicks,
    unfolded: &ClickBatch,
) -> LinkStats {
    let ((first_hour, end_hour), (first_day, end_day)) = super::StoredClicks::bounds(q);
    let mut stats = LinkStats::default();
    let mut series = Series::new(q, link_id, unfolded, stored.totals, &mut stats);
    for &(at, clicks, bots) in &stored.rows {
        series.add(at, clicks, bots);
    }
    series.finish(first_hour, end_hour, &mut stats);
    let mut breakdown = Breakdown::new(q.include_bots);
    for (dims, humans, bots) in &stored.days {
        breakdown.add_stored(dims, humans, bots);
    }
    breakdown.add_unfolded(unfolded, link_id, first_day, end_day);
    breakdown.finish(&mut stats, q.limit);
    stats
}

/// The first half of `link_stats`, the same on both backends: totals and the series, added up
/// from stored hourly and daily rows and from the hours an instance holds unfolded.
struct Series<'a> {
    width: i64,
    include_bots: bool,
    buckets: std::collections::BTreeMap<i64, u64>,
    held: Vec<&'a super::HourCount>,
}

impl<'a> Series<'a> {
    /// For `link_id` over `q`, with the hours `unfolded` holds for it; sets `stats`' totals
    /// (`stored`: the store's all-time `(clicks, bots)`).
    pub fn new(
        q: &super::StatsRange,
        link_id: i64,
        unfolded: &'a ClickBatch,
        stored: (i64, i64),
        stats: &mut LinkStats,
    ) -> Self {
        let held: Vec<_> = unfolded
            .hourly
            .iter()
            .filter(|h| h.link_id == link_id)
            .collect();
        stats.total = stored.0.max(0) as u64 + held.iter().map(|h| h.clicks).sum::<u64>();
        stats.bots = stored.1.max(0) as u64 + held.iter().map(|h| h.bots).sum::<u64>();
        Series {
            width: q.interval.seconds(),
            include_bots: q.include_bots,
            buckets: Default::default(),
            held,
        }
    }

    /// A stored row: `clicks` (of which `bots`) at `at` (an hour's or a rolled-up day's start).
    pub fn add(&mut self, at: i64, clicks: i64, bots: i64) {
        let n = if self.include_bots {
            clicks
        } else {
            clicks - bots
        };
        if n > 0 {
            *self
                .buckets
                .entry(at.div_euclid(self.width) * self.width)
                .or_insert(0) += n as u64;
        }
    }

    /// Adds the held hours in `first_hour..end_hour` and sets `stats.series`.
    pub fn finish(mut self, first_hour: i64, end_hour: i64, stats: &mut LinkStats) {
        for h in std::mem::take(&mut self.held) {
            if h.hour >= first_hour && h.hour < end_hour {
                self.add(h.hour * 3600, h.clicks as i64, h.bots as i64);
            }
        }
        stats.series = self.buckets.into_iter().collect();
    }
}

/// A link's dimension lists and unique visitors over whole days, added up from stored rows and
/// from what an instance has not folded yet, then ranked: the second half of `link_stats`,
/// the same on both backends.
struct Breakdown {
    counts: [HashMap<String, u64>; 5],
    visitors: Visitors,
    include_bots: bool,
}

impl Breakdown {
    pub fn new(include_bots: bool) -> Self {
        Breakdown {
            counts: Default::default(),
            visitors: Visitors::default(),
            include_bots,
        }
    }

    fn add(&mut self, dim: Dim, key: &str, human: u64, bot: u64) {
        let n = if self.include_bots {
            human + bot
        } else {
            human
        };
        if n == 0 {
            return;
        }
        let map = &mut self.counts[dim as usize];
        match map.get_mut(key) {
            Some(c) => *c += n,
            None => {
                map.insert(key.to_string(), n);
            }
        }
    }

    /// One stored link-day: its dimension blob and visitor sketches.
    pub fn add_stored(&mut self, dims: &[u8], humans: &[u8], bots: &[u8]) {
        for (dim, key, human, bot) in dims_from_bytes(dims) {
            if let Some(d) = Dim::from_u8(dim) {
                self.add(d, key, human, bot);
            }
        }
        self.visitors.merge(&Visitors::from_bytes(humans));
        if self.include_bots {
            self.visitors.merge(&Visitors::from_bytes(bots));
        }
    }

    /// The unfolded details of `link_id` for days `[first_day, end_day)`.
    pub fn add_unfolded(
        &mut self,
        unfolded: &ClickBatch,
        link_id: i64,
        first_day: i64,
        end_day: i64,
    ) {
        for d in unfolded
            .days
            .iter()
            .filter(|d| d.link_id == link_id && d.day >= first_day && d.day < end_day)
        {
            for dc in &d.dims {
                self.add(dc.dim, &dc.key, dc.human, dc.bot);
            }
            self.visitors.merge(&d.humans);
            if self.include_bots {
                self.visitors.merge(&d.bots);
            }
        }
    }

    /// Top `limit` per dimension (by clicks, then key) and the visitor estimate into `stats`.
    pub fn finish(self, stats: &mut LinkStats, limit: usize) {
        for (i, map) in self.counts.into_iter().enumerate() {
            let mut list: Vec<(String, u64)> = map.into_iter().collect();
            list.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            list.truncate(limit);
            stats.dims[i] = list;
        }
        stats.unique_visitors = self.visitors.estimate();
    }
}

/// The top `limit` values per dimension (human clicks) of many stored link-days' dimension
/// blobs (the overview of a scope; see [`super::ScopeClicks`]).
pub(crate) fn scope_dims(
    blobs: &[Vec<u8>],
    unfolded: &[&super::DimCount],
    limit: usize,
) -> [Vec<(String, u64)>; 5] {
    let mut breakdown = Breakdown::new(false);
    for blob in blobs {
        for (dim, key, human, bot) in dims_from_bytes(blob) {
            if let Some(d) = Dim::from_u8(dim) {
                breakdown.add(d, key, human, bot);
            }
        }
    }
    for d in unfolded {
        breakdown.add(d.dim, &d.key, d.human, d.bot);
    }
    let mut stats = LinkStats::default();
    breakdown.finish(&mut stats, limit);
    stats.dims
}
