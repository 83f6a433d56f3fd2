//! What the redirect path records about a click, gathered in one place: the classified user
//! agent (memoised), the client address (trusting forwarding headers only from configured
//! proxies), the country, and the visitor hash under the day's key.

use std::cell::{Cell, RefCell};
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::http::{HeaderMap, HeaderValue, header};
use parking_lot::RwLock;

use super::client::{Forwarding, TrustedProxies, client_ip_seen};
use super::front::Front;
use super::geo::Geo;
use super::sketch::VisitorKey;
use super::ua::{UaCache, UaClass};

pub struct Analytics {
    pub ua: UaCache,
    pub geo: Geo,
    pub trusted: TrustedProxies,
    /// Today's visitor key, refreshed by housekeeping (None until the store gave one); read
    /// through [`Analytics::visitor_key`].
    key: RwLock<Option<VisitorKey>>,
    /// Which value of `key` is current: a number drawn from [`KEY_GENERATIONS`] when it was set
    /// (0: never set), so that each thread keeps a copy of the key and a click reads one word
    /// that changes once a day instead of taking the lock (two atomic writes to a line shared
    /// by every worker).
    key_generation: AtomicU64,
    /// `Referer` value → its host (None: direct or unusable), so a URL is parsed once per
    /// distinct value, not per click.
    referrers: quick_cache::sync::Cache<Box<[u8]>, Option<Arc<str>>>,
}

/// Longest `Referer` value memoised; longer ones are parsed each time.
const MAX_REFERRER: usize = 1024;

/// The host of a `Referer` header, lower-cased, or None for direct traffic and unusable values.
pub fn referrer_host(headers: &HeaderMap) -> Option<String> {
    host_of(headers.get(header::REFERER)?.as_bytes())
}

// Out of line: reached on a memo miss or for over-long values, never on the memo's hit path.
#[inline(never)]
fn host_of(raw: &[u8]) -> Option<String> {
    let raw = std::str::from_utf8(raw).ok()?;
    let url = url::Url::parse(raw).ok()?;
    let host = url.host_str()?;
    (!host.is_empty() && host.len() <= 253).then(|| host.to_ascii_lowercase())
}

/// The numbers given to visitor keys as they are set, unique in the process (so that a thread's
/// copy of one `Analytics`' key is never taken for another's).
static KEY_GENERATIONS: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// This thread's copy of a visitor key: (its generation, the key).
    static KEY_FRONT: Cell<(u64, Option<VisitorKey>)> = const { Cell::new((0, None)) };
    /// This thread's front of the referrer memo (see [`super::front`]).
    static REFERRER_FRONT: RefCell<Front<Option<Arc<str>>>> = const { RefCell::new(Front::new()) };
}

/// One click's analytics fields (borrowed by the click buffer while recording).
pub struct Observed {
    pub ua: Arc<UaClass>,
    pub referrer: Option<Arc<str>>,
    pub country: Option<[u8; 2]>,
    pub visitor: Option<u64>,
}

impl Analytics {
    pub fn new(geo: Geo, trusted: TrustedProxies) -> Self {
        Analytics {
            ua: UaCache::new(10_000),
            geo,
            trusted,
            key: RwLock::new(None),
            key_generation: AtomicU64::new(0),
            referrers: quick_cache::sync::Cache::new(10_000),
        }
    }

    /// Sets today's visitor key.
    pub fn set_visitor_key(&self, key: VisitorKey) {
        let mut current = self.key.write();
        *current = Some(key);
        self.key_generation.store(
            KEY_GENERATIONS.fetch_add(1, Ordering::Relaxed),
            Ordering::Release,
        );
    }

    /// Today's visitor key (None until the store gave one): this thread's copy, taken again
    /// when the key has changed since.
    pub fn visitor_key(&self) -> Option<VisitorKey> {
        let generation = self.key_generation.load(Ordering::Acquire);
        match KEY_FRONT.get() {
            (copied, key) if copied == generation => key,
            _ => self.visitor_key_behind_front(generation),
        }
    }

    /// [`Analytics::visitor_key`] when this thread's copy is not the current key's (once per
    /// thread and key).
    #[cold]
    #[inline(never)]
    fn visitor_key_behind_front(&self, generation: u64) -> Option<VisitorKey> {
        // The key read here is at least as new as `generation` (set before it, under the lock);
        // if newer, the next call sees a newer generation and copies again.
        let key = *self.key.read();
        KEY_FRONT.set((generation, key));
        key
    }

    /// The host of a `Referer` value (see [`referrer_host`]), memoised.
    fn referrer(&self, raw: &HeaderValue) -> Option<Arc<str>> {
        let raw = raw.as_bytes();
        if raw.len() > MAX_REFERRER {
            return host_of(raw).map(Into::into);
        }
        if let Some(hit) = REFERRER_FRONT.with_borrow(|f| f.get(raw)) {
            return hit;
        }
        self.referrer_behind_front(raw)
    }

    /// [`Analytics::referrer`] of a value this thread's front does not hold (out of line, so
    /// that the common case's code stays small).
    #[cold]
    #[inline(never)]
    fn referrer_behind_front(&self, raw: &[u8]) -> Option<Arc<str>> {
        let host = match self.referrers.get(raw) {
            Some(hit) => hit,
            None => {
                let host: Option<Arc<str>> = host_of(raw).map(Into::into);
                self.referrers.insert(raw.into(), host.clone());
                host
            }
        };
        REFERRER_FRONT.with_borrow_mut(|f| f.put(raw, host.clone()));
        host
    }

    /// Observes a request from socket peer `peer`.
    pub fn observe(&self, peer: IpAddr, headers: &HeaderMap) -> Observed {
        // One pass over the (few) headers instead of a hashed lookup per header; the first
        // value counts, as with `HeaderMap::get`.
        let (mut agent, mut referer, mut forwarding) = (None, None, Forwarding::default());
        for (name, value) in headers {
            if *name == header::USER_AGENT {
                agent = agent.or(Some(value));
            } else if *name == header::REFERER {
                referer = referer.or(Some(value));
            } else {
                forwarding.see(name, value);
            }
        }
        let ua = self.ua.get(agent.map(HeaderValue::as_bytes));
        let client = if self.trusted.is_empty() {
            peer
        } else {
            client_ip_seen(peer, headers, &self.trusted, forwarding)
        };
        let country = if self.geo.is_enabled() {
            // A country header is believed from configured proxies, or from anyone when no
            // proxies are configured (the operator then vouches for every peer).
            let header_trusted = self.trusted.is_empty() || self.trusted.contains(peer);
            self.geo.country(headers, client, header_trusted)
        } else {
            None
        };
        let visitor = self
            .visitor_key()
            .map(|k| k.visitor(client, ua.fingerprint));
        Observed {
            referrer: referer.and_then(|r| self.referrer(r)),
            ua,
            country,
            visitor,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn referrer_hosts_are_lowercased_and_junk_is_direct() {
        let mut h = HeaderMap::new();
        assert_eq!(referrer_host(&h), None);
        h.insert(
            header::REFERER,
            HeaderValue::from_static("https://News.Example.com/x?y"),
        );
        assert_eq!(referrer_host(&h).as_deref(), Some("news.example.com"));
        h.insert(header::REFERER, HeaderValue::from_static("not a url"));
        assert_eq!(referrer_host(&h), None);
    }

    /// Each thread's copy of the key follows the key that was set last, per `Analytics`.
    #[test]
    fn the_visitor_key_read_is_the_last_set_for_this_analytics() {
        let geo = || Geo::new(None, None).unwrap();
        let (a, b) = (
            Analytics::new(geo(), TrustedProxies::default()),
            Analytics::new(geo(), TrustedProxies::default()),
        );
        assert!(a.visitor_key().is_none() && b.visitor_key().is_none());
        a.set_visitor_key(VisitorKey::new(1, [1; 16]));
        assert!(a.visitor_key() == Some(VisitorKey::new(1, [1; 16])));
        assert!(
            b.visitor_key().is_none(),
            "another Analytics' key is not taken"
        );
        b.set_visitor_key(VisitorKey::new(1, [2; 16]));
        assert!(b.visitor_key() == Some(VisitorKey::new(1, [2; 16])));
        assert!(a.visitor_key() == Some(VisitorKey::new(1, [1; 16])));
        a.set_visitor_key(VisitorKey::new(2, [3; 16]));
        assert!(
            a.visitor_key() == Some(VisitorKey::new(2, [3; 16])),
            "a new day's key"
        );
        let other = std::thread::scope(|s| s.spawn(|| a.visitor_key()).join().unwrap());
        assert!(
            other == Some(VisitorKey::new(2, [3; 16])),
            "on another thread too"
        );
    }

    /// `observe` reads the forwarding headers in its own pass over the headers: it must find
    /// the client `client_ip` finds, whatever the mix of lines.
    #[test]
    fn observe_finds_the_client_that_client_ip_finds() {
        let trusted = TrustedProxies::parse("127.0.0.1, 10.0.0.0/8").unwrap();
        let analytics = Analytics::new(Geo::new(None, None).unwrap(), trusted.clone());
        let key = VisitorKey::new(1, [7; 16]);
        analytics.set_visitor_key(key);
        let cases: &[&[(&str, &str)]] = &[
            &[],
            &[("x-forwarded-for", "1.2.3.4")],
            &[("x-forwarded-for", "6.6.6.6, 1.2.3.4, 10.0.0.2")],
            &[
                ("x-forwarded-for", "6.6.6.6"),
                ("x-forwarded-for", "1.2.3.4"),
            ],
            &[("x-forwarded-for", "junk"), ("forwarded", "for=5.5.5.5")],
            &[("forwarded", "for=6.6.6.6"), ("forwarded", "for=1.2.3.4")],
            &[("forwarded", "for=\"[2001:db8::1]:80\"")],
            &[
                ("referer", "https://a.example/"),
                ("x-forwarded-for", "9.9.9.9"),
            ],
        ];
        for peer in ["127.0.0.1", "192.0.2.1"] {
            let peer: IpAddr = peer.parse().unwrap();
            for case in cases {
                let mut h = HeaderMap::new();
                h.insert(header::USER_AGENT, HeaderValue::from_static("curl/8"));
                for (name, value) in *case {
                    h.append(
                        axum::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                        HeaderValue::from_str(value).unwrap(),
                    );
                }
                let seen = analytics.observe(peer, &h);
                let client = super::super::client::client_ip(peer, &h, &trusted);
                assert_eq!(
                    seen.visitor,
                    Some(key.visitor(client, seen.ua.fingerprint)),
                    "{peer} {case:?}"
                );
            }
        }
    }
}
