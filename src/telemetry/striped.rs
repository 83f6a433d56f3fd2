//! Counters that every worker thread adds to on the redirect path, striped: each thread adds to
//! its own cache line, so that two cores counting at once do not pass one line back and forth
//! (a shared atomic written by every request costs a cross-core transfer on most of them).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Stripes per counter (threads beyond that share them).
pub const STRIPES: usize = 4;

/// This thread's stripe, assigned on first use.
pub fn stripe() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static MINE: usize = NEXT.fetch_add(1, Ordering::Relaxed) % STRIPES;
    }
    MINE.with(|i| *i)
}

/// A count, added to per thread and read as the sum of the stripes.
#[derive(Default)]
pub struct Counter {
    stripes: [Line; STRIPES],
}

#[derive(Default)]
#[repr(align(128))]
struct Line(AtomicU64);

impl Counter {
    pub fn increment(&self) {
        self.stripes[stripe()].0.fetch_add(1, Ordering::Relaxed);
    }

    /// The count so far (exact once the adding threads are done; a moment's view otherwise).
    pub fn get(&self) -> u64 {
        self.stripes
            .iter()
            .map(|s| s.0.load(Ordering::Relaxed))
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_from_many_threads_add_up() {
        let counter = Counter::default();
        std::thread::scope(|s| {
            for _ in 0..2 * STRIPES + 1 {
                s.spawn(|| (0..1000).for_each(|_| counter.increment()));
            }
        });
        assert_eq!(counter.get(), (2 * STRIPES as u64 + 1) * 1000);
    }

    #[test]
    fn stripes_sit_on_lines_of_their_own() {
        assert!(std::mem::align_of::<Line>() >= 128);
        assert_eq!(std::mem::size_of::<Counter>(), STRIPES * 128);
    }
}
