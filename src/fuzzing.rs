//! Fuzz targets: each takes arbitrary bytes and checks the properties of one parser that faces
//! untrusted input. They never panic on any input unless a property is broken.
//!
//! - `fuzz/` runs them under libFuzzer with `cargo +nightly fuzz run TARGET` (coverage-guided,
//!   as long as you like; see fuzz/README.md);
//! - `tests/fuzz_smoke.rs` runs them in every test run on stable Rust: the committed corpus in
//!   `fuzz/corpus/TARGET/`, then random mutations of it for a bounded number of inputs.

use url::Url;

use crate::domain::{Destination, ShortCode};

/// A fuzz target: takes any bytes, panics only when a property breaks.
pub type Target = fn(&[u8]);

/// The fuzz targets by name (the names of `fuzz/fuzz_targets/*.rs` and `fuzz/corpus/*`).
pub const TARGETS: &[(&str, Target)] = &[
    ("destination", destination),
    ("code", code),
    ("cursor", cursor),
    ("stats_query", stats_query),
    ("csv_cell", csv_cell),
    ("deny_list", deny_list),
];

fn text(data: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(data)
}

/// Destination parsing and normalisation: an accepted destination is an absolute http(s) URL
/// of at most 8 KiB without control characters or credentials, parses again to itself (the
/// stored form is a fixed point), is not this service, and the host the deny list checks is
/// the URL's host.
pub fn destination(data: &[u8]) {
    let raw = text(data);
    let own = [
        Url::parse("https://sn.ip").expect("a URL"),
        Url::parse("http://127.0.0.1:8080").expect("a URL"),
    ];
    let Ok(dst) = Destination::parse(&raw, &own) else {
        return;
    };
    let s = dst.as_str();
    assert!(s.len() <= crate::domain::destination::MAX_LEN, "{raw:?}");
    assert!(!s.chars().any(char::is_control), "{raw:?} → {s:?}");
    assert!(
        s.starts_with("http://") || s.starts_with("https://"),
        "{s:?}"
    );
    assert!(dst.url().username().is_empty() && dst.url().password().is_none());
    let again = Destination::parse(s, &own).unwrap_or_else(|e| panic!("{s:?} refused: {e}"));
    assert_eq!(again.as_str(), s, "normalising {raw:?} twice");
    let host = dst.url().host_str().expect("a host");
    let host = host.trim_start_matches('[').trim_end_matches(']');
    assert_eq!(crate::domain::destination::stored_host(s), host, "{s:?}");
}

/// Code parsing: an accepted custom code is a possible code and is its own text.
pub fn code(data: &[u8]) {
    let raw = text(data);
    let possible = ShortCode::could_be_code(&raw);
    if let Ok(code) = ShortCode::parse_custom(&raw) {
        assert_eq!(code.as_str(), raw, "custom codes are taken as given");
        assert!(possible, "{raw:?} accepted but not a possible code");
    }
}

/// Cursor decoding: never panics; ids survive a round trip.
pub fn cursor(data: &[u8]) {
    let id = data
        .get(..8)
        .map_or(0, |b| i64::from_le_bytes(b.try_into().expect("8 bytes")));
    crate::http::links::fuzz_cursor(&text(data), id);
}

/// Stats query parsing (`from`, `to`, `interval`, `include_bots`).
pub fn stats_query(data: &[u8]) {
    crate::http::stats::fuzz_query(&text(data));
}

/// CSV export cells.
pub fn csv_cell(data: &[u8]) {
    crate::http::stats::fuzz_csv_cell(&text(data));
}

/// Deny-list files: parsed or refused, never a panic; every entry denies itself.
pub fn deny_list(data: &[u8]) {
    crate::deny::fuzz_parse(&text(data));
}
