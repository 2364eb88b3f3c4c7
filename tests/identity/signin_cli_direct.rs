//! By default (`confirm_cli_login` off) the CLI's login URL goes straight to
//! the IdP, as SPEC's loopback flow says: browser scripts that follow
//! redirects to the IdP's login form keep working, and no confirmation page
//! or its cookie is involved.

use crate::common::idp::{Browser, Hop};

const VERIFIER: &str = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFG";

fn challenge() -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(jitgate::secrets::sha256(VERIFIER.as_bytes()))
}

fn cookie_names(hop: &Hop) -> Vec<String> {
    hop.header_values("set-cookie")
        .iter()
        .filter_map(|c| c.split_once('=').map(|(n, _)| n.to_string()))
        .collect()
}

#[test]
fn by_default_the_cli_login_url_redirects_straight_to_the_idp() {
    let Some((d, idp)) = crate::start("", &[]) else {
        return;
    };
    let browser = Browser::new();
    let start_url = format!(
        "{}/auth/login?cli_port=9&cli_challenge={}",
        d.url(),
        challenge()
    );
    let hop = browser.get(&start_url);
    // A redirect to the IdP, not a page: nothing to confirm.
    assert_eq!(hop.status, 302, "{hop:?}");
    let to_idp = hop.location.clone().expect("a Location");
    assert!(to_idp.starts_with(&idp.issuer()), "{to_idp}");
    assert!(Browser::confirm_value(&hop).is_none(), "{}", hop.body);
    let names = cookie_names(&hop);
    assert!(names.iter().any(|n| n == "jitgate_signin"), "{names:?}");
    assert!(
        !names.iter().any(|n| n == "jitgate_cli_confirm"),
        "{names:?}"
    );

    // From there, the IdP's form and back: the callback sends the browser to
    // the CLI's loopback listener with a code the verifier trades.
    let callback = browser.sign_in_at_idp(&to_idp, &idp, "carol");
    let hop = browser.get(&callback);
    assert_eq!(hop.status, 302, "{hop:?}");
    let loopback = hop.location.unwrap_or_default();
    let code = loopback
        .strip_prefix("http://127.0.0.1:9/callback?code=")
        .unwrap_or_else(|| panic!("not the CLI's loopback: {loopback}"));
    let r = d
        .post(
            "/auth/exchange",
            None,
            &serde_json::json!({ "code": code, "cli_verifier": VERIFIER }).to_string(),
        )
        .expect("exchange");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["user"], "carol");
}

#[test]
fn the_browser_script_signs_in_for_jitgate_login_by_default() {
    use crate::common::daemon::BIN;
    use crate::common::wait::{wait_output, HANG};
    use std::process::{Command, Stdio};
    let Some((d, _idp)) = crate::start("", &[]) else {
        return;
    };
    let home = tempfile::tempdir().expect("tempdir");
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/idp/browser.sh");
    let child = Command::new(BIN)
        .args(["login", "--url", &d.url()])
        .env_remove("JITGATE_TOKEN")
        .env("XDG_CONFIG_HOME", home.path())
        .env("BROWSER", &script)
        .env("IDP_LOGIN", "alice")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn login");
    let out = wait_output(child, HANG);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.starts_with("signed in as alice until "), "{stdout}");
}
