//! The background flusher (the view counter design's batched writes). Every flush interval it
//! takes the clicks not yet journalled from the buffer and the whole entries of one slice of
//! the links, and has the store journal the first and fold the second into its tables, in one
//! transaction (see [`crate::store::ClickFlush`]): every click is durable within one flush
//! interval, while each link is written to the tables once per [`FOLD_INTERVAL`] however busy
//! it is. A flush that fails is retried as it is, so clicks are neither lost nor counted twice;
//! the application runs one final, full flush on shutdown.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::sync::watch;

use super::buffer::Taken;
use super::{ClickBuffer, Clicks};
use crate::store::journal::JOURNAL_REAPED;
use crate::store::{ClickFlush, Store, StoreError};

/// How often each link's clicks are folded into the store's tables by default
/// (`--click-fold-interval`: its hourly rows, and its day's dimension counts and visitor
/// sketches, which a crash can lose this much of). Until then they are in the journal and in
/// memory, and the stats read them from memory.
pub const FOLD_INTERVAL: Duration = Duration::from_secs(60);

/// How long an instance sharing the store may go without a flush before another replays its
/// click journal (it crashed, or is cut off: see [`ClickFlush::after_reap`]).
pub const JOURNAL_REAP_AFTER: Duration = Duration::from_secs(180);

/// Links-and-days held in memory beyond which a flush folds everything at once, so that the
/// buffer's memory stays bounded whatever the number of distinct links clicked.
const MAX_HELD: usize = 250_000;
/// Links-and-days held in memory at which new clicks are dropped: only reached when flushes
/// keep failing (a normal flush folds everything past [`MAX_HELD`]). A few hundred bytes each:
/// a few hundred megabytes at most.
pub const MAX_HELD_WHILE_FAILING: usize = 500_000;

/// What `/health` and `/metrics` report about flushing.
#[derive(Default)]
pub struct FlushState {
    /// Unix milliseconds of the last successful flush (0 = none yet).
    pub last_success_ms: AtomicI64,
    pub consecutive_failures: AtomicU64,
    pub last_error: Mutex<Option<String>>,
}

fn unix_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl Clicks {
    /// Journals and folds everything in the buffer (tests, and the final flush on shutdown).
    pub async fn flush_once(&self, store: &dyn Store) -> Result<u64, StoreError> {
        self.flush(store, true).await
    }

    /// Retries a flush whose outcome is unknown, then takes and writes the next one: the
    /// clicks not yet journalled, and the entries of the next slice of the links (`full`: of
    /// every link). Returns the clicks made durable.
    pub async fn flush(&self, store: &dyn Store, full: bool) -> Result<u64, StoreError> {
        let _gate = self.flush_gate.write().await;
        // While the store fails, clicks wait in memory up to a bound; past it they are dropped
        // (and counted) until a flush gets through.
        self.buffer
            .set_refusing(self.buffer.entries() >= MAX_HELD_WHILE_FAILING);
        metrics::counter!("snip_clicks_dropped_total").absolute(self.buffer.dropped());
        let stuck = self.unconfirmed.lock().clone();
        let mut written = match stuck {
            Some(flush) => self.write(store, flush).await?,
            None => 0,
        };
        let held = self.buffer.entries();
        if held == 0 && self.buffer.pending() == 0 && !self.buffer.has_unknown() {
            self.mark_success();
            return Ok(written);
        }
        let slots = self.slots.load(Ordering::Relaxed).max(1);
        let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        let full = full || held > MAX_HELD;
        // A shard at a time, letting requests run in between: a take of a busy buffer is a few
        // milliseconds of work, and this task shares the workers with the redirects.
        let slot = (!full).then_some((seq.rem_euclid(slots), slots));
        let mut taken = Taken::default();
        for shard in 0..ClickBuffer::SHARDS {
            self.buffer.take_shard(shard, slot, &mut taken);
            tokio::task::yield_now().await;
        }
        self.buffer.finish_take(&mut taken);
        let flush = Arc::new(ClickFlush {
            seq,
            slots,
            full,
            journal: taken.journal,
            fold: taken.fold,
        });
        *self.unconfirmed.lock() = Some(flush.clone());
        written += self.write(store, flush).await?;
        Ok(written)
    }

    async fn write(&self, store: &dyn Store, flush: Arc<ClickFlush>) -> Result<u64, StoreError> {
        let started = Instant::now();
        let n = flush.journalled();
        let mut result = store.flush_clicks(flush.clone()).await;
        if matches!(&result, Err(StoreError::Conflict(m)) if m == JOURNAL_REAPED) {
            // Cut off from the store for minutes, this instance had its journal replayed by
            // another: what it journalled is in the tables, what this flush takes is not.
            tracing::warn!(
                "this instance's click journal was replayed by another instance while its \
                 flushes failed; its journalled clicks are in the tables, the rest follows"
            );
            metrics::counter!("snip_click_journal_reaped_total").increment(1);
            self.buffer.forget_journalled();
            let again = Arc::new(flush.after_reap());
            *self.unconfirmed.lock() = Some(again.clone());
            result = store.flush_clicks(again).await;
        }
        match result {
            Ok(()) => {
                *self.unconfirmed.lock() = None;
                self.buffer.journalled(n);
                self.mark_success();
                metrics::counter!("snip_clicks_flushed_total").increment(n);
                metrics::counter!("snip_click_flushes_total", "result" => "ok").increment(1);
                metrics::histogram!("snip_click_flush_duration_seconds")
                    .record(started.elapsed().as_secs_f64());
                Ok(n)
            }
            Err(e) => {
                self.state
                    .consecutive_failures
                    .fetch_add(1, Ordering::Relaxed);
                *self.state.last_error.lock() = Some(e.to_string());
                metrics::counter!("snip_click_flushes_total", "result" => "error").increment(1);
                Err(e)
            }
        }
    }

    fn mark_success(&self) {
        self.state
            .last_success_ms
            .store(unix_ms(), Ordering::Relaxed);
        self.state.consecutive_failures.store(0, Ordering::Relaxed);
        *self.state.last_error.lock() = None;
    }

    /// Seconds since the last successful flush (None before the first one).
    pub fn flush_lag(&self) -> Option<f64> {
        let last = self.state.last_success_ms.load(Ordering::Relaxed);
        (last > 0).then(|| (unix_ms() - last).max(0) as f64 / 1000.0)
    }
}

/// Flushes every `interval` until `stop` turns true. The final flush is the caller's, after
/// the HTTP server has drained, so that in-flight redirects are counted too.
pub async fn run(
    clicks: Arc<Clicks>,
    store: Arc<dyn Store>,
    interval: Duration,
    fold_interval: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Each flush folds one slice of the links, so every link is folded once per fold interval
    // and the work is spread evenly over the flushes.
    let slots = (fold_interval.as_millis() / interval.as_millis().max(1)).max(1) as i64;
    clicks.slots.store(slots, Ordering::Relaxed);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        metrics::gauge!("snip_clicks_buffered").set(clicks.buffer.pending() as f64);
        metrics::gauge!("snip_clicks_unfolded_entries").set(clicks.buffer.entries() as f64);
        if let Err(e) = clicks.flush(store.as_ref(), false).await {
            tracing::warn!(error = %e, pending = clicks.buffer.pending(), "click flush failed; will retry");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sqlite::SqliteStore;

    #[tokio::test]
    async fn a_flush_moves_buffered_clicks_into_the_store_and_resets_the_backlog() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("t.db"), Duration::from_secs(2)).unwrap();
        let clicks = Clicks::default();
        let uas = crate::analytics::ua::UaCache::new(10);
        let ua = uas.get(Some(
            b"Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0",
        ));
        let host: Arc<str> = "a.example".into();
        for (at, referrer, visitor) in [(0, None, 1), (1, Some(&host), 2), (2, None, 1)] {
            let visit = crate::clicks::Visit {
                ua: &ua,
                referrer,
                country: None,
                visitor: Some(visitor),
            };
            clicks.buffer.record(1, 3600 * 5 + at, &visit);
        }
        assert_eq!(clicks.flush_once(&store).await.unwrap(), 3);
        assert_eq!(clicks.buffer.pending(), 0);
        let range = crate::store::StatsRange {
            from: 0,
            to: 3600 * 6,
            interval: crate::store::Interval::Hour,
            include_bots: false,
            limit: 10,
        };
        let stats = clicks.stats(&store, 1, range).await.unwrap();
        assert_eq!(stats.series, vec![(3600 * 5, 3)]);
        assert_eq!(stats.total, 3);
        assert_eq!(stats.unique_visitors, 2);
        assert_eq!(
            stats.dims[crate::store::Dim::Referrer as usize],
            vec![("(direct)".to_string(), 2), ("a.example".to_string(), 1)]
        );
        // A second flush of the same link-day merges into the stored row.
        let visit = crate::clicks::Visit {
            ua: &ua,
            referrer: None,
            country: None,
            visitor: Some(3),
        };
        clicks.buffer.record(1, 3600 * 5 + 9, &visit);
        clicks.flush_once(&store).await.unwrap();
        let stats = clicks.stats(&store, 1, range).await.unwrap();
        assert_eq!(stats.total, 4);
        assert_eq!(stats.unique_visitors, 3);
        assert_eq!(
            stats.dims[crate::store::Dim::Browser as usize],
            vec![("Firefox".to_string(), 4)]
        );
        assert!(clicks.flush_lag().is_some());
    }

    fn firefox() -> (
        crate::analytics::ua::UaCache,
        Arc<crate::analytics::ua::UaClass>,
    ) {
        let uas = crate::analytics::ua::UaCache::new(10);
        let ua = uas.get(Some(
            b"Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0",
        ));
        (uas, ua)
    }

    fn record(clicks: &Clicks, ua: &Arc<crate::analytics::ua::UaClass>, link: i64, at: i64) {
        let visit = crate::clicks::Visit {
            ua,
            referrer: None,
            country: None,
            visitor: Some(link as u64),
        };
        clicks.buffer.record(link, at, &visit);
    }

    /// Pseudo-random but repeatable (no clock, no global RNG).
    fn next(state: &mut u64) -> u64 {
        *state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        *state >> 33
    }

    #[tokio::test]
    async fn after_a_crash_the_journal_restores_exactly_the_journalled_clicks() {
        let (_uas, ua) = firefox();
        for (slots, flushes) in [(1, 5), (3, 2), (3, 7), (4, 9), (7, 30)] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("t.db");
            let mut journalled = 0;
            let mut rng = slots as u64 * 1000 + flushes as u64;
            {
                let store = SqliteStore::open(&path, Duration::from_secs(2)).unwrap();
                let clicks = Clicks::default();
                clicks.slots.store(slots, Ordering::Relaxed);
                for _ in 0..flushes {
                    for _ in 0..next(&mut rng) % 40 {
                        let link = 1 + 100 * (next(&mut rng) % 12) as i64;
                        record(
                            &clicks,
                            &ua,
                            link,
                            3600 * 100 + (next(&mut rng) % 7200) as i64,
                        );
                    }
                    journalled += clicks.flush(&store, false).await.unwrap();
                }
                // Recorded after the last flush: what a crash loses.
                record(&clicks, &ua, 1, 3600 * 100);
                assert_eq!(clicks.buffer.pending(), 1);
                // Dropped without the final flush: the crash.
            }
            let store = SqliteStore::open(&path, Duration::from_secs(2)).unwrap();
            let mut stored = 0;
            for link in (0..12).map(|i| 1 + 100 * i) {
                stored += store.total_clicks(link).await.unwrap();
            }
            assert_eq!(
                stored, journalled,
                "{slots} slots, {flushes} flushes: every journalled click once"
            );
        }
    }

    #[tokio::test]
    async fn a_flush_applied_twice_counts_once_and_stats_see_unfolded_clicks() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("t.db"), Duration::from_secs(2)).unwrap();
        let (_uas, ua) = firefox();
        let clicks = Clicks::default();
        clicks.slots.store(2, Ordering::Relaxed);
        record(&clicks, &ua, 2, 3600);
        record(&clicks, &ua, 300, 3600);
        // Flush 1 folds link 300 (slice 1 of 2) and journals link 2.
        let taken = clicks.buffer.take(Some((1, 2)));
        let flush = Arc::new(ClickFlush {
            seq: 1,
            slots: 2,
            full: false,
            journal: taken.journal,
            fold: taken.fold,
        });
        store.flush_clicks(flush.clone()).await.unwrap();
        // The reply was lost (a timeout, say): the retry must not count link 300 again.
        store.flush_clicks(flush).await.unwrap();
        assert_eq!(store.total_clicks(300).await.unwrap(), 1);
        assert_eq!(
            store.total_clicks(2).await.unwrap(),
            0,
            "journalled, not folded"
        );
        let range = crate::store::StatsRange {
            from: 0,
            to: 7200,
            interval: crate::store::Interval::Hour,
            include_bots: false,
            limit: 10,
        };
        let stats = clicks.stats(&store, 2, range).await.unwrap();
        assert_eq!((stats.total, stats.series.clone()), (1, vec![(3600, 1)]));
        assert_eq!(stats.dims[crate::store::Dim::Browser as usize].len(), 1);
    }
}
