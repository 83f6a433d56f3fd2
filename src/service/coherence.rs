//! Cache coherence between instances that share a PostgreSQL store.
//!
//! Every committed create, change or delete of a link is announced by the store on the channel
//! [`CHANNEL`] (`pg_notify` in the same transaction, so a notification is delivered exactly
//! when the change committed), with the writing instance and the code as payload. Each instance keeps one connection to
//! the primary that `LISTEN`s and drops the announced code from its redirect cache, so a PATCH,
//! disable or delete on one instance changes the redirects of every other instance within a
//! round trip.
//!
//! Notifications are not queued for a listener that is not connected. So when the connection
//! breaks (primary restarted or failed over, network cut), the listener reconnects with
//! backoff and, once it listens again, clears the whole cache: it may have missed anything.
//! While the listener hears changes, cached entries are reloaded only as a backstop (after
//! [`crate::cache::NOTIFIED_TTL`]); while it does not, the cache's TTL (`--cache-ttl`) bounds
//! how stale an entry can be; while the store is unreachable entries keep being served
//! (redirects are AP).
//!
//! A connection whose packets are silently dropped (a black-holed network path) breaks nothing
//! that TCP would notice for minutes, and notifications queued behind it arrive only when its
//! retransmissions get through. So the listener sends a heartbeat every [`HEARTBEAT`] and gives
//! up on the connection when one is not answered within [`HEARTBEAT_BOUND`]: the cache is then
//! cleared on reconnect as for any other break. [`FeedState`] tells `/health` whether the
//! instance hears changes right now: an instance that does not is `unhealthy`, so that a load
//! balancer checking `/health` takes it out of rotation while it may serve stale destinations.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::watch;

use crate::service::app::AppState;
use crate::store::ChangeSink;

pub use crate::store::postgres::changes::{CHANNEL, HEARTBEAT, HEARTBEAT_BOUND};

/// Whether this instance hears the store's change announcements (only with PostgreSQL).
#[derive(Default)]
pub struct FeedState {
    enabled: AtomicBool,
    connected: AtomicBool,
}

impl FeedState {
    /// `None` without a change feed (the embedded store: nothing changes behind our back),
    /// else whether the listener is connected and listening.
    pub fn listening(&self) -> Option<bool> {
        self.enabled
            .load(Ordering::Relaxed)
            .then(|| self.connected.load(Ordering::Relaxed))
    }

    fn set_connected(&self, connected: bool) {
        self.connected.store(connected, Ordering::Relaxed);
        metrics::gauge!("snip_cache_coherence_connected").set(if connected { 1.0 } else { 0.0 });
    }
}

/// Follows the store's changes into this instance's caches until `stop`, when the store has a
/// change feed (one shared by several instances); `None` otherwise.
pub fn start(app: &AppState, stop: watch::Receiver<bool>) -> Option<tokio::task::JoinHandle<()>> {
    let sink = Arc::new(Coherence { app: app.clone() });
    let feed = app.store.follow_changes(sink, stop)?;
    app.change_feed.enabled.store(true, Ordering::Relaxed);
    Some(tokio::spawn(feed))
}

/// What the change feed's reports do here.
struct Coherence {
    app: AppState,
}

impl ChangeSink for Coherence {
    /// The first connection does not clear the cache: the instance has just started, and what
    /// it cached in the moment before it listened is covered by the TTL. (Clearing it then
    /// would also throw away entries that a store outage right after start-up would need.)
    fn listening(&self, after_gap: bool) {
        // Whatever changed while no connection listened is unknown: start afresh.
        if after_gap {
            self.app.cache.clear();
        }
        self.app.change_feed.set_connected(true);
        self.app.cache.set_notified(true);
        tracing::info!("cache coherence: listening for link changes");
    }

    fn interrupted(&self, error: &anyhow::Error, retry_in: Duration) {
        self.app.change_feed.set_connected(false);
        self.app.cache.set_notified(false);
        metrics::counter!("snip_cache_coherence_reconnects_total").increment(1);
        tracing::warn!(
            error = %error,
            retry_in_ms = retry_in.as_millis() as u64,
            "cache coherence: not listening for changes from other instances; \
             cached redirects are trusted for --cache-ttl meanwhile"
        );
    }

    fn changed(&self, code: &str) {
        self.app.cache.invalidate(code);
        metrics::counter!("snip_cache_coherence_invalidations_total").increment(1);
    }
}
