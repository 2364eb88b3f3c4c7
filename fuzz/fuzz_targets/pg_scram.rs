//! Server-side SCRAM over arbitrary client messages: errors, never panics,
//! and never authenticates without the secret.
#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "checks/pg_scram.rs"]
mod checks;

fuzz_target!(|data: &[u8]| checks::check(data));
