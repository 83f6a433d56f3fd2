//! Time as the crate stores it (Unix seconds, UTC) and as the API shows it (RFC 3339 `Z`).

use std::time::{SystemTime, UNIX_EPOCH};

use chrono::{DateTime, SecondsFormat, Utc};

/// Unix time in seconds, as stored.
pub type UnixSeconds = i64;

/// Now, in Unix seconds: the system clock read directly (every redirect reads it; chrono's
/// `Utc::now` would build a date it then throws away).
pub fn now() -> UnixSeconds {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(since) => since.as_secs() as UnixSeconds,
        Err(before) => -(before.duration().as_secs_f64().ceil() as UnixSeconds),
    }
}

/// Now, in Unix seconds, from the kernel's coarse wall clock: the time of the last timer tick
/// (at most a few milliseconds behind [`now`]; a vDSO read of one word, about 7 ns where
/// [`now`] takes 35 on the benchmark machine). For the redirect path, which compares whole
/// seconds (expiry) and counts clicks by the hour: a link may redirect for one tick past its
/// expiry second.
pub fn now_coarse() -> UnixSeconds {
    rustix::time::clock_gettime(rustix::time::ClockId::RealtimeCoarse).tv_sec
}

/// Milliseconds on the kernel's coarse monotonic clock (`CLOCK_MONOTONIC_COARSE`, time since
/// boot): as fine as the kernel's tick, a few milliseconds, and as cheap as [`now_coarse`]. For
/// limits of seconds read on every request (the connection watchdog).
pub fn monotonic_coarse_ms() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::MonotonicCoarse);
    // Both are non-negative for a monotonic clock.
    (t.tv_sec as u64) * 1_000 + (t.tv_nsec as u64) / 1_000_000
}

pub fn to_rfc3339(t: UnixSeconds) -> String {
    DateTime::<Utc>::from_timestamp(t, 0)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Parses an RFC 3339 timestamp (any offset; fractions truncated) to Unix seconds.
pub fn parse_rfc3339(raw: &str) -> Option<UnixSeconds> {
    DateTime::parse_from_rfc3339(raw)
        .ok()
        .map(|t| t.timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_coarse_clock_is_the_system_clock_within_a_tick() {
        let before = now();
        let coarse = now_coarse();
        let after = now();
        // One timer tick (at most 10 ms at HZ=100) behind, so never more than a second.
        assert!(
            (before - 1..=after).contains(&coarse),
            "{before} {coarse} {after}"
        );
    }

    #[test]
    fn rfc3339_round_trips_in_utc() {
        let t = parse_rfc3339("2026-11-28T02:02:03+01:00").unwrap();
        assert_eq!(to_rfc3339(t), "2026-11-28T01:02:03Z");
        assert_eq!(parse_rfc3339("yesterday"), None);
    }

    #[test]
    fn now_is_the_system_clock_in_unix_seconds() {
        let before = Utc::now().timestamp();
        let t = now();
        let after = Utc::now().timestamp();
        assert!(before <= t && t <= after, "{before} <= {t} <= {after}");
        assert!(t > 1_700_000_000, "seconds, not milliseconds or zero: {t}");
    }
}
