//! Click flushes on PostgreSQL, an instance among several: its journal replayed by another.

use std::time::Duration;

use crate::clicks::Clicks;
use crate::store::Store;
use crate::store::postgres::PgStore;
use crate::store::postgres::tests::{fresh_database, opts};

/// Pseudo-random but repeatable.
fn next(state: &mut u64) -> u64 {
    *state = state
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    *state >> 33
}

/// Records up to 40 clicks on links 1, 301, 601, … (several slices) and returns how many.
fn record_some(clicks: &Clicks, rng: &mut u64) -> u64 {
    let uas = crate::analytics::ua::UaCache::new(10);
    let ua = uas.get(Some(
        b"Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Firefox/120.0",
    ));
    let n = next(rng) % 40;
    for _ in 0..n {
        let visit = crate::clicks::Visit {
            ua: &ua,
            referrer: None,
            country: None,
            visitor: Some(next(rng)),
        };
        let link = 1 + 300 * (next(rng) % 12) as i64;
        clicks
            .buffer
            .record(link, 3600 * 100 + (next(rng) % 7200) as i64, &visit);
    }
    n
}

async fn all_clicks(store: &PgStore) -> u64 {
    let mut total = 0;
    for i in 0..12 {
        total += store.total_clicks(1 + 300 * i).await.unwrap();
    }
    total
}

#[tokio::test]
async fn an_instance_whose_journal_was_replayed_counts_every_click_once() {
    let Some(url) = fresh_database().await else {
        return;
    };
    let a = PgStore::connect(&url, &[], opts()).await.unwrap();
    let b = PgStore::connect(&url, &[], opts()).await.unwrap();
    for (slots, before, after) in [(3, 4, 3), (4, 9, 1), (7, 20, 6)] {
        let mut rng = slots as u64 * 100 + before;
        let clicks = Clicks::default();
        clicks.set_slots(slots);
        let start = all_clicks(&a).await;
        let mut recorded = 0;
        for _ in 0..before {
            recorded += record_some(&clicks, &mut rng);
            clicks.flush(&a, false).await.unwrap();
        }
        // Cut off for minutes: B replays A's journal; clicks keep coming meanwhile.
        b.reap_click_journals(Duration::ZERO).await.unwrap();
        recorded += record_some(&clicks, &mut rng);
        for _ in 0..after {
            clicks.flush(&a, false).await.unwrap();
            recorded += record_some(&clicks, &mut rng);
        }
        // The tables and A's memory hold every click once, before the final flush too.
        let mut seen = 0;
        for i in 0..12 {
            seen += clicks.total(&a, 1 + 300 * i).await.unwrap();
        }
        assert_eq!(
            seen - start,
            recorded,
            "{slots} slots, before the final flush"
        );
        clicks.flush_once(&a).await.unwrap();
        assert_eq!(all_clicks(&a).await - start, recorded, "{slots} slots");
        // A crash now: what A journalled and did not fold is B's to replay, exactly.
        for _ in 0..before {
            recorded += record_some(&clicks, &mut rng);
            clicks.flush(&a, false).await.unwrap();
        }
        let lost = record_some(&clicks, &mut rng);
        drop(clicks);
        b.reap_click_journals(Duration::ZERO).await.unwrap();
        assert_eq!(
            all_clicks(&a).await - start,
            recorded,
            "{slots} slots, lost {lost}"
        );
    }
}
