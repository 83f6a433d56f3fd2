#![no_main]
// `cargo +nightly fuzz run stats_query`: see fuzz/README.md and src/fuzzing.rs.
libfuzzer_sys::fuzz_target!(|data: &[u8]| snip::fuzzing::stats_query(data));
