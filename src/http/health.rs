//! `/health`, `/health/live`, `/health/ready` and `/metrics` (the checks themselves are
//! `crate::service::health`; see docs/architecture.md, "The design we follow").
//!
//! `/health`: anonymous callers see the status and each check's verdict; an admin key sees the
//! details (they name paths and sizes). `unhealthy` answers 503, `degraded` 200.
//! `/health/ready`: 200 while this instance can serve redirects (the cache holds entries to
//! serve from, or the store answers) and is not draining for shutdown. A load balancer in front
//! of one instance polls `/health/ready`; in front of several on a shared database it prefers
//! the instances passing `/health` and falls back to `/health/ready` (docs/operations.md,
//! "Health").

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};

use super::error::ApiError;
use super::{App, AppState};
use crate::service::health::{self, Status};

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
    let report = health::report(app, detailed).await;
    let code = match report.status {
        Status::Unhealthy => StatusCode::SERVICE_UNAVAILABLE,
        Status::Degraded | Status::Healthy => StatusCode::OK,
    };
    let mut response = (code, Json(report.body)).into_response();
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
    if health::can_serve_redirects(&app).await {
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
    health::refresh_gauges(&app).await;
    let mut text = app.metrics.render();
    text.push_str(&crate::telemetry::latency::render());
    let mut response = text.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}
