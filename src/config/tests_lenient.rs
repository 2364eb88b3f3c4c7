//! The lenient first pass: every structural error at once, then validation.

use super::model::{self, *};
use super::*;
use serde::de::DeserializeOwned;
use std::path::Path;

fn errors_of(text: &str) -> Vec<String> {
    match parse(text, Path::new("j.toml"), Path::new("/tmp")) {
        Ok(_) => vec![],
        Err(e) => e.errors(),
    }
}

fn line_of(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("{needle:?} not in text"))
        + 1
}

const BASE: &str = r#"
[server]
data_dir = "./data"
colour = "blue"

[[users]]
name = "alice"

[[users]]
name = "carol"

[[targets]]
name = "cache"
kind = "tcp"
address = "127.0.0.1:6379"
adress = "typo"

[[policies]]
name = "p"
requesters = ["alice"]
targets = ["cache"]
approvers = ["carol"]
approvals_required = 1
max_duration = "2 parsecs"
"#;

#[test]
fn unknown_keys_anywhere_and_a_bad_duration_are_all_reported_in_file_order() {
    let errs = errors_of(BASE);
    assert_eq!(errs.len(), 3, "{errs:?}");
    let colour = line_of(BASE, "colour");
    let adress = line_of(BASE, "adress");
    let parsecs = line_of(BASE, "parsecs");
    assert!(
        errs[0].starts_with(&format!(
            "j.toml:{colour}:1: server.colour: unknown key `colour`"
        )),
        "{errs:?}"
    );
    assert!(
        errs[1].starts_with(&format!(
            "j.toml:{adress}:1: targets[0].adress: unknown key"
        )),
        "{errs:?}"
    );
    assert!(
        errs[2].starts_with(&format!("j.toml:{parsecs}:16: policies[0].max_duration:")),
        "{errs:?}"
    );
}

#[test]
fn unknown_keys_in_inline_tables_are_located_at_the_key() {
    let text = BASE.replace("adress = \"typo\"\n", "upstream = { usr = \"x\" }\n");
    let text = text.replace("kind = \"tcp\"", "kind = \"postgres\"");
    let errs = errors_of(&text);
    let line = line_of(&text, "usr");
    let joined = errs.join("\n");
    assert!(
        joined.contains(&format!(
            "j.toml:{line}:14: targets[0].upstream.usr: unknown key `usr`"
        )),
        "{joined}"
    );
    // And validation still ran on the entry without it.
    assert!(
        joined.contains("postgres targets need upstream.user"),
        "{joined}"
    );
}

#[test]
fn a_wrong_type_is_reported_and_the_entry_kept_without_it() {
    let text = BASE.replace("name = \"carol\"\n", "name = \"carol\"\nadmin = \"yes\"\n");
    let errs = errors_of(&text);
    let joined = errs.join("\n");
    let line = line_of(&text, "admin = \"yes\"");
    assert!(
        joined.contains(&format!(
            "j.toml:{line}:9: users[1].admin: invalid type: string \"yes\", expected a boolean"
        )),
        "{joined}"
    );
    // carol is still a user: no "unknown user" error for her as approver.
    assert!(!joined.contains("unknown user"), "{joined}");
    assert_eq!(errs.len(), 4, "{joined}");
}

#[test]
fn a_wrong_required_value_drops_its_entry_with_one_error() {
    let text = BASE.replace("approvals_required = 1", "approvals_required = \"one\"");
    let errs = errors_of(&text);
    let joined = errs.join("\n");
    let line = line_of(&text, "approvals_required");
    assert!(
        joined.contains(&format!(
            "j.toml:{line}:22: policies[0].approvals_required: invalid type"
        )),
        "{joined}"
    );
    assert!(!joined.contains("missing field"), "{joined}");
    // The policy is gone, so its bad duration is not reached: 3 errors.
    assert_eq!(errs.len(), 3, "{joined}");

    let text = BASE.replace("max_duration = \"2 parsecs\"\n", "");
    let joined = errors_of(&text).join("\n");
    assert!(
        joined.contains("policies[0]: missing field `max_duration`"),
        "{joined}"
    );
}

#[test]
fn wrong_shapes_of_whole_sections_are_reported() {
    let text = format!(
        "listeners = 3\nusers = \"alice\"\n{}",
        BASE.replace(
            "[[users]]\nname = \"alice\"\n\n[[users]]\nname = \"carol\"\n",
            ""
        )
    );
    let joined = errors_of(&text).join("\n");
    assert!(
        joined.contains("j.toml:1:13: listeners: invalid type"),
        "{joined}"
    );
    assert!(
        joined.contains("j.toml:2:9: users: expected an array of tables ([[users]]), found string"),
        "{joined}"
    );
    let text = format!("{BASE}\n[listeners.ssh]\nlisten = 22\n");
    let errs = errors_of(&text);
    let joined = errs.join("\n");
    assert!(
        joined.contains("listeners.ssh.listen: invalid type"),
        "{joined}"
    );
    assert!(!joined.contains("missing field"), "{joined}");
}

/// serde's refusal of an unknown key lists the keys the struct takes.
fn serde_keys<T: DeserializeOwned>() -> Vec<String> {
    let mut t = toml::Table::new();
    t.insert("zz_not_a_key".into(), toml::Value::Integer(1));
    let Err(e) = toml::Value::Table(t).try_into::<T>() else {
        panic!("an unknown key was accepted");
    };
    let msg = e.message().to_string();
    let expected = msg
        .split_once("expected")
        .unwrap_or_else(|| panic!("unexpected message {msg:?}"))
        .1;
    let mut keys: Vec<String> = expected
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect();
    keys.sort();
    keys
}

#[test]
fn the_known_key_lists_match_what_serde_accepts() {
    let serde: Vec<(&str, Vec<String>)> = vec![
        ("", serde_keys::<FileConfig>()),
        ("server", serde_keys::<ServerSection>()),
        ("store", serde_keys::<StoreSection>()),
        ("admin", serde_keys::<AdminSection>()),
        ("metrics", serde_keys::<MetricsSection>()),
        ("audit", serde_keys::<AuditSection>()),
        ("recording", serde_keys::<RecordingSection>()),
        ("listeners", serde_keys::<ListenersSection>()),
        ("listeners.ssh", serde_keys::<SshListener>()),
        ("listeners.postgres", serde_keys::<PostgresListener>()),
        ("listeners.tcp", serde_keys::<TcpListener>()),
        ("users", serde_keys::<UserEntry>()),
        ("targets", serde_keys::<TargetEntry>()),
        ("targets.upstream", serde_keys::<UpstreamEntry>()),
        ("policies", serde_keys::<PolicyEntry>()),
        ("notify", serde_keys::<NotifyEntry>()),
        ("auth", serde_keys::<AuthSection>()),
        ("auth.oidc", serde_keys::<OidcEntry>()),
    ];
    assert_eq!(serde.len(), model::SECTIONS.len());
    for (section, want) in serde {
        let (_, keys) = model::SECTIONS
            .iter()
            .find(|(s, _)| *s == section)
            .unwrap_or_else(|| panic!("section {section:?} missing from SECTIONS"));
        let mut have: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
        have.sort();
        assert_eq!(have, want, "section {section:?}");
    }
}

#[test]
fn odd_shapes_are_reported_not_panicked_on() {
    for (text, want) in [
        ("[[server]]\ndata_dir = \"x\"\n", "server: invalid type"),
        ("groups = [1]\n", "groups: invalid type"),
        (
            "[targets]\nname = \"x\"\n",
            "targets: expected an array of tables",
        ),
        ("users = [1, 2]\n", "users[1]: invalid type"),
        ("[groups]\n\"a.b\" = [1]\n", "groups"),
        (
            "server.colour = 1\n",
            "j.toml:1:8: server.colour: unknown key",
        ),
    ] {
        let joined = errors_of(text).join("\n");
        assert!(
            joined.contains(want),
            "{text:?}: want {want:?} in:\n{joined}"
        );
    }
}
