//! A compact in-memory filter of every code in the store (a Bloom filter), so that a lookup of a
//! code that was never created answers "no such code" without reading the store: a scan of
//! random codes, or an attack, costs a few hashes per request instead of a store read.
//!
//! The filter never says "absent" for a code the store holds:
//! - codes are added by the writer *before* the transaction that creates them commits (a failed
//!   commit leaves a harmless false positive), and codes are never removed (a code maps to one
//!   destination forever; deleted links keep their code);
//! - it is only trusted while this process is the only writer of the store (the embedded store
//!   holds the data directory's lock, so `snip import` cannot run beside a server);
//! - until the first build from the store has finished, it answers "maybe" for everything.
//!
//! Sizing: built for twice the codes present at start (at least [`MIN_CAPACITY`]) at a 1 %
//! false-positive rate, about 1.2 bytes per code of capacity. When the codes added outgrow the
//! capacity, a bigger filter is rebuilt in the background from a scan of the store; meanwhile
//! new codes go into both filters, so nothing is missed when the new one takes over.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use fastbloom::AtomicBloomFilter;
use parking_lot::RwLock;

/// The smallest capacity a filter is built for (≈ 1.2 MB).
pub const MIN_CAPACITY: u64 = 1_000_000;
const FALSE_POSITIVE_RATE: f64 = 0.01;

type Bloom = AtomicBloomFilter<foldhash::fast::RandomState>;

/// A filter being filled from a scan of the store; see [`CodeFilter::begin_build`].
pub struct Build {
    bloom: Arc<Bloom>,
    capacity: u64,
}

impl Build {
    pub fn insert(&self, code: &str) {
        self.bloom.insert(code);
    }
}

#[derive(Default)]
struct Filters {
    /// The filter lookups trust, once built.
    current: Option<(Arc<Bloom>, u64)>,
    /// A filter being built: every new code goes into it too.
    next: Option<Arc<Bloom>>,
}

#[derive(Default)]
pub struct CodeFilter {
    filters: RwLock<Filters>,
    /// Codes in the current filter (from its scan, plus those added since).
    codes: AtomicU64,
    /// True while a build is running or has been asked for.
    building: AtomicBool,
}

impl CodeFilter {
    /// False only when `code` is certainly not in the store.
    pub fn may_contain(&self, code: &str) -> bool {
        match &self.filters.read().current {
            Some((bloom, _)) => bloom.contains(code),
            None => true,
        }
    }

    /// Records a code about to be committed. Returns true when the filter has outgrown its
    /// capacity and no build is running yet: the caller should start one
    /// ([`Self::begin_build`]).
    pub fn insert(&self, code: &str) -> bool {
        let filters = self.filters.read();
        if let Some(next) = &filters.next {
            next.insert(code);
        }
        let Some((bloom, capacity)) = &filters.current else {
            return false;
        };
        bloom.insert(code);
        let codes = self.codes.fetch_add(1, Ordering::Relaxed) + 1;
        codes > *capacity
            && self
                .building
                .compare_exchange(false, true, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
    }

    /// Starts a build sized for `present` codes: from now on new codes also go into it. The
    /// caller then scans the store into it and calls [`Self::finish_build`] (or
    /// [`Self::abandon_build`]). The scan must start after this call, so that every code is
    /// either seen by the scan or inserted here.
    pub fn begin_build(&self, present: u64) -> Build {
        let capacity = present.saturating_mul(2).max(MIN_CAPACITY);
        let bloom = Arc::new(
            AtomicBloomFilter::with_false_pos(FALSE_POSITIVE_RATE)
                .hasher(foldhash::fast::RandomState::default())
                .expected_items(capacity as usize),
        );
        self.building.store(true, Ordering::Release);
        self.filters.write().next = Some(bloom.clone());
        Build { bloom, capacity }
    }

    /// The scan into `build` saw `scanned` codes: lookups trust the new filter from now on.
    pub fn finish_build(&self, build: Build, scanned: u64) {
        let mut filters = self.filters.write();
        filters.next = None;
        filters.current = Some((build.bloom, build.capacity));
        self.codes.store(scanned, Ordering::Relaxed);
        self.building.store(false, Ordering::Release);
    }

    /// The scan failed: keep what was there (lookups stay correct, only slower).
    pub fn abandon_build(&self) {
        self.filters.write().next = None;
        self.building.store(false, Ordering::Release);
    }

    /// Whether lookups are answered by the filter yet.
    pub fn is_ready(&self) -> bool {
        self.filters.read().current.is_some()
    }

    /// (codes, capacity) of the trusted filter, for metrics.
    pub fn occupancy(&self) -> Option<(u64, u64)> {
        let filters = self.filters.read();
        let (_, capacity) = filters.current.as_ref()?;
        Some((self.codes.load(Ordering::Relaxed), *capacity))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn before_any_build_everything_may_exist() {
        let f = CodeFilter::default();
        assert!(f.may_contain("nothing"));
        assert!(!f.insert("abc"));
        assert!(f.may_contain("nothing"));
    }

    #[test]
    fn a_built_filter_keeps_every_code_scanned_or_inserted_during_the_build() {
        let f = CodeFilter::default();
        let build = f.begin_build(3);
        for c in ["aaa", "bbb", "ccc"] {
            build.insert(c);
        }
        // Created while the scan was running: must not be lost when the new filter takes over.
        f.insert("during");
        assert!(f.may_contain("during"), "not trusted before the build ends");
        f.finish_build(build, 3);
        assert!(f.is_ready());
        for c in ["aaa", "bbb", "ccc", "during"] {
            assert!(f.may_contain(c), "{c}");
        }
        f.insert("after");
        assert!(f.may_contain("after"));
        // 1 % false positives: of 10,000 absent codes, far fewer than 300 may pass.
        let passed = (0..10_000)
            .filter(|i| f.may_contain(&format!("absent{i}")))
            .count();
        assert!(passed < 300, "{passed} false positives");
    }

    #[test]
    fn outgrowing_the_capacity_asks_for_exactly_one_rebuild() {
        let f = CodeFilter::default();
        let build = f.begin_build(0);
        f.finish_build(build, MIN_CAPACITY - 2);
        assert!(!f.insert("x1"));
        assert!(!f.insert("x2"));
        assert!(
            f.insert("x3"),
            "the first code past capacity asks for a build"
        );
        assert!(!f.insert("x4"), "only once while it runs");
        let build = f.begin_build(MIN_CAPACITY + 2);
        f.insert("x5");
        f.finish_build(build, MIN_CAPACITY + 2);
        assert!(f.may_contain("x5"));
        assert_eq!(
            f.occupancy(),
            Some((MIN_CAPACITY + 2, 2 * MIN_CAPACITY + 4))
        );
    }
}
