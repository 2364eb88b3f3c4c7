//! `jitgate audit --verify` says when the newest checkpoint was signed, and
//! `--strict` fails unless a checkpoint checked with a pinned key vouches
//! for every event: a chain that only hashes right proves nothing against a
//! store writer, who can recompute it.

use crate::common;

use common::daemon::*;

/// `jitgate audit ARGS` as dave: exit code and stdout (stderr appended for
/// the failure message).
fn audit(d: &Daemon, args: &[&str]) -> (Option<i32>, String) {
    let mut all = vec!["audit"];
    all.extend_from_slice(args);
    let o = d.cli(DAVE, &all);
    let text = format!(
        "{}\nstderr:\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    (o.status.code(), text)
}

#[test]
fn strict_verify_fails_until_a_checkpoint_vouches_for_every_event() {
    let mut d = Daemon::start();
    for _ in 0..3 {
        d.create_request(ALICE, "auto-web", "5m");
    }
    let (code, key) = audit(&d, &["--public-key"]);
    assert_eq!(code, Some(0), "{key}");
    let key_file = d.dir.join("auditor.pub");
    std::fs::write(&key_file, key.lines().next().unwrap_or_default()).unwrap();
    let key_arg = key_file.display().to_string();
    let pinned = ["--verify", "--public-key-file", key_arg.as_str()];

    // Events after the newest checkpoint: fine without --strict (and the
    // summary says how old the anchor is), a failure with it.
    let (code, text) = audit(&d, &pinned);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("audit chain ok"), "{text}");
    assert!(
        text.contains("newest signed checkpoint: seq") || text.contains("no checkpoint"),
        "{text}"
    );
    let strict = [&pinned[..], &["--strict"]].concat();
    let (code, text) = audit(&d, &strict);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("audit chain ok"), "{text}");
    assert!(text.contains("strict: FAILED"), "{text}");
    assert!(
        text.contains("after the newest signed checkpoint"),
        "{text}"
    );
    let o = d.cli(DAVE, &[&["--json", "audit"], &strict[..]].concat());
    assert_eq!(o.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["vouched"], false, "{v}");

    // A clean stop signs a checkpoint over the tail: now it vouches.
    assert!(d.stop().success());
    d.spawn();
    let (code, text) = audit(&d, &strict);
    assert_eq!(code, Some(0), "{text}");
    assert!(!text.contains("strict: FAILED"), "{text}");
    let at = text
        .lines()
        .find_map(|l| l.strip_prefix("newest signed checkpoint: seq "))
        .and_then(|l| l.split_once(" at "))
        .map(|(_, at)| at.to_string())
        .unwrap_or_else(|| panic!("no checkpoint time: {text}"));
    assert!(humantime::parse_rfc3339(&at).is_ok(), "{at}");
    let o = d.cli(DAVE, &[&["--json", "audit"], &strict[..]].concat());
    assert_eq!(o.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["vouched"], true, "{v}");
    assert_eq!(v["newest_checkpoint_at"], at.as_str(), "{v}");

    // Without a pinned key nothing the auditor holds vouches: strict fails.
    let (code, text) = audit(&d, &["--verify", "--strict"]);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("the public key was not pinned"), "{text}");
    let (code, text) = audit(&d, &["--verify"]);
    assert_eq!(code, Some(0), "{text}");
}

#[test]
fn strict_needs_verify() {
    let d = Daemon::start();
    let (code, text) = audit(&d, &["--strict"]);
    assert_eq!(code, Some(2), "{text}");
}
