//! `jitgate login` end to end through the CLI login's confirmation page
//! (`confirm_cli_login = true`):
//! clicked in a real headless Chromium, and submitted by tests/idp/browser.sh
//! (the "browser" for hosts without one).

use crate::common::daemon::BIN;
use crate::common::wait::{wait_output, HANG};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

/// `jitgate login --no-browser` and the URL it printed for the person.
fn login_printing_its_url(url: &str, home: &std::path::Path) -> (Child, String) {
    let mut child = Command::new(BIN)
        .args(["login", "--no-browser", "--url", url])
        .env_remove("JITGATE_TOKEN")
        .env("XDG_CONFIG_HOME", home)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn login");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.trim_start().starts_with("http") {
                let _ = tx.send(line.trim().to_string());
            }
        }
    });
    let start = rx
        .recv_timeout(HANG)
        .expect("the CLI printed no sign-in URL");
    (child, start)
}

#[test]
fn a_person_confirms_the_cli_login_in_a_real_browser() {
    let Some((d, _idp)) = crate::start("confirm_cli_login = true", &[]) else {
        return;
    };
    let Some(b) = crate::common::browser::Browser::start(&d.url()) else {
        return;
    };
    let home = tempfile::tempdir().expect("tempdir");
    let (child, start) = login_printing_its_url(&d.url(), home.path());
    let path = start
        .strip_prefix(&d.url())
        .unwrap_or_else(|| panic!("{start}"))
        .to_string();
    b.goto(&path);
    b.wait_js(
        "the confirmation page",
        "return document.querySelector('form[action=\"/auth/login\"] button') !== null",
        vec![],
    );
    assert!(
        b.page_text().contains("command line on this computer"),
        "{}",
        b.page_text()
    );
    // Nothing happened at the IdP yet: the page is still ours.
    assert!(b
        .js("return location.href", vec![])
        .as_str()
        .is_some_and(|u| u.starts_with(&d.url())));
    // The click: the form's answer redirects to the IdP (the page's CSP
    // allows that one origin for the form).
    b.click("form[action=\"/auth/login\"] button");
    b.wait_js(
        "the IdP's login form",
        "return document.querySelector('input[name=login]') !== null",
        vec![],
    );
    b.type_into("input[name=login]", "carol");
    b.type_into("input[name=password]", "any password");
    b.click("button[type=submit]");
    b.wait_js(
        "the CLI's signed-in page",
        "return document.body && document.body.innerText.includes('Signed in')",
        vec![],
    );
    let out = wait_output(child, HANG);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.starts_with("signed in as carol until "), "{stdout}");
}

#[test]
fn the_browser_script_confirms_and_signs_in_for_jitgate_login() {
    let Some((d, _idp)) = crate::start("confirm_cli_login = true", &[]) else {
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
