#![no_main]
// `cargo +nightly fuzz run csv_cell`: see fuzz/README.md and src/fuzzing.rs.
libfuzzer_sys::fuzz_target!(|data: &[u8]| snip::fuzzing::csv_cell(data));
