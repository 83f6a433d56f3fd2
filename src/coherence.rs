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
//! Until then the cache's TTL (`--cache-ttl`) bounds how stale an entry can be; while the store
//! is unreachable entries keep being served (redirects are AP).
//!
//! A connection whose packets are silently dropped (a black-holed network path) breaks nothing
//! that TCP would notice for minutes, and notifications queued behind it arrive only when its
//! retransmissions get through. So the listener sends a heartbeat every [`HEARTBEAT`] and gives
//! up on the connection when one is not answered within [`HEARTBEAT_BOUND`]: the cache is then
//! cleared on reconnect as for any other break. [`FeedState`] tells `/health` whether the
//! instance hears changes right now: an instance that does not is `unhealthy`, so that a load
//! balancer checking `/health` takes it out of rotation while it may serve stale destinations.

use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio::sync::watch;
use tokio_postgres::{AsyncMessage, NoTls};

use crate::http::AppState;

/// The channel link changes are announced on.
pub const CHANNEL: &str = crate::store::postgres::NOTIFY_CHANNEL;

const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// How often the listening connection is asked to answer.
pub const HEARTBEAT: Duration = Duration::from_secs(1);
/// A heartbeat not answered within this is a broken connection.
pub const HEARTBEAT_BOUND: Duration = Duration::from_secs(2);

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

/// Listens for link changes until `stop` turns true, reconnecting whenever the connection
/// breaks. `url` is the primary's connection string (several hosts and
/// `target_session_attrs=read-write` are fine: after a failover it finds the new primary).
pub async fn run(app: AppState, url: String, timeout: Duration, mut stop: watch::Receiver<bool>) {
    let mut config = match tokio_postgres::Config::from_str(&url) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "cache coherence disabled: unusable database URL");
            return;
        }
    };
    // A primary that vanishes without closing its sockets is noticed by TCP keepalives.
    config
        .connect_timeout(timeout)
        .keepalives(true)
        .keepalives_idle(Duration::from_secs(5))
        .keepalives_interval(Duration::from_secs(2))
        .keepalives_retries(3);
    app.change_feed.enabled.store(true, Ordering::Relaxed);
    let mut backoff = MIN_BACKOFF;
    let mut reconnect = false;
    loop {
        match listen(&app, &config, timeout, &mut stop, reconnect).await {
            Ok(()) => return,
            Err(e) => {
                app.change_feed.set_connected(false);
                metrics::counter!("snip_cache_coherence_reconnects_total").increment(1);
                tracing::warn!(
                    error = %e,
                    retry_in_ms = backoff.as_millis() as u64,
                    "cache coherence: not listening for changes from other instances; \
                     cached redirects are trusted for --cache-ttl meanwhile"
                );
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
        reconnect = true;
    }
}

/// One connection's life: connect, `LISTEN`, clear the cache if this is a `reconnect`, then
/// invalidate every announced code until the connection breaks (an error) or `stop` (Ok).
///
/// The first connection does not clear the cache: the instance has just started, and what it
/// cached in the moment before it listened is covered by the TTL. (Clearing it then would also
/// throw away entries that a store outage right after start-up would need.)
async fn listen(
    app: &AppState,
    config: &tokio_postgres::Config,
    timeout: Duration,
    stop: &mut watch::Receiver<bool>,
    reconnect: bool,
) -> anyhow::Result<()> {
    let (client, mut connection) = tokio::time::timeout(timeout, config.connect(NoTls))
        .await
        .map_err(|_| anyhow::anyhow!("connecting timed out"))??;
    // The connection is driven here, in the same loop as the LISTEN query and the stop signal.
    let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
    let sql = format!("LISTEN {CHANNEL}");
    let subscribe = client.batch_execute(&sql);
    let subscribe = tokio::time::timeout(timeout, subscribe);
    tokio::pin!(subscribe);
    let mut listening = false;
    let mut heartbeat = tokio::time::interval(HEARTBEAT);
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The heartbeat in flight, and when it was sent.
    let mut beat = None;
    let mut beat_sent = Instant::now();
    loop {
        tokio::select! {
            subscribed = &mut subscribe, if !listening => {
                subscribed.map_err(|_| anyhow::anyhow!("LISTEN timed out"))??;
                listening = true;
                // Whatever changed while no connection listened is unknown: start afresh.
                if reconnect {
                    app.cache.clear();
                }
                app.change_feed.set_connected(true);
                tracing::info!("cache coherence: listening for link changes");
            }
            _ = heartbeat.tick(), if listening => {
                if beat.is_none() {
                    beat = Some(Box::pin(client.simple_query("")));
                    beat_sent = Instant::now();
                } else if beat_sent.elapsed() >= HEARTBEAT_BOUND {
                    anyhow::bail!(
                        "no answer to the heartbeat within {} ms",
                        HEARTBEAT_BOUND.as_millis()
                    );
                }
            }
            answered = async { beat.as_mut().expect("guarded").await }, if beat.is_some() => {
                answered?;
                beat = None;
            }
            message = messages.next() => match message {
                Some(Ok(AsyncMessage::Notification(n))) => {
                    // `INSTANCE CODE`; this instance updated its cache when it wrote.
                    let (from, code) = n.payload().rsplit_once(' ').unwrap_or(("", n.payload()));
                    if Some(from) != app.store.instance_id() {
                        app.cache.invalidate(code);
                        metrics::counter!("snip_cache_coherence_invalidations_total").increment(1);
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e.into()),
                None => anyhow::bail!("the connection closed"),
            },
            _ = stop.wait_for(|s| *s) => return Ok(()),
        }
    }
}
