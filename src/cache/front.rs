//! A per-thread front of the redirect cache, for the links a worker thread redirects again and
//! again (a viral link, a campaign's few links).
//!
//! A hit in the shared cache hashes the code, takes a shard's lock, copies the entry out (its
//! destination's bytes included), and the response then copies those bytes into a `Location`
//! value of its own: a few hundred instructions and an allocation, several per cent of a
//! redirect. Each worker thread keeps a few direct-mapped slots in front of it instead, each a
//! copy of one entry whose `Location` value this thread built once: a hit compares the code,
//! clones that value (a reference count no other thread touches) and copies a few words.
//!
//! A slot is the cache's answer only while the cache is unchanged: every change to the cache
//! (a fill, an invalidation, a reload, a deny-list verdict, a clear) moves its epoch on *after*
//! the change, and a slot copied at another epoch is a miss. A thread reads the epoch before it
//! reads an entry, so a slot never pairs an epoch with an entry older than that epoch's changes.
//!
//! A code takes a slot on its second lookup in a row there (the first only notes it): links
//! requested in turn from a wide working set, which would overwrite the slots on every request,
//! cost a comparison and a word written, not a copy each.

use std::cell::RefCell;

use super::{Cached, Due};

/// Slots per thread (a power of two).
const SLOTS: usize = 32;

/// Codes longer than this are not kept in a slot (generated codes are a few bytes).
const MAX_CODE: usize = 24;

/// One entry copied from a cache.
struct Slot {
    /// The cache it was copied from ([`super::RedirectCache`]'s unique number).
    cache: u64,
    /// That cache's epoch when it was copied.
    epoch: u64,
    code: Box<str>,
    /// A redirect, whose `Location` value is this thread's own.
    answer: Cached,
    due: Due,
}

struct Front {
    slots: [Option<Slot>; SLOTS],
    /// Per slot, the hash of the code looked up there last (0: none): a code seen again while
    /// noted here takes the slot.
    noted: [u64; SLOTS],
}

thread_local! {
    static FRONT: RefCell<Front> = const {
        RefCell::new(Front {
            slots: [const { None }; SLOTS],
            noted: [0; SLOTS],
        })
    };
}

/// The hash of a code (FNV-1a, never 0): its slot and its note.
pub(super) fn hash(code: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in code.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    h | 1
}

fn slot_of(hash: u64) -> usize {
    (hash >> 58) as usize % SLOTS
}

/// The answer for `code` (of `hash`) this thread copied from cache `cache` at `epoch`, if a slot
/// holds it and `fresh` says its entry is not due for a reload.
pub(super) fn get(
    cache: u64,
    epoch: u64,
    code: &str,
    hash: u64,
    fresh: impl FnOnce(&Due) -> bool,
) -> Option<Cached> {
    FRONT.with_borrow(|front| match &front.slots[slot_of(hash)] {
        Some(slot)
            if slot.epoch == epoch
                && slot.cache == cache
                && *slot.code == *code
                && fresh(&slot.due) =>
        {
            Some(slot.answer.clone())
        }
        _ => None,
    })
}

/// Offers `answer` (due for a reload at `due`), read from cache `cache` at `epoch` for `code`
/// (of `hash`) after [`get`] missed: a redirect takes the slot if the code was noted there
/// last, else the code is noted.
pub(super) fn offer(cache: u64, epoch: u64, code: &str, hash: u64, answer: &Cached, due: Due) {
    let Cached::Redirect(target) = answer else {
        return;
    };
    if code.len() > MAX_CODE {
        return;
    }
    FRONT.with_borrow_mut(|front| {
        let i = slot_of(hash);
        if front.noted[i] != hash {
            front.noted[i] = hash;
            return;
        }
        front.slots[i] = Some(Slot {
            cache,
            epoch,
            code: code.into(),
            answer: Cached::Redirect(target.with_own_location()),
            due,
        });
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    const NEVER: Due = Due {
        stale_at: None,
        backstop_at: None,
    };

    fn entry(url: &str) -> Cached {
        Cached::redirect(1, url, None, None, None)
    }

    fn location(answer: Option<Cached>) -> Option<String> {
        match answer? {
            Cached::Redirect(t) => Some(t.url().to_string()),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_code_takes_a_slot_on_its_second_offer_and_only_its_epoch_and_cache_hit() {
        let (code, h) = ("front1", hash("front1"));
        let e = entry("https://example.com/a");
        offer(7, 1, code, h, &e, NEVER);
        assert!(get(7, 1, code, h, |_| true).is_none(), "noted only");
        offer(7, 1, code, h, &e, NEVER);
        assert_eq!(
            location(get(7, 1, code, h, |_| true)).as_deref(),
            Some("https://example.com/a")
        );
        assert!(get(7, 2, code, h, |_| true).is_none(), "another epoch");
        assert!(get(8, 1, code, h, |_| true).is_none(), "another cache");
        assert!(get(7, 1, code, h, |_| false).is_none(), "due for a reload");
        // Another code in the same slot misses, and does not take it on one offer.
        let other = (0..10_000)
            .map(|i| format!("c{i}"))
            .find(|c| slot_of(hash(c)) == slot_of(h) && c != code)
            .unwrap();
        let ho = hash(&other);
        assert!(get(7, 1, &other, ho, |_| true).is_none());
        offer(7, 1, &other, ho, &entry("https://example.com/b"), NEVER);
        assert!(get(7, 1, code, h, |_| true).is_some(), "still the first's");
        offer(7, 1, &other, ho, &entry("https://example.com/b"), NEVER);
        assert_eq!(
            location(get(7, 1, &other, ho, |_| true)).as_deref(),
            Some("https://example.com/b")
        );
        assert!(get(7, 1, code, h, |_| true).is_none(), "replaced");
    }

    #[test]
    fn only_redirects_and_short_codes_take_slots() {
        let gone = Cached::Gone;
        let (code, h) = ("front2", hash("front2"));
        offer(9, 1, code, h, &gone, NEVER);
        offer(9, 1, code, h, &gone, NEVER);
        assert!(get(9, 1, code, h, |_| true).is_none());
        let long = "x".repeat(MAX_CODE + 1);
        let hl = hash(&long);
        offer(9, 1, &long, hl, &entry("https://example.com/"), NEVER);
        offer(9, 1, &long, hl, &entry("https://example.com/"), NEVER);
        assert!(get(9, 1, &long, hl, |_| true).is_none());
    }
}
