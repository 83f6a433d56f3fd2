//! Click statistics: counted in memory on the redirect path, flushed to the store in batches
//! (the view counter design: buffered counts flushed in batches, eventually consistent), or
//! committed one by one in `exact` mode.
//!
//! Loss window on a crash (`kill -9`) in buffered mode: the clicks recorded since the last
//! successful flush, i.e. at most one `--click-flush-interval` (plus whatever accumulated while
//! the store was failing): every flush appends them to the store's click journal, which the
//! store folds into its tables after a restart. Dimension counts and visitor sketches are not
//! journalled: a crash loses those of at most one [`flusher::FOLD_INTERVAL`]. A graceful stop
//! flushes and folds everything.

pub mod buffer;
pub mod flusher;
#[cfg(test)]
mod tests_pg;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64};

use parking_lot::Mutex;

use crate::domain::time::UnixSeconds;
use crate::store::{ClickBatch, ClickFlush, LinkStats, StatsRange, Store, StoreResult};
pub use buffer::{ClickBuffer, Visit};
pub use flusher::FlushState;

/// Everything about clicks that the redirect path and the flusher share.
pub struct Clicks {
    pub buffer: ClickBuffer,
    pub state: FlushState,
    /// Held for writing by the flusher while taken clicks are neither in the buffer nor
    /// committed; held for reading while a `max_clicks` counter is initialised or statistics
    /// are read, so that they see every click exactly once (store + buffer).
    flush_gate: tokio::sync::RwLock<()>,
    /// A flush whose outcome is not known yet (failed or timed out): retried as it is, with
    /// its sequence number, before anything newer is taken.
    unconfirmed: Mutex<Option<Arc<ClickFlush>>>,
    /// The sequence number of the next flush (see [`ClickFlush`]).
    next_seq: AtomicI64,
    /// Flushes per fold interval: each folds one slice of the links.
    slots: AtomicI64,
    /// Clicks used per link with `max_clicks`; never evicted, so the limit stays exact on this
    /// instance even when the cache evicts the link.
    limits: Mutex<HashMap<i64, Arc<AtomicU64>>>,
}

impl Default for Clicks {
    fn default() -> Self {
        Clicks {
            buffer: ClickBuffer::default(),
            state: FlushState::default(),
            flush_gate: Default::default(),
            unconfirmed: Mutex::new(None),
            next_seq: AtomicI64::new(1),
            slots: AtomicI64::new(1),
            limits: Mutex::new(HashMap::new()),
        }
    }
}

impl Clicks {
    /// What this instance holds of a link and the store's tables do not have yet (on every
    /// store, the tables get a link's hours and breakdowns when its slice is folded).
    fn unfolded(&self, link_id: i64) -> ClickBatch {
        let mut batch = self.buffer.unfolded(link_id);
        self.add_unconfirmed(&mut batch, |id| id == link_id);
        batch
    }

    /// The same for every link.
    fn unfolded_all(&self) -> ClickBatch {
        let mut batch = self.buffer.unfolded_all();
        self.add_unconfirmed(&mut batch, |_| true);
        batch
    }

    /// Adds what the flush in flight (unconfirmed) holds of the links `of` picks.
    fn add_unconfirmed(&self, batch: &mut ClickBatch, of: impl Fn(i64) -> bool) {
        let unconfirmed = self.unconfirmed.lock().clone();
        let Some(f) = &unconfirmed else {
            return;
        };
        batch
            .hourly
            .extend(f.fold.hourly.iter().filter(|h| of(h.link_id)));
        batch
            .days
            .extend(f.fold.days.iter().filter(|d| of(d.link_id)).cloned());
    }

    /// Sets the flushes per fold interval, as [`flusher::run`] does.
    #[cfg(test)]
    pub(crate) fn set_slots(&self, slots: i64) {
        self.slots
            .store(slots, std::sync::atomic::Ordering::Relaxed);
    }

    /// What `read` reads from the store, and what is not folded into it yet of every link,
    /// with no flush in between (so no click is missed or counted twice).
    pub async fn read_with_unfolded<T>(
        &self,
        read: impl std::future::Future<Output = StoreResult<T>>,
    ) -> StoreResult<(T, ClickBatch)> {
        let _gate = self.flush_gate.read().await;
        let stored = read.await?;
        Ok((stored, self.unfolded_all()))
    }

    /// A link's statistics: the store's, plus what is not folded yet.
    pub async fn stats(
        &self,
        store: &dyn Store,
        link_id: i64,
        range: StatsRange,
    ) -> StoreResult<LinkStats> {
        let _gate = self.flush_gate.read().await;
        store
            .link_stats(link_id, range, self.unfolded(link_id))
            .await
    }

    /// A link's all-time clicks: the store's total plus what is not folded yet.
    pub async fn total(&self, store: &dyn Store, link_id: i64) -> StoreResult<u64> {
        let _gate = self.flush_gate.read().await;
        let stored = store.total_clicks(link_id).await?;
        Ok(stored + self.unfolded(link_id).total())
    }

    /// The `max_clicks` counter of a link, created from the store's total plus pending clicks.
    pub async fn limit_counter(
        &self,
        store: &dyn Store,
        link_id: i64,
    ) -> StoreResult<Arc<AtomicU64>> {
        if let Some(c) = self.limits.lock().get(&link_id) {
            return Ok(c.clone());
        }
        let used = self.total(store, link_id).await?;
        Ok(self
            .limits
            .lock()
            .entry(link_id)
            .or_insert_with(|| Arc::new(AtomicU64::new(used)))
            .clone())
    }

    /// Commits one click before the redirect is answered (`--click-mode exact`).
    pub async fn record_exact(
        &self,
        store: &dyn Store,
        link_id: i64,
        at: UnixSeconds,
        visit: &Visit<'_>,
    ) -> StoreResult<()> {
        // The same aggregation as the buffer, for one click.
        let one = ClickBuffer::default();
        one.record(link_id, at, visit);
        store.add_clicks(Arc::new(one.take_all()), true).await
    }
}
