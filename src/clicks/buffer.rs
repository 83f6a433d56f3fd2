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

#[derive(Default)]
struct Shard {
    /// `(link_id, hour index)` → clicks.
    hourly: HashMap<(i64, i64), u64>,
    /// `(link_id, day index)` → referrer host → clicks.
    referrers: HashMap<(i64, i64), HashMap<Box<str>, u64>>,
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
        self.add(
            link_id,
            at.div_euclid(3600),
            at.div_euclid(86_400),
            referrer,
            1,
        );
    }

    fn add(&self, link_id: i64, hour: i64, day: i64, referrer: Option<&str>, n: u64) {
        let host = referrer.unwrap_or(DIRECT);
        {
            let mut shard = self.shard(link_id).lock();
            *shard.hourly.entry((link_id, hour)).or_insert(0) += n;
            let hosts = shard.referrers.entry((link_id, day)).or_default();
            match hosts.get_mut(host) {
                Some(count) => *count += n,
                None => {
                    hosts.insert(host.into(), n);
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
            .hourly
            .iter()
            .filter(|((id, _), _)| *id == link_id)
            .map(|(_, n)| n)
            .sum()
    }

    /// Takes everything recorded so far; call [`Self::committed`] once it is written, or
    /// [`Self::restore`] if writing it failed.
    pub fn drain(&self) -> ClickBatch {
        let mut batch = ClickBatch::default();
        for shard in self.shards.iter() {
            let taken = std::mem::take(&mut *shard.lock());
            batch.hourly.extend(
                taken
                    .hourly
                    .into_iter()
                    .map(|((id, hour), n)| (id, hour, n)),
            );
            for ((id, day), hosts) in taken.referrers {
                batch
                    .referrers
                    .extend(hosts.into_iter().map(|(host, n)| (id, day, host.into(), n)));
            }
        }
        batch
    }

    /// A drained batch reached the store: it no longer counts as pending.
    pub fn committed(&self, batch_total: u64) {
        self.pending.fetch_sub(batch_total, Ordering::Relaxed);
    }

    /// Puts back a batch whose write failed, so that it is retried with the next flush.
    pub fn restore(&self, batch: ClickBatch) {
        for (id, hour, n) in batch.hourly {
            let mut shard = self.shard(id).lock();
            *shard.hourly.entry((id, hour)).or_insert(0) += n;
        }
        for (id, day, host, n) in batch.referrers {
            let mut shard = self.shard(id).lock();
            *shard
                .referrers
                .entry((id, day))
                .or_default()
                .entry(host.into())
                .or_insert(0) += n;
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
        assert!(batch.referrers.contains(&(1, day, DIRECT.into(), 2)));
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
        assert_eq!(again.referrers, vec![(7, 0, DIRECT.into(), 2)]);
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
