//! The click journal both stores keep (see [`ClickFlush`]): each flush appends one row, `(seq,
//! slots, entries)`, holding the clicks it made durable of the links it did not fold. The
//! links of slice `seq` modulo `slots` ([`fold_slot`]) are folded into the tables by that flush
//! itself, so after a crash the rows tell exactly which of their clicks are not in the tables
//! yet. The embedded store keeps one journal; PostgreSQL one per instance, and another instance
//! replays the journal of one that stopped flushing (see `crate::store::postgres::clicks`).

use std::collections::BTreeMap;

use super::{ClickBatch, ClickFlush, HourCount, fold_slot};

/// One journal entry: (link id, hour, clicks, bot clicks).
type JournalEntry = (i64, i64, u64, u64);

/// The `Conflict` message of a flush refused because another instance replayed this
/// instance's journal (it had stopped flushing for too long): see [`ClickFlush::after_reap`].
pub const JOURNAL_REAPED: &str = "this instance's click journal was replayed by another instance";

impl ClickFlush {
    /// The journal row's entries: the journalled clicks of the links this flush does not fold
    /// (none for a full flush, which folds every link).
    pub fn journal_blob(&self) -> Vec<u8> {
        let slots = self.slots.max(1);
        let slot = self.seq.rem_euclid(slots);
        let entries: Vec<JournalEntry> = self
            .journal
            .iter()
            .filter(|h| !self.full && fold_slot(h.link_id, slots) != slot)
            .map(|h| (h.link_id, h.hour, h.clicks, h.bots))
            .collect();
        postcard::to_stdvec(&entries).unwrap_or_default()
    }

    /// Journal rows numbered below this have had every slice folded since (by this flush or
    /// the `slots - 1` before it): this flush deletes them.
    pub fn keep_from(&self) -> i64 {
        if self.full {
            i64::MAX
        } else {
            self.seq - (self.slots.max(1) - 1)
        }
    }

    /// This flush as it must be written after another instance replayed the journal: every
    /// committed journal row is in the tables now (so the buffer forgets the journalled hours
    /// of its entries), and what this flush journals is not. So it folds exactly its own
    /// journalled clicks as hours, with the day details and unknown codes it took, and
    /// journals nothing (a full flush).
    pub fn after_reap(&self) -> ClickFlush {
        let mut hourly = self.journal.clone();
        hourly.sort_unstable_by_key(|h| (h.link_id, h.hour));
        ClickFlush {
            seq: self.seq,
            slots: self.slots,
            full: true,
            journal: self.journal.clone(),
            fold: ClickBatch {
                hourly,
                days: self.fold.days.clone(),
                unknown: self.fold.unknown.clone(),
            },
        }
    }
}

/// The clicks of journal rows `(seq, slots, entries)` (in `seq` order, numbered without gaps)
/// that are not in the tables yet: an entry is folded if its link's slice came up at or after
/// its row's flush. Unreadable rows are logged and skipped.
pub fn unfolded_hours(rows: &[(i64, i64, Vec<u8>)]) -> Vec<HourCount> {
    let Some(&(last, _, _)) = rows.last() else {
        return Vec::new();
    };
    let mut hours: BTreeMap<(i64, i64), (u64, u64)> = BTreeMap::new();
    for (seq, slots, blob) in rows {
        let slots = (*slots).max(1);
        let entries: Vec<JournalEntry> = match postcard::from_bytes(blob) {
            Ok(entries) => entries,
            Err(e) => {
                tracing::error!(seq, error = %e, "unreadable click journal row skipped");
                continue;
            }
        };
        for (link_id, hour, clicks, bots) in entries {
            let waited = (fold_slot(link_id, slots) - seq.rem_euclid(slots)).rem_euclid(slots);
            if waited > last - seq {
                let e = hours.entry((link_id, hour)).or_default();
                e.0 += clicks;
                e.1 += bots;
            }
        }
    }
    hours
        .into_iter()
        .map(|((link_id, hour), (clicks, bots))| HourCount {
            link_id,
            hour,
            clicks,
            bots,
        })
        .collect()
}
