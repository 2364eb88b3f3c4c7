//! The admin API's request bodies and query strings over arbitrary bytes:
//! each body type parses or gives a 400, never a panic; an accepted create
//! body goes through policy evaluation against a fixed config.
//!
//! The body of fuzz target `admin_json`, shared with `tests/control/fuzz_corpus.rs`,
//! which replays the seeds and the fuzzer's corpus through it.

use jitgate::admin::bodies::{Comment, CreateRequest, Empty, Reason};
use jitgate::admin::http::{parse_json, Query};
use jitgate::grants::evaluate_request;
use std::sync::OnceLock;

const CONFIG: &str = r#"
[server]
data_dir = "/nonexistent"
[store]
url = "sqlite:///nonexistent/db"
[admin]
listen = "127.0.0.1:8080"
[groups]
oncall = ["alice"]
[[users]]
name = "alice"
token_sha256 = "68875aff14f69bdb18f379817af5010aae81fc54e1abbe0e3d2459caf6ada530"
[[users]]
name = "carol"
token_sha256 = "8171788b0600bd696602715ce02de6c551c61d9b949c87fa34ed90ee5d220123"
[[targets]]
name = "cache"
kind = "tcp"
address = "127.0.0.1:6379"
[[policies]]
name = "oncall-cache"
targets = ["cache"]
requesters = ["group:oncall"]
approvers = ["carol"]
approvals_required = 1
max_duration = "4h"
default_duration = "1h"
"#;

fn config() -> &'static jitgate::config::Config {
    static C: OnceLock<jitgate::config::Config> = OnceLock::new();
    C.get_or_init(|| jitgate::config::parse_offline(CONFIG).expect("fixed fuzz config"))
}

pub fn check(data: &[u8]) {
    if let Ok(b) = parse_json::<CreateRequest>(data) {
        let _ = evaluate_request(
            config(),
            &jitgate::grants::Caller::static_token("alice", false),
            &b.target,
            b.duration.as_deref(),
            &b.reason,
        );
    }
    for e in [
        parse_json::<Reason>(data).err(),
        parse_json::<Comment>(data).err(),
        parse_json::<Empty>(data).err(),
    ]
    .into_iter()
    .flatten()
    {
        assert_eq!(e.status.as_u16(), 400);
        let _ = e.body();
    }
    if let Ok(q) = std::str::from_utf8(data) {
        if let Ok(q) = Query::parse(Some(q), &["state", "limit", "target"]) {
            let _ = q.limit();
        }
    }
}
