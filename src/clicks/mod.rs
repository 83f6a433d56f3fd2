//! Click statistics: counted in memory on the redirect path, flushed to the store in batches
//! (the seed's eventually consistent view counter), or committed one by one in `exact` mode.
//!
//! Loss window on a crash (`kill -9`, power loss) in buffered mode: the clicks recorded since the
//! last successful flush, i.e. at most one `--click-flush-interval` (plus whatever accumulated
//! while the store was failing). A graceful stop flushes everything.

pub mod buffer;
pub mod flusher;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use parking_lot::Mutex;

use crate::domain::time::UnixSeconds;
use crate::store::{Store, StoreResult};
pub use buffer::{ClickBuffer, Visit};
pub use flusher::FlushState;

/// Everything about clicks that the redirect path and the flusher share.
#[derive(Default)]
pub struct Clicks {
    pub buffer: ClickBuffer,
    pub state: FlushState,
    /// Held for writing by the flusher while a drained batch is neither in the buffer nor
    /// committed; held for reading while a `max_clicks` counter is initialised, so that the
    /// counter sees every click exactly once (store total + buffer).
    flush_gate: tokio::sync::RwLock<()>,
    /// Clicks used per link with `max_clicks`; never evicted, so the limit stays exact on this
    /// instance even when the cache evicts the link.
    limits: Mutex<HashMap<i64, Arc<AtomicU64>>>,
}

impl Clicks {
    /// The `max_clicks` counter of a link, created from the store's total plus pending clicks.
    pub async fn limit_counter(
        &self,
        store: &dyn Store,
        link_id: i64,
    ) -> StoreResult<Arc<AtomicU64>> {
        if let Some(c) = self.limits.lock().get(&link_id) {
            return Ok(c.clone());
        }
        let _gate = self.flush_gate.read().await;
        let stored = store.total_clicks(link_id).await?;
        let used = stored + self.buffer.pending_for(link_id);
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
        store.add_clicks(Arc::new(one.drain()), true).await
    }
}
