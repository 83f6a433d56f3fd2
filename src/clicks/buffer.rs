//! The in-memory click buffer (the seed's view counter, first half).
//!
//! Recording a click locks one of several shards (chosen by link id) for one hash-map update
//! keyed by (link, hour): no store I/O, no await while locked, and no allocation in the common
//! case. The entry counts clicks and bot clicks, keeps the few distinct "profiles" seen
//! (classified user agent, country, referrer host) with their counts, and two unique-visitor
//! sketches. The flusher drains all shards and expands profiles into per-day dimension counts.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

use crate::analytics::sketch::Visitors;
use crate::analytics::ua::UaClass;
use crate::domain::time::UnixSeconds;
use crate::store::{ClickBatch, DayDetail, Dim, DimCount, HourCount};

const SHARDS: usize = 16;
/// The referrer key of clicks that came without a usable `Referer`.
pub const DIRECT: &str = "(direct)";
/// The country key of clicks whose country is not known.
pub const UNKNOWN_COUNTRY: &str = "(unknown)";
/// Distinct profiles kept per link and hour before further ones are counted per dimension.
const MAX_PROFILES: usize = 32;
/// Distinct unknown codes remembered per flush interval: the first ones seen (the total counts
/// them all). A code that keeps being requested is among the first of a later interval.
const MAX_UNKNOWN_CODES: usize = 1_000;
/// Unknown codes written per flush: the most requested of the interval.
const UNKNOWN_CODES_PER_FLUSH: usize = 100;

type Map<K, V> = HashMap<K, V, foldhash::fast::RandomState>;
/// One link-day while draining: (dimension, key) → (human, bot), human and bot visitors.
type DayAccumulator = (Map<(Dim, String), (u64, u64)>, Visitors, Visitors);

/// What is recorded about one click besides its link and time.
pub struct Visit<'a> {
    pub ua: &'a Arc<UaClass>,
    /// Referrer host; None for direct traffic.
    pub referrer: Option<&'a Arc<str>>,
    /// ISO 3166-1 alpha-2, upper case.
    pub country: Option<[u8; 2]>,
    /// Keyed hash of (client address, user agent); None while no visitor key is known.
    pub visitor: Option<u64>,
}

struct Profile {
    ua: Arc<UaClass>,
    country: Option<[u8; 2]>,
    referrer: Option<Arc<str>>,
    clicks: u64,
}

/// Clicks of one link in one hour.
#[derive(Default)]
struct Counts {
    clicks: u64,
    bots: u64,
    profiles: Vec<Profile>,
    /// Past [`MAX_PROFILES`]: (dimension, key) → (human, bot).
    overflow: Map<(Dim, Box<str>), (u64, u64)>,
    humans: Visitors,
    bot_visitors: Visitors,
}

#[derive(Default)]
struct Shard {
    hours: Map<(i64, i64), Counts>,
}

#[derive(Default)]
struct Unknown {
    total: u64,
    codes: Map<Box<str>, u64>,
}

pub struct ClickBuffer {
    /// `parking_lot::Mutex`, not a Tokio mutex: it is held only for a map update, never across
    /// an await.
    shards: Box<[Mutex<Shard>]>,
    pending: AtomicU64,
    /// Batches whose write failed, written again (added to) with the next flush.
    retry: Mutex<Option<ClickBatch>>,
    /// Day details drained from the shards and not written yet (see [`Self::drain_with`]).
    details: Mutex<Map<(i64, i64), DayAccumulator>>,
    unknown: Mutex<Unknown>,
}

impl Default for ClickBuffer {
    fn default() -> Self {
        ClickBuffer {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            pending: AtomicU64::new(0),
            retry: Mutex::new(None),
            details: Mutex::new(Map::default()),
            unknown: Mutex::new(Unknown::default()),
        }
    }
}

fn to_detail((link_id, day): (i64, i64), (dims, humans, bots): DayAccumulator) -> DayDetail {
    let mut dims: Vec<DimCount> = dims
        .into_iter()
        .map(|((dim, key), (human, bot))| DimCount {
            dim,
            key,
            human,
            bot,
        })
        .collect();
    dims.sort_by(|a, b| (a.dim, &a.key).cmp(&(b.dim, &b.key)));
    DayDetail {
        link_id,
        day,
        dims,
        humans,
        bots,
    }
}

fn country_key(country: Option<[u8; 2]>) -> String {
    match country {
        Some(c) => String::from_utf8_lossy(&c).into_owned(),
        None => UNKNOWN_COUNTRY.to_string(),
    }
}

impl ClickBuffer {
    fn shard(&self, link_id: i64) -> &Mutex<Shard> {
        &self.shards[link_id.rem_euclid(SHARDS as i64) as usize]
    }

    /// Counts one click of `link_id` at `at`.
    pub fn record(&self, link_id: i64, at: UnixSeconds, visit: &Visit<'_>) {
        let bot = visit.ua.is_bot;
        {
            let mut shard = self.shard(link_id).lock();
            let counts = shard
                .hours
                .entry((link_id, at.div_euclid(3600)))
                .or_default();
            counts.clicks += 1;
            counts.bots += bot as u64;
            if let Some(v) = visit.visitor {
                if bot {
                    counts.bot_visitors.insert(v);
                } else {
                    counts.humans.insert(v);
                }
            }
            let known = counts.profiles.iter().position(|p| {
                Arc::ptr_eq(&p.ua, visit.ua)
                    && p.country == visit.country
                    && p.referrer.as_deref() == visit.referrer.map(|r| &**r)
            });
            match known {
                Some(i) => counts.profiles[i].clicks += 1,
                None if counts.profiles.len() < MAX_PROFILES => counts.profiles.push(Profile {
                    ua: visit.ua.clone(),
                    country: visit.country,
                    referrer: visit.referrer.cloned(),
                    clicks: 1,
                }),
                None => {
                    let (h, b) = (!bot as u64, bot as u64);
                    for (dim, key) in [
                        (
                            Dim::Referrer,
                            visit.referrer.map_or(DIRECT, |r| r).to_string(),
                        ),
                        (Dim::Browser, visit.ua.browser.to_string()),
                        (Dim::Os, visit.ua.os.to_string()),
                        (Dim::Device, visit.ua.device.as_str().to_string()),
                        (Dim::Country, country_key(visit.country)),
                    ] {
                        let e = counts.overflow.entry((dim, key.into())).or_default();
                        e.0 += h;
                        e.1 += b;
                    }
                }
            }
        }
        self.pending.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a request for a code that does not exist.
    pub fn record_unknown(&self, code: &str) {
        let mut u = self.unknown.lock();
        u.total += 1;
        if let Some(n) = u.codes.get_mut(code) {
            *n += 1;
        } else if u.codes.len() < MAX_UNKNOWN_CODES {
            u.codes.insert(code.into(), 1);
        }
    }

    /// Clicks recorded and not yet committed to the store (drained ones in a flush that is
    /// still running or failed count too).
    pub fn pending(&self) -> u64 {
        self.pending.load(Ordering::Relaxed)
    }

    /// Pending clicks of one link (for initialising its `max_clicks` counter).
    pub fn pending_for(&self, link_id: i64) -> u64 {
        let in_shard: u64 = {
            let shard = self.shard(link_id).lock();
            shard
                .hours
                .iter()
                .filter(|((id, _), _)| *id == link_id)
                .map(|(_, c)| c.clicks)
                .sum()
        };
        let retrying: u64 = self.retry.lock().as_ref().map_or(0, |b| {
            b.hourly
                .iter()
                .filter(|h| h.link_id == link_id)
                .map(|h| h.clicks)
                .sum()
        });
        in_shard + retrying
    }

    /// Takes everything recorded so far (and any batch that failed before); call
    /// [`Self::committed`] once it is written, or [`Self::restore`] if writing it failed.
    pub fn drain(&self) -> ClickBatch {
        self.drain_with(None)
    }

    /// Takes the hourly counts (and any batch that failed before), and the day details
    /// (dimension counts, visitor sketches) of the links in `slot`: `Some((s, n))` takes the
    /// links whose id is `s` modulo `n`, `None` all of them. The others stay held, added up
    /// across flushes, and [`Self::unwritten_details`] shows them to the stats. Writing a
    /// link's detail row every n-th flush instead of every flush, a slice of the links each
    /// time, is what keeps the flush cheap and even on a busy store.
    pub fn drain_with(&self, slot: Option<(i64, i64)>) -> ClickBatch {
        let mut batch = self.retry.lock().take().unwrap_or_default();
        let mut days = self.details.lock();
        for shard in self.shards.iter() {
            let drained: Vec<((i64, i64), Counts)> = shard.lock().hours.drain().collect();
            for ((link_id, hour), counts) in drained {
                batch.hourly.push(HourCount {
                    link_id,
                    hour,
                    clicks: counts.clicks,
                    bots: counts.bots,
                });
                let day = (hour * 3600).div_euclid(86_400);
                let (dims, humans, bots) = days.entry((link_id, day)).or_default();
                humans.merge(&counts.humans);
                bots.merge(&counts.bot_visitors);
                let mut add = |dim: Dim, key: String, n: u64, bot: bool| {
                    let e = dims.entry((dim, key)).or_default();
                    if bot {
                        e.1 += n;
                    } else {
                        e.0 += n;
                    }
                };
                for p in counts.profiles {
                    let (n, bot) = (p.clicks, p.ua.is_bot);
                    let referrer = p.referrer.as_deref().unwrap_or(DIRECT).to_string();
                    add(Dim::Referrer, referrer, n, bot);
                    add(Dim::Browser, p.ua.browser.to_string(), n, bot);
                    add(Dim::Os, p.ua.os.to_string(), n, bot);
                    add(Dim::Device, p.ua.device.as_str().to_string(), n, bot);
                    add(Dim::Country, country_key(p.country), n, bot);
                }
                for ((dim, key), (h, b)) in counts.overflow {
                    let e = dims.entry((dim, key.into())).or_default();
                    e.0 += h;
                    e.1 += b;
                }
            }
        }
        let due: Vec<_> = match slot {
            None => days.drain().collect(),
            Some((s, n)) => days
                .extract_if(|(link_id, _), _| link_id.rem_euclid(n.max(1)) == s)
                .collect(),
        };
        drop(days);
        batch
            .days
            .extend(due.into_iter().map(|(key, acc)| to_detail(key, acc)));
        let unknown = std::mem::take(&mut *self.unknown.lock());
        if unknown.total > 0 {
            let day = crate::domain::time::now().div_euclid(86_400);
            let mut codes: Vec<(Box<str>, u64)> = unknown.codes.into_iter().collect();
            codes.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            codes.truncate(UNKNOWN_CODES_PER_FLUSH);
            batch.unknown.push((day, String::new(), unknown.total));
            batch
                .unknown
                .extend(codes.into_iter().map(|(c, n)| (day, c.into(), n)));
        }
        batch
    }

    /// Day details of `link_id` not written yet: held between detail writes, or in a batch
    /// whose write failed.
    pub fn unwritten_details(&self, link_id: i64) -> Vec<DayDetail> {
        let mut found: Vec<DayDetail> = self
            .details
            .lock()
            .iter()
            .filter(|((id, _), _)| *id == link_id)
            .map(|(key, acc)| to_detail(*key, acc.clone()))
            .collect();
        if let Some(retry) = self.retry.lock().as_ref() {
            found.extend(retry.days.iter().filter(|d| d.link_id == link_id).cloned());
        }
        found
    }

    /// A drained batch reached the store: it no longer counts as pending.
    pub fn committed(&self, batch_total: u64) {
        self.pending.fetch_sub(batch_total, Ordering::Relaxed);
    }

    /// Keeps a batch whose write failed, so that it is written with the next flush. The store
    /// adds what it is given, so writing it later (together with newer clicks) counts every
    /// click once.
    pub fn restore(&self, batch: ClickBatch) {
        let mut retry = self.retry.lock();
        match retry.as_mut() {
            None => *retry = Some(batch),
            Some(older) => {
                older.hourly.extend(batch.hourly);
                older.days.extend(batch.days);
                older.unknown.extend(batch.unknown);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analytics::ua::UaCache;

    fn visit<'a>(ua: &'a Arc<UaClass>, referrer: Option<&'a Arc<str>>, visitor: u64) -> Visit<'a> {
        Visit {
            ua,
            referrer,
            country: Some(*b"DE"),
            visitor: Some(visitor),
        }
    }

    fn chrome(cache: &UaCache) -> Arc<UaClass> {
        cache.get(Some(
            b"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
        ))
    }

    fn dim(batch: &ClickBatch, link: i64, dim: Dim, key: &str) -> (u64, u64) {
        batch
            .days
            .iter()
            .filter(|d| d.link_id == link)
            .flat_map(|d| d.dims.iter())
            .filter(|d| d.dim == dim && d.key == key)
            .fold((0, 0), |acc, d| (acc.0 + d.human, acc.1 + d.bot))
    }

    #[test]
    fn clicks_are_aggregated_by_hour_with_dimensions_per_day() {
        let cache = UaCache::new(100);
        let (human, bot) = (chrome(&cache), cache.get(Some(b"curl/8.5.0")));
        let buf = ClickBuffer::default();
        let t = 1_700_000_000;
        buf.record(1, t, &visit(&human, None, 1));
        let hn: Arc<str> = "news.ycombinator.com".into();
        buf.record(1, t + 1, &visit(&human, Some(&hn), 1));
        buf.record(1, t + 3600, &visit(&bot, None, 2));
        buf.record(2, t, &visit(&human, None, 3));
        assert_eq!(buf.pending(), 4);
        assert_eq!(buf.pending_for(1), 3);
        let mut batch = buf.drain();
        batch.hourly.sort_by_key(|h| (h.link_id, h.hour));
        let hours: Vec<_> = batch
            .hourly
            .iter()
            .map(|h| (h.link_id, h.hour, h.clicks, h.bots))
            .collect();
        assert_eq!(
            hours,
            vec![
                (1, t / 3600, 2, 0),
                (1, t / 3600 + 1, 1, 1),
                (2, t / 3600, 1, 0)
            ]
        );
        assert_eq!(dim(&batch, 1, Dim::Referrer, DIRECT), (1, 1));
        assert_eq!(
            dim(&batch, 1, Dim::Referrer, "news.ycombinator.com"),
            (1, 0)
        );
        assert_eq!(dim(&batch, 1, Dim::Browser, "Chrome"), (2, 0));
        assert_eq!(dim(&batch, 1, Dim::Device, "bot"), (0, 1));
        assert_eq!(dim(&batch, 1, Dim::Country, "DE"), (2, 1));
        let day1: Vec<_> = batch.days.iter().filter(|d| d.link_id == 1).collect();
        let humans: u64 = day1.iter().map(|d| d.humans.estimate()).sum();
        assert_eq!(humans, 1, "one human visitor clicked twice");
        assert_eq!(buf.pending(), 4, "drained but not yet committed");
        buf.committed(batch.total());
        assert_eq!(buf.pending(), 0);
        assert!(buf.drain().is_empty());
    }

    #[test]
    fn day_details_are_held_between_detail_writes_and_visible_meanwhile() {
        let cache = UaCache::new(10);
        let ua = chrome(&cache);
        let buf = ClickBuffer::default();
        buf.record(4, 0, &visit(&ua, None, 1));
        buf.record(5, 0, &visit(&ua, None, 1));
        let slot_one = buf.drain_with(Some((1, 2)));
        assert_eq!(slot_one.total(), 2, "every hourly count goes");
        assert_eq!(
            slot_one.days.len(),
            1,
            "only link 5's details (5 mod 2 = 1)"
        );
        assert_eq!(slot_one.days[0].link_id, 5);
        buf.record(4, 10, &visit(&ua, None, 2));
        buf.drain_with(Some((1, 2)));
        let held = buf.unwritten_details(4);
        assert_eq!(held.len(), 1);
        assert_eq!(held[0].humans.estimate(), 2);
        assert!(buf.unwritten_details(5).is_empty());
        let full = buf.drain_with(Some((0, 2)));
        assert_eq!(
            dim(&full, 4, Dim::Browser, "Chrome"),
            (2, 0),
            "both flushes' details"
        );
        assert!(buf.unwritten_details(4).is_empty());
    }

    #[test]
    fn a_restored_batch_is_drained_again_with_new_clicks() {
        let cache = UaCache::new(10);
        let ua = chrome(&cache);
        let buf = ClickBuffer::default();
        buf.record(7, 0, &visit(&ua, None, 1));
        let batch = buf.drain();
        buf.record(7, 0, &visit(&ua, None, 1));
        buf.restore(batch);
        assert_eq!(buf.pending(), 2);
        assert_eq!(buf.pending_for(7), 2);
        let again = buf.drain();
        assert_eq!(again.total(), 2);
        assert_eq!(dim(&again, 7, Dim::Browser, "Chrome"), (2, 0));
    }

    #[test]
    fn many_distinct_profiles_overflow_into_dimension_counts_without_loss() {
        let cache = UaCache::new(1000);
        let ua = chrome(&cache);
        let buf = ClickBuffer::default();
        let hosts: Vec<Arc<str>> = (0..200).map(|i| format!("h{i}.example").into()).collect();
        for h in &hosts {
            buf.record(1, 0, &visit(&ua, Some(h), 1));
        }
        let batch = buf.drain();
        assert_eq!(batch.total(), 200);
        assert_eq!(dim(&batch, 1, Dim::Browser, "Chrome"), (200, 0));
        for h in &hosts {
            assert_eq!(dim(&batch, 1, Dim::Referrer, h), (1, 0), "{h}");
        }
    }

    #[test]
    fn unknown_codes_are_counted_with_the_most_requested_kept() {
        let buf = ClickBuffer::default();
        buf.record_unknown("typo");
        for i in 0..2_000 {
            buf.record_unknown(&format!("x{i}"));
        }
        for _ in 0..4 {
            buf.record_unknown("typo");
        }
        let batch = buf.drain();
        let total = batch.unknown.iter().find(|u| u.1.is_empty()).unwrap().2;
        assert_eq!(total, 2_005);
        assert_eq!(batch.unknown[1].1, "typo");
        assert!(batch.unknown.len() <= UNKNOWN_CODES_PER_FLUSH + 1);
        assert_eq!(batch.total(), 0, "unknown codes are not clicks");
    }

    #[test]
    fn concurrent_recording_loses_no_click() {
        let cache = Arc::new(UaCache::new(10));
        let buf = Arc::new(ClickBuffer::default());
        let threads: Vec<_> = (0..8)
            .map(|i| {
                let (buf, cache) = (buf.clone(), cache.clone());
                std::thread::spawn(move || {
                    let ua = chrome(&cache);
                    let host: Arc<str> = "a.example".into();
                    for n in 0..10_000 {
                        let r = (i % 2 == 0).then_some(&host);
                        buf.record(n % 5, 0, &visit(&ua, r, n as u64));
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(buf.drain().total(), 80_000);
    }
}
