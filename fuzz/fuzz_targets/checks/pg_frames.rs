//! The relay's frame tracker over arbitrary bytes split at an arbitrary
//! point: the same tags and boundaries whatever the split, or an error.
//!
//! The body of fuzz target `pg_frames`, shared with `tests/control/fuzz_corpus.rs`,
//! which replays the seeds and the fuzzer's corpus through it.

use jitgate::proxy::postgres::codec::{error_fields, FrameTracker};

pub fn check(data: &[u8]) {
    let Some((&cut, rest)) = data.split_first() else {
        return;
    };
    let mut whole_tags = Vec::new();
    let mut t = FrameTracker::default();
    let whole = t.scan(rest, |tag| whole_tags.push(tag));
    let cut = (cut as usize).min(rest.len());
    let mut split_tags = Vec::new();
    let mut t2 = FrameTracker::default();
    let a = t2.scan(&rest[..cut], |tag| split_tags.push(tag));
    let b = a.and_then(|_| t2.scan(&rest[cut..], |tag| split_tags.push(tag)));
    if whole.is_ok() && b.is_ok() {
        assert_eq!(whole_tags, split_tags);
        assert_eq!(t.at_boundary(), t2.at_boundary());
    }
    let _ = error_fields(rest);
}
