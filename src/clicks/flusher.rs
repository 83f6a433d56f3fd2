//! The background flusher (the seed's view counter, second half): every flush interval it
//! drains the buffer and writes it in one transaction. A failed write puts the batch back, so
//! clicks are retried rather than lost; the application runs one final flush on shutdown.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::sync::watch;

use super::Clicks;
use crate::store::{Store, StoreError};

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
    /// Drains the buffer, day details included, and writes it; on failure the clicks go back
    /// into the buffer.
    pub async fn flush_once(&self, store: &dyn Store) -> Result<u64, StoreError> {
        self.flush(store, None).await
    }

    /// Drains and writes the hourly counts, and the held day details of the links in `slot`
    /// (see [`super::ClickBuffer::drain_with`]).
    pub async fn flush(
        &self,
        store: &dyn Store,
        slot: Option<(i64, i64)>,
    ) -> Result<u64, StoreError> {
        let _gate = self.flush_gate.write().await;
        let batch = self.buffer.drain_with(slot);
        let n = batch.total();
        if batch.is_empty() {
            self.mark_success();
            return Ok(0);
        }
        let started = Instant::now();
        let batch = Arc::new(batch);
        match store.add_clicks(batch.clone(), false).await {
            Ok(()) => {
                self.buffer.committed(n);
                self.mark_success();
                metrics::counter!("snip_clicks_flushed_total").increment(n);
                metrics::counter!("snip_click_flushes_total", "result" => "ok").increment(1);
                metrics::histogram!("snip_click_flush_duration_seconds")
                    .record(started.elapsed().as_secs_f64());
                Ok(n)
            }
            Err(e) => {
                self.buffer.restore(Arc::unwrap_or_clone(batch));
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

/// How often the day details (dimension counts and visitor sketches) are written; the hourly
/// counts go every flush. Until written, the stats read them from memory, so they show as
/// fast as the counts; a crash loses at most this much of them.
pub const DETAIL_INTERVAL: Duration = Duration::from_secs(10);

/// Flushes every `interval` until `stop` turns true. The final flush is the caller's, after
/// the HTTP server has drained, so that in-flight redirects are counted too.
pub async fn run(
    clicks: Arc<Clicks>,
    store: Arc<dyn Store>,
    interval: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Each flush writes the details of one slice of the links, so every link's are written
    // once per DETAIL_INTERVAL and the work is spread evenly over the flushes.
    let slots = (DETAIL_INTERVAL.as_millis() / interval.as_millis().max(1)).max(1) as i64;
    let mut slot = 0;
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        metrics::gauge!("snip_clicks_buffered").set(clicks.buffer.pending() as f64);
        if let Err(e) = clicks.flush(store.as_ref(), Some((slot, slots))).await {
            tracing::warn!(error = %e, pending = clicks.buffer.pending(), "click flush failed; will retry");
        }
        slot = (slot + 1) % slots;
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
        let stats = store.link_stats(1, range, Vec::new()).await.unwrap();
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
        let stats = store.link_stats(1, range, Vec::new()).await.unwrap();
        assert_eq!(stats.total, 4);
        assert_eq!(stats.unique_visitors, 3);
        assert_eq!(
            stats.dims[crate::store::Dim::Browser as usize],
            vec![("Firefox".to_string(), 4)]
        );
        assert!(clicks.flush_lag().is_some());
    }
}
