//! The application: its settings and every part a request or a background task needs (the
//! store, the caches, the click buffer, the limits), with the few operations they share.
//! The HTTP layer (`crate::http`) and the use cases beside this file hold it as an
//! [`AppState`]; nothing here knows HTTP routing.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use axum::http::StatusCode;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use metrics_exporter_prometheus::PrometheusHandle;

use crate::analytics::visit::Analytics;
use crate::cache::RedirectCache;
use crate::clicks::Clicks;
use crate::config::{ClickMode, Settings};
use crate::domain::key::ApiKey;
use crate::service::auth_throttle;
use crate::service::qr;
use crate::shared_cache::SharedCache;
use crate::store::Store;

/// A key's request budget is spent: retry after this many seconds.
#[derive(Debug, Clone, Copy)]
pub struct RateLimited {
    pub retry_after: u64,
}

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
    pub cache_hits: crate::telemetry::striped::Counter,
    pub cache_misses: crate::telemetry::striped::Counter,
    /// Authenticated keys by the hash of their secret, each with when it was read, so that an
    /// API request does not need a store read to authenticate. Cleared on every revocation
    /// here; another instance's revocation is seen within [`crate::service::keys::KEY_CACHE_TTL`].
    pub key_cache: quick_cache::sync::Cache<Vec<u8>, (ApiKey, Instant)>,
    /// Bumped by every revocation; a key read before it is not put into `key_cache`.
    pub key_generation: AtomicU64,
    /// User-agent memo, trusted proxies, country lookup and the visitor key.
    pub analytics: Analytics,
    /// Whether change announcements from other instances are heard (PostgreSQL).
    pub change_feed: crate::service::coherence::FeedState,
    /// QR codes, rendered off the request threads.
    pub qr: qr::QrRenderer,
    /// Failed authentications per client address.
    pub failed_auth: auth_throttle::FailedAuth,
    /// Destination hosts this service refuses (`--deny-list`).
    pub deny: crate::deny::DenyList,
}

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
                if store.shared_by_instances() {
                    cache.with_ttl(settings.cache_ttl)
                } else {
                    cache
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
            cache_hits: Default::default(),
            cache_misses: Default::default(),
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
    /// instances hear of it from the store, see `crate::service::coherence`).
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
    pub fn check_rate_limit(&self, key_row_id: i64) -> Result<(), RateLimited> {
        let Some(limiter) = &self.rate_limiter else {
            return Ok(());
        };
        limiter.check_key(&key_row_id).map_err(|not_until| {
            let wait = not_until.wait_time_from(governor::clock::Clock::now(
                &governor::clock::DefaultClock::default(),
            ));
            RateLimited {
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
