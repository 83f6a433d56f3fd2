//! The HTTP layer: one module per resource, each exposing `fn router() -> Router<AppState>`.
//!
//! - `redirect`: `GET|HEAD /{code}` and the `/{code}+` preview (the product's hot path)
//! - `links`, `stats`, `qr`, `keys`: the JSON API under `/api/v1`
//! - `health`: `/health`, `/health/live`, `/health/ready`, `/metrics`

mod admin;
mod auth_throttle;
pub mod error;
pub mod extract;
mod health;
mod keys;
pub(crate) mod links;
pub mod openapi;
pub mod qr;
mod redirect;
pub mod server;
pub(crate) mod stats;
mod views;

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::Response;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use metrics_exporter_prometheus::PrometheusHandle;

use crate::analytics::visit::Analytics;
use crate::cache::RedirectCache;
use crate::clicks::Clicks;
use crate::config::{ClickMode, Database, Settings};
use crate::domain::key::ApiKey;
use crate::shared_cache::SharedCache;
use crate::store::Store;
use error::ApiError;

/// Shared state of every handler.
pub type AppState = Arc<App>;

pub struct App {
    pub settings: Settings,
    pub store: Arc<dyn Store>,
    pub cache: RedirectCache,
    /// The shared second-level cache (`--redis`), if configured.
    pub shared: Option<Arc<SharedCache>>,
    pub clicks: Arc<Clicks>,
    /// Public origin for `short_url`, e.g. `https://sn.ip` (no trailing slash).
    pub base_url: String,
    /// Origins that are this service: destinations on them would loop.
    pub own_origins: Vec<url::Url>,
    pub redirect_status: StatusCode,
    /// `Referrer-Policy` of redirects (`--redirect-referrer-policy`); none by default.
    pub redirect_referrer_policy: Option<axum::http::HeaderValue>,
    pub rate_limiter: Option<DefaultKeyedRateLimiter<i64>>,
    pub metrics: PrometheusHandle,
    /// Set when shutdown begins: readiness turns 503 so load balancers drain us.
    pub draining: AtomicBool,
    pub cache_hits: AtomicU64,
    pub cache_misses: AtomicU64,
    /// Authenticated keys by the hash of their secret, each with when it was read, so that an
    /// API request does not need a store read to authenticate. Cleared on every revocation
    /// here; another instance's revocation is seen within [`KEY_CACHE_TTL`].
    pub key_cache: quick_cache::sync::Cache<Vec<u8>, (ApiKey, Instant)>,
    /// Bumped by every revocation; a key read before it is not put into `key_cache`.
    pub key_generation: AtomicU64,
    /// User-agent memo, trusted proxies, country lookup and the visitor key.
    pub analytics: Analytics,
    /// Whether change announcements from other instances are heard (PostgreSQL).
    pub change_feed: crate::coherence::FeedState,
    /// QR codes, rendered off the request threads.
    pub qr: qr::QrRenderer,
    /// Failed authentications per client address.
    pub failed_auth: auth_throttle::FailedAuth,
    /// Destination hosts this service refuses (`--deny-list`).
    pub deny: crate::deny::DenyList,
}

/// The socket peer of a request that goes through the router (an extension set by
/// [`service`]); the client address is derived from it with the trusted-proxy rule.
#[derive(Clone, Copy, Debug)]
pub struct Peer(pub IpAddr);

/// How long an authenticated key is trusted without asking the store again.
pub const KEY_CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(5);

impl App {
    pub fn new(
        settings: Settings,
        store: Arc<dyn Store>,
        base_url: url::Url,
        own_origins: Vec<url::Url>,
        metrics: PrometheusHandle,
        analytics: Analytics,
        shared: Option<Arc<SharedCache>>,
    ) -> Self {
        let rate_limiter =
            NonZeroU32::new(settings.rate_limit).map(|n| RateLimiter::keyed(Quota::per_second(n)));
        App {
            cache: {
                let cache =
                    RedirectCache::new(settings.cache_capacity, settings.negative_cache_ttl);
                // Only a store shared with other instances changes behind this one's back.
                match settings.database {
                    Database::Postgres(_) => cache.with_ttl(settings.cache_ttl),
                    Database::Sqlite(_) => cache,
                }
            },
            shared,
            clicks: Arc::new(Clicks::default()),
            base_url: crate::config::origin_string(&base_url),
            own_origins,
            redirect_status: StatusCode::from_u16(settings.redirect_status)
                .unwrap_or(StatusCode::FOUND),
            redirect_referrer_policy: settings
                .redirect_referrer_policy
                .map(axum::http::HeaderValue::from_static),
            rate_limiter,
            metrics,
            draining: AtomicBool::new(false),
            cache_hits: AtomicU64::new(0),
            cache_misses: AtomicU64::new(0),
            key_cache: quick_cache::sync::Cache::new(10_000),
            key_generation: AtomicU64::new(0),
            analytics,
            change_feed: Default::default(),
            qr: qr::QrRenderer::new(settings.qr_concurrency),
            failed_auth: auth_throttle::FailedAuth::new(settings.failed_auth_limit),
            deny: crate::deny::DenyList::empty(),
            store,
            settings,
        }
    }

    /// After a committed change to `code`: forget it here and in the shared cache (other
    /// instances hear of it from the store, see `crate::coherence`).
    pub fn link_changed(&self, code: &str) {
        self.cache.invalidate(code);
        if let Some(shared) = &self.shared {
            shared.forget(code);
        }
    }

    /// After a committed change that left `code` as `link`: [`Self::link_changed`], then keep
    /// the new state in this instance's cache, so that it can redirect the link even if the
    /// store becomes unreachable right after (the other instances have to reload it). Not when
    /// any other invalidation ran since `generation` (read before the write: this change's own
    /// invalidation is the one expected), as a concurrent change may be the newer one, nor for
    /// links with `max_clicks` (their entry carries the click counter, set up on a load).
    pub fn link_changed_to(&self, code: &str, link: &crate::domain::Link, generation: u64) {
        self.link_changed(code);
        if link.max_clicks.is_none() {
            self.cache.fill(
                code,
                crate::cache::Cached::for_link(link, None),
                generation + 1,
            );
        }
    }

    pub fn click_mode(&self) -> ClickMode {
        self.settings.click_mode
    }

    pub fn short_url(&self, code: &str) -> String {
        format!("{}/{}", self.base_url, code)
    }

    /// Spends one token of the caller's bucket, or says how long to wait.
    pub fn check_rate_limit(&self, key_row_id: i64) -> Result<(), ApiError> {
        let Some(limiter) = &self.rate_limiter else {
            return Ok(());
        };
        limiter.check_key(&key_row_id).map_err(|not_until| {
            let wait = not_until.wait_time_from(governor::clock::Clock::now(
                &governor::clock::DefaultClock::default(),
            ));
            ApiError::RateLimited {
                retry_after: wait.as_secs_f64().ceil().max(1.0) as u64,
            }
        })
    }

    /// Forgets every authenticated key (after a revocation on this instance).
    pub fn forget_keys(&self) {
        self.key_generation.fetch_add(1, Ordering::AcqRel);
        self.key_cache.clear();
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }
}

/// Answers one request from `peer`: redirect-shaped requests (`GET|HEAD /{code}`) go straight
/// to the redirect handler, skipping routing and middleware (they record their own metrics);
/// every other request goes through `router` (built once by [`router`] and shared by every
/// connection). Borrows everything, so that a request clones no shared `Arc` (their counters
/// are contended between the worker threads).
pub async fn dispatch(state: &AppState, router: &Router, req: Request, peer: IpAddr) -> Response {
    if redirect::is_redirect_request(&req) {
        return redirect::serve_observed(state, req, peer).await;
    }
    let mut req = req;
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
    crate::telemetry::latency::http(route, status.as_u16()).record(elapsed);
    let status = status.as_u16();
    if route.starts_with("/api") {
        tracing::info!(%method, route, status, latency_us = elapsed.as_micros() as u64, "api request");
    } else {
        tracing::debug!(%method, route, status, latency_us = elapsed.as_micros() as u64, "request");
    }
    response
}
