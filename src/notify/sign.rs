//! The `X-Jitgate-Signature` header: `sha256=` and the lowercase hex
//! HMAC-SHA256 of the exact body bytes under the receiver's secret.
//! Receivers recompute it over the raw body (before any JSON parsing) and
//! compare in constant time.

use hmac::{Hmac, Mac};
use sha2::Sha256;

pub const HEADER: &str = "x-jitgate-signature";

pub fn signature(secret: &[u8], body: &[u8]) -> String {
    // HMAC takes keys of any length, so new_from_slice cannot fail here.
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC accepts keys of any length"),
    };
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_rfc4231_test_case_2() {
        assert_eq!(
            signature(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
