//! The in-memory click buffer (the view counter design's in-memory counts).
//!
//! Recording a click appends it to the log of the recording thread (one of several logs, each
//! on cache lines of its own, holding a list per shard of the links): a short lock no other
//! thread wants and a push, no lookup, no store I/O, no await while locked, and no lock shared
//! with the threads recording the same link on other cores. The flusher adds a shard's clicks
//! from every log to the shard's entries a batch at a time, sorted by link, so a link clicked
//! many times a second costs one lookup. An entry, keyed by (link, day), holds everything about
//! its link and day that is not yet folded into the store's tables: clicks per hour, the few
//! distinct "profiles" seen (classified user agent, country, referrer host) with their counts,
//! and two unique-visitor sketches.
//!
//! Each flush ([`ClickBuffer::take`]) takes the clicks not yet journalled from every entry (a
//! few bytes per link, appended to the store's journal: this is what makes a click durable
//! within one flush interval) and the whole entries of one slice of the links, which the store
//! folds into its tables in the same transaction. A link is so written to the tables once per
//! fold interval however often it is clicked, and the stats add the unfolded part from memory.

use std::cell::Cell;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use parking_lot::Mutex;

use crate::analytics::sketch::Visitors;
use crate::analytics::ua::UaClass;
use crate::analytics::visit::Observed;
use crate::domain::time::UnixSeconds;
use crate::store::{ClickBatch, DayDetail, Dim, DimCount, HourCount, fold_slot};

const SHARDS: usize = 16;
/// Click logs: a thread records into log `thread index % LOGS` (threads past `LOGS` share one).
const LOGS: usize = 16;
pub use crate::store::DIRECT;
/// The country key of clicks whose country is not known.
pub const UNKNOWN_COUNTRY: &str = "(unknown)";
/// Distinct profiles kept per link and day before further ones are counted per dimension.
const MAX_PROFILES: usize = 32;
/// Distinct unknown codes remembered per flush interval: the first ones seen (the total counts
/// them all). A code that keeps being requested is among the first of a later interval.
const MAX_UNKNOWN_CODES: usize = 1_000;
/// Unknown codes written per flush: the most requested of the interval.
const UNKNOWN_CODES_PER_FLUSH: usize = 100;
/// Clicks one list of a log holds (a burst of one link's clicks) before the recording thread
/// adds its shard's clicks to the entries itself.
const MAX_LISTED: usize = 4096;
/// Clicks one log holds in all before the recording thread adds the shard of each further
/// click to the entries itself: one flush interval of a busy worker thread at the default
/// interval (so that normally the flusher does it), 2 MiB of 64-byte clicks; so at most 32 MiB
/// are logged however many threads record (4 MiB for a server's two worker threads), and as
/// much again is kept in emptied buffers for their capacity.
const MAX_LOGGED: usize = 32_768;

type Map<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

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

/// Clicks of one link in one hour since the link's last fold.
#[derive(Clone, Copy, Default)]
struct Hour {
    hour: i64,
    clicks: u64,
    bots: u64,
}

/// One click as the redirect path logs it, before it is added to its link's entry.
struct Click {
    link_id: i64,
    at: UnixSeconds,
    ua: Arc<UaClass>,
    referrer: Option<Arc<str>>,
    country: Option<[u8; 2]>,
    visitor: Option<u64>,
}

/// Everything about one link and one day that is not folded into the store's tables yet.
#[derive(Default)]
struct Entry {
    hours: Vec<Hour>,
    profiles: Vec<Profile>,
    /// Past [`MAX_PROFILES`]: (dimension, key) → (human, bot).
    overflow: Map<(Dim, Box<str>), (u64, u64)>,
    humans: Visitors,
    bot_visitors: Visitors,
}

fn country_key(country: &Option<[u8; 2]>) -> &str {
    country
        .as_ref()
        .and_then(|c| std::str::from_utf8(c).ok())
        .unwrap_or(UNKNOWN_COUNTRY)
}

impl Entry {
    fn hour_mut(&mut self, hour: i64) -> &mut Hour {
        let i = match self.hours.iter().rposition(|h| h.hour == hour) {
            Some(i) => i,
            None => {
                self.hours.push(Hour {
                    hour,
                    ..Hour::default()
                });
                self.hours.len() - 1
            }
        };
        &mut self.hours[i]
    }

    fn add_profile(
        &mut self,
        ua: &Arc<UaClass>,
        country: Option<[u8; 2]>,
        referrer: Option<&Arc<str>>,
        clicks: u64,
    ) {
        // Equal values are usually the same memoised `Arc`: compare pointers first.
        let same_referrer = |p: &Option<Arc<str>>| match (p, referrer) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b) || a == b,
            (a, b) => a.is_none() && b.is_none(),
        };
        let known = self.profiles.iter().position(|p| {
            Arc::ptr_eq(&p.ua, ua) && p.country == country && same_referrer(&p.referrer)
        });
        match known {
            Some(i) => self.profiles[i].clicks += clicks,
            None if self.profiles.len() < MAX_PROFILES => self.profiles.push(Profile {
                ua: ua.clone(),
                country,
                referrer: referrer.cloned(),
                clicks,
            }),
            None => {
                let (h, b) = if ua.is_bot { (0, clicks) } else { (clicks, 0) };
                for (dim, key) in [
                    (Dim::Referrer, referrer.map_or(DIRECT, |r| r).to_string()),
                    (Dim::Browser, ua.browser.to_string()),
                    (Dim::Os, ua.os.to_string()),
                    (Dim::Device, ua.device.as_str().to_string()),
                    (Dim::Country, country_key(&country).to_string()),
                ] {
                    let e = self.overflow.entry((dim, key.into())).or_default();
                    e.0 += h;
                    e.1 += b;
                }
            }
        }
    }

    /// The hourly counts since the last fold, all of them (journalled or not).
    fn hourly(&self, link_id: i64) -> impl Iterator<Item = HourCount> + '_ {
        self.hours.iter().map(move |h| HourCount {
            link_id,
            hour: h.hour,
            clicks: h.clicks,
            bots: h.bots,
        })
    }

    /// The dimension counts since the last fold, ordered by dimension and key.
    fn dims(&self) -> Vec<DimCount> {
        let mut dims: Map<(Dim, &str), (u64, u64)> = Map::default();
        for p in &self.profiles {
            let country = country_key(&p.country);
            for (dim, key) in [
                (Dim::Referrer, p.referrer.as_deref().unwrap_or(DIRECT)),
                (Dim::Browser, &*p.ua.browser),
                (Dim::Os, &*p.ua.os),
                (Dim::Device, p.ua.device.as_str()),
                (Dim::Country, country),
            ] {
                let e = dims.entry((dim, key)).or_default();
                if p.ua.is_bot {
                    e.1 += p.clicks;
                } else {
                    e.0 += p.clicks;
                }
            }
        }
        for ((dim, key), (h, b)) in &self.overflow {
            let e = dims.entry((*dim, key)).or_default();
            e.0 += h;
            e.1 += b;
        }
        let mut dims: Vec<DimCount> = dims
            .into_iter()
            .map(|((dim, key), (human, bot))| DimCount {
                dim,
                key: key.to_string(),
                human,
                bot,
            })
            .collect();
        dims.sort_by(|a, b| (a.dim, &a.key).cmp(&(b.dim, &b.key)));
        dims
    }

    /// The day detail (dimension counts and visitor sketches) since the last fold.
    fn detail(&self, link_id: i64, day: i64) -> DayDetail {
        DayDetail {
            link_id,
            day,
            dims: self.dims(),
            humans: self.humans.clone(),
            bots: self.bot_visitors.clone(),
        }
    }
}

/// What a shard has added up: the entries, and the clicks added since the last
/// [`ClickBuffer::take`] (not journalled yet) per link and hour.
#[derive(Default)]
struct Tally {
    /// (link id, day) → what is not folded yet.
    days: Map<(i64, i64), Entry>,
    fresh: Vec<HourCount>,
    /// Per log, the buffer its list of this shard was swapped with at the last absorb, kept
    /// for its capacity.
    spare: [Vec<Click>; LOGS],
    /// The order [`Shard::absorb`] adds a log's clicks in: (link, time, index in the log),
    /// kept for its capacity. Sorting these 24-byte keys moves less than sorting the 64-byte
    /// clicks.
    order: Vec<(i64, UnixSeconds, u32)>,
}

/// The entries of one slice of the links (by link id), added up from the click logs.
#[derive(Default)]
#[repr(align(128))]
struct Shard {
    tally: Mutex<Tally>,
}

/// The clicks one thread (or a few, past [`LOGS`] threads) recorded and the flusher has not
/// added to the entries yet, per shard. Each log has cache lines of its own, so that a link
/// clicked on every core at once (a viral link) costs no core a lock or a log line another
/// core wants.
#[derive(Default)]
#[repr(align(128))]
struct Log {
    clicks: Mutex<Lists>,
    /// Clicks recorded in this log since start (next to the lock the recording holds).
    recorded: AtomicU64,
}

/// A log's clicks: a list per shard, and how many they are in all.
#[derive(Default)]
struct Lists {
    by_shard: [Vec<Click>; SHARDS],
    len: usize,
}

impl Shard {
    /// Adds this shard's clicks (shard `index`) of every log to the entries: the tally is
    /// locked for the whole move, so whoever reads it sees every click recorded before (lock
    /// order: tally, then one log at a time).
    fn absorb<'a>(&'a self, index: usize, logs: &[Log]) -> parking_lot::MutexGuard<'a, Tally> {
        let mut tally = self.tally.lock();
        let Tally {
            days,
            fresh,
            spare,
            order,
        } = &mut *tally;
        // One log at a time: each log's clicks are in time order already, so that the sort
        // of a hot link's clicks finds them sorted.
        for (log, clicks) in logs.iter().zip(spare.iter_mut()) {
            {
                let mut lists = log.clicks.lock();
                lists.len -= lists.by_shard[index].len();
                std::mem::swap(clicks, &mut lists.by_shard[index]);
            }
            if clicks.is_empty() {
                continue;
            }
            order.extend(clicks.iter().zip(0u32..).map(|(c, i)| (c.link_id, c.at, i)));
            order.sort_unstable();
            add(days, fresh, clicks, order);
            order.clear();
            clicks.clear();
        }
        tally
    }
}

/// Adds `clicks`, in `order`, to the entries `days` and the not yet journalled counts `fresh`.
fn add(
    days: &mut Map<(i64, i64), Entry>,
    fresh: &mut Vec<HourCount>,
    clicks: &[Click],
    order: &[(i64, UnixSeconds, u32)],
) {
    let mut next = order.iter().peekable();
    while let Some(&&(link_id, at, _)) = next.peek() {
        let day = at.div_euclid(86_400);
        let entry = days.entry((link_id, day)).or_default();
        while let Some(&(_, at, i)) =
            next.next_if(|(l, at, _)| *l == link_id && at.div_euclid(86_400) == day)
        {
            let c = &clicks[i as usize];
            let bot = c.ua.is_bot;
            let hour = at.div_euclid(3600);
            let h = entry.hour_mut(hour);
            h.clicks += 1;
            h.bots += bot as u64;
            match fresh.last_mut() {
                Some(f) if f.link_id == link_id && f.hour == hour => {
                    f.clicks += 1;
                    f.bots += bot as u64;
                }
                _ => fresh.push(HourCount {
                    link_id,
                    hour,
                    clicks: 1,
                    bots: bot as u64,
                }),
            }
            if let Some(v) = c.visitor {
                if bot {
                    entry.bot_visitors.insert(v);
                } else {
                    entry.humans.insert(v);
                }
            }
            entry.add_profile(&c.ua, c.country, c.referrer.as_ref(), 1);
        }
    }
}

/// The log of the calling thread: each thread takes the next index at its first click.
fn log_index() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static INDEX: Cell<usize> = const { Cell::new(usize::MAX) };
    }
    INDEX.with(|index| match index.get() {
        usize::MAX => {
            let i = NEXT.fetch_add(1, Ordering::Relaxed) % LOGS;
            index.set(i);
            i
        }
        i => i,
    })
}

#[derive(Default)]
struct Unknown {
    total: u64,
    codes: Map<Box<str>, u64>,
}

/// What one flush takes out of the buffer (see [`ClickBuffer::take`]).
#[derive(Debug, Default)]
pub struct Taken {
    /// The clicks not yet journalled, per link and hour, of every link.
    pub journal: Vec<HourCount>,
    /// The folded links' hourly counts and day details since their last fold, and the
    /// unknown-code counts.
    pub fold: ClickBatch,
}

impl Taken {
    /// Clicks this take makes durable once written (the journalled ones).
    pub fn journalled(&self) -> u64 {
        self.journal.iter().map(|h| h.clicks).sum()
    }
}

pub struct ClickBuffer {
    /// `parking_lot::Mutex`es, not Tokio ones: held only for a push or a map update, never
    /// across an await.
    shards: Box<[Shard]>,
    logs: Box<[Log]>,
    /// Clicks journalled since start: the pending ones are those recorded (counted per log,
    /// so that recording touches no line shared by every thread) minus these.
    settled: AtomicU64,
    /// Set by the flusher while the store has been failing so long that the buffer reached
    /// its bound: clicks are then counted in `dropped` instead of being kept.
    refusing: AtomicBool,
    dropped: AtomicU64,
    unknown: Mutex<Unknown>,
}

impl Default for ClickBuffer {
    fn default() -> Self {
        ClickBuffer {
            shards: (0..SHARDS).map(|_| Shard::default()).collect(),
            logs: (0..LOGS).map(|_| Log::default()).collect(),
            settled: AtomicU64::new(0),
            refusing: AtomicBool::new(false),
            dropped: AtomicU64::new(0),
            unknown: Mutex::new(Unknown::default()),
        }
    }
}

impl ClickBuffer {
    fn shard_of(link_id: i64) -> usize {
        link_id.rem_euclid(SHARDS as i64) as usize
    }

    /// The entries of shard `index`, with every click of its links recorded so far added.
    fn tally(&self, index: usize) -> parking_lot::MutexGuard<'_, Tally> {
        self.shards[index].absorb(index, &self.logs)
    }

    /// Counts one click of `link_id` at `at`.
    pub fn record(&self, link_id: i64, at: UnixSeconds, visit: &Visit<'_>) {
        let seen = Observed {
            ua: visit.ua.clone(),
            referrer: visit.referrer.cloned(),
            country: visit.country,
            visitor: visit.visitor,
        };
        self.record_observed(link_id, at, seen);
    }

    /// [`Self::record`] of a visit the caller hands over (its reference counts are not raised
    /// and dropped again).
    pub fn record_observed(&self, link_id: i64, at: UnixSeconds, seen: Observed) {
        if self.refusing.load(Ordering::Relaxed) {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let log = &self.logs[log_index()];
        let shard = Self::shard_of(link_id);
        let full = {
            let mut lists = log.clicks.lock();
            lists.by_shard[shard].push(Click {
                link_id,
                at,
                ua: seen.ua,
                referrer: seen.referrer,
                country: seen.country,
                visitor: seen.visitor,
            });
            lists.len += 1;
            log.recorded.fetch_add(1, Ordering::Relaxed);
            lists.by_shard[shard].len() >= MAX_LISTED || lists.len >= MAX_LOGGED
        };
        // Normally the flusher absorbs the logs; under a burst the recording thread does.
        if full {
            drop(self.tally(shard));
        }
    }

    /// Whether new clicks are dropped (the buffer is full and the store is not taking it).
    pub fn set_refusing(&self, refusing: bool) {
        if self.refusing.swap(refusing, Ordering::Relaxed) != refusing {
            if refusing {
                tracing::error!(
                    "click buffer full while the store fails: new clicks are dropped (counted in \
                     snip_clicks_dropped_total) until a flush succeeds"
                );
            } else {
                tracing::warn!(
                    dropped = self.dropped(),
                    "click buffer accepts clicks again"
                );
            }
        }
    }

    /// Clicks dropped because the buffer was full (since start).
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
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

    /// Clicks recorded and not journalled yet (what a crash now would lose).
    pub fn pending(&self) -> u64 {
        // Settled first: every settled click was recorded before, so the difference of a later
        // sum of the recorded ones cannot be negative.
        let settled = self.settled.load(Ordering::Acquire);
        let recorded: u64 = self
            .logs
            .iter()
            .map(|l| l.recorded.load(Ordering::Acquire))
            .sum();
        recorded.saturating_sub(settled)
    }

    /// Whether visits to unknown codes wait to be written.
    pub fn has_unknown(&self) -> bool {
        self.unknown.lock().total > 0
    }

    /// Links-and-days held in memory (each until its link's next fold).
    pub fn entries(&self) -> usize {
        self.shards.iter().map(|s| s.tally.lock().days.len()).sum()
    }

    /// What this buffer holds of `link_id` and has not folded yet, as a batch.
    pub fn unfolded(&self, link_id: i64) -> ClickBatch {
        let mut batch = ClickBatch::default();
        let tally = self.tally(Self::shard_of(link_id));
        for (&(id, day), e) in tally.days.iter().filter(|((id, _), _)| *id == link_id) {
            batch.hourly.extend(e.hourly(id));
            batch.days.push(e.detail(id, day));
        }
        batch
    }

    /// What this buffer holds of every link and has not folded yet, as a batch.
    pub fn unfolded_all(&self) -> ClickBatch {
        let mut batch = ClickBatch::default();
        for shard in 0..SHARDS {
            let tally = self.tally(shard);
            for (&(id, day), e) in tally.days.iter() {
                batch.hourly.extend(e.hourly(id));
                batch.days.push(e.detail(id, day));
            }
        }
        batch
    }

    /// After another instance replayed this one's click journal: every journalled click is in
    /// the store's tables, so the entries keep only the hours of the clicks not journalled yet.
    pub fn forget_journalled(&self) {
        for shard in 0..SHARDS {
            let mut tally = self.tally(shard);
            let mut fresh: Map<(i64, i64), (u64, u64)> = Map::default();
            for h in &tally.fresh {
                let e = fresh.entry((h.link_id, h.hour)).or_default();
                e.0 += h.clicks;
                e.1 += h.bots;
            }
            for (&(link_id, _), e) in tally.days.iter_mut() {
                e.hours.retain_mut(|h| match fresh.get(&(link_id, h.hour)) {
                    Some(&(clicks, bots)) => {
                        (h.clicks, h.bots) = (clicks, bots);
                        true
                    }
                    None => false,
                });
            }
        }
    }

    /// Takes what one flush writes: the not yet journalled clicks of every link, and the whole
    /// entries of the links in `slot` (`Some((s, n))`: the links of slice `s` of `n`, see
    /// [`fold_slot`];
    /// `None`: all of them), with the unknown-code counts. The taken clicks no longer count
    /// as pending once [`Self::journalled`] is called; until the flush is confirmed the caller
    /// keeps it (and retries it as it is), so nothing is lost or counted twice.
    pub fn take(&self, slot: Option<(i64, i64)>) -> Taken {
        let mut taken = Taken::default();
        for shard in 0..SHARDS {
            self.take_shard(shard, slot, &mut taken);
        }
        self.finish_take(&mut taken);
        taken
    }

    /// Shards a take goes through ([`Self::take_shard`] takes from one).
    pub const SHARDS: usize = SHARDS;

    /// [`Self::take`] for one shard, so that the flusher can let requests run between shards.
    /// Call [`Self::finish_take`] after the last.
    pub fn take_shard(&self, shard: usize, slot: Option<(i64, i64)>, taken: &mut Taken) {
        let mut tally = self.tally(shard);
        taken.journal.append(&mut tally.fresh);
        let due: Vec<((i64, i64), Entry)> = match slot {
            None => tally.days.drain().collect(),
            Some((s, n)) => tally
                .days
                .extract_if(|(link_id, _), _| fold_slot(*link_id, n) == s)
                .collect(),
        };
        drop(tally);
        for ((link_id, day), e) in due {
            taken.fold.hourly.extend(e.hourly(link_id));
            taken.fold.days.push(DayDetail {
                link_id,
                day,
                dims: e.dims(),
                humans: e.humans,
                bots: e.bot_visitors,
            });
        }
    }

    /// Completes a take: puts the folded rows in key order (the store then updates
    /// neighbouring rows one after another) and adds the unknown-code counts.
    pub fn finish_take(&self, taken: &mut Taken) {
        taken
            .fold
            .hourly
            .sort_unstable_by_key(|h| (h.link_id, h.hour));
        taken.fold.days.sort_unstable_by_key(|d| (d.link_id, d.day));
        let unknown = std::mem::take(&mut *self.unknown.lock());
        if unknown.total > 0 {
            let day = crate::domain::time::now().div_euclid(86_400);
            let mut codes: Vec<(Box<str>, u64)> = unknown.codes.into_iter().collect();
            codes.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            codes.truncate(UNKNOWN_CODES_PER_FLUSH);
            taken.fold.unknown.push((day, String::new(), unknown.total));
            taken
                .fold
                .unknown
                .extend(codes.into_iter().map(|(c, n)| (day, c.into(), n)));
        }
    }

    /// Everything recorded, as one batch for the tables (exact mode's one-click buffer).
    pub fn take_all(&self) -> ClickBatch {
        let taken = self.take(None);
        self.journalled(taken.journalled());
        taken.fold
    }

    /// `n` taken clicks are in the store now: they no longer count as pending.
    pub fn journalled(&self, n: u64) {
        self.settled.fetch_add(n, Ordering::Release);
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

    fn hours(list: &[HourCount]) -> Vec<(i64, i64, u64, u64)> {
        let mut v: Vec<_> = list
            .iter()
            .map(|h| (h.link_id, h.hour, h.clicks, h.bots))
            .collect();
        v.sort();
        v
    }

    #[test]
    fn a_refusing_buffer_counts_clicks_as_dropped_and_keeps_nothing() {
        let cache = UaCache::new(10);
        let ua = chrome(&cache);
        let buf = ClickBuffer::default();
        buf.record(1, 0, &visit(&ua, None, 1));
        buf.set_refusing(true);
        buf.record(1, 1, &visit(&ua, None, 2));
        buf.record(2, 1, &visit(&ua, None, 3));
        assert_eq!((buf.pending(), buf.dropped()), (1, 2));
        buf.set_refusing(false);
        buf.record(2, 2, &visit(&ua, None, 4));
        assert_eq!((buf.pending(), buf.dropped()), (2, 2));
        assert_eq!(buf.take_all().total(), 2);
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
        assert_eq!(buf.unfolded(1).total(), 3);
        let taken = buf.take(None);
        let expected = vec![
            (1, t / 3600, 2, 0),
            (1, t / 3600 + 1, 1, 1),
            (2, t / 3600, 1, 0),
        ];
        assert_eq!(hours(&taken.journal), expected);
        assert_eq!(hours(&taken.fold.hourly), expected);
        let batch = taken.fold;
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
        assert_eq!(buf.pending(), 4, "taken but not yet journalled");
        buf.journalled(4);
        assert_eq!(buf.pending(), 0);
        assert_eq!(buf.entries(), 0);
        let again = buf.take(None);
        assert!(again.journal.is_empty() && again.fold.is_empty());
    }

    #[test]
    fn unfolded_links_are_journalled_once_and_stay_visible_until_their_fold() {
        let cache = UaCache::new(10);
        let ua = chrome(&cache);
        let buf = ClickBuffer::default();
        buf.record(4, 0, &visit(&ua, None, 1));
        buf.record(260, 0, &visit(&ua, None, 1));
        let slot_one = buf.take(Some((1, 2)));
        assert_eq!(
            hours(&slot_one.journal),
            vec![(4, 0, 1, 0), (260, 0, 1, 0)],
            "every fresh click is journalled"
        );
        assert_eq!(
            hours(&slot_one.fold.hourly),
            vec![(260, 0, 1, 0)],
            "only link 260 is folded (slice 1 of 2)"
        );
        assert_eq!(slot_one.fold.days.len(), 1);
        buf.journalled(2);
        buf.record(4, 10, &visit(&ua, None, 2));
        let next = buf.take(Some((1, 2)));
        assert_eq!(
            hours(&next.journal),
            vec![(4, 0, 1, 0)],
            "only the new click"
        );
        assert!(next.fold.is_empty());
        buf.journalled(1);
        assert_eq!(buf.pending(), 0);
        assert_eq!(buf.unfolded(4).total(), 2, "both clicks are still unfolded");
        let held = buf.unfolded(4);
        assert_eq!(hours(&held.hourly), vec![(4, 0, 2, 0)]);
        assert_eq!(held.days.len(), 1);
        assert_eq!(held.days[0].humans.estimate(), 2);
        assert!(buf.unfolded(260).is_empty());
        let full = buf.take(Some((0, 2)));
        assert!(full.journal.is_empty());
        assert_eq!(hours(&full.fold.hourly), vec![(4, 0, 2, 0)]);
        assert_eq!(dim(&full.fold, 4, Dim::Browser, "Chrome"), (2, 0));
        assert!(buf.unfolded(4).is_empty());
        assert_eq!(buf.unfolded(4).total(), 0);
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
        let batch = buf.take_all();
        assert_eq!(batch.total(), 200);
        assert_eq!(buf.pending(), 0);
        assert_eq!(dim(&batch, 1, Dim::Browser, "Chrome"), (200, 0));
        assert_eq!(dim(&batch, 1, Dim::Country, "DE"), (200, 0));
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
        let batch = buf.take_all();
        let total = batch.unknown.iter().find(|u| u.1.is_empty()).unwrap().2;
        assert_eq!(total, 2_005);
        assert_eq!(batch.unknown[1].1, "typo");
        assert!(batch.unknown.len() <= UNKNOWN_CODES_PER_FLUSH + 1);
        assert_eq!(batch.total(), 0, "unknown codes are not clicks");
    }

    /// A click is in every read that starts after it was recorded, even while other threads
    /// absorb the logs (the click may have left its log and not reached the entries yet).
    #[test]
    fn a_read_sees_every_click_recorded_before_it() {
        let cache = Arc::new(UaCache::new(10));
        let buf = Arc::new(ClickBuffer::default());
        let stop = Arc::new(AtomicBool::new(false));
        // Two threads absorbing all the time, so that clicks are often on their way.
        let absorbers: Vec<_> = (0..2)
            .map(|_| {
                let (buf, stop) = (buf.clone(), stop.clone());
                std::thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        drop(buf.unfolded(7));
                    }
                })
            })
            .collect();
        let recorders: Vec<_> = (0..2)
            .map(|t| {
                let (buf, cache) = (buf.clone(), cache.clone());
                std::thread::spawn(move || {
                    let ua = chrome(&cache);
                    for n in 1..=20_000u64 {
                        buf.record(7, 0, &visit(&ua, None, t * 100_000 + n));
                        let seen: u64 = buf.unfolded(7).hourly.iter().map(|h| h.clicks).sum();
                        assert!(seen >= n, "thread {t}: {seen} clicks seen after its {n}th");
                    }
                })
            })
            .collect();
        let failed = recorders.into_iter().any(|r| r.join().is_err());
        stop.store(true, Ordering::Relaxed);
        for a in absorbers {
            a.join().unwrap();
        }
        assert!(!failed, "a read missed a click recorded before it");
        assert_eq!(buf.take(None).journalled(), 40_000);
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
        // Flushes while recording: every click is journalled exactly once.
        let mut journalled = 0;
        while threads.iter().any(|t| !t.is_finished()) {
            journalled += buf.take(None).journalled();
        }
        for t in threads {
            t.join().unwrap();
        }
        journalled += buf.take(None).journalled();
        assert_eq!(journalled, 80_000);
    }
}
