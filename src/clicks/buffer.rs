//! The in-memory click buffer (the seed's view counter, first half).
//!
//! Recording a click locks one of several shards (chosen by link id) for a hash-map increment:
//! no store I/O, no await while locked, and no allocation once the link's hour bucket exists (a
//! new referrer host allocates its key once per day and link). The flusher drains all shards.

use std::collections::HashMap;

use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

use crate::domain::time::UnixSeconds;
use crate::store::ClickBatch;

const SHARDS: usize = 16;
/// The referrer key of clicks that came without a usable `Referer`.
pub const DIRECT: &str = "(direct)";

type Map<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// Clicks of one link in one hour.
#[derive(Default)]
struct Counts {
    clicks: u64,
    /// Clicks with a referrer host; the rest (`clicks` minus these) were direct. An empty map
    /// does not allocate, so direct traffic never allocates here.
    referred: Map<Box<str>, u64>,
}

#[derive(Default)]
struct Shard {
    /// `(link_id, hour index)` → counts: one hash lookup per click.
    hours: Map<(i64, i64), Counts>,
}

pub struct ClickBuffer {
    /// `parking_lot::Mutex`, not a Tokio mutex: it is held only for a map update, never across
    /// an await.
    shards: Box<[Mutex<Shard>]>,
    pending: AtomicU64,
}

impl Default for ClickBuffer {
    fn default() -> Self {
        ClickBuffer {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            pending: AtomicU64::new(0),
        }
    }
}

impl ClickBuffer {
    fn shard(&self, link_id: i64) -> &Mutex<Shard> {
        &self.shards[link_id.rem_euclid(SHARDS as i64) as usize]
    }

    /// Counts one click of `link_id` at `at`, from `referrer` host (None = direct).
    pub fn record(&self, link_id: i64, at: UnixSeconds, referrer: Option<&str>) {
        self.add(link_id, at.div_euclid(3600), referrer, 1);
    }

    fn add(&self, link_id: i64, hour: i64, referrer: Option<&str>, n: u64) {
        {
            let mut shard = self.shard(link_id).lock();
            let counts = shard.hours.entry((link_id, hour)).or_default();
            counts.clicks += n;
            if let Some(host) = referrer.filter(|h| *h != DIRECT) {
                match counts.referred.get_mut(host) {
                    Some(c) => *c += n,
                    None => {
                        counts.referred.insert(host.into(), n);
                    }
                }
            }
        }
        self.pending.fetch_add(n, Ordering::Relaxed);
    }

    /// Clicks recorded and not yet committed to the store (drained ones in a flush that is
    /// still running or failed count too).
    pub fn pending(&self) -> u64 {
        self.pending.load(Ordering::Relaxed)
    }

    /// Pending clicks of one link (for initialising its `max_clicks` counter).
    pub fn pending_for(&self, link_id: i64) -> u64 {
        let shard = self.shard(link_id).lock();
        shard
            .hours
            .iter()
            .filter(|((id, _), _)| *id == link_id)
            .map(|(_, c)| c.clicks)
            .sum()
    }

    /// Takes everything recorded so far (referrers per day; direct clicks are implicit); call [`Self::committed`] once it is written, or
    /// [`Self::restore`] if writing it failed. Map capacity is kept, so the next interval's
    /// clicks do not allocate again.
    pub fn drain(&self) -> ClickBatch {
        let mut batch = ClickBatch::default();
        let mut referred: Map<(i64, i64, Box<str>), u64> = Map::default();
        for shard in self.shards.iter() {
            let mut shard = shard.lock();
            for ((id, hour), counts) in shard.hours.drain() {
                batch.hourly.push((id, hour, counts.clicks));
                let day = (hour * 3600).div_euclid(86_400);
                for (host, n) in counts.referred {
                    *referred.entry((id, day, host)).or_insert(0) += n;
                }
            }
        }
        batch.referrers = referred
            .into_iter()
            .map(|((id, day, host), n)| (id, day, host.into(), n))
            .collect();
        batch
    }

    /// A drained batch reached the store: it no longer counts as pending.
    pub fn committed(&self, batch_total: u64) {
        self.pending.fetch_sub(batch_total, Ordering::Relaxed);
    }

    /// Puts back a batch whose write failed, so that it is retried with the next flush.
    /// (Referrers come back attributed to the first hour of their day: they are stored per
    /// day, so nothing changes in the store.)
    pub fn restore(&self, batch: ClickBatch) {
        for (id, hour, n) in batch.hourly {
            let mut shard = self.shard(id).lock();
            shard.hours.entry((id, hour)).or_default().clicks += n;
        }
        for (id, day, host, n) in batch.referrers {
            let mut shard = self.shard(id).lock();
            // Attach to any hour of that day already present for the link, or the day's first.
            let hour = shard
                .hours
                .keys()
                .find(|(i, h)| *i == id && (h * 3600).div_euclid(86_400) == day)
                .map(|(_, h)| *h)
                .unwrap_or(day * 24);
            let counts = shard.hours.entry((id, hour)).or_default();
            *counts.referred.entry(host.into()).or_insert(0) += n;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clicks_are_aggregated_by_hour_and_referrer_per_day() {
        let buf = ClickBuffer::default();
        let t = 1_700_000_000;
        buf.record(1, t, None);
        buf.record(1, t + 1, Some("news.ycombinator.com"));
        buf.record(1, t + 3600, None);
        buf.record(2, t, None);
        assert_eq!(buf.pending(), 4);
        assert_eq!(buf.pending_for(1), 3);
        let mut batch = buf.drain();
        batch.hourly.sort();
        batch.referrers.sort();
        assert_eq!(
            batch.hourly,
            vec![(1, t / 3600, 2), (1, t / 3600 + 1, 1), (2, t / 3600, 1)]
        );
        let day = t / 86_400;
        // Direct clicks are implicit: the day's clicks minus the referred ones.
        assert!(!batch.referrers.iter().any(|r| r.2 == DIRECT));
        assert!(
            batch
                .referrers
                .contains(&(1, day, "news.ycombinator.com".into(), 1))
        );
        assert_eq!(buf.pending(), 4, "drained but not yet committed");
        buf.committed(batch.total());
        assert_eq!(buf.pending(), 0);
        assert!(buf.drain().is_empty());
    }

    #[test]
    fn a_restored_batch_is_drained_again_with_new_clicks() {
        let buf = ClickBuffer::default();
        buf.record(7, 0, None);
        let batch = buf.drain();
        buf.record(7, 0, None);
        buf.restore(batch);
        assert_eq!(buf.pending(), 2);
        let again = buf.drain();
        assert_eq!(again.hourly, vec![(7, 0, 2)]);
        assert!(again.referrers.is_empty());
    }

    #[test]
    fn restoring_a_batch_keeps_referrers_and_direct_clicks_per_day() {
        let buf = ClickBuffer::default();
        let t = 86_400 * 100;
        buf.record(3, t + 10 * 3600, Some("a.example"));
        buf.record(3, t + 10 * 3600, Some("a.example"));
        buf.record(3, t + 11 * 3600, None);
        let first = buf.drain();
        buf.restore(first.clone());
        let mut again = buf.drain();
        let mut first = first;
        for b in [&mut first, &mut again] {
            b.hourly.sort();
            b.referrers.sort();
        }
        assert_eq!(again, first);
        assert!(again.referrers.contains(&(3, 100, "a.example".into(), 2)));
        assert_eq!(again.referrers, vec![(3, 100, "a.example".into(), 2)]);
    }

    #[test]
    fn concurrent_recording_loses_no_click() {
        let buf = std::sync::Arc::new(ClickBuffer::default());
        let threads: Vec<_> = (0..8)
            .map(|i| {
                let buf = buf.clone();
                std::thread::spawn(move || {
                    for n in 0..10_000 {
                        buf.record(n % 5, 0, (i % 2 == 0).then_some("a.example"));
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(buf.drain().total(), 80_000);
    }
}
