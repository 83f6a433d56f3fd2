#![no_main]
// `cargo +nightly fuzz run destination`: see fuzz/README.md and src/fuzzing.rs.
libfuzzer_sys::fuzz_target!(|data: &[u8]| snip::fuzzing::destination(data));
