//! The admin API's request bodies and query strings over arbitrary bytes:
//! each body type parses or gives a 400, never a panic; an accepted create
//! body goes through policy evaluation against a fixed config.
#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "checks/admin_json.rs"]
mod checks;

fuzz_target!(|data: &[u8]| checks::check(data));
