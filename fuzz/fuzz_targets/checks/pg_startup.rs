//! Startup-phase packets (StartupMessage, SSLRequest, GSSENCRequest,
//! CancelRequest): any bytes give a value or an error, never a panic, and
//! never an allocation beyond the packet limit.
//!
//! The body of fuzz target `pg_startup`, shared with `tests/control/fuzz_corpus.rs`,
//! which replays the seeds and the fuzzer's corpus through it.

pub fn check(data: &[u8]) {
    let _ = jitgate::proxy::postgres::codec::parse_initial(data);
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let mut r = data;
    let _ = rt.block_on(jitgate::proxy::postgres::codec::read_initial(&mut r));
}
