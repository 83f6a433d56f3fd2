//! Background chores of a running instance: the periodic housekeeping (metrics upkeep, the
//! visitor key of the day, hourly roll-ups, old idempotency records), the deny list's reload on
//! SIGHUP, and the final click flush at shutdown.

use tokio::sync::watch;

use crate::analytics::sketch::VisitorKey;
use crate::clicks::flusher::JOURNAL_REAP_AFTER;
use crate::domain::time::now;
use crate::service::app::{App, AppState};

/// How long idempotency records are kept (the contract asks for at least 24 h).
const IDEMPOTENCY_TTL_SECS: i64 = 48 * 3600;

/// Reloads the deny list on every SIGHUP; a bad file keeps the current list (logged).
pub async fn reload_deny_list_on_sighup(state: AppState, mut stop: watch::Receiver<bool>) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hangups = match signal(SignalKind::hangup()) {
        Ok(hangups) => hangups,
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGHUP: the deny list reloads over the API only");
            return;
        }
    };
    loop {
        tokio::select! {
            _ = hangups.recv() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        if state.settings.deny_list.is_none() {
            tracing::info!("SIGHUP: nothing to reload (no --deny-list)");
            continue;
        }
        let deny = state.clone();
        match tokio::task::spawn_blocking(move || deny.deny.reload()).await {
            Ok(Ok(entries)) => tracing::info!(entries, "deny list reloaded (SIGHUP)"),
            Ok(Err(e)) => {
                tracing::error!(error = %format!("{e:#}"), "deny list not reloaded: keeping the current one")
            }
            Err(e) => tracing::error!(error = %e, "deny list reload stopped"),
        }
    }
}

/// Flushes what is left, retrying a few times if the store hiccups.
pub async fn final_flush(state: &App) {
    for attempt in 1..=5 {
        match state.clicks.flush_once(state.store.as_ref()).await {
            Ok(n) => {
                tracing::info!(clicks = n, "final click flush done");
                return;
            }
            Err(e) => {
                tracing::error!(error = %e, attempt, "final click flush failed");
                tokio::time::sleep(std::time::Duration::from_millis(200 * attempt)).await;
            }
        }
    }
    tracing::error!(
        lost = state.clicks.buffer.pending(),
        "clicks could not be flushed before exit"
    );
}

/// Periodic chores: drain the metrics exporter's histogram samples (it keeps them until a
/// scrape otherwise), replay the click journals of instances that stopped, roll hourly clicks
/// up, forget idempotency records older than the
/// retention and expired dashboard sessions.
pub async fn run(state: AppState, mut stop: watch::Receiver<bool>) {
    let mut ticker = tokio::time::interval(std::time::Duration::from_secs(5));
    let mut last_purge = None;
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        state.metrics.run_upkeep();
        refresh_visitor_key(&state).await;
        reap_click_journals(&state).await;
        if last_purge.is_none_or(|t: std::time::Instant| t.elapsed().as_secs() >= 3600) {
            last_purge = Some(std::time::Instant::now());
            roll_up(&state).await;
            if let Err(e) = state
                .store
                .purge_idempotency(now() - IDEMPOTENCY_TTL_SECS)
                .await
            {
                tracing::warn!(error = %e, "purging old idempotency records failed");
            }
        }
    }
}

/// Makes sure the visitor key of the current day is known (a new UTC day gets a new key, shared
/// by every instance through the store). Until it is known, clicks count without visitors.
pub async fn refresh_visitor_key(state: &App) {
    let day = now().div_euclid(86_400);
    if state.analytics.visitor_key().is_some_and(|k| k.day == day) {
        return;
    }
    match state.store.visitor_key(day).await {
        Ok(key) => state.analytics.set_visitor_key(VisitorKey::new(day, key)),
        Err(e) => tracing::warn!(error = %e, "could not get the visitor key of the day"),
    }
}

/// Replays the click journals of instances that stopped flushing (PostgreSQL).
async fn reap_click_journals(state: &App) {
    match state.store.reap_click_journals(JOURNAL_REAP_AFTER).await {
        Ok(0) => {}
        Ok(clicks) => tracing::warn!(
            clicks,
            "replayed the click journal of an instance that stopped flushing"
        ),
        Err(e) => tracing::warn!(error = %e, "replaying stopped instances' click journals failed"),
    }
}

/// Rolls hourly click counts older than the retention up into daily ones.
async fn roll_up(state: &App) {
    let retention_hours = (state.settings.hourly_stats_retention.as_secs() / 3600) as i64;
    let before_hour = now().div_euclid(3600) - retention_hours;
    match state.store.roll_up_hours(before_hour).await {
        Ok(0) => {}
        Ok(rows) => tracing::info!(rows, "rolled hourly click counts up into daily ones"),
        Err(e) => tracing::warn!(error = %e, "rolling up hourly click counts failed"),
    }
}
