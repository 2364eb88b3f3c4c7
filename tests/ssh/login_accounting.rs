//! What a terminating SSH login counts against its source and audits as
//! `auth.failed`: the engineer's own failures only. A target that is down
//! refuses the login without counting it or auditing it as a failed
//! authentication, and an admitted login clears the count its agent's
//! unregistered keys ran up (a valid key alone does not).

use crate::common;

use common::free_port;
use common::sshd::*;
use common::sshproxy::*;
use common::tunnel::wait_for;
use common::wait::{OutputWithin, HANG};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The limiter's MAX_FAILURES (src/proxy/limiter.rs).
const MAX_FAILURES: usize = 5;

fn audit_events(p: &SshProxy) -> Vec<serde_json::Value> {
    let a: serde_json::Value = serde_json::from_str(&p.audit()).unwrap();
    a["events"].as_array().cloned().unwrap_or_default()
}

fn auth_failed(p: &SshProxy) -> Vec<String> {
    audit_events(p)
        .into_iter()
        .filter(|e| e["action"] == "auth.failed")
        .map(|e| {
            e["detail"]["reason"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect()
}

fn stranger_key(p: &SshProxy) -> PathBuf {
    let stranger = p.d.dir.join("stranger");
    let st = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&stranger)
        .status()
        .unwrap();
    assert!(st.success());
    stranger
}

/// `ssh TARGET@proxy COMMAND` offering `keys` in order.
fn attempt(p: &SshProxy, keys: &[&Path], target: &str, command: &str) -> Output {
    let (first, rest) = keys.split_first().unwrap();
    let mut c = Command::new("ssh");
    c.args(ssh_opts(first));
    for k in rest {
        c.arg("-i").arg(k);
    }
    c.args(["-p", &p.port.to_string()])
        .arg(format!("{target}@127.0.0.1"))
        .arg(command)
        .output_within(HANG)
}

fn refused_unknown_key(p: &SshProxy, stranger: &Path) {
    let o = attempt(p, &[stranger], "auto-host", "echo in");
    assert_eq!(o.status.code(), Some(255), "{:?}", out(&o));
    assert!(out(&o).1.contains("Permission denied"), "{:?}", out(&o));
}

#[test]
fn a_target_that_is_down_neither_blocks_the_source_nor_audits_auth_failed() {
    // An SSH target whose address nobody listens on.
    let down = format!(
        "\n[[targets]]\nname = \"auto-down\"\nkind = \"ssh\"\naddress = \"127.0.0.1:{}\"\n\
         host_key = \"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl down\"\n\
         upstream = {{ user = \"nobody\", password_env = \"{PASSWORD_ENV}\" }}\n",
        free_port()
    );
    let Some(p) = SshProxy::start_with(&down) else {
        return;
    };
    p.grant("auto-down");
    p.grant("auto-host");
    for _ in 0..=MAX_FAILURES {
        let o = attempt(&p, &[&p.key], "auto-down", "true");
        assert_ne!(o.status.code(), Some(0), "{:?}", out(&o));
        assert!(
            out(&o).1.contains("cannot reach auto-down"),
            "{:?}",
            out(&o)
        );
    }
    // Not blocked: bob's next login, to a target that is up, goes through.
    let o = attempt(&p, &[&p.key], "auto-host", "echo alive");
    assert_eq!(out(&o).0, "alive\n", "{:?}", out(&o));
    // An unknown key is audited; once its event is in, the refusals
    // before it would be too.
    let stranger = stranger_key(&p);
    refused_unknown_key(&p, &stranger);
    wait_for("the unknown key's auth.failed", || {
        auth_failed(&p).iter().any(|r| r.starts_with("unknown key"))
    });
    let failed = auth_failed(&p);
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert!(!failed[0].ends_with("source blocked"), "{failed:?}");
}

#[test]
fn a_login_by_a_registered_key_clears_the_count_of_unregistered_ones() {
    let Some(p) = SshProxy::start() else { return };
    p.grant("auto-host");
    let stranger = stranger_key(&p);
    for _ in 0..MAX_FAILURES - 2 {
        refused_unknown_key(&p, &stranger);
    }
    // An agent offering the unregistered key first: one more failure,
    // then bob's key, which clears the count.
    let o = attempt(&p, &[&stranger, &p.key], "auto-host", "echo in");
    assert_eq!(out(&o).0, "in\n", "{:?}", out(&o));
    // Uncleared, these would be failures five to eight: a block.
    for _ in 0..MAX_FAILURES - 1 {
        refused_unknown_key(&p, &stranger);
    }
    let o = attempt(&p, &[&p.key], "auto-host", "echo alive");
    assert_eq!(out(&o).0, "alive\n", "{:?}", out(&o));
    // Every refused key audited, and none of them blocked the source.
    let want = 2 * (MAX_FAILURES - 1);
    wait_for("every auth.failed", || auth_failed(&p).len() >= want);
    let failed = auth_failed(&p);
    assert_eq!(failed.len(), want, "{failed:?}");
    assert!(
        failed.iter().all(|r| !r.ends_with("source blocked")),
        "{failed:?}"
    );
}
