//! The stored form of a link-day's dimension counts, shared by both backends so that they
//! store, merge and bound them identically (their `link_stats` are compared in the tests).

/// Dimension counts of one link and day, as stored: `(dim, key, human, bot)`, postcard-encoded,
/// borrowing the keys from the blob or detail they come from (merging allocates no strings).
pub(crate) type StoredDims<'a> = Vec<(u8, &'a str, u64, u64)>;

/// Values kept per dimension and link-day; rarer ones are summed into [`OTHER`]. Bounds the
/// storage of a link whatever its referrers (browsers, systems, devices and countries are
/// bounded sets anyway).
pub const MAX_VALUES_PER_DAY: usize = 100;
pub const OTHER: &str = "(other)";

/// Stored dimension counts; unreadable bytes count as none.
pub(crate) fn dims_from_bytes(bytes: &[u8]) -> StoredDims<'_> {
    postcard::from_bytes(bytes).unwrap_or_default()
}

/// Adds `add` into `into`, keeping at most [`MAX_VALUES_PER_DAY`] values per dimension.
pub(crate) fn merge_dims<'a>(into: &mut StoredDims<'a>, add: StoredDims<'a>) {
    for (dim, key, human, bot) in add {
        if let Some(e) = into.iter_mut().find(|e| e.0 == dim && e.1 == key) {
            e.2 += human;
            e.3 += bot;
            continue;
        }
        let values = into.iter().filter(|e| e.0 == dim).count();
        if values + 1 < MAX_VALUES_PER_DAY || key == OTHER {
            into.push((dim, key, human, bot));
        } else if let Some(e) = into.iter_mut().find(|e| e.0 == dim && e.1 == OTHER) {
            e.2 += human;
            e.3 += bot;
        } else {
            into.push((dim, OTHER, human, bot));
        }
    }
}

/// `a / b` rounded up (for `b > 0`).
pub(crate) fn ceil_div(a: i64, b: i64) -> i64 {
    -((-a).div_euclid(b))
}
