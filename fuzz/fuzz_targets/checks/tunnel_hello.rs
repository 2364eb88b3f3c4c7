//! The TCP tunnel handshake (request and reply): bounded, never panics.
//!
//! The body of fuzz target `tunnel_hello`, shared with `tests/control/fuzz_corpus.rs`,
//! which replays the seeds and the fuzzer's corpus through it.

use jitgate::proxy::tcp::handshake::{read_hello, read_reply};

pub fn check(data: &[u8]) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let mut r = data;
    let _ = rt.block_on(read_hello(&mut r));
    let mut r = data;
    let _ = rt.block_on(read_reply(&mut r));
}
