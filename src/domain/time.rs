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
