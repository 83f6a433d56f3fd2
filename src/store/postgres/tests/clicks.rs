//! Click flushes from several instances, and statistics compared with the SQLite store.

use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::store::sqlite::SqliteStore;
use crate::store::{DayDetail, Dim, DimCount, HourCount, Interval, Visitors};

fn hour(link_id: i64, hour: i64, clicks: u64, bots: u64) -> HourCount {
    HourCount {
        link_id,
        hour,
        clicks,
        bots,
    }
}

fn visitors(range: std::ops::Range<u64>) -> Visitors {
    let mut v = Visitors::default();
    for i in range {
        v.insert(i.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    }
    v
}

fn detail(link_id: i64, day: i64, seed: u64, referrers: u64) -> DayDetail {
    let mut dims = vec![
        DimCount {
            dim: Dim::Browser,
            key: "Firefox".into(),
            human: 3 + seed,
            bot: 1,
        },
        DimCount {
            dim: Dim::Country,
            key: "DE".into(),
            human: 2,
            bot: 0,
        },
        DimCount {
            dim: Dim::Device,
            key: "bot".into(),
            human: 0,
            bot: 4,
        },
    ];
    for r in 0..referrers {
        dims.push(DimCount {
            dim: Dim::Referrer,
            key: format!("site{}.example", (r + seed) % 130),
            human: 1 + r % 3,
            bot: r % 2,
        });
    }
    DayDetail {
        link_id,
        day,
        dims,
        humans: visitors(seed * 100..seed * 100 + 40),
        bots: visitors(seed * 1000..seed * 1000 + 5),
    }
}

/// Two flushes' worth of clicks over three days for two links: hours with bots, link-days
/// seen twice (merged), a link-day past the 100 referrer values, unknown codes.
fn flushes() -> Vec<ClickFlush> {
    let base_hour = 20_000 * 24;
    let first: Vec<HourCount> = (0..60)
        .flat_map(|h| {
            [
                hour(1, base_hour + h, 5 + h as u64 % 3, h as u64 % 2),
                hour(2, base_hour + h, 1, 0),
            ]
        })
        .collect();
    let second: Vec<HourCount> = (30..80)
        .map(|h| hour(1, base_hour + h, 2, 1))
        .chain([hour(1, base_hour + 30, 1, 0)])
        .collect();
    let flush = |seq: i64, journal: Vec<HourCount>, days: Vec<DayDetail>, unknown| ClickFlush {
        seq,
        slots: 1,
        full: true,
        fold: ClickBatch {
            hourly: journal.clone(),
            days,
            unknown,
        },
        journal,
    };
    vec![
        flush(
            1,
            first,
            vec![
                detail(1, 20_000, 1, 120),
                detail(1, 20_001, 2, 10),
                detail(2, 20_000, 3, 1),
                detail(1, 20_001, 4, 5),
            ],
            vec![
                (20_000, String::new(), 9),
                (20_000, "nope".into(), 5),
                (20_000, "Nope".into(), 4),
            ],
        ),
        flush(
            2,
            second,
            vec![
                detail(1, 20_000, 5, 30),
                detail(1, 20_002, 6, 3),
                detail(1, 20_003, 7, 3),
            ],
            vec![(20_001, String::new(), 2), (20_001, "nope".into(), 2)],
        ),
    ]
}

fn ranges() -> Vec<StatsRange> {
    let day = 86_400;
    let mut out = Vec::new();
    for (from, to) in [
        (20_000 * day, 20_004 * day),
        (20_000 * day + 5 * 3600, 20_001 * day + 7 * 3600 + 1),
        (0, i64::MAX / 2),
    ] {
        for interval in [Interval::Hour, Interval::Day] {
            for include_bots in [false, true] {
                for limit in [3, 50] {
                    out.push(StatsRange {
                        from,
                        to,
                        interval,
                        include_bots,
                        limit,
                    });
                }
            }
        }
    }
    out
}

#[tokio::test]
async fn link_stats_match_the_sqlite_store_for_the_same_clicks() {
    let Some(url) = fresh_database().await else {
        return;
    };
    let pg = PgStore::connect(&url, &[], opts()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let sqlite = SqliteStore::open(&dir.path().join("s.db"), Duration::from_secs(5)).unwrap();
    let stores: [&dyn Store; 2] = [&sqlite, &pg];
    for store in stores {
        for f in flushes() {
            store.flush_clicks(Arc::new(f)).await.unwrap();
        }
        let exact = ClickBatch {
            hourly: vec![hour(1, 20_001 * 24 + 3, 4, 1)],
            days: vec![detail(1, 20_001, 8, 2)],
            unknown: vec![(20_001, "exact".into(), 1)],
        };
        store.add_clicks(Arc::new(exact), true).await.unwrap();
    }
    let unfolded = ClickBatch {
        hourly: vec![
            hour(1, 20_000 * 24 + 7, 3, 1),
            hour(2, 20_000 * 24 + 7, 9, 0),
        ],
        days: vec![detail(1, 20_001, 9, 4)],
        unknown: Vec::new(),
    };
    let compare = async |stage: &str| {
        for link_id in [1, 2, 3] {
            assert_eq!(
                pg.total_clicks(link_id).await.unwrap(),
                sqlite.total_clicks(link_id).await.unwrap()
            );
            for range in ranges() {
                for held in [ClickBatch::default(), unfolded.clone()] {
                    let want = sqlite
                        .link_stats(link_id, range, held.clone())
                        .await
                        .unwrap();
                    let got = pg.link_stats(link_id, range, held).await.unwrap();
                    assert_eq!(got, want, "{stage}: link {link_id}, {range:?}");
                }
            }
        }
        for (from, to, limit) in [(0, i64::MAX / 2, 10), (20_001 * 86_400, 20_002 * 86_400, 1)] {
            assert_eq!(
                pg.unknown_stats(from..to, limit).await.unwrap(),
                sqlite.unknown_stats(from..to, limit).await.unwrap(),
                "{stage}"
            );
        }
    };
    compare("flushed").await;
    let stats = pg
        .link_stats(1, ranges()[1], ClickBatch::default())
        .await
        .unwrap();
    assert!(stats.total > 0 && stats.unique_visitors > 0 && !stats.dims[0].is_empty());
    // One day only: SQLite's roll-up groups the hours of every day after day 0 together
    // (`GROUP BY link_id, hour / 24 AND true`), see the next test.
    let before_hour = 20_001 * 24;
    assert_eq!(
        pg.roll_up_hours(before_hour).await.unwrap(),
        sqlite.roll_up_hours(before_hour).await.unwrap()
    );
    compare("rolled up").await;
}

#[tokio::test]
async fn rolling_hours_of_several_days_up_keeps_each_day_apart() {
    let Some((store, _, _)) = store().await else {
        return;
    };
    let batch = ClickBatch {
        hourly: (0..72).map(|h| hour(1, 20_000 * 24 + h, 2, 1)).collect(),
        ..ClickBatch::default()
    };
    store.add_clicks(Arc::new(batch), false).await.unwrap();
    assert_eq!(store.roll_up_hours(20_002 * 24).await.unwrap(), 48);
    assert_eq!(
        store.roll_up_hours(20_002 * 24).await.unwrap(),
        0,
        "idempotent"
    );
    let range = StatsRange {
        from: 20_000 * 86_400,
        to: 20_003 * 86_400,
        interval: Interval::Day,
        include_bots: true,
        limit: 50,
    };
    let stats = store
        .link_stats(1, range, ClickBatch::default())
        .await
        .unwrap();
    assert_eq!((stats.total, stats.bots), (144, 72));
    let day = |d: i64| d * 86_400;
    assert_eq!(
        stats.series,
        vec![(day(20_000), 48), (day(20_001), 48), (day(20_002), 48)]
    );
}

#[tokio::test]
async fn a_flush_applied_twice_counts_once() {
    let Some((store, _, _)) = store().await else {
        return;
    };
    let flush = Arc::new(ClickFlush {
        seq: 7,
        slots: 1,
        journal: vec![hour(1, 100, 3, 1)],
        fold: ClickBatch {
            hourly: vec![hour(1, 100, 3, 1)],
            days: vec![detail(1, 4, 1, 2)],
            unknown: vec![(4, "x".into(), 2)],
        },
        ..ClickFlush::default()
    });
    store.flush_clicks(flush.clone()).await.unwrap();
    let once = store
        .link_stats(1, ranges()[4], ClickBatch::default())
        .await
        .unwrap();
    store.flush_clicks(flush.clone()).await.unwrap();
    assert_eq!(store.total_clicks(1).await.unwrap(), 3);
    let range = StatsRange {
        from: 0,
        to: 10 * 86_400,
        interval: Interval::Day,
        include_bots: true,
        limit: 50,
    };
    let twice = store
        .link_stats(1, range, ClickBatch::default())
        .await
        .unwrap();
    assert_eq!(
        twice.dims[Dim::Browser as usize],
        vec![("Firefox".into(), 5)]
    );
    assert_eq!(
        store.unknown_stats(0..10 * 86_400, 5).await.unwrap().codes,
        vec![("x".to_string(), 2)]
    );
    assert_eq!(
        store
            .link_stats(1, ranges()[4], ClickBatch::default())
            .await
            .unwrap(),
        once
    );
    // The next sequence number is a new flush.
    store
        .flush_clicks(Arc::new(ClickFlush {
            seq: 8,
            ..(*flush).clone()
        }))
        .await
        .unwrap();
    assert_eq!(store.total_clicks(1).await.unwrap(), 6);
    // Old flush records are pruned with the idempotency records.
    store.purge_idempotency(0).await.unwrap();
}

#[tokio::test]
async fn flushes_from_two_instances_add_up() {
    let Some((a, url, _)) = store().await else {
        return;
    };
    let b = PgStore::connect(&url, &[], opts()).await.unwrap();
    assert_ne!(a.instance, b.instance);
    let flush = |v: u64| {
        Arc::new(ClickFlush {
            seq: 1,
            slots: 1,
            journal: vec![hour(1, 100, 2, 0), hour(2, 100, 1, 0)],
            fold: ClickBatch {
                hourly: vec![hour(1, 100, 2, 0), hour(2, 100, 1, 0)],
                days: vec![DayDetail {
                    humans: visitors(v * 10..v * 10 + 10),
                    ..detail(1, 4, 0, 1)
                }],
                unknown: vec![(4, "gone".into(), 1)],
            },
            ..ClickFlush::default()
        })
    };
    // Concurrently, many times: the link-day rows are merged under row locks.
    let (a, b) = (Arc::new(a), Arc::new(b));
    let mut tasks = Vec::new();
    for round in 0..10u64 {
        for store in [&a, &b] {
            let store = store.clone();
            let f = Arc::new(ClickFlush {
                seq: round as i64,
                ..(*flush(round)).clone()
            });
            tasks.push(tokio::spawn(async move { store.flush_clicks(f).await }));
        }
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(a.total_clicks(1).await.unwrap(), 40);
    assert_eq!(b.total_clicks(2).await.unwrap(), 20);
    let range = StatsRange {
        from: 4 * 86_400,
        to: 5 * 86_400,
        interval: Interval::Day,
        include_bots: false,
        limit: 50,
    };
    let stats = a.link_stats(1, range, ClickBatch::default()).await.unwrap();
    assert_eq!(
        stats.dims[Dim::Browser as usize],
        vec![("Firefox".into(), 60)]
    );
    assert_eq!(
        stats.unique_visitors, 100,
        "the sketches of every flush merged"
    );
    assert_eq!(
        a.unknown_stats(0..10 * 86_400, 5).await.unwrap().codes[0].1,
        20
    );
}

/// Link 1 is in slice 0 of 2, link 300 in slice 1 ([`crate::store::fold_slot`]).
fn journalled_flush(seq: i64) -> Arc<ClickFlush> {
    let folded = if seq % 2 == 0 { 1 } else { 300 };
    Arc::new(ClickFlush {
        seq,
        slots: 2,
        journal: vec![hour(1, 100, 3, 1), hour(300, 100, 5, 0)],
        fold: ClickBatch {
            hourly: vec![hour(folded, 100, 3 + 2 * (folded == 300) as u64, 0)],
            ..ClickBatch::default()
        },
        ..ClickFlush::default()
    })
}

#[tokio::test]
async fn the_journal_of_an_instance_that_stopped_flushing_is_replayed_once_by_another() {
    let Some((a, url, _)) = store().await else {
        return;
    };
    let b = PgStore::connect(&url, &[], opts()).await.unwrap();
    // A's liveness lock, as its change feed's session holds it.
    let feed = client(&url).await;
    feed.execute(
        "SELECT pg_advisory_lock(hashtextextended($1, 0))",
        &[&a.instance],
    )
    .await
    .unwrap();
    // Flush 1 folds link 300 and journals link 1's clicks only.
    a.flush_clicks(journalled_flush(1)).await.unwrap();
    assert_eq!(
        a.total_clicks(1).await.unwrap(),
        0,
        "journalled, not folded"
    );
    assert_eq!(a.total_clicks(300).await.unwrap(), 5);
    let fresh = Duration::from_secs(60);
    assert_eq!(b.reap_click_journals(fresh).await.unwrap(), 0, "A is alive");
    assert_eq!(
        a.reap_click_journals(Duration::ZERO).await.unwrap(),
        0,
        "not its own"
    );
    // A crashes: its session ends, and B replays its journal, once, without waiting for it
    // to go stale.
    drop(feed);
    let mut replayed = 0;
    for _ in 0..100 {
        replayed = b.reap_click_journals(fresh).await.unwrap();
        if replayed > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(replayed, 3, "replayed once A's session ended");
    assert_eq!(b.reap_click_journals(Duration::ZERO).await.unwrap(), 0);
    assert_eq!(a.total_clicks(1).await.unwrap(), 3);
    // A comes back: its next flush is refused until rewritten without the replayed part.
    let next = journalled_flush(2);
    let refused = a.flush_clicks(next.clone()).await.unwrap_err();
    assert!(
        matches!(&refused, StoreError::Conflict(m) if m == crate::store::journal::JOURNAL_REAPED),
        "{refused:?}"
    );
    a.flush_clicks(Arc::new(next.after_reap())).await.unwrap();
    assert_eq!(a.total_clicks(1).await.unwrap(), 6);
    assert_eq!(a.total_clicks(300).await.unwrap(), 10);
    // Registered again: the next flushes go through, and nothing is left to replay.
    a.flush_clicks(journalled_flush(3)).await.unwrap();
    assert_eq!(b.reap_click_journals(Duration::ZERO).await.unwrap(), 3);
}
