//! A year of one link's clicks, as the flusher would have written them: 365 days of dimension
//! rows (20 values per dimension) and visitor sketches (200 visitors a day), and 24 hourly rows
//! a day (11 clicks an hour, 1 of them a bot). Shared by the `stats_year` benchmark and the test
//! that checks what such a year adds up to (`tests/analytics.rs`).

use snip::store::{ClickBatch, DayDetail, Dim, DimCount, HourCount, Visitors};

/// Clicks an hour, of which bots.
pub const CLICKS_PER_HOUR: u64 = 11;
pub const BOTS_PER_HOUR: u64 = 1;
/// Distinct human visitors a day.
pub const VISITORS_PER_DAY: u64 = 200;
/// Values per dimension a day.
pub const VALUES_PER_DIM: usize = 20;

/// The 365 days up to `today` (days since the epoch, UTC) of link `link_id`.
pub fn year_of_clicks(link_id: i64, today: i64) -> ClickBatch {
    let mut batch = ClickBatch::default();
    for day in today - 364..=today {
        let mut humans = Visitors::default();
        for v in 0..VISITORS_PER_DAY {
            humans.insert(v.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ day as u64);
        }
        let dims = Dim::ALL
            .iter()
            .flat_map(|d| {
                (0..VALUES_PER_DIM).map(|k| DimCount {
                    dim: *d,
                    key: format!("k{k}"),
                    human: 10,
                    bot: 1,
                })
            })
            .collect();
        batch.days.push(DayDetail {
            link_id,
            day,
            dims,
            humans,
            bots: Visitors::default(),
        });
        for h in 0..24 {
            batch.hourly.push(HourCount {
                link_id,
                hour: day * 24 + h,
                clicks: CLICKS_PER_HOUR,
                bots: BOTS_PER_HOUR,
            });
        }
    }
    batch
}
