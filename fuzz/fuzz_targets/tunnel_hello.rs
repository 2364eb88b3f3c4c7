//! The TCP tunnel handshake (request and reply): bounded, never panics.
#![no_main]
use jitgate::proxy::tcp::handshake::{read_hello, read_reply};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let mut r = data;
    let _ = rt.block_on(read_hello(&mut r));
    let mut r = data;
    let _ = rt.block_on(read_reply(&mut r));
});
