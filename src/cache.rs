//! The in-process redirect cache: code → ready-to-send answer.
//!
//! An entry holds what a redirect needs by value (short destinations' bytes included, already
//! checked as a `Location` value), so a hit reads no other allocation and does no store I/O, no
//! parsing and no string formatting: on a wide working set each allocation reached is a cache
//! miss. It hands out a `Target` with a `Location` value of its own for the response to move.
//! Each worker thread keeps copies of the redirects it serves again and again in a front of its
//! own ([`front`]), valid while the cache is unchanged. Unknown codes are cached as
//! `Missing` for a short TTL (negative caching), so scans of random codes do not reach the store.
//! Expiry and `max_clicks` are checked on every request against the entry, not baked into it.
//!
//! Invalidation: writers bump a generation counter and remove the entry *after* their commit;
//! a loader only inserts what it read if no invalidation happened since it started, so a slow
//! load can never put back a value older than the latest write on this instance.
//!
//! Several instances sharing a store (PostgreSQL) tell each other about writes (see
//! `crate::service::coherence`). While this instance hears them, an entry changes only when a
//! notification says so, and is reloaded after [`NOTIFIED_TTL`] only as a backstop; while it
//! does not, each entry is trusted for `--cache-ttl` only. Both are jittered, so entries filled
//! together do not come due together. A stale entry is still answered at once, and one reload per
//! code and second runs in the background (stale-while-revalidate): a redirect never waits for
//! the store because its entry aged, and keeps working from the old entry while the store is
//! down. With the embedded store one process sees every write, and entries never go stale.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::http::HeaderValue;

use crate::domain::Link;
use crate::domain::time::UnixSeconds;

mod front;

/// Destinations up to this many bytes are kept inside the cache entry itself (most are: the
/// longer ones are shared, and cost one more memory read per redirect).
pub const INLINE_URL: usize = 120;

/// A destination as the cache keeps it, checked to be a valid header value.
#[derive(Clone)]
enum Location {
    /// Inside the entry: a lookup reads no other allocation for it.
    Inline {
        len: u8,
        bytes: [u8; INLINE_URL],
    },
    Shared(HeaderValue),
}

impl Location {
    fn of(value: HeaderValue) -> Location {
        let url = value.as_bytes();
        if url.len() > INLINE_URL {
            return Location::Shared(value);
        }
        let mut bytes = [0; INLINE_URL];
        bytes[..url.len()].copy_from_slice(url);
        Location::Inline {
            len: url.len() as u8,
            bytes,
        }
    }

    fn as_bytes(&self) -> &[u8] {
        match self {
            Location::Inline { len, bytes } => &bytes[..usize::from(*len)],
            Location::Shared(value) => value.as_bytes(),
        }
    }

    /// The `Location` value: a copy of the bytes when they are inline (cheaper than reaching a
    /// shared value), else the shared one.
    fn to_value(&self) -> HeaderValue {
        match self {
            Location::Inline { .. } => copy_value(self.as_bytes()),
            Location::Shared(value) => value.clone(),
        }
    }
}

/// A new header value holding a copy of `bytes`, which came from a `HeaderValue` (so the check
/// `from_bytes` repeats cannot fail).
fn copy_value(bytes: &[u8]) -> HeaderValue {
    HeaderValue::from_bytes(bytes).unwrap_or_else(|_| HeaderValue::from_static("/"))
}

/// What a redirect needs to know about a live link, as the cache hands it out: the `Location`
/// value ready to send (a copy of its own when the entry held the bytes inline), and the rules
/// checked on every request.
#[derive(Clone)]
pub struct Target {
    pub link_id: i64,
    location: HeaderValue,
    pub expires_at: Option<UnixSeconds>,
    pub max_clicks: Option<u64>,
    /// Clicks used so far, for links with `max_clicks` (shared with the click counter so that
    /// it survives cache eviction).
    pub used: Option<Arc<AtomicU64>>,
    /// The deny list's verdict on the destination's host, and the list generation it was
    /// given for (0: never checked; the list then denies nothing): see [`crate::deny`].
    pub deny: Verdict,
}

/// A [`Target`] as the cache keeps it: by value, short destinations' bytes included, so that a
/// lookup on a wide working set (where each allocation reached is a cache miss) reads no other
/// allocation and touches no reference count shared with other threads, except the
/// `max_clicks` counter.
#[derive(Clone)]
struct Kept {
    link_id: i64,
    location: Location,
    expires_at: Option<UnixSeconds>,
    max_clicks: Option<u64>,
    used: Option<Arc<AtomicU64>>,
    deny: Verdict,
}

impl Kept {
    fn of(target: Target) -> Kept {
        Kept {
            link_id: target.link_id,
            location: Location::of(target.location),
            expires_at: target.expires_at,
            max_clicks: target.max_clicks,
            used: target.used,
            deny: target.deny,
        }
    }

    fn to_target(&self) -> Target {
        Target {
            link_id: self.link_id,
            location: self.location.to_value(),
            expires_at: self.expires_at,
            max_clicks: self.max_clicks,
            used: self.used.clone(),
            deny: self.deny,
        }
    }

    /// Whether this is the same link going to the same place as `target`.
    fn same_destination(&self, target: &Target) -> bool {
        self.link_id == target.link_id && self.location.as_bytes() == target.location.as_bytes()
    }
}

/// Whether the deny list refuses a destination, as of one generation of the list.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Verdict {
    pub generation: u64,
    pub denied: bool,
}

impl Target {
    /// The `Location` header value, moved out.
    pub fn into_location(self) -> HeaderValue {
        self.location
    }

    /// This target with a `Location` value of its own (a fresh copy, whose reference count only
    /// the thread that made it touches): for a thread's front of the cache.
    fn with_own_location(&self) -> Target {
        Target {
            location: copy_value(self.location.as_bytes()),
            used: self.used.clone(),
            ..*self
        }
    }

    /// The destination URL (visible ASCII, as the header check guarantees).
    pub fn url(&self) -> &str {
        std::str::from_utf8(self.location.as_bytes()).unwrap_or_default()
    }

    /// The destination's host (what the deny list is checked against).
    pub fn host(&self) -> &str {
        crate::domain::destination::stored_host(self.url())
    }
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("link_id", &self.link_id)
            .field("location", &self.url())
            .field("expires_at", &self.expires_at)
            .field("max_clicks", &self.max_clicks)
            .field("deny", &self.deny)
            .finish_non_exhaustive()
    }
}

/// A cached answer for a code.
#[derive(Debug, Clone)]
pub enum Cached {
    Redirect(Target),
    /// Disabled or deleted: 410 until a PATCH on this instance invalidates it.
    Gone,
    /// Taken down by an admin, with the reason: 410 saying so.
    TakenDown(Arc<str>),
    /// Unknown code, remembered until the instant given.
    Missing(Instant),
}

impl Cached {
    /// The redirect answer for a stored link; `used` is its `max_clicks` counter, if it has one.
    pub fn for_link(link: &Link, used: Option<Arc<AtomicU64>>) -> Cached {
        if link.deleted {
            return Cached::Gone;
        }
        if let Some(reason) = &link.takedown {
            return Cached::TakenDown(reason.as_str().into());
        }
        if link.disabled {
            return Cached::Gone;
        }
        Cached::redirect(link.id, &link.url, link.expires_at, link.max_clicks, used)
    }

    /// The redirect answer for a live link (a destination that cannot be a header value,
    /// which validation never stores, answers as gone).
    pub fn redirect(
        link_id: i64,
        url: &str,
        expires_at: Option<UnixSeconds>,
        max_clicks: Option<u64>,
        used: Option<Arc<AtomicU64>>,
    ) -> Cached {
        match HeaderValue::from_str(url) {
            Ok(location) => Cached::Redirect(Target {
                link_id,
                location,
                expires_at,
                max_clicks,
                used,
                deny: Verdict::default(),
            }),
            Err(_) => {
                tracing::error!(link_id, "stored destination is not a valid header value");
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

/// A cached answer as the cache keeps it.
#[derive(Clone)]
enum Answer {
    Redirect(Kept),
    /// Any other answer (never [`Cached::Redirect`]).
    Other(Cached),
}

impl Answer {
    fn of(answer: Cached) -> Answer {
        match answer {
            Cached::Redirect(target) => Answer::Redirect(Kept::of(target)),
            other => Answer::Other(other),
        }
    }

    fn to_cached(&self) -> Cached {
        match self {
            Answer::Redirect(kept) => Cached::Redirect(kept.to_target()),
            Answer::Other(other) => other.clone(),
        }
    }
}

/// A cached answer and when it is due for a reload.
#[derive(Clone)]
struct Entry {
    answer: Answer,
    due: Due,
}

/// When entries age, the instants an entry should be reloaded: `stale_at` while change
/// notifications are not heard, `backstop_at` while they are.
#[derive(Clone, Copy)]
struct Due {
    stale_at: Option<Instant>,
    backstop_at: Option<Instant>,
}

impl Due {
    /// Whether it is due for a reload (`notified`: changes are heard, the backstop counts).
    fn due(&self, notified: bool) -> bool {
        let due = if notified {
            self.backstop_at
        } else {
            self.stale_at
        };
        due.is_some_and(|at| at <= Instant::now())
    }
}

/// Keys are stored inline (up to 24 bytes: every generated code and most custom ones), so that
/// comparing a key during a lookup reads no other allocation.
type Inner = quick_cache::sync::Cache<compact_str::CompactString, Entry>;

/// What [`RedirectCache::lookup`] found.
pub enum Lookup {
    Fresh(Cached),
    /// Older than the TTL: answer it, and reload it (the entry now waits [`RELOAD_RETRY`]
    /// before it asks for another reload).
    Stale(Cached),
}

/// How long after a write a code's reloads read the primary rather than a replica: longer
/// than any replication lag a healthy replica has. (A replica further behind than this can
/// serve an older row until the entry's TTL; monitor replication lag.)
pub const CHANGED_WINDOW: Duration = Duration::from_secs(300);
/// Codes remembered as recently written (the oldest are forgotten first).
const CHANGED_CAPACITY: usize = 10_000;

/// How long an entry is trusted while change notifications are heard (at least `--cache-ttl`):
/// a backstop for a change announced and somehow not applied, not the way changes arrive.
pub const NOTIFIED_TTL: Duration = Duration::from_secs(1800);

/// How long a stale entry waits for its reload before another request starts one.
pub const RELOAD_RETRY: Duration = Duration::from_secs(1);

/// A TTL's factor, 0.8 to 1: entries filled together (a warm-up, the refill after a
/// reconnect) come due spread over a fifth of the TTL rather than in one reload storm.
fn jitter() -> f64 {
    1.0 - rand::random::<f64>() * 0.2
}

pub struct RedirectCache {
    inner: Option<Inner>,
    /// Codes written recently (by this instance or, as notified, by another) and until when
    /// their reloads go to the primary: a replica may still hold the row from before the write.
    changed: quick_cache::sync::Cache<Box<str>, Instant>,
    negative_ttl: Duration,
    /// How long an entry is trusted; None: forever (one process sees every write).
    ttl: Option<Duration>,
    /// Whether change notifications are heard (entries are then trusted for [`NOTIFIED_TTL`]).
    notified: AtomicBool,
    generation: AtomicU64,
    capacity: usize,
    /// This cache's number, unique in the process, and its epoch: moved on after every change
    /// to `inner`, so that a worker thread's copy of an entry ([`front`]) is used only while
    /// the cache is unchanged since it was taken. (Not `generation`, which only writes move:
    /// fills check it, so a fill moving it would drop the fills running beside it.)
    id: u64,
    epoch: AtomicU64,
}

/// The numbers given to caches as they are made.
static CACHE_IDS: AtomicU64 = AtomicU64::new(1);

impl RedirectCache {
    /// `capacity` entries; 0 disables caching (every redirect reads the store).
    pub fn new(capacity: usize, negative_ttl: Duration) -> Self {
        RedirectCache {
            inner: (capacity > 0).then(|| Inner::new(capacity)),
            changed: quick_cache::sync::Cache::new(CHANGED_CAPACITY),
            negative_ttl,
            ttl: None,
            notified: AtomicBool::new(false),
            generation: AtomicU64::new(0),
            capacity,
            id: CACHE_IDS.fetch_add(1, Ordering::Relaxed),
            epoch: AtomicU64::new(0),
        }
    }

    /// Entries are reloaded once older than `ttl` (stores shared by several instances).
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }

    /// Whether this instance hears every other instance's changes right now: entries are then
    /// reloaded only after [`NOTIFIED_TTL`], else after `--cache-ttl` (from when they were
    /// filled, whichever was in force then).
    pub fn set_notified(&self, notified: bool) {
        self.notified.store(notified, Ordering::Relaxed);
    }

    /// A cached answer, if any and (for `Missing`) still fresh; stale entries count as hits.
    pub fn get(&self, code: &str) -> Option<Cached> {
        self.lookup(code).map(|l| match l {
            Lookup::Fresh(c) | Lookup::Stale(c) => c,
        })
    }

    /// A cached answer, if any and (for `Missing`) still fresh, and whether it is due for a
    /// reload. A stale entry is marked as being reloaded (for [`RELOAD_RETRY`]), so that of
    /// many concurrent requests one reloads it.
    pub fn lookup(&self, code: &str) -> Option<Lookup> {
        let inner = self.inner.as_ref()?;
        let notified = self.notified.load(Ordering::Relaxed);
        // Read before the entry: see `front`.
        let epoch = self.epoch.load(Ordering::Acquire);
        let hash = front::hash(code);
        if let Some(answer) = front::get(self.id, epoch, code, hash, |d| !d.due(notified)) {
            return Some(Lookup::Fresh(answer));
        }
        let entry = inner.get(code)?;
        if let Answer::Other(Cached::Missing(until)) = entry.answer
            && until <= Instant::now()
        {
            return None;
        }
        let answer = entry.answer.to_cached();
        if entry.due.due(notified) {
            let retry = Some(Instant::now() + RELOAD_RETRY);
            inner.insert(
                code.into(),
                Entry {
                    answer: entry.answer,
                    due: Due {
                        stale_at: retry,
                        backstop_at: retry,
                    },
                },
            );
            self.changed();
            return Some(Lookup::Stale(answer));
        }
        front::offer(self.id, epoch, code, hash, &answer, entry.due);
        Some(Lookup::Fresh(answer))
    }

    /// Moves the epoch on: call after every change to `inner`.
    fn changed(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
    }

    /// Keeps the deny list's `verdict` on `target` (looked up after the list changed) in the
    /// entry of `code`, if that still holds the same destination: one lookup per cached link
    /// and change of the list, not one per redirect.
    pub fn remember_verdict(&self, code: &str, target: &Target, verdict: Verdict) {
        let Some(inner) = &self.inner else { return };
        let key = compact_str::CompactString::new(code);
        // A vacant code's placeholder guard is dropped at once: nothing is inserted.
        let _ = inner.entry(&key, Some(Duration::ZERO), |_, entry| {
            if let Answer::Redirect(kept) = &mut entry.answer
                && kept.same_destination(target)
            {
                kept.deny = verdict;
            }
            quick_cache::sync::EntryAction::Retain(())
        });
        self.changed();
    }

    /// Forgets every entry (after notifications may have been missed).
    pub fn clear(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        if let Some(inner) = &self.inner {
            inner.clear();
        }
        self.changed();
    }

    /// Call before reading the store for a miss; pass the result to [`Self::fill`].
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Stores what a loader read, unless an invalidation happened since `generation`. A
    /// reserved word (a route such as `/health`) is never stored, even if a link from before it
    /// was reserved has it as its code: the redirect path takes every hit for a code, without
    /// asking whether it names a route.
    pub fn fill(&self, code: &str, value: Cached, generation: u64) {
        let Some(inner) = &self.inner else { return };
        if crate::domain::code::is_reserved(code) {
            return;
        }
        fill_unless_invalidated(
            &self.generation,
            generation,
            || {
                let now = Instant::now();
                let jitter = jitter();
                inner.insert(
                    code.into(),
                    Entry {
                        answer: Answer::of(value),
                        due: Due {
                            stale_at: self.ttl.map(|ttl| now + ttl.mul_f64(jitter)),
                            backstop_at: self
                                .ttl
                                .map(|ttl| now + ttl.max(NOTIFIED_TTL).mul_f64(jitter)),
                        },
                    },
                )
            },
            || {
                inner.remove(code);
            },
        );
        self.changed();
    }

    /// A `Missing` entry for an unknown code, valid for the negative TTL.
    pub fn missing(&self) -> Cached {
        Cached::Missing(Instant::now() + self.negative_ttl)
    }

    /// Forgets a code after a write to it has committed; its reloads read the primary for
    /// [`CHANGED_WINDOW`]. Bumps the generation by exactly one.
    pub fn invalidate(&self, code: &str) {
        self.changed
            .insert(code.into(), Instant::now() + CHANGED_WINDOW);
        self.generation.fetch_add(1, Ordering::AcqRel);
        if let Some(inner) = &self.inner {
            inner.remove(code);
        }
        self.changed();
    }

    /// Whether `code` was written within [`CHANGED_WINDOW`] (reload it from the primary).
    pub fn changed_recently(&self, code: &str) -> bool {
        self.changed
            .get(code)
            .is_some_and(|until| until > Instant::now())
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
        Cached::redirect(id, "https://example.com/", None, None, None)
    }

    fn redirect(cache: &RedirectCache, code: &str) -> Target {
        match cache.get(code) {
            Some(Cached::Redirect(t)) => t,
            other => panic!("{code}: {other:?}"),
        }
    }

    #[test]
    fn short_and_long_destinations_answer_the_same_location() {
        let long = format!("https://example.com/{}", "x".repeat(INLINE_URL));
        for url in ["https://example.com/a?b=c", long.as_str()] {
            let Cached::Redirect(t) = Cached::redirect(1, url, None, None, None) else {
                panic!("{url} is a valid destination");
            };
            assert_eq!(t.clone().into_location(), url);
            assert_eq!(t.url(), url);
            assert_eq!(t.host(), "example.com");
        }
        let bad = Cached::redirect(1, "https://example.com/\n", None, None, None);
        assert!(matches!(bad, Cached::Gone), "not a header value: {bad:?}");
    }

    #[test]
    fn a_verdict_is_kept_only_for_the_destination_it_was_given_on() {
        let cache = RedirectCache::new(10, Duration::from_secs(5));
        cache.fill("abc", target(1), cache.generation());
        let verdict = Verdict {
            generation: 3,
            denied: true,
        };
        cache.remember_verdict("abc", &redirect(&cache, "abc"), verdict);
        assert_eq!(redirect(&cache, "abc").deny, verdict);
        // The link changed meanwhile: the verdict on its old destination is not kept.
        let old = redirect(&cache, "abc");
        cache.fill(
            "abc",
            Cached::redirect(1, "https://other.example/", None, None, None),
            cache.generation(),
        );
        cache.remember_verdict("abc", &old, verdict);
        assert_eq!(redirect(&cache, "abc").deny, Verdict::default());
        // Nothing is inserted for a code that is not cached.
        cache.remember_verdict("xyz", &old, verdict);
        assert!(cache.get("xyz").is_none());
    }

    /// A thread's front copy of an entry is never answered after a change to the cache, on
    /// this thread or another.
    #[test]
    fn changes_reach_every_thread_that_copied_the_entry() {
        let cache = RedirectCache::new(10, Duration::from_secs(5));
        let url = |c: &RedirectCache| redirect(c, "hot").url().to_string();
        cache.fill("hot", target(1), cache.generation());
        let copied = || {
            std::thread::scope(|s| {
                s.spawn(|| (0..3).map(|_| url(&cache)).last().unwrap())
                    .join()
                    .unwrap()
            })
        };
        for _ in 0..3 {
            assert_eq!(url(&cache), "https://example.com/");
        }
        assert_eq!(copied(), "https://example.com/");
        // A new destination (as a reload would bring), then an invalidation, then a verdict.
        cache.fill(
            "hot",
            Cached::redirect(1, "https://example.com/new", None, None, None),
            cache.generation(),
        );
        assert_eq!(url(&cache), "https://example.com/new");
        assert_eq!(copied(), "https://example.com/new");
        for _ in 0..3 {
            url(&cache);
        }
        cache.invalidate("hot");
        assert!(cache.get("hot").is_none(), "invalidated, on this thread");
        assert!(
            std::thread::scope(|s| s.spawn(|| cache.get("hot").is_none()).join().unwrap()),
            "and on another"
        );
        cache.fill("hot", target(2), cache.generation());
        for _ in 0..3 {
            assert_eq!(redirect(&cache, "hot").link_id, 2);
        }
        let verdict = Verdict {
            generation: 5,
            denied: true,
        };
        cache.remember_verdict("hot", &redirect(&cache, "hot"), verdict);
        assert_eq!(redirect(&cache, "hot").deny, verdict);
        cache.clear();
        assert!(cache.get("hot").is_none());
        // Another cache never answers from this one's copies.
        let other = RedirectCache::new(10, Duration::from_secs(5));
        assert!(other.get("hot").is_none());
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
    fn a_reserved_word_is_never_cached() {
        // The redirect path answers every hit without asking whether the code names a route.
        let cache = RedirectCache::new(10, Duration::from_secs(5));
        for word in ["health", "Metrics", "docs", "openapi.json"] {
            cache.fill(word, target(1), cache.generation());
            cache.fill(word, cache.missing(), cache.generation());
            assert!(cache.get(word).is_none(), "{word} was cached");
        }
        cache.fill("healthy", target(1), cache.generation());
        assert!(cache.get("healthy").is_some());
    }

    #[test]
    fn the_ttl_is_jittered_within_its_last_fifth() {
        let ttl = Duration::from_secs(100);
        let spread: Vec<Duration> = (0..1000).map(|_| ttl.mul_f64(jitter())).collect();
        assert!(spread.iter().all(|d| *d <= ttl && *d >= ttl.mul_f64(0.8)));
        let (min, max) = (spread.iter().min().unwrap(), spread.iter().max().unwrap());
        assert!(*max - *min > Duration::from_secs(10), "{min:?}..{max:?}");
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
    fn entries_older_than_the_ttl_are_stale_once_per_retry_and_fresh_after_a_reload() {
        let cache = RedirectCache::new(10, Duration::from_secs(5)).with_ttl(Duration::ZERO);
        cache.fill("abc", target(1), cache.generation());
        assert!(matches!(cache.lookup("abc"), Some(Lookup::Stale(_))));
        // Marked as reloading: the next requests answer it as fresh, without another reload.
        assert!(matches!(cache.lookup("abc"), Some(Lookup::Fresh(_))));
        let forever = RedirectCache::new(10, Duration::from_secs(5));
        forever.fill("abc", target(1), forever.generation());
        assert!(matches!(forever.lookup("abc"), Some(Lookup::Fresh(_))));
        forever.clear();
        assert!(forever.get("abc").is_none());
    }

    #[test]
    fn while_changes_are_heard_entries_are_trusted_for_the_backstop_ttl_only() {
        let cache = RedirectCache::new(10, Duration::from_secs(5)).with_ttl(Duration::ZERO);
        cache.set_notified(true);
        cache.fill("abc", target(1), cache.generation());
        assert!(matches!(cache.lookup("abc"), Some(Lookup::Fresh(_))));
        // Notifications lost: the short TTL counts again, from when the entry was filled.
        cache.set_notified(false);
        assert!(matches!(cache.lookup("abc"), Some(Lookup::Stale(_))));
        let capped = RedirectCache::new(10, Duration::from_secs(5)).with_ttl(NOTIFIED_TTL * 2);
        capped.set_notified(true);
        capped.fill("abc", target(1), capped.generation());
        let backstop = capped
            .inner
            .as_ref()
            .unwrap()
            .get("abc")
            .unwrap()
            .due
            .backstop_at
            .unwrap();
        assert!(
            backstop > Instant::now() + NOTIFIED_TTL,
            "never shorter than --cache-ttl"
        );
    }

    #[test]
    fn a_disabled_cache_stores_nothing() {
        let cache = RedirectCache::new(0, Duration::from_secs(5));
        cache.fill("abc", target(1), cache.generation());
        assert!(cache.get("abc").is_none());
        assert_eq!(cache.len(), 0);
    }
}
