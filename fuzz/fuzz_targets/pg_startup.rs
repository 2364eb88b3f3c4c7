//! Startup-phase packets (StartupMessage, SSLRequest, GSSENCRequest,
//! CancelRequest): any bytes give a value or an error, never a panic, and
//! never an allocation beyond the packet limit.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = jitgate::proxy::postgres::codec::parse_initial(data);
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let mut r = data;
    let _ = rt.block_on(jitgate::proxy::postgres::codec::read_initial(&mut r));
});
