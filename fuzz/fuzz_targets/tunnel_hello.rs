//! The TCP tunnel handshake (request and reply): bounded, never panics.
#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "checks/tunnel_hello.rs"]
mod checks;

fuzz_target!(|data: &[u8]| checks::check(data));
