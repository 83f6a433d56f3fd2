//! The HTTP layer: one module per resource, each exposing `fn router() -> Router<AppState>`.
//!
//! - `redirect`: `GET|HEAD /{code}` and the `/{code}+` preview (the product's hot path)
//! - `links`, `stats`, `qr`, `keys`: the JSON API under `/api/v1`
//! - `health`: `/health`, `/health/live`, `/health/ready`, `/metrics`
//! - `ui`: the dashboard under `/ui/` (server-rendered pages on the same service layer)

mod admin;
pub mod error;
pub mod extract;
mod graceful;
mod health;
pub mod import;
pub mod keys;
pub mod links;
pub mod openapi;
pub mod qr;
mod redirect;
pub mod server;
pub mod stats;
mod ui;
pub mod views;

use quanta::Instant;
use std::net::IpAddr;

use axum::Router;
use axum::extract::{MatchedPath, Request};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::Response;
use error::ApiError;

pub use crate::service::app::{App, AppState};

/// The socket peer of a request that goes through the router (an extension set by
/// [`service`]); the client address is derived from it with the trusted-proxy rule.
#[derive(Clone, Copy, Debug)]
pub struct Peer(pub IpAddr);

/// The answer to a cached redirect (`GET|HEAD /{code}` of a code in the redirect cache, the
/// product's hot path), computed at once: the connection then holds a ready value instead of a
/// future that owns the request. None for every other request, which [`dispatch`] answers.
pub fn answer_cached(
    state: &AppState,
    req: &hyper::Request<hyper::body::Incoming>,
    peer: IpAddr,
) -> Option<Response> {
    let segment = redirect::redirect_segment(req)?;
    redirect::serve_cached(state, req, segment, peer)
}

/// Answers one request from `peer` that [`answer_cached`] did not: redirect-shaped requests
/// (`GET|HEAD /{code}`) go straight to the redirect handler, skipping routing and middleware
/// (they record their own metrics); every other request goes through `router` (built once by
/// [`router`] and shared by every connection). Borrows everything, so that a request clones no
/// shared `Arc` (their counters are contended between the worker threads).
pub async fn dispatch(
    state: &AppState,
    router: &Router,
    req: hyper::Request<hyper::body::Incoming>,
    peer: IpAddr,
) -> Response {
    let segment = redirect::redirect_segment(&req);
    let redirect = segment.is_some_and(|s| !redirect::is_route(s));
    let mut req = req.map(axum::body::Body::new);
    if redirect {
        return redirect::serve_observed(state, req, peer).await;
    }
    req.extensions_mut().insert(Peer(peer));
    let mut router = router.clone();
    match tower::Service::call(&mut router, req).await {
        Ok(response) => response,
        Err(never) => match never {},
    }
}

/// The whole application router.
pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .merge(links::router())
        .merge(import::router())
        .merge(stats::router())
        .merge(qr::router())
        .merge(keys::router())
        .merge(admin::router())
        .fallback(|| async { ApiError::NotFound("route") })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed });
    let api_and_health = Router::new()
        .nest("/api/v1", api)
        .merge(openapi::router())
        .route(
            "/api",
            axum::routing::any(|| async { ApiError::NotFound("route") }),
        )
        .route(
            "/api/{*rest}",
            axum::routing::any(|| async { ApiError::NotFound("route") }),
        )
        .merge(health::router(state.settings.admin_listen.is_none()))
        .layer(middleware::map_response(nosniff));
    Router::new()
        .merge(api_and_health)
        .merge(ui::router())
        .merge(redirect::router())
        .fallback(|| async { (StatusCode::NOT_FOUND, "not found\n") })
        .layer(middleware::from_fn(observe))
        .with_state(state)
}

/// The router of the admin listener (`--admin-listen`).
pub fn admin_router(state: AppState) -> Router {
    health::admin_router()
        .fallback(|| async { (StatusCode::NOT_FOUND, "not found\n") })
        .layer(middleware::map_response(nosniff))
        .with_state(state)
}

/// `X-Content-Type-Options: nosniff` on every API, health and metrics answer: a browser never
/// reads JSON, CSV or an SVG as something else. (The preview page sets it itself; redirects, the
/// hot path, carry no body to sniff.)
async fn nosniff(mut response: Response) -> Response {
    response.headers_mut().insert(
        axum::http::header::X_CONTENT_TYPE_OPTIONS,
        axum::http::HeaderValue::from_static("nosniff"),
    );
    response
}

/// Counts and times every request by route and status; logs API requests.
async fn observe(req: Request, next: Next) -> Response {
    let start = Instant::now();
    let route = req.extensions().get::<MatchedPath>().cloned();
    let method = req.method().clone();
    let response = next.run(req).await;
    let elapsed = start.elapsed();
    let status = response.status();
    let route = route.as_ref().map_or("unmatched", |p| p.as_str());
    crate::telemetry::latency::record_http(route, status.as_u16(), elapsed);
    let status = status.as_u16();
    if route.starts_with("/api") {
        tracing::info!(%method, route, status, latency_us = elapsed.as_micros() as u64, "api request");
    } else {
        tracing::debug!(%method, route, status, latency_us = elapsed.as_micros() as u64, "request");
    }
    response
}
