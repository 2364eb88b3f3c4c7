use super::*;
use std::path::Path;

const TOKEN: &str = "0000000000000000000000000000000000000000000000000000000000000001";

fn good() -> String {
    format!(
        r#"
[server]
data_dir = "./data"

[groups]
oncall = ["alice", "bob"]
leads = ["carol"]

[[users]]
name = "alice"
token_sha256 = "{TOKEN}"

[[users]]
name = "bob"

[[users]]
name = "carol"

[[targets]]
name = "cache"
kind = "tcp"
address = "127.0.0.1:6379"

[[policies]]
name = "oncall"
requesters = ["group:oncall"]
targets = ["cache", "prod-*"]
approvers = ["group:leads"]
approvals_required = 1
max_duration = "2h"
default_duration = "30m"
warn_before = ["1m", "5m"]
"#
    )
}

fn errors_of(text: &str) -> Vec<String> {
    match parse(text, Path::new("j.toml"), Path::new("/tmp")) {
        Ok(_) => vec![],
        Err(e) => e.errors(),
    }
}

#[test]
fn the_example_shape_validates_and_sorts_warnings() {
    let c = parse(&good(), Path::new("j.toml"), Path::new("/tmp")).expect("valid");
    assert_eq!(c.policies[0].warn_before[0].as_secs(), 300);
    assert_eq!(c.request_ttl.as_secs(), 86400);
    assert!(c.store_url.starts_with("sqlite:///tmp/./data"));
    assert_eq!(
        c.policy_for("alice", "cache").map(|p| p.name.as_str()),
        Some("oncall")
    );
    assert!(c.policy_for("carol", "cache").is_none());
}

#[test]
fn unknown_keys_are_located() {
    let text = good().replace("[server]\n", "[server]\nbogus = 1\n");
    let errs = errors_of(&text);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(errs[0].starts_with("j.toml:3:1:"), "{errs:?}");
    assert!(errs[0].contains("bogus"), "{errs:?}");
}

#[test]
fn every_semantic_error_is_reported_with_its_line() {
    let text = good()
        .replace("max_duration = \"2h\"", "max_duration = \"2 parsecs\"")
        .replace(
            "approvers = [\"group:leads\"]",
            "approvers = [\"group:nobody\", \"zed\"]",
        )
        .replace("name = \"bob\"", "name = \"Bob\"");
    let errs = errors_of(&text);
    let joined = errs.join("\n");
    assert!(joined.contains("invalid duration"), "{joined}");
    assert!(joined.contains("unknown group \"nobody\""), "{joined}");
    assert!(joined.contains("unknown user \"zed\""), "{joined}");
    assert!(joined.contains("invalid user name \"Bob\""), "{joined}");
    // The duration error points at the max_duration line.
    let line = text
        .lines()
        .position(|l| l.starts_with("max_duration"))
        .unwrap()
        + 1;
    assert!(
        joined.contains(&format!("j.toml:{line}:16: policies[0].max_duration")),
        "{joined}"
    );
}

#[test]
fn unsatisfiable_approvals_are_rejected() {
    // carol alone approves; a policy needing 2 approvals can never be met.
    let text = good().replace("approvals_required = 1", "approvals_required = 2");
    let joined = errors_of(&text).join("\n");
    assert!(joined.contains("can never be met"), "{joined}");
}

#[test]
fn a_requester_does_not_count_as_their_own_approver() {
    let text = good().replace("approvers = [\"group:leads\"]", "approvers = [\"alice\"]");
    let joined = errors_of(&text).join("\n");
    assert!(joined.contains("for requester \"alice\""), "{joined}");
}

#[test]
fn clashing_listeners_and_missing_key_files_are_errors() {
    let text = format!(
        "{}\n[metrics]\nlisten = \"127.0.0.1:8080\"\n[listeners.tcp]\nlisten = \"0.0.0.0:8080\"\ntls_cert = \"/nonexistent/c.pem\"\ntls_key = \"/nonexistent/k.pem\"\n",
        good()
    );
    let joined = errors_of(&text).join("\n");
    assert!(
        joined.contains("metrics.listen: listen address 127.0.0.1:8080 clashes with admin.listen"),
        "{joined}"
    );
    assert!(joined.contains("listeners.tcp.listen"), "{joined}");
    assert!(
        joined.contains("cannot read /nonexistent/c.pem"),
        "{joined}"
    );
}

#[test]
fn unknown_targets_and_duplicates_are_errors() {
    let text = good().replace("targets = [\"cache\", \"prod-*\"]", "targets = [\"cahce\"]")
        + "\n[[targets]]\nname = \"cache\"\nkind = \"tcp\"\naddress = \"x:1\"\n";
    let joined = errors_of(&text).join("\n");
    assert!(joined.contains("unknown target \"cahce\""), "{joined}");
    assert!(joined.contains("duplicate target \"cache\""), "{joined}");
}

#[test]
fn ssh_targets_must_pin_a_host_key() {
    let text = good() + "\n[[targets]]\nname = \"web\"\nkind = \"ssh\"\naddress = \"h:22\"\nupstream = { user = \"root\" }\n";
    let joined = errors_of(&text).join("\n");
    assert!(joined.contains("pinned host_key"), "{joined}");
    assert!(
        joined.contains("key_file or upstream.password_env"),
        "{joined}"
    );
}

#[test]
fn notify_entries_get_defaults_and_bad_ones_are_located() {
    let ok = format!(
        "{}\n[[notify]]\nurl = \"http://127.0.0.1:9/hook\"\nevents = [\"request.created\"]\nretry_initial = \"200ms\"\n",
        good()
    );
    let c = parse(&ok, Path::new("j.toml"), Path::new("/tmp")).expect("valid");
    let n = &c.notify[0];
    assert!(n.wants("request.created") && !n.wants("grant.ended"));
    assert_eq!(n.timeout.as_secs(), 5);
    assert_eq!(n.retry_initial.as_millis(), 200);
    assert_eq!(n.retry_max.as_secs(), 600);
    assert_eq!(n.give_up_after.as_secs(), 86400);

    let bad = format!(
        "{}\n[[notify]]\nurl = \"http://user:pw@example.com/x\"\nevents = [\"grant.exploded\"]\nsecret_env = \"JITGATE_TEST_UNSET_SECRET_VAR\"\ntimeout = \"5m\"\n\n[[notify]]\nurl = \"https://hooks.example.com/a\"\nevents = [\"*\"]\nretry_initial = \"1m\"\nretry_max = \"10s\"\n\n[[notify]]\nurl = \"https://hooks.example.com/a\"\nevents = [\"*\"]\n",
        good()
    );
    let joined = errors_of(&bad).join("\n");
    for want in [
        "notify[0].url",
        "carries credentials",
        "unknown event \"grant.exploded\"",
        "JITGATE_TEST_UNSET_SECRET_VAR is not set",
        "timeout 5m is too long",
        "retry_max 10s is shorter than retry_initial 1m",
        "notify[2].url",
        "listed twice",
    ] {
        assert!(joined.contains(want), "missing {want:?} in:\n{joined}");
    }
}

#[test]
fn offline_parse_validates_everything_but_opens_no_file() {
    let text = format!(
        "{}\n[listeners.tcp]\nlisten = \"127.0.0.1:17000\"\ntls_cert = \"/nonexistent/c.pem\"\ntls_key = \"/nonexistent/k.pem\"\n",
        good()
    );
    assert!(errors_of(&text)
        .join("\n")
        .contains("cannot read /nonexistent/c.pem"));
    parse_offline(&text).expect("key files are not opened");
    let bad = text.replace("max_duration = \"2h\"", "max_duration = \"forever\"");
    let e = parse_offline(&bad).expect_err("still validated");
    assert!(e.errors().join("\n").contains("max_duration"), "{e}");
}

const KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl";

#[test]
fn one_ssh_key_under_two_users_is_refused_where_it_repeats() {
    let text = good()
        .replace(
            "name = \"bob\"\n",
            &format!("name = \"bob\"\nssh_keys = [\"{KEY} bob@laptop\"]\n"),
        )
        .replace(
            "name = \"carol\"\n",
            &format!("name = \"carol\"\nssh_keys = [\"{KEY} other-comment\"]\n"),
        );
    let errs = errors_of(&text);
    assert_eq!(errs.len(), 1, "{errs:?}");
    let line = text
        .lines()
        .position(|l| l.contains("other-comment"))
        .unwrap()
        + 1;
    assert!(errs[0].starts_with(&format!("j.toml:{line}:")), "{errs:?}");
    assert!(
        errs[0].contains("users[2].ssh_keys[0]: ssh key is also listed for user \"bob\""),
        "{errs:?}"
    );
    // The same key twice for one user is harmless.
    let text = good().replace(
        "name = \"bob\"\n",
        &format!("name = \"bob\"\nssh_keys = [\"{KEY} a\", \"{KEY} b\"]\n"),
    );
    assert!(errors_of(&text).is_empty());
}

#[test]
fn forwarding_destinations_are_checked_and_only_for_ssh_targets() {
    let text = good().replace(
        "address = \"127.0.0.1:6379\"\n",
        "address = \"127.0.0.1:6379\"\nforwarding = [\"db:5432\"]\n",
    );
    let joined = errors_of(&text).join("\n");
    assert!(
        joined.contains("targets[0].forwarding: forwarding applies to ssh targets only"),
        "{joined}"
    );
    let ssh = format!(
        "\n[[targets]]\nname = \"web\"\nkind = \"ssh\"\naddress = \"127.0.0.1:22\"\nhost_key = \"{KEY}\"\nupstream = {{ user = \"u\", password_env = \"PATH\" }}\nforwarding = [\"db.internal:5432\", \"[::1]:22\", \"nope\", \"db:0\"]\n"
    );
    let errs = errors_of(&format!("{}{ssh}", good()));
    let joined = errs.join("\n");
    assert_eq!(errs.len(), 2, "{joined}");
    assert!(
        joined.contains("targets[1].forwarding[2]: invalid forwarding destination \"nope\""),
        "{joined}"
    );
    assert!(joined.contains("targets[1].forwarding[3]"), "{joined}");
}

#[test]
fn recording_defaults_resolve_under_data_dir_and_bad_words_are_located() {
    let base = Path::new("/srv");
    let c = parse(&(good() + "\n[recording]\n"), Path::new("t.toml"), base).unwrap();
    let r = c.recording.expect("present means on");
    assert_eq!(r.dir, Path::new("/srv/./data/recordings"));
    assert_eq!(r.ssh, SshRecording::Terminal);
    assert!(r.postgres);
    assert_eq!(r.on_failure, OnFailure::Refuse);
    assert_eq!(r.retention, std::time::Duration::from_secs(90 * 86400));
    assert!(parse(&good(), Path::new("t.toml"), base)
        .unwrap()
        .recording
        .is_none());
    let bad = good()
        + "\n[recording]\nssh = \"all\"\npostgres = \"yes\"\non_failure = \"ignore\"\nretention = \"0s\"\n";
    let e = parse(&bad, Path::new("t.toml"), base).unwrap_err().errors();
    for key in [
        "recording.ssh",
        "recording.postgres",
        "recording.on_failure",
        "recording.retention",
    ] {
        assert!(e.iter().any(|l| l.contains(key)), "{key}: {e:?}");
    }
}
