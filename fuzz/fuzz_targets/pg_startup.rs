//! Startup-phase packets (StartupMessage, SSLRequest, GSSENCRequest,
//! CancelRequest): any bytes give a value or an error, never a panic, and
//! never an allocation beyond the packet limit.
#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "checks/pg_startup.rs"]
mod checks;

fuzz_target!(|data: &[u8]| checks::check(data));
