//! `jitgate login` through the IdP's form (the loopback flow), the saved
//! sign-in every client command then uses, `whoami`, and `logout`.

use crate::common::daemon::BIN;
use crate::common::idp::Browser;
use crate::common::wait::{wait_output, HANG};
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};

fn client(home: &std::path::Path, args: &[&str]) -> std::process::Output {
    use crate::common::wait::OutputWithin;
    Command::new(BIN)
        .args(args)
        .env_remove("JITGATE_URL")
        .env_remove("JITGATE_TOKEN")
        .env("XDG_CONFIG_HOME", home)
        .output_within(HANG)
}

#[test]
fn cli_login_signs_in_through_the_idp_and_every_command_uses_the_saved_signin() {
    let Some((d, idp)) = crate::start("", &[]) else {
        return;
    };
    let home = tempfile::tempdir().expect("tempdir");
    let mut child = Command::new(BIN)
        .args(["login", "--no-browser", "--url", &d.url()])
        .env_remove("JITGATE_TOKEN")
        .env("XDG_CONFIG_HOME", home.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn login");
    // The URL the person would open, from the CLI's stderr.
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    let errors = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let seen = errors.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.trim_start().starts_with("http") {
                let _ = tx.send(line.trim().to_string());
            }
            if let Ok(mut e) = seen.lock() {
                e.push_str(&line);
                e.push('\n');
            }
        }
    });
    let start = rx
        .recv_timeout(HANG)
        .expect("the CLI printed no sign-in URL");
    assert!(start.contains("/auth/login?cli_port="), "{start}");

    let browser = Browser::new();
    let callback = browser.sign_in_at_idp(&start, &idp, "bob");
    let hop = browser.get(&callback);
    assert_eq!(hop.status, 302, "{hop:?}");
    let loopback = hop.location.expect("loopback redirect");
    assert!(loopback.starts_with("http://127.0.0.1:"), "{loopback}");
    assert!(loopback.contains("/callback?code="), "{loopback}");
    let page = browser.get(&loopback);
    assert_eq!(page.status, 200, "{page:?}");

    let out = wait_output(child, HANG);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {:?} {:?}\n{}",
        out.status,
        errors.lock().map(|e| e.clone()),
        d.logs()
    );
    assert!(stdout.starts_with("signed in as bob until "), "{stdout}");

    // Saved privately: the directory 0700, the file 0600.
    let dir = home.path().join("jitgate");
    let mode =
        |p: &std::path::Path| std::fs::metadata(p).expect("meta").permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join("signin.json")), 0o600);
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("signin.json")).expect("file"))
            .expect("json");
    let token = saved["signins"][0]["token"]
        .as_str()
        .expect("token")
        .to_string();

    // With no URL and no token, the saved sign-in is used.
    let who = client(home.path(), &["whoami"]);
    let text = String::from_utf8_lossy(&who.stdout);
    assert!(
        who.status.success(),
        "{text} {}",
        String::from_utf8_lossy(&who.stderr)
    );
    assert!(text.contains("user: bob\n"), "{text}");
    assert!(text.contains("via: oidc"), "{text}");
    assert!(
        text.contains("idp-only-sre") && text.contains("oncall"),
        "{text}"
    );
    assert!(text.contains("admin: no"), "{text}");
    assert!(!text.contains("until: -"), "{text}");

    // The order of credentials: --url/--token, then JITGATE_URL/JITGATE_TOKEN,
    // then the saved sign-in (for the URL given, if one is).
    let env_wins = {
        use crate::common::wait::OutputWithin;
        Command::new(BIN)
            .args(["whoami"])
            .env("JITGATE_URL", d.url())
            .env("JITGATE_TOKEN", crate::common::daemon::DAVE)
            .env("XDG_CONFIG_HOME", home.path())
            .output_within(HANG)
    };
    assert!(String::from_utf8_lossy(&env_wins.stdout).contains("user: dave (admin)"));
    let flag_wins = client(
        home.path(),
        &[
            "whoami",
            "--url",
            &d.url(),
            "--token",
            crate::common::daemon::CAROL,
        ],
    );
    assert!(String::from_utf8_lossy(&flag_wins.stdout).contains("user: carol\n"));
    let by_url = client(home.path(), &["whoami", "--url", &format!("{}/", d.url())]);
    assert!(String::from_utf8_lossy(&by_url.stdout).contains("user: bob\n"));
    let other_url = client(home.path(), &["whoami", "--url", "http://127.0.0.1:9"]);
    assert_eq!(other_url.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&other_url.stderr).contains("jitgate login"));

    // A group only the IdP defines lets bob request what its policy covers.
    let req = client(
        home.path(),
        &["request", "sre-box", "--for", "5m", "--reason", "INC-1"],
    );
    let text = String::from_utf8_lossy(&req.stdout);
    assert!(
        req.status.success(),
        "{text} {}",
        String::from_utf8_lossy(&req.stderr)
    );
    assert!(text.contains("approved"), "{text}");

    // logout ends it at the server and forgets it here.
    let out = client(home.path(), &["logout"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = d.get("/v1/whoami", Some(&token)).expect("whoami");
    assert_eq!(r.status, 401, "{}", r.body);
    let who = client(home.path(), &["whoami"]);
    assert_eq!(who.status.code(), Some(1));
    // An ended sign-in, given by hand: the hint says to sign in again.
    let ended = client(
        home.path(),
        &["whoami", "--url", &d.url(), "--token", &token],
    );
    assert_eq!(ended.status.code(), Some(1));
    let err = String::from_utf8_lossy(&ended.stderr);
    assert!(
        err.contains("401") && err.contains("jitgate login"),
        "{err}"
    );
}

#[test]
fn cli_login_opens_the_browser_named_by_browser() {
    let Some((d, idp)) = crate::start("", &[]) else {
        return;
    };
    let home = tempfile::tempdir().expect("tempdir");
    // A "browser" that writes down the URL it was asked to open.
    let opened = home.path().join("opened-url");
    let script = home.path().join("browser.sh");
    std::fs::write(
        &script,
        format!("#!/bin/sh\nprintf '%s' \"$1\" > {}\n", opened.display()),
    )
    .expect("script");
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let child = Command::new(BIN)
        .args(["login", "--url", &d.url()])
        .env_remove("JITGATE_TOKEN")
        .env("XDG_CONFIG_HOME", home.path())
        .env("BROWSER", &script)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn login");
    crate::common::tunnel::wait_for("the CLI to open the browser", || {
        std::fs::read_to_string(&opened).is_ok_and(|u| u.contains("cli_challenge="))
    });
    let start = std::fs::read_to_string(&opened).expect("url");
    let browser = Browser::new();
    let callback = browser.sign_in_at_idp(&start, &idp, "carol");
    let loopback = browser.get(&callback).location.expect("loopback");
    assert_eq!(browser.get(&loopback).status, 200);
    let out = wait_output(child, HANG);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.starts_with("signed in as carol until "), "{stdout}");
    // The URL to visit if the browser did not open stands on a line of its
    // own (not after an escaped "\n").
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.lines().any(|l| l.trim() == start) && !stderr.contains("\\n"),
        "{stderr}"
    );
}
