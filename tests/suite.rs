//! The integration tests, as one test binary: each file of `tests/` is a module of this crate
//! (`Cargo.toml` has `autotests = false` and this one `[[test]]`), so that `tests/common/` is
//! compiled once and one executable is linked, not one per file. The tests of one file run
//! with `cargo test --test suite cli::` (its module name, then `::`); a single test with
//! `cargo test --test suite cli::a_test_name -- --exact`.
//!
//! They all run in one process, in parallel: a test may not change what the process shares (its
//! environment variables, working directory, panic hook), nor end it (`process::exit`, an abort
//! ends every test's run), nor assume that only its own file's tests are running (every server
//! it starts is its own, on a port of its own).

mod analytics;
mod backup;
mod cli;
mod common;
mod dashboard;
mod docs;
mod durability;
mod first_start;
mod fuzz_smoke;
mod hostile_clients;
mod import;
mod keys_and_auth;
mod link_validation;
mod links_api;
mod operations;
mod postgres;
mod qr_codes;
mod readme;
mod redirects;
mod redis;
mod robustness;
mod stats_and_clicks;
mod terminal;
mod unknown_codes;

/// The year of clicks `analytics.rs` seeds, shared with the `stats_year` benchmark. Declared
/// here, not in `analytics.rs`: there rustc resolves a `#[path]` from `tests/analytics/` (the
/// rule for non-mod-rs files) and rustfmt 1.9 from `tests/`; at the crate root both use `tests/`.
#[path = "../bench/stats_year/year.rs"]
mod year;
