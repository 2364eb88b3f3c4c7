//! `[auth.oidc]`: defaults, refusals, and the groups only the IdP defines.

use super::*;
use std::path::Path;

const BASE: &str = r#"
[server]
data_dir = "./data"

[groups]
leads = ["carol"]

[[users]]
name = "carol"

[[targets]]
name = "cache"
kind = "tcp"
address = "127.0.0.1:6379"

[[policies]]
name = "sre"
requesters = ["group:sre-from-idp"]
targets = ["cache"]
approvers = ["group:leads"]
approvals_required = 1
max_duration = "2h"
"#;

const OIDC: &str = r#"
[auth.oidc]
issuer = "https://sso.example.com/realms/eng"
client_id = "jitgate"
redirect_url = "https://jitgate.example.com:8080/auth/callback"
admin_groups = ["jitgate-admins"]
"#;

fn errors_of(text: &str) -> Vec<String> {
    match parse(text, Path::new("j.toml"), Path::new("/tmp")) {
        Ok(_) => vec![],
        Err(e) => e.errors(),
    }
}

#[test]
fn oidc_defaults_and_idp_groups_in_policies() {
    let c = parse(
        &format!("{BASE}{OIDC}"),
        Path::new("j.toml"),
        Path::new("/tmp"),
    )
    .expect("valid");
    let o = c.oidc.as_ref().expect("oidc");
    assert_eq!(o.username_claim, "preferred_username");
    assert_eq!(o.groups_claim, "groups");
    assert_eq!(o.session_ttl.as_secs(), 12 * 3600);
    // SPEC's CLI flow: straight to the IdP unless asked otherwise.
    assert!(!o.confirm_cli_login);
    // A group only the IdP defines counts with the caller's IdP groups.
    assert!(c.policy_for("dan", "cache").is_none());
    let idp = vec!["sre-from-idp".to_string()];
    assert_eq!(
        c.policy_for_with("dan", &idp, "cache")
            .map(|p| p.name.as_str()),
        Some("sre")
    );
    assert!(c.knows_user("dan") && !c.knows_user("Dan Smith"));
    assert!(c.may_hold("dan", "cache"));
}

#[test]
fn confirm_cli_login_is_a_bool() {
    let text = format!("{BASE}{OIDC}confirm_cli_login = true\n");
    let c = parse(&text, Path::new("j.toml"), Path::new("/tmp")).expect("valid");
    assert!(c.oidc.as_ref().is_some_and(|o| o.confirm_cli_login));
    let text = format!("{BASE}{OIDC}confirm_cli_login = \"yes\"\n");
    let errs = errors_of(&text).join("\n");
    assert!(errs.contains("auth.oidc.confirm_cli_login"), "{errs}");
}

#[test]
fn without_oidc_an_unknown_group_is_still_an_error() {
    let errs = errors_of(BASE);
    assert!(
        errs.iter()
            .any(|e| e.contains("unknown group \"sre-from-idp\"")),
        "{errs:?}"
    );
}

#[test]
fn bad_oidc_values_are_located() {
    let text = format!("{BASE}{OIDC}")
        .replace("https://sso.example.com/realms/eng", "sso.example.com")
        .replace("/auth/callback", "/elsewhere")
        .replace("[\"jitgate-admins\"]", "[\"Jitgate Admins\"]")
        + "session_ttl = \"forever\"\nclient_secret_env = \"JITGATE_TEST_UNSET_SECRET_VAR\"\n";
    let errs = errors_of(&text).join("\n");
    for want in [
        "auth.oidc.issuer",
        "auth.oidc.redirect_url",
        "auth.oidc.admin_groups[0]",
        "auth.oidc.session_ttl",
        "auth.oidc.client_secret_env",
    ] {
        assert!(errs.contains(want), "{want} not in:\n{errs}");
    }
    let text = format!("{BASE}{OIDC}colour = 1\n");
    let errs = errors_of(&text).join("\n");
    assert!(
        errs.contains("unknown key `colour` in [auth.oidc]"),
        "{errs}"
    );
}
