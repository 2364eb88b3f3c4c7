//! The relay's frame tracker over arbitrary bytes split at an arbitrary
//! point: the same tags and boundaries whatever the split, or an error.
#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "checks/pg_frames.rs"]
mod checks;

fuzz_target!(|data: &[u8]| checks::check(data));
