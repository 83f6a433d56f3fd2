//! Health checks that test the real dependencies (see docs/architecture.md, "The design we
//! follow") and the Prometheus endpoint.
//!
//! `/health` runs every check: a real database round trip with its latency, free disk space
//! of the data directory, process memory, the click flusher (last success, backlog, failures)
//! and the caches (Redis too, with `--redis`). Anonymous callers see the status and each
//! check's verdict; an admin key sees the details (they name paths and sizes). `unhealthy` (503) when the database cannot be
//! reached (with PostgreSQL: or when this instance does not hear the other instances' link
//! changes, see `crate::coherence`); `degraded` (200) when anything else is off.
//! `/health/ready`: 200 while this instance can serve redirects (the cache holds entries to
//! serve from, or the store answers) and is not draining for shutdown. A load balancer in front
//! of one instance polls `/health/ready`; in front of several on a shared database it prefers
//! the instances passing `/health` and falls back to `/health/ready` (docs/operations.md,
//! "Health").

use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use super::error::ApiError;
use super::{App, AppState};
use crate::config::Database;

/// A database round trip slower than this makes the instance `degraded`.
const DB_LATENCY_THRESHOLD: Duration = Duration::from_secs(1);
/// Less free space than this in the data directory makes the instance `degraded`.
const MIN_FREE_DISK: u64 = 256 * 1024 * 1024;
/// Resident memory above this share of the machine's memory makes the instance `degraded`.
const MAX_MEMORY_SHARE: f64 = 0.9;
/// Consecutive failed click flushes that make the instance `degraded`.
const MAX_FLUSH_FAILURES: u64 = 3;

/// The health routes of the public listener; `/metrics` too unless an admin listener serves it.
pub fn router(with_metrics: bool) -> Router<AppState> {
    let router = Router::new()
        .route("/health", get(health))
        .route("/health/live", get(|| async { "ok\n" }))
        .route("/health/ready", get(ready));
    if with_metrics {
        router.route("/metrics", get(metrics))
    } else {
        router
    }
}

/// The routes of the admin listener (`--admin-listen`): `/health` with its details for anyone
/// who can reach it, the probes, and `/metrics`.
pub fn admin_router() -> Router<AppState> {
    Router::new()
        .route(
            "/health",
            get(|State(app): State<AppState>| async move { report(&app, true).await }),
        )
        .route("/health/live", get(|| async { "ok\n" }))
        .route("/health/ready", get(ready))
        .route("/metrics", get(metrics))
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
    let Database::Sqlite(path) = &app.settings.database else {
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
    let hits = app.cache_hits.load(Ordering::Relaxed);
    let misses = app.cache_misses.load(Ordering::Relaxed);
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

/// `/health`: for anonymous callers, the status and each check's name and verdict only; the
/// details (paths, sizes, latencies, errors) for admin keys. A presented key that is not valid
/// answers like on the API (401, or 429 when throttled).
/// `/health`'s answer.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub(super) struct HealthReport {
    /// `healthy`, `degraded` (200) or `unhealthy` (503).
    #[schema(pattern = "^(healthy|degraded|unhealthy)$")]
    status: String,
    #[schema(format = DateTime)]
    timestamp: String,
    /// Each check (`database`, `cache`, `disk`, `memory`, `clicks`, `redis`) by name.
    checks: std::collections::BTreeMap<String, HealthCheck>,
}

/// One check: its verdict, and for an admin key (or on the admin listener) what it found.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub(super) struct HealthCheck {
    healthy: bool,
}

/// Every check; anonymous callers see the verdicts, admin keys the details.
#[utoipa::path(
    get,
    path = "/health",
    tag = "operations",
    responses(
        (status = 200, description = "Healthy or degraded", body = HealthReport),
        (status = 503, description = "Unhealthy: the store is unreachable", body = HealthReport),
        (status = 401, description = "An API key was sent and is not valid (`unauthorized`)",
         body = super::error::Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many failed authentications (`auth_throttled`)",
         body = super::error::Problem, content_type = "application/problem+json"),
    ),
    security((), ("bearer" = []))
)]
pub(super) async fn health(State(app): State<AppState>, mut parts: Parts) -> Response {
    let detailed = if parts.headers.contains_key(header::AUTHORIZATION) {
        match super::extract::Caller::from_request_parts(&mut parts, &app).await {
            Ok(caller) => caller.require_admin().is_ok(),
            Err(e @ (ApiError::Unauthorized | ApiError::AuthThrottled { .. })) => {
                return e.into_response();
            }
            // The store cannot confirm the key: the anonymous view, which still says why.
            Err(_) => false,
        }
    } else {
        false
    };
    report(&app, detailed).await
}

/// Runs every check; `detailed` keeps what each check found, otherwise only its verdict.
async fn report(app: &App, detailed: bool) -> Response {
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
    let (status, code) = if !db_reachable {
        ("unhealthy", StatusCode::SERVICE_UNAVAILABLE)
    } else if !all_healthy {
        ("degraded", StatusCode::OK)
    } else {
        ("healthy", StatusCode::OK)
    };
    if !detailed && let Some(checks) = checks.as_object_mut() {
        for check in checks.values_mut() {
            *check = json!({"healthy": check["healthy"]});
        }
    }
    let body = json!({
        "status": status,
        "timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "checks": checks,
    });
    let mut response = (code, Json(body)).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// Liveness: the process answers.
#[utoipa::path(
    get,
    path = "/health/live",
    tag = "operations",
    responses((status = 200, description = "`ok`", body = String, content_type = "text/plain")),
)]
#[allow(dead_code)]
pub(super) fn live_doc() {}

/// Readiness: this instance can serve redirects and is not draining.
#[utoipa::path(
    get,
    path = "/health/ready",
    tag = "operations",
    responses(
        (status = 200, description = "`ready`", body = String, content_type = "text/plain"),
        (status = 503, description = "Draining, or the store unreachable with an empty cache",
         body = String, content_type = "text/plain"),
    ),
)]
pub(super) async fn ready(State(app): State<AppState>) -> Response {
    if app.is_draining() {
        return (StatusCode::SERVICE_UNAVAILABLE, "draining\n").into_response();
    }
    // Entries to serve are enough (redirects are AP): no database round trip, which would make
    // the check as slow as the store timeout when the database is unreachable.
    if !app.cache.is_empty() || app.store.ping().await.is_ok() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "store unreachable and cache empty\n",
        )
            .into_response()
    }
}

/// Prometheus metrics (on the admin listener instead when `--admin-listen` is set).
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    responses((status = 200, description = "Prometheus text format", body = String,
               content_type = "text/plain; version=0.0.4")),
)]
pub(super) async fn metrics(State(app): State<AppState>) -> Response {
    metrics::gauge!("snip_clicks_buffered").set(app.clicks.buffer.pending() as f64);
    if let Some(lag) = app.clicks.flush_lag() {
        metrics::gauge!("snip_click_flush_lag_seconds").set(lag);
    }
    metrics::gauge!("snip_cache_entries").set(app.cache.len() as f64);
    metrics::counter!("snip_cache_hits_total").absolute(app.cache_hits.load(Ordering::Relaxed));
    metrics::counter!("snip_cache_misses_total").absolute(app.cache_misses.load(Ordering::Relaxed));
    let (codes, capacity) = app.store.code_filter_occupancy().unwrap_or((0, 0));
    metrics::gauge!("snip_code_filter_codes").set(codes as f64);
    metrics::gauge!("snip_code_filter_capacity").set(capacity as f64);
    if let Ok(latency) = app.store.ping().await {
        metrics::gauge!("snip_store_ping_seconds").set(latency.as_secs_f64());
    }
    crate::telemetry::collect_process_metrics();
    let mut text = app.metrics.render();
    text.push_str(&crate::telemetry::latency::render());
    let mut response = text.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}
