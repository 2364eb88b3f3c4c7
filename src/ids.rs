//! Opaque, unguessable identifiers: a type prefix and 80 random bits in
//! lowercase base32, so ids are safe in URLs, logs and file names.

use rand::RngCore;

const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

fn random_id(prefix: &str) -> String {
    let mut bytes = [0u8; 10];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let mut bits: u128 = 0;
    for b in bytes {
        bits = (bits << 8) | b as u128;
    }
    let mut s = String::with_capacity(prefix.len() + 17);
    s.push_str(prefix);
    s.push('_');
    for i in (0..16).rev() {
        s.push(ALPHABET[((bits >> (i * 5)) & 31) as usize] as char);
    }
    s
}

pub fn request_id() -> String {
    random_id("req")
}

pub fn grant_id() -> String {
    random_id("gr")
}

pub fn session_id() -> String {
    random_id("ses")
}

/// An audit batch's id: its retries are recognised by it.
pub fn batch_id() -> String {
    random_id("batch")
}

/// A notification event's id: receivers deduplicate redeliveries by it.
pub fn event_id() -> String {
    random_id("evt")
}

/// One outbox row (an event for one receiver).
pub fn delivery_id() -> String {
    random_id("dlv")
}
