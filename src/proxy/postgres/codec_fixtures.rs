//! The codec against bytes captured from real psql, pgbench and PostgreSQL
//! 15 sessions (proto-fixtures/pg): every message boundary is found, the
//! startup parses, and the message types each workload relies on are seen.

use super::codec::{parse_initial, FrameTracker, Initial};

struct Fixture {
    name: &'static str,
    client: &'static [u8],
    server: &'static [u8],
    client_tags: &'static [u8],
    server_tags: &'static [u8],
}

macro_rules! fixture {
    ($name:literal, $ct:expr, $st:expr) => {
        Fixture {
            name: $name,
            client: include_bytes!(concat!("../../../proto-fixtures/pg/", $name, ".client.bin")),
            server: include_bytes!(concat!("../../../proto-fixtures/pg/", $name, ".server.bin")),
            client_tags: $ct,
            server_tags: $st,
        }
    };
}

fn fixtures() -> Vec<Fixture> {
    vec![
        fixture!("simple-query", b"QX", b"RSKZTDCE"),
        fixture!("copy-out", b"QX", b"HdcCZ"),
        fixture!("copy-in", b"QdcX", b"GCZ"),
        fixture!("extended", b"PBDES", b"12CZ"),
        fixture!("lo-fastpath", b"F", b"V"),
        fixture!("notify", b"Q", b"A"),
    ]
}

/// All tags of a tagged stream, checking it ends on a boundary; also fed
/// in small odd-sized chunks to exercise every split.
fn tags_of(bytes: &[u8]) -> Vec<u8> {
    let mut whole = Vec::new();
    let mut t = FrameTracker::default();
    t.scan(bytes, |tag| whole.push(tag)).expect("valid framing");
    assert!(t.at_boundary(), "stream ends mid-message");
    let mut split = Vec::new();
    let mut t = FrameTracker::default();
    for chunk in bytes.chunks(7) {
        t.scan(chunk, |tag| split.push(tag)).expect("valid framing");
    }
    assert_eq!(whole, split);
    whole
}

#[test]
fn captured_sessions_frame_cleanly() {
    for f in fixtures() {
        let len = i32::from_be_bytes(f.client[..4].try_into().unwrap()) as usize;
        match parse_initial(&f.client[4..len]).unwrap() {
            Initial::Startup { minor, params } => {
                assert_eq!(minor, 0, "{}", f.name);
                assert!(params.iter().any(|(k, _)| k == "user"), "{}", f.name);
            }
            other => panic!("{}: {other:?}", f.name),
        }
        let client = tags_of(&f.client[len..]);
        let server = tags_of(f.server);
        for t in f.client_tags {
            assert!(client.contains(t), "{}: client tag {}", f.name, *t as char);
        }
        for t in f.server_tags {
            assert!(server.contains(t), "{}: server tag {}", f.name, *t as char);
        }
    }
}
