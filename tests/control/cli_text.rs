//! The CLI and the human log format facing hostile text: control characters
//! in reasons, comments and names are printed visibly escaped (never raw to
//! the reader's terminal), a log line cannot be forged through a user name,
//! a reader that stops early ends every command quietly, durations have one
//! strict syntax, and a wrong URL scheme is explained.

use crate::common;

use common::wait::{OutputWithin, HANG};

use common::daemon::*;
use std::io::Read;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Cursor return, line erase, an OSC title with BEL, a C1 CSI and a bidi
/// override, a zero-width space and a line separator: what a requester would
/// use to disguise a request.
const HOSTILE: &str =
    "INC-1\r\x1b[2K\x1b]0;owned\x07db-prod 999d\u{9b}31m\u{202e}evil\u{200b}x\u{2028}";
/// The same, as the CLI must print it.
const ESCAPED: &str =
    "INC-1\\r\\u{1b}[2K\\u{1b}]0;owned\\u{7}db-prod 999d\\u{9b}31m\\u{202e}evil\\u{200b}x\\u{2028}";

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// No byte a terminal would act on (besides the line ends).
fn assert_inert(what: &str, s: &str) {
    let bad: Vec<char> = s
        .chars()
        .filter(|&c| c != '\n' && jitgate::text::is_unsafe(c))
        .collect();
    assert!(bad.is_empty(), "{what} printed raw {bad:?}:\n{s}");
}

#[test]
fn user_text_is_printed_escaped_in_every_listing() {
    let d = Daemon::start();
    let o = d.cli(
        ALICE,
        &["request", "cache", "--for", "10m", "--reason", HOSTILE],
    );
    assert!(o.status.success(), "{:?}", text(&o));
    let rid = String::from_utf8_lossy(&o.stdout)
        .split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .to_string();
    let o = d.cli(CAROL, &["approve", &rid, "--comment", HOSTILE]);
    assert!(o.status.success(), "{:?}", text(&o));
    let o = d.cli(DAVE, &["lock", "erin", "--reason", HOSTILE]);
    assert!(o.status.success(), "{:?}", text(&o));

    for (token, args) in [
        (CAROL, vec!["requests"]),
        (CAROL, vec!["requests", "--state", "approved"]),
        (DAVE, vec!["audit"]),
        (DAVE, vec!["grants"]),
    ] {
        let o = d.cli(token, &args);
        let (out, err) = text(&o);
        assert!(o.status.success(), "{args:?}: {out}{err}");
        assert_inert(&format!("{args:?}"), &out);
        assert_inert(&format!("{args:?} stderr"), &err);
        // Tables show the text escaped; the audit's detail column is JSON
        // (C0 escaped by JSON, C1 and bidi by the CLI).
        let want = match args[0] {
            "requests" => ESCAPED,
            "audit" => {
                "INC-1\\r\\u001b[2K\\u001b]0;owned\\u0007db-prod 999d\\u{9b}31m\\u{202e}evil\\u{200b}x\\u{2028}"
            }
            _ => "",
        };
        assert!(out.contains(want), "{args:?} should show {want:?}:\n{out}");
    }
    // The JSON keeps the exact text, every unsafe character as a JSON
    // escape (serde_json itself leaves C1, bidi and zero-width raw).
    let o = d.cli(CAROL, &["--json", "requests"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(v["requests"][0]["reason"], HOSTILE);
    assert_inert("--json requests", &String::from_utf8_lossy(&o.stdout));

    // In a real terminal too: `script` gives the CLI a pty.
    if which("script") {
        let cmd = format!("{BIN} requests");
        let o = Command::new("script")
            .args(["-qec", &cmd, "/dev/null"])
            .env("JITGATE_URL", d.url())
            .env("JITGATE_TOKEN", CAROL)
            .stdin(Stdio::null())
            .output_within(HANG);
        let (out, err) = text(&o);
        assert!(o.status.success(), "{out}{err}");
        // A pty turns \n into \r\n; every other control must be absent.
        let out = out.replace("\r\n", "\n");
        assert_inert("requests in a pty", &out);
        assert!(out.contains(ESCAPED), "{out}");
    }
}

fn which(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Runs the CLI with stdout a pipe whose reader is already gone.
fn into_closed_pipe(d: &Daemon, args: &[&str]) -> Output {
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    let child = Command::new(BIN)
        .args(args)
        .env("JITGATE_URL", d.url())
        .env("JITGATE_TOKEN", DAVE)
        .stdout(writer)
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    wait_output(child)
}

/// `wait_with_output` with a deadline that catches a hang.
fn wait_output(mut child: std::process::Child) -> Output {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(Some(_)) = child.try_wait() {
            return child.wait_with_output().expect("output");
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the CLI did not exit");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn every_command_ends_quietly_when_its_reader_goes_away() {
    let d = Daemon::start();
    for _ in 0..3 {
        d.create_request(ALICE, "auto-web", "5m");
    }
    for args in [
        vec!["audit"],
        vec!["audit", "--verify"],
        vec!["requests"],
        vec!["grants"],
        vec!["--json", "grants"],
        vec!["sessions"],
        vec!["whoami"],
        vec!["token", "new"],
        vec!["completions", "bash"],
        vec!["man"],
        vec!["--help"],
    ] {
        let o = into_closed_pipe(&d, &args);
        let (_, err) = text(&o);
        assert_eq!(o.status.code(), Some(0), "{args:?}: {err}");
        assert!(
            !err.contains("panicked") && !err.contains("Broken pipe"),
            "{args:?}: {err}"
        );
    }
    // The shell way: enough rows that `head` leaves while the CLI writes.
    for _ in 0..40 {
        d.create_request(ALICE, "auto-web", "5m");
    }
    let cmd = format!("set -o pipefail; {BIN} audit | head -2 >/dev/null");
    let o = Command::new("bash")
        .args(["-c", &cmd])
        .env("JITGATE_URL", d.url())
        .env("JITGATE_TOKEN", DAVE)
        .output_within(HANG);
    let (_, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert!(err.is_empty(), "{err}");
}

#[test]
fn durations_take_only_s_m_h_d_with_a_hint() {
    let d = Daemon::start();
    // CLI: a usage error (exit 2) before anything is sent.
    let o = d.cli(
        ALICE,
        &["request", "cache", "--for", "30M", "--reason", "x"],
    );
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{out}{err}");
    assert!(out.is_empty(), "{out}");
    assert!(err.contains("did you mean 30m?"), "{err}");
    let r = d.get("/v1/requests", Some(CAROL)).unwrap();
    assert_eq!(
        r.json()["requests"].as_array().map(Vec::len),
        Some(0),
        "{}",
        r.body
    );
    // Combinations work.
    let o = d.cli(
        ALICE,
        &[
            "--json", "request", "cache", "--for", "1h30m", "--reason", "x",
        ],
    );
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v["duration_seconds"], 5400, "{out}");

    // API: 400 with the same hint; months and years are not durations.
    for (bad, hint) in [("30M", "did you mean 30m?"), ("1y", "use s, m, h or d")] {
        let body = serde_json::json!({"target": "cache", "duration": bad, "reason": "x"});
        let r = d
            .post("/v1/requests", Some(ALICE), &body.to_string())
            .unwrap();
        assert_eq!(r.status, 400, "{bad}: {}", r.body);
        assert!(r.body.contains(hint), "{bad}: {}", r.body);
    }

    // Config: the error names its line.
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("j.toml");
    let good = std::fs::read_to_string(&d.config).unwrap();
    let bad = good.replacen("max_duration = \"2h\"", "max_duration = \"2H\"", 1);
    assert_ne!(good, bad);
    std::fs::write(&cfg, &bad).unwrap();
    let line = bad
        .lines()
        .position(|l| l.contains("\"2H\""))
        .map(|i| i + 1)
        .unwrap_or(0);
    let o = Command::new(BIN)
        .args(["check-config", "--config", &cfg.display().to_string()])
        .output_within(HANG);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    let at = format!("{}:{line}:", cfg.display());
    assert!(
        err.lines()
            .any(|l| l.starts_with(&at) && l.contains("did you mean 2h?")),
        "want {at} ... did you mean 2h?: {err}"
    );
}

#[test]
fn an_https_url_for_a_plain_http_admin_port_is_explained() {
    let d = Daemon::start();
    let https = d.url().replace("http://", "https://");
    let o = Command::new(BIN)
        .args(["whoami", "--url", &https])
        .env("JITGATE_TOKEN", BOB)
        .output_within(HANG);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}{err}");
    assert!(err.contains("did not answer in TLS"), "{err}");
    assert!(
        err.contains("plain HTTP") && err.contains("http://"),
        "{err}"
    );
    assert!(!err.contains("InvalidContentType"), "{err}");
}

#[test]
fn a_user_name_cannot_forge_a_line_in_the_human_log() {
    let pg_port = common::free_port();
    let extra = format!(
        "\n[listeners.postgres]\nlisten = \"127.0.0.1:{pg_port}\"\nallow_plaintext = true\n"
    );
    let d = Daemon::start_with(None, &extra);
    if !which("psql") {
        common::e2e_skip("psql is not installed");
        return;
    }
    let forged = "2026-12-04T00:00:00.000000Z  INFO grant revoked grant=gr_x by=dave";
    let user = format!("x@nosuch\x1b[31m\n{forged}");
    let child = Command::new("psql")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &pg_port.to_string(),
            "-d",
            "app",
            "-w",
            "-c",
            "select 1",
        ])
        .env("PGUSER", &user)
        // Every failed login runs the whole SCRAM exchange, so psql needs a
        // password to reach the refusal that is logged.
        .env("PGPASSWORD", "not-a-secret")
        .env("PGSSLMODE", "disable")
        .env("PGCONNECT_TIMEOUT", "10")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("psql");
    let o = wait_output(child);
    assert!(!o.status.success(), "{:?}", text(&o));
    // The refusal is logged (wait for it), escaped, on one line.
    let deadline = Instant::now() + Duration::from_secs(20);
    let logs = loop {
        let logs = d.logs();
        if logs.contains("nosuch") || Instant::now() > deadline {
            break logs;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(logs.contains("nosuch\\u{1b}[31m\\n2026-12-04"), "{logs}");
    for line in logs.lines() {
        assert!(
            !line.starts_with("2026-12-04T00:00:00"),
            "forged line: {line:?}\n{logs}"
        );
        assert_inert("the daemon log", line);
    }
    let mut f = std::fs::File::open(&d.log).unwrap();
    let mut raw = Vec::new();
    f.read_to_end(&mut raw).unwrap();
    assert!(!raw.contains(&0x1b), "raw ESC in the log");
}

fn bin(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_remove("JITGATE_URL")
        .env_remove("JITGATE_TOKEN")
        .output_within(HANG)
}

#[test]
fn help_completions_and_man_page_come_from_one_definition() {
    // Daemon-side commands do not list the client options.
    for args in [
        vec!["serve", "--help"],
        vec!["check-config", "--help"],
        vec!["token", "new", "--help"],
    ] {
        let (out, _) = text(&bin(&args));
        assert!(out.contains("Usage"), "{args:?}: {out}");
        for flag in ["--url", "--token", "--json"] {
            assert!(!out.contains(flag), "{args:?} lists {flag}: {out}");
        }
    }
    // Client commands do, with the environment variables; states are listed.
    let (out, _) = text(&bin(&["requests", "--help"]));
    for want in [
        "--url",
        "JITGATE_URL",
        "--token",
        "JITGATE_TOKEN",
        "--json",
        "pending",
    ] {
        assert!(out.contains(want), "requests --help lacks {want}: {out}");
    }
    // A missing --reason does not make --url/--token look required.
    let o = bin(&["lock", "bob"]);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    let usage = err
        .lines()
        .find(|l| l.starts_with("Usage:"))
        .unwrap_or_default();
    assert!(
        usage.contains("--reason") && !usage.contains("--url") && !usage.contains("--token"),
        "{err}"
    );

    // Completions: non-empty, know the commands; bash parses its script.
    for shell in ["bash", "zsh", "fish"] {
        let o = bin(&["completions", shell]);
        let (out, err) = text(&o);
        assert!(o.status.success(), "{shell}: {err}");
        for cmd in ["requests", "approve", "check-config"] {
            assert!(out.contains(cmd), "{shell} completion lacks {cmd}");
        }
    }
    let tmp = tempfile::tempdir().unwrap();
    let script = tmp.path().join("jitgate.bash");
    std::fs::write(&script, bin(&["completions", "bash"]).stdout).unwrap();
    let o = Command::new("bash")
        .args(["-n", &script.display().to_string()])
        .output_within(HANG);
    assert!(o.status.success(), "bash -n: {:?}", text(&o));
    assert_eq!(bin(&["completions", "tcsh"]).status.code(), Some(2));

    // Man pages: roff for jitgate and for each command.
    let (out, _) = text(&bin(&["man"]));
    assert!(
        out.starts_with(".ie") || out.contains(".TH jitgate"),
        "{out}"
    );
    assert!(
        out.contains("requests") && out.contains("check\\-config"),
        "{out}"
    );
    let (out, _) = text(&bin(&["man", "request"]));
    assert!(out.contains(".TH jitgate-request"), "{out}");
    assert!(out.contains("\\-\\-for"), "{out}");
    assert_eq!(bin(&["man", "nope"]).status.code(), Some(2));
}

/// Accepts any host key: the test only wants to offer a user name.
struct AnyHostKey;

impl russh::client::Handler for AnyHostKey {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        _key: &russh::keys::PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        Ok(true)
    }
}

#[test]
fn an_ssh_login_name_reaches_the_audit_bounded_and_is_shown_escaped() {
    if !which("ssh-keygen") {
        common::e2e_skip("ssh-keygen is not installed");
        return;
    }
    let port = common::free_port();
    let d = Daemon::start_with(
        None,
        &format!("\n[listeners.ssh]\nlisten = \"127.0.0.1:{port}\"\n"),
    );
    let key_path = d.dir.join("stranger");
    let st = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&key_path)
        .status()
        .expect("ssh-keygen");
    assert!(st.success());
    // OpenSSH refuses such names; anyone can send them with another client.
    let name = format!("db\x1b]0;owned\x07\r\x1b[2K{}", "A".repeat(5000));
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let accepted = rt.block_on(async {
        let key = russh::keys::load_secret_key(&key_path, None).expect("key");
        let cfg = std::sync::Arc::new(russh::client::Config::default());
        let attempt = async {
            let mut h = russh::client::connect(cfg, ("127.0.0.1", port), AnyHostKey).await?;
            let key = russh::keys::PrivateKeyWithHashAlg::new(std::sync::Arc::new(key), None);
            h.authenticate_publickey(name.clone(), key)
                .await
                .map(|r| r.success())
        };
        tokio::time::timeout(Duration::from_secs(30), attempt)
            .await
            .expect("ssh attempt hung")
    });
    assert!(
        !accepted.expect("ssh exchange"),
        "an unknown key was accepted"
    );

    // The event is stored with the name cut to 128 characters plus a marker.
    let deadline = Instant::now() + Duration::from_secs(20);
    let event = loop {
        let r = d.get("/v1/audit", Some(DAVE)).unwrap();
        let found = r.json()["events"]
            .as_array()
            .and_then(|a| a.iter().find(|e| e["action"] == "auth.failed").cloned());
        if let Some(e) = found {
            break e;
        }
        assert!(
            Instant::now() < deadline,
            "no auth.failed event: {}",
            r.body
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let subject = event["subject"].as_str().unwrap_or_default();
    // The SSH front end bounds and neutralises the name at its source (64
    // characters, controls replaced); the audit's own 128-character bound
    // is the backstop for every other source (unit test in src/audit.rs).
    assert_eq!(
        subject.chars().count(),
        64 + "…".chars().count(),
        "{subject:?}"
    );
    assert!(
        subject.starts_with("db?]0;owned") && subject.ends_with('…'),
        "{subject:?}"
    );
    assert!(!subject.chars().any(char::is_control), "{subject:?}");

    // The audit view shows it inert, and the chain still verifies.
    let o = d.cli(DAVE, &["audit"]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}{err}");
    assert_inert("audit", &out);
    assert!(out.contains("db?]0;owned"), "{out}");
    let o = d.cli(DAVE, &["audit", "--verify"]);
    assert!(o.status.success(), "{:?}", text(&o));
}
