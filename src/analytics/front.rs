//! A small per-thread memo in front of a shared one, for the values the redirect path derives
//! from request headers (user-agent class, referrer host).
//!
//! The shared memos (`quick_cache`) are bounded and safe for any traffic, but a lookup there
//! hashes the whole header value and takes a shard lock: a few hundred instructions, which is
//! several per cent of a redirect. Real traffic repeats a handful of user agents and referrers,
//! so each worker thread first looks in a few direct-mapped slots of its own, compared byte for
//! byte: a hit costs a comparison and a reference-count increment. A miss, or a collision, goes
//! to the shared memo and takes the slot. The derivations memoised here are pure functions of
//! the bytes, so a slot never needs invalidating.

/// Slots per thread and memo (a power of two).
const SLOTS: usize = 16;
/// Values longer than this are not kept in a slot (they still go to the shared memo).
pub const MAX_KEY: usize = 512;

pub struct Front<V> {
    slots: [Option<(Box<[u8]>, V)>; SLOTS],
}

impl<V: Clone> Front<V> {
    pub const fn new() -> Self {
        Front {
            slots: [const { None }; SLOTS],
        }
    }

    /// The slot of `key`: its length and three of its bytes (user agents of one family have
    /// the same prefix and differ in the middle and the end), mixed by a multiplication.
    fn slot(key: &[u8]) -> usize {
        let n = key.len();
        let sample = |i: usize| key.get(i).copied().unwrap_or(0) as u64;
        let x = (n as u64) | sample(n / 2) << 16 | sample(n * 3 / 4) << 24 | sample(n - 1) << 32;
        (x.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 60) as usize % SLOTS
    }

    pub fn get(&self, key: &[u8]) -> Option<V> {
        if key.is_empty() {
            return None;
        }
        match &self.slots[Self::slot(key)] {
            Some((k, v)) if **k == *key => Some(v.clone()),
            _ => None,
        }
    }

    pub fn put(&mut self, key: &[u8], value: V) {
        if key.is_empty() || key.len() > MAX_KEY {
            return;
        }
        self.slots[Self::slot(key)] = Some((key.into(), value));
    }
}

impl<V: Clone> Default for Front<V> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hits_only_on_equal_bytes_and_collisions_replace() {
        let mut f: Front<u32> = Front::new();
        assert_eq!(f.get(b"abc"), None);
        f.put(b"abc", 1);
        assert_eq!(f.get(b"abc"), Some(1));
        assert_eq!(
            f.get(b"abd"),
            None,
            "same slot maybe, different bytes: a miss"
        );
        assert_eq!(f.get(b""), None);
        // Fill far past the slot count: every get either misses or returns its own value.
        let keys: Vec<String> = (0..200).map(|i| format!("Mozilla/5.0 agent {i}")).collect();
        for (i, k) in keys.iter().enumerate() {
            f.put(k.as_bytes(), i as u32);
        }
        let mut hits = 0;
        for (i, k) in keys.iter().enumerate() {
            if let Some(v) = f.get(k.as_bytes()) {
                assert_eq!(v, i as u32);
                hits += 1;
            }
        }
        assert!((1..=SLOTS).contains(&hits), "{hits} hits");
        // Over-long keys are not kept.
        let long = vec![b'x'; MAX_KEY + 1];
        f.put(&long, 7);
        assert_eq!(f.get(&long), None);
    }
}
