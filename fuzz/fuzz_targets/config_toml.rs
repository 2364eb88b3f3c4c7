//! The TOML config loader and validator over arbitrary text: a `Config` or
//! located errors, never a panic; and a config that validates renders its
//! errors (none) and answers policy lookups without panicking.
#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "checks/config_toml.rs"]
mod checks;

fuzz_target!(|data: &[u8]| checks::check(data));
