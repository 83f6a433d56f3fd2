//! The in-process redirect cache: code → ready-to-send answer.
//!
//! A hit hands back an `Arc<Target>` whose `Location` header value is already built, so serving
//! it does no store I/O, no parsing and no string formatting. Unknown codes are cached as
//! `Missing` for a short TTL (negative caching), so scans of random codes do not reach the store.
//! Expiry and `max_clicks` are checked on every request against the entry, not baked into it.
//!
//! Invalidation: writers bump a generation counter and remove the entry *after* their commit;
//! a loader only inserts what it read if no invalidation happened since it started, so a slow
//! load can never put back a value older than the latest write on this instance.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::http::HeaderValue;

use crate::domain::Link;
use crate::domain::time::UnixSeconds;

/// What a redirect needs to know about a live link.
#[derive(Debug)]
pub struct Target {
    pub link_id: i64,
    pub location: HeaderValue,
    pub expires_at: Option<UnixSeconds>,
    pub max_clicks: Option<u64>,
    /// Clicks used so far, for links with `max_clicks` (shared with the click counter so that
    /// it survives cache eviction).
    pub used: Option<Arc<AtomicU64>>,
}

/// A cached answer for a code.
#[derive(Debug, Clone)]
pub enum Cached {
    Redirect(Arc<Target>),
    /// Disabled or deleted: 410 until a PATCH on this instance invalidates it.
    Gone,
    /// Unknown code, remembered until the instant given.
    Missing(Instant),
}

impl Cached {
    /// The redirect answer for a stored link; `used` is its `max_clicks` counter, if it has one.
    pub fn for_link(link: &Link, used: Option<Arc<AtomicU64>>) -> Cached {
        if link.deleted || link.disabled {
            return Cached::Gone;
        }
        match HeaderValue::from_str(&link.url) {
            Ok(location) => Cached::Redirect(Arc::new(Target {
                link_id: link.id,
                location,
                expires_at: link.expires_at,
                max_clicks: link.max_clicks,
                used,
            })),
            Err(_) => {
                tracing::error!(code = %link.code, "stored destination is not a valid header value");
                Cached::Gone
            }
        }
    }
}

/// Inserts a value read while `generation` was `seen`, unless an invalidation (which bumps
/// `generation`) happened since: checked before the insert and again after it, undoing the
/// insert if an invalidation ran in between. Every cache filled from the store uses this.
pub fn fill_unless_invalidated(
    generation: &AtomicU64,
    seen: u64,
    insert: impl FnOnce(),
    remove: impl FnOnce(),
) {
    if generation.load(Ordering::Acquire) != seen {
        return;
    }
    insert();
    if generation.load(Ordering::Acquire) != seen {
        remove();
    }
}

type Inner = quick_cache::sync::Cache<Box<str>, Cached>;

pub struct RedirectCache {
    inner: Option<Inner>,
    negative_ttl: Duration,
    generation: AtomicU64,
    capacity: usize,
}

impl RedirectCache {
    /// `capacity` entries; 0 disables caching (every redirect reads the store).
    pub fn new(capacity: usize, negative_ttl: Duration) -> Self {
        RedirectCache {
            inner: (capacity > 0).then(|| Inner::new(capacity)),
            negative_ttl,
            generation: AtomicU64::new(0),
            capacity,
        }
    }

    /// A cached answer, if any and (for `Missing`) still fresh.
    pub fn get(&self, code: &str) -> Option<Cached> {
        let hit = self.inner.as_ref()?.get(code)?;
        match hit {
            Cached::Missing(until) if until <= Instant::now() => None,
            other => Some(other),
        }
    }

    /// Call before reading the store for a miss; pass the result to [`Self::fill`].
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Stores what a loader read, unless an invalidation happened since `generation`.
    pub fn fill(&self, code: &str, value: Cached, generation: u64) {
        let Some(inner) = &self.inner else { return };
        fill_unless_invalidated(
            &self.generation,
            generation,
            || inner.insert(code.into(), value),
            || {
                inner.remove(code);
            },
        );
    }

    /// A `Missing` entry for an unknown code, valid for the negative TTL.
    pub fn missing(&self) -> Cached {
        Cached::Missing(Instant::now() + self.negative_ttl)
    }

    /// Forgets a code after a write to it has committed.
    pub fn invalidate(&self, code: &str) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        if let Some(inner) = &self.inner {
            inner.remove(code);
        }
    }

    pub fn len(&self) -> usize {
        self.inner.as_ref().map_or(0, |c| c.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(id: i64) -> Cached {
        Cached::Redirect(Arc::new(Target {
            link_id: id,
            location: HeaderValue::from_static("https://example.com/"),
            expires_at: None,
            max_clicks: None,
            used: None,
        }))
    }

    #[test]
    fn a_fill_after_an_invalidation_is_dropped() {
        let cache = RedirectCache::new(10, Duration::from_secs(5));
        let g = cache.generation();
        cache.invalidate("abc");
        cache.fill("abc", target(1), g);
        assert!(cache.get("abc").is_none());
        let g = cache.generation();
        cache.fill("abc", target(1), g);
        assert!(matches!(cache.get("abc"), Some(Cached::Redirect(_))));
    }

    #[test]
    fn missing_entries_expire_after_the_negative_ttl() {
        let cache = RedirectCache::new(10, Duration::ZERO);
        let g = cache.generation();
        cache.fill("nope", cache.missing(), g);
        assert!(cache.get("nope").is_none());
        let cache = RedirectCache::new(10, Duration::from_secs(60));
        cache.fill("nope", cache.missing(), g);
        assert!(matches!(cache.get("nope"), Some(Cached::Missing(_))));
    }

    #[test]
    fn a_disabled_cache_stores_nothing() {
        let cache = RedirectCache::new(0, Duration::from_secs(5));
        cache.fill("abc", target(1), cache.generation());
        assert!(cache.get("abc").is_none());
        assert_eq!(cache.len(), 0);
    }
}
