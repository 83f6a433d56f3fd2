//! Time as the crate stores it (Unix seconds, UTC) and as the API shows it (RFC 3339 `Z`).

use chrono::{DateTime, SecondsFormat, Utc};

/// Unix time in seconds, as stored.
pub type UnixSeconds = i64;

pub fn now() -> UnixSeconds {
    Utc::now().timestamp()
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
}
