//! What `/health`, `/health/ready` and `/metrics` report: a real database round trip with its
//! latency, free disk space of the data directory, process memory, the click flusher (last
//! success, backlog, failures) and the caches (Redis too, with `--redis`).
//!
//! `unhealthy` when the database cannot be reached (with a store shared by several instances:
//! or when this instance does not hear the other instances' link changes, see `coherence`);
//! `degraded` when anything else is off.

use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::{Value, json};

use crate::service::app::App;

/// A database round trip slower than this makes the instance `degraded`.
const DB_LATENCY_THRESHOLD: Duration = Duration::from_secs(1);
/// Less free space than this in the data directory makes the instance `degraded`.
const MIN_FREE_DISK: u64 = 256 * 1024 * 1024;
/// Resident memory above this share of the machine's memory makes the instance `degraded`.
const MAX_MEMORY_SHARE: f64 = 0.9;
/// Consecutive failed click flushes that make the instance `degraded`.
const MAX_FLUSH_FAILURES: u64 = 3;

/// The overall verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Healthy,
    /// Serving, with something off.
    Degraded,
    /// The store cannot be reached: take this instance out of rotation.
    Unhealthy,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Healthy => "healthy",
            Status::Degraded => "degraded",
            Status::Unhealthy => "unhealthy",
        }
    }
}

/// Every check's result: the verdict, and the JSON document of `/health`.
pub struct Report {
    pub status: Status,
    pub body: Value,
}

/// Runs every check; `detailed` keeps what each check found, otherwise only its verdict.
pub async fn report(app: &App, detailed: bool) -> Report {
    let database = database(app).await;
    let mut checks = json!({
        "database": database,
        "cache": cache(app),
        "disk": disk(app),
        "memory": memory(),
        "clicks": clicks(app),
    });
    // Redis down makes the instance degraded, never unhealthy: redirects bypass it.
    if let Some(shared) = &app.shared {
        checks["redis"] = shared.health().await;
    }
    let db_reachable = checks["database"].get("error").is_none();
    let all_healthy = checks
        .as_object()
        .is_some_and(|c| c.values().all(|v| v["healthy"] == Value::Bool(true)));
    let status = if !db_reachable {
        Status::Unhealthy
    } else if !all_healthy {
        Status::Degraded
    } else {
        Status::Healthy
    };
    if !detailed && let Some(checks) = checks.as_object_mut() {
        for check in checks.values_mut() {
            *check = json!({"healthy": check["healthy"]});
        }
    }
    let body = json!({
        "status": status.as_str(),
        "timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "checks": checks,
    });
    Report { status, body }
}

/// Whether this instance can serve redirects: entries to serve are enough (redirects are AP),
/// with no database round trip, which would make the check as slow as the store timeout when
/// the database is unreachable; else the store must answer.
pub async fn can_serve_redirects(app: &App) -> bool {
    !app.cache.is_empty() || app.store.ping().await.is_ok()
}

/// Sets the gauges that are read rather than counted, before a scrape renders them.
pub async fn refresh_gauges(app: &App) {
    metrics::gauge!("snip_clicks_buffered").set(app.clicks.buffer.pending() as f64);
    if let Some(lag) = app.clicks.flush_lag() {
        metrics::gauge!("snip_click_flush_lag_seconds").set(lag);
    }
    metrics::gauge!("snip_cache_entries").set(app.cache.len() as f64);
    metrics::counter!("snip_cache_hits_total").absolute(app.cache_hits.get());
    metrics::counter!("snip_cache_misses_total").absolute(app.cache_misses.get());
    let (codes, capacity) = app.store.code_filter_occupancy().unwrap_or((0, 0));
    metrics::gauge!("snip_code_filter_codes").set(codes as f64);
    metrics::gauge!("snip_code_filter_capacity").set(capacity as f64);
    if let Ok(latency) = app.store.ping().await {
        metrics::gauge!("snip_store_ping_seconds").set(latency.as_secs_f64());
    }
    crate::telemetry::collect_process_metrics();
}

async fn database(app: &App) -> Value {
    let backend = app.settings.database.backend();
    let mut check = match app.store.ping().await {
        Ok(latency) => json!({
            "healthy": latency < DB_LATENCY_THRESHOLD,
            "latency_ms": latency.as_secs_f64() * 1000.0,
            "threshold_ms": DB_LATENCY_THRESHOLD.as_millis() as u64,
            "backend": backend,
        }),
        Err(e) => json!({"healthy": false, "error": e.to_string(), "backend": backend}),
    };
    // A shared store that this instance cannot hear changes from is as good as unreachable
    // for a load balancer's purpose: its cached destinations may be stale.
    if let Some(listening) = app.change_feed.listening() {
        check["change_feed"] = json!(if listening {
            "listening"
        } else {
            "disconnected"
        });
        if !listening && check.get("error").is_none() {
            check["healthy"] = json!(false);
            check["error"] = json!(
                "not hearing link changes from other instances (the change feed is reconnecting)"
            );
        }
    }
    check
}

fn disk(app: &App) -> Value {
    let Some(path) = app.settings.database.local_file() else {
        return json!({
            "healthy": true,
            "note": "the store is PostgreSQL: this instance keeps no data on its own disk",
        });
    };
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    match (fs4::available_space(dir), fs4::total_space(dir)) {
        (Ok(free), Ok(total)) => json!({
            "healthy": free >= MIN_FREE_DISK,
            "free_bytes": free,
            "total_bytes": total,
            "threshold_bytes": MIN_FREE_DISK,
            "path": dir.display().to_string(),
        }),
        (Err(e), _) | (_, Err(e)) => json!({"healthy": false, "error": e.to_string()}),
    }
}

/// A `kB` field of a `/proc` file, in bytes.
fn proc_kb(path: &str, field: &str) -> Option<u64> {
    std::fs::read_to_string(path)
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix(field))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse::<u64>()
        .ok()
        .map(|kb| kb * 1024)
}

fn memory() -> Value {
    match (
        proc_kb("/proc/self/status", "VmRSS:"),
        proc_kb("/proc/meminfo", "MemTotal:"),
    ) {
        (Some(rss), Some(total)) => json!({
            "healthy": (rss as f64) < total as f64 * MAX_MEMORY_SHARE,
            "rss_bytes": rss,
            "system_total_bytes": total,
        }),
        _ => json!({"healthy": true, "note": "memory figures unavailable on this platform"}),
    }
}

fn clicks(app: &App) -> Value {
    let failures = app
        .clicks
        .state
        .consecutive_failures
        .load(Ordering::Relaxed);
    let last = app.clicks.state.last_success_ms.load(Ordering::Relaxed);
    json!({
        "healthy": failures < MAX_FLUSH_FAILURES && app.clicks.buffer.dropped() == 0,
        "mode": app.click_mode().as_str(),
        "backlog": app.clicks.buffer.pending(),
        "dropped": app.clicks.buffer.dropped(),
        "last_flush": (last > 0).then(|| {
            chrono::DateTime::from_timestamp_millis(last)
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        }).flatten(),
        "flush_lag_seconds": app.clicks.flush_lag(),
        "flush_interval_ms": app.settings.click_flush_interval.as_millis() as u64,
        "consecutive_failures": failures,
        "last_error": app.clicks.state.last_error.lock().clone(),
    })
}

fn cache(app: &App) -> Value {
    let hits = app.cache_hits.get();
    let misses = app.cache_misses.get();
    json!({
        "healthy": true,
        "enabled": app.cache.capacity() > 0,
        "entries": app.cache.len(),
        "capacity": app.cache.capacity(),
        "hits": hits,
        "misses": misses,
        "hit_ratio": if hits + misses == 0 { 0.0 } else { hits as f64 / (hits + misses) as f64 },
    })
}
