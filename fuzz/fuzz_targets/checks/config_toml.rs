//! The TOML config loader and validator over arbitrary text: a `Config` or
//! located errors, never a panic; and a config that validates renders its
//! errors (none) and answers policy lookups without panicking.
//!
//! The body of fuzz target `config_toml`, shared with `tests/control/fuzz_corpus.rs`,
//! which replays the seeds and the fuzzer's corpus through it.

pub fn check(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match jitgate::config::parse_offline(text) {
        Ok(cfg) => {
            for name in cfg.targets.keys() {
                let _ = cfg.policy_for("alice", name);
            }
            let _ = cfg.is_any_approver("alice", &[]);
        }
        Err(e) => {
            // Every error is located inside the text it came from.
            for line in e.errors() {
                assert!(!line.is_empty());
            }
        }
    }
}
