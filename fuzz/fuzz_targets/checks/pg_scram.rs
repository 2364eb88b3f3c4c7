//! Server-side SCRAM over arbitrary client messages: errors, never panics,
//! and never authenticates without the secret.
//!
//! The body of fuzz target `pg_scram`, shared with `tests/control/fuzz_corpus.rs`,
//! which replays the seeds and the fuzzer's corpus through it.

use jitgate::proxy::postgres::scram::{Exchange, Verifier, SCRAM_SHA_256, SCRAM_SHA_256_PLUS};

pub fn check(data: &[u8]) {
    let v = Verifier::parse(
        "SCRAM-SHA-256$4096:AQIDBAUGBwgJCgsMDQ4PEA==$8rrDg00OqaiWXJ7p+sCgHEIaBSHY89ZJl3mfIsf32oY=:05L1f+yZbiN8O0AnO40Og85NNRhvzTS57naKRWCcsIA=",
    )
    .unwrap();
    let (first, last) = data.split_at(data.len() / 2);
    for (mech, tls) in [
        (SCRAM_SHA_256, false),
        (SCRAM_SHA_256_PLUS, true),
        (SCRAM_SHA_256, true),
    ] {
        if let Ok(x) = Exchange::start(mech, first, tls, &v, "srvnonce") {
            // The fuzzer does not know the secret, so it can never pass.
            assert!(x.finish(last, &v, Some(&[0u8; 32])).is_err());
        }
    }
    let _ = Verifier::parse(&String::from_utf8_lossy(data));
}
