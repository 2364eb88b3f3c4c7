//! The `jitgate` binary as an operator uses it: the client commands against a
//! real daemon (readable output and `--json`), exit codes (0 success, 1
//! runtime or API error with a message on stderr, 2 usage error),
//! `check-config` and `token new`.

use crate::common;

use common::wait::{OutputWithin, HANG};

use common::daemon::*;
use serde_json::Value;
use std::process::{Command, Output};

/// What a CLI run printed, with its exit code.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    fn from(out: Output) -> Run {
        Run {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).to_string(),
        }
    }

    fn ok(self) -> Run {
        assert_eq!(self.code, Some(0), "{self}");
        self
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self}"))
    }

    /// Exit 1, nothing on stdout, one clear `error: ...` message on stderr
    /// that contains every one of `needles`.
    fn api_error(self, needles: &[&str]) -> Run {
        assert_eq!(self.code, Some(1), "{self}");
        assert!(self.stdout.is_empty(), "stdout should be empty: {self}");
        assert!(self.stderr.starts_with("error: "), "{self}");
        for n in needles {
            assert!(
                self.stderr.contains(n),
                "stderr should mention {n:?}: {self}"
            );
        }
        assert!(
            !self.stderr.contains("panicked") && !self.stderr.contains("RUST_BACKTRACE"),
            "{self}"
        );
        self
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {:?}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

fn cli(d: &Daemon, token: &str, args: &[&str]) -> Run {
    Run::from(d.cli(token, args))
}

/// The binary with a clean client environment plus `env`.
fn bare(args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut c = Command::new(BIN);
    c.args(args)
        .env_remove("JITGATE_URL")
        .env_remove("JITGATE_TOKEN")
        .env_remove("JITGATE_CA");
    for (k, v) in env {
        c.env(k, v);
    }
    Run::from(c.output_within(HANG))
}

/// The word after `marker` in `text`.
fn word_after(text: &str, marker: &str) -> String {
    text.split_once(marker)
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no {marker:?} in {text:?}"))
        .trim_end_matches([';', ':', ','])
        .to_string()
}

#[test]
fn request_approve_grants_secret_revoke_with_readable_output() {
    let d = Daemon::start();

    let r = cli(
        &d,
        ALICE,
        &[
            "request",
            "cache",
            "--for",
            "30m",
            "--reason",
            "INC-9 disk full",
        ],
    )
    .ok();
    let rid = word_after(&r.stdout, "request ");
    assert!(rid.starts_with("req_"), "{r}");
    assert!(
        r.stdout.contains("for cache is pending (0 of 1 approvals)"),
        "{r}"
    );

    let r = cli(&d, CAROL, &["requests", "--state", "pending"]).ok();
    let header = r.stdout.lines().next().unwrap_or_default();
    for col in ["ID", "REQUESTER", "TARGET", "DURATION", "STATE", "REASON"] {
        assert!(header.contains(col), "{r}");
    }
    let row = r
        .stdout
        .lines()
        .find(|l| l.starts_with(&rid))
        .unwrap_or_else(|| panic!("{rid} not listed: {r}"));
    for cell in ["alice", "cache", "30m", "pending", "0/1", "INC-9 disk full"] {
        assert!(row.contains(cell), "{cell} missing in {row:?}");
    }

    let r = cli(&d, CAROL, &["approve", &rid, "--comment", "go ahead"]).ok();
    assert!(r.stdout.contains(&format!("request {rid} approved")), "{r}");
    let gid = word_after(&r.stdout, "grant ");
    assert!(gid.starts_with("gr_"), "{r}");
    assert!(r.stdout.contains("for cache active until 20"), "{r}");

    let r = cli(&d, ALICE, &["grants"]).ok();
    let header = r.stdout.lines().next().unwrap_or_default();
    for col in ["ID", "USER", "TARGET", "STATE", "EXPIRES", "REMAINING"] {
        assert!(header.contains(col), "{r}");
    }
    let row = r
        .stdout
        .lines()
        .find(|l| l.starts_with(&gid))
        .unwrap_or_else(|| panic!("{gid} not listed: {r}"));
    assert!(row.contains("alice") && row.contains("active"), "{row}");
    assert!(row.contains("29m") || row.contains("30m"), "{row}");

    let r = cli(&d, ALICE, &["grants", "--state", "revoked"]).ok();
    assert!(!r.stdout.contains(&gid), "{r}");
    assert!(r.stdout.contains("(none)"), "{r}");

    // Only the secret on stdout, so `X=$(jitgate secret G)` works.
    let r = cli(&d, ALICE, &["secret", &gid]).ok();
    let secret = r.stdout.trim_end_matches('\n');
    assert!(
        secret.starts_with("jgc_") && !secret.contains('\n') && !secret.contains(' '),
        "{r}"
    );
    assert!(r.stderr.contains("shown once"), "{r}");
    assert!(!d.logs().contains(secret), "the secret leaked into the log");

    let r = cli(&d, CAROL, &["revoke", &gid, "--reason", "INC-9 closed"]).ok();
    assert_eq!(
        r.stdout.trim(),
        format!("revoked {gid}; 0 live session(s) closed"),
        "{r}"
    );
    let r = cli(&d, ALICE, &["grants", "--state", "revoked"]).ok();
    let row = r
        .stdout
        .lines()
        .find(|l| l.starts_with(&gid))
        .unwrap_or_else(|| panic!("{gid} not listed: {r}"));
    assert!(row.contains("revoked"), "{row}");

    let r = cli(&d, CAROL, &["whoami"]).ok();
    assert!(r.stdout.contains("user: carol"), "{r}");
    let r = cli(&d, DAVE, &["whoami"]).ok();
    assert!(r.stdout.contains("user: dave (admin)"), "{r}");

    let r = cli(&d, DAVE, &["sessions"]).ok();
    assert!(r.stdout.contains("(none)"), "{r}");

    let r = cli(&d, DAVE, &["audit"]).ok();
    let header = r.stdout.lines().next().unwrap_or_default();
    assert!(header.contains("SEQ") && header.contains("ACTION"), "{r}");
    for action in [
        "request.created",
        "request.approved",
        "grant.created",
        "grant.secret_issued",
        "grant.revoked",
    ] {
        assert!(r.stdout.contains(action), "{action} missing: {r}");
    }
    let r = cli(&d, DAVE, &["audit", "--verify"]).ok();
    assert!(r.stdout.contains("audit chain ok"), "{r}");

    // deny, cancel, lock and unlock in words too
    let r = cli(&d, BOB, &["request", "cache", "--reason", "x"]).ok();
    let rid2 = word_after(&r.stdout, "request ");
    let r = cli(&d, ERIN, &["deny", &rid2, "--reason", "not today"]).ok();
    assert!(
        r.stdout.contains(&format!("request {rid2} is denied")),
        "{r}"
    );
    let r = cli(&d, BOB, &["request", "cache", "--reason", "y"]).ok();
    let rid3 = word_after(&r.stdout, "request ");
    let r = cli(&d, BOB, &["cancel", &rid3]).ok();
    assert!(
        r.stdout.contains(&format!("request {rid3} is cancelled")),
        "{r}"
    );
    let r = cli(&d, DAVE, &["lock", "bob", "--reason", "laptop lost"]).ok();
    assert!(r.stdout.contains("locked bob: 0 grant(s) revoked"), "{r}");
    let r = cli(&d, DAVE, &["unlock", "bob"]).ok();
    assert!(r.stdout.contains("unlocked bob"), "{r}");
    let r = cli(&d, DAVE, &["unlock", "bob"]).ok();
    assert!(r.stdout.contains("bob was not locked"), "{r}");
}

#[test]
fn json_flag_prints_the_api_json() {
    let d = Daemon::start();
    let v = cli(
        &d,
        ALICE,
        &[
            "--json", "request", "cache", "--for", "10m", "--reason", "x",
        ],
    )
    .ok()
    .json();
    assert_eq!(v["state"], "pending");
    assert_eq!(v["duration_seconds"], 600);
    let rid = v["id"].as_str().unwrap().to_string();

    // --json is global: it works after the subcommand too.
    let v = cli(&d, CAROL, &["requests", "--json"]).ok().json();
    assert_eq!(v["requests"][0]["id"], rid.as_str(), "{v}");
    assert_eq!(v["requests"][0]["can_decide"], true, "{v}");

    let v = cli(&d, CAROL, &["approve", &rid, "--json"]).ok().json();
    assert_eq!(v["state"], "approved");
    let gid = v["grant"]["id"].as_str().unwrap().to_string();

    let v = cli(&d, ALICE, &["--json", "grants", "--state", "active"])
        .ok()
        .json();
    assert_eq!(v["grants"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v["grants"][0]["id"], gid.as_str());

    let v = cli(&d, ALICE, &["--json", "secret", &gid]).ok().json();
    assert!(v["secret"].as_str().unwrap().starts_with("jgc_"), "{v}");
    assert_eq!(v["grant_id"], gid.as_str());

    let v = cli(&d, DAVE, &["--json", "revoke", &gid, "--reason", "done"])
        .ok()
        .json();
    assert_eq!(v["grant"]["state"], "revoked");
    assert_eq!(v["grant"]["ended_by"], "dave");
    assert_eq!(v["sessions_terminated"], 0);

    let v = cli(&d, DAVE, &["--json", "sessions"]).ok().json();
    assert_eq!(v["sessions"], serde_json::json!([]));
    let v = cli(&d, DAVE, &["--json", "whoami"]).ok().json();
    assert_eq!(v["user"], "dave");
    assert_eq!(v["admin"], true);
    let v = cli(&d, DAVE, &["--json", "audit", "--limit", "2"])
        .ok()
        .json();
    assert_eq!(v["events"].as_array().unwrap().len(), 2, "{v}");
    let v = cli(&d, DAVE, &["--json", "audit", "--verify"]).ok().json();
    assert_eq!(v["ok"], true, "{v}");
}

#[test]
fn api_errors_exit_1_with_a_clear_message() {
    let d = Daemon::start();
    let r = cli(&d, ALICE, &["request", "cache", "--reason", "x"]).ok();
    let rid = word_after(&r.stdout, "request ");
    cli(&d, CAROL, &["approve", &rid]).ok();

    // 409: approving an approved request.
    cli(&d, ERIN, &["approve", &rid]).api_error(&["409", &rid, "approved"]);
    // 403: a requester approving someone else's request; a non-admin locking.
    let r = cli(&d, BOB, &["request", "cache", "--reason", "x"]).ok();
    let rid2 = word_after(&r.stdout, "request ");
    cli(&d, ALICE, &["approve", &rid2]).api_error(&["403"]);
    cli(&d, ALICE, &["lock", "bob", "--reason", "x"]).api_error(&["403", "admin"]);
    // 404: unknown ids.
    cli(&d, CAROL, &["approve", "req_doesnotexist"]).api_error(&["404", "req_doesnotexist"]);
    cli(&d, DAVE, &["revoke", "gr_doesnotexist"]).api_error(&["404", "gr_doesnotexist"]);
    cli(&d, DAVE, &["lock", "nobody", "--reason", "x"]).api_error(&["404", "nobody"]);
    // 400: a duration above the policy's maximum, with the server's explanation.
    cli(
        &d,
        ALICE,
        &["request", "cache", "--for", "99d", "--reason", "x"],
    )
    .api_error(&["400", "maximum"]);
    // --json does not turn errors into success or into JSON on stdout.
    cli(&d, ERIN, &["--json", "approve", &rid]).api_error(&["409"]);
    // 401: a wrong token says which setting to check.
    cli(&d, "jgt_wrong", &["whoami"]).api_error(&["401", "JITGATE_TOKEN"]);
    // No token at all.
    bare(&["whoami"], &[("JITGATE_URL", &d.url())]).api_error(&["JITGATE_TOKEN"]);
}

#[test]
fn a_daemon_that_is_not_running_is_a_clear_error_with_exit_1() {
    let port = common::free_port();
    let url = format!("http://127.0.0.1:{port}");
    for args in [
        vec!["whoami"],
        vec!["requests"],
        vec!["request", "cache", "--reason", "x"],
        vec!["--json", "grants"],
        vec!["audit", "--verify"],
    ] {
        bare(&args, &[("JITGATE_URL", &url), ("JITGATE_TOKEN", ALICE)]).api_error(&[
            "cannot reach jitgate",
            &url,
            "is the daemon running",
        ]);
    }
    // --url on the command line does the same.
    bare(&["--url", &url, "--token", ALICE, "whoami"], &[]).api_error(&["cannot reach jitgate"]);
    // A URL that is not http(s) is a runtime error, not a crash.
    bare(
        &["whoami"],
        &[("JITGATE_URL", "ftp://x"), ("JITGATE_TOKEN", ALICE)],
    )
    .api_error(&["http://"]);
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        vec![],
        vec!["frobnicate"],
        vec!["approve"],
        vec!["deny", "req_x"],
        vec!["request"],
        vec!["revoke"],
        vec!["lock", "bob"],
        vec!["requests", "--limit", "lots"],
        vec!["grants", "--no-such-flag"],
        vec!["check-config"],
        vec!["token"],
        vec!["token", "old"],
    ] {
        let r = bare(&args, &[("JITGATE_TOKEN", ALICE)]);
        assert_eq!(r.code, Some(2), "{args:?}: {r}");
        assert!(r.stdout.is_empty(), "{args:?}: {r}");
        assert!(
            r.stderr.starts_with("error:") || r.stderr.contains("Usage"),
            "{args:?}: {r}"
        );
        assert!(r.stderr.contains("--help"), "{args:?}: {r}");
    }
    // Help and version are not errors.
    let r = bare(&["--help"], &[]).ok();
    assert!(r.stdout.contains("check-config"), "{r}");
    let r = bare(&["--version"], &[]).ok();
    assert!(r.stdout.starts_with("jitgate "), "{r}");
}

#[test]
fn check_config_accepts_the_example_config() {
    let root = env!("CARGO_MANIFEST_DIR");
    let out = Command::new(BIN)
        .args(["check-config", "--config", "config/jitgate.toml"])
        .current_dir(root)
        .output_within(HANG);
    let r = Run::from(out).ok();
    assert!(r.stdout.contains("ok"), "{r}");
}

/// Errors on stderr as `FILE:LINE:COL: message` with numeric LINE and COL.
/// With `strict`, every line must be one; otherwise the first must be, and
/// others may continue a multi-line message (as TOML syntax errors do).
fn located_lines(r: &Run, file: &str, strict: bool) -> Vec<(usize, usize, String)> {
    let lines: Vec<&str> = r.stderr.lines().filter(|l| !l.is_empty()).collect();
    assert!(!lines.is_empty(), "{r}");
    assert!(lines[0].starts_with(&format!("{file}:")), "{r}");
    lines
        .iter()
        .filter(|l| strict || l.starts_with(&format!("{file}:")))
        .map(|l| {
            let rest = l
                .strip_prefix(&format!("{file}:"))
                .unwrap_or_else(|| panic!("not located in {file}: {l:?}"));
            let mut parts = rest.splitn(3, ':');
            let line: usize = parts
                .next()
                .and_then(|x| x.parse().ok())
                .unwrap_or_else(|| panic!("no line number: {l:?}"));
            let col: usize = parts
                .next()
                .and_then(|x| x.parse().ok())
                .unwrap_or_else(|| panic!("no column: {l:?}"));
            let msg = parts.next().unwrap_or_default().trim().to_string();
            assert!(line >= 1 && col >= 1 && !msg.is_empty(), "{l:?}");
            (line, col, msg)
        })
        .collect()
}

#[test]
fn check_config_reports_every_error_with_file_line_and_column() {
    let tmp = tempfile::tempdir().unwrap();
    let bad = tmp.path().join("bad.toml");
    std::fs::write(
        &bad,
        r#"[server]
data_dir = "./data"
request_ttl = "soon"

[[users]]
name = "Alice!"

[[targets]]
name = "db"
kind = "ftp"
address = "10.0.0.1:5432"

[[policies]]
name = "p"
requesters = ["nobody"]
targets = ["db"]
approvals_required = 1
max_duration = "forever"
"#,
    )
    .unwrap();
    let file = bad.display().to_string();
    let r = bare(&["check-config", "--config", &file], &[]);
    assert_eq!(r.code, Some(1), "{r}");
    assert!(r.stdout.is_empty(), "{r}");
    let errors = located_lines(&r, &file, true);
    let lines: Vec<usize> = errors.iter().map(|e| e.0).collect();
    // request_ttl (line 3), the user name (6), the target kind (10) and
    // max_duration (18) are each reported where they are.
    for want in [3, 6, 10, 18] {
        assert!(lines.contains(&want), "no error on line {want}: {r}");
    }

    // A TOML syntax error and an unknown key are located too.
    let syntax = tmp.path().join("syntax.toml");
    std::fs::write(&syntax, "[server]\ndata_dir = \"./data\"\nfoo = = 1\n").unwrap();
    let file = syntax.display().to_string();
    let r = bare(&["check-config", "--config", &file], &[]);
    assert_eq!(r.code, Some(1), "{r}");
    let errors = located_lines(&r, &file, false);
    assert_eq!(errors[0].0, 3, "{r}");

    let unknown = tmp.path().join("unknown.toml");
    std::fs::write(
        &unknown,
        "[server]\ndata_dir = \"./data\"\ndata_dri = \"x\"\n",
    )
    .unwrap();
    let file = unknown.display().to_string();
    let r = bare(&["check-config", "--config", &file], &[]);
    assert_eq!(r.code, Some(1), "{r}");
    let errors = located_lines(&r, &file, false);
    assert_eq!(errors[0].0, 3, "{r}");
    assert!(errors[0].2.contains("data_dri"), "{r}");

    // A missing file is an error with exit 1, not a crash.
    let missing = tmp.path().join("missing.toml").display().to_string();
    let r = bare(&["check-config", "--config", &missing], &[]);
    assert_eq!(r.code, Some(1), "{r}");
    assert!(r.stderr.contains(&missing), "{r}");
}

fn token_new() -> (String, String) {
    let r = bare(&["token", "new"], &[]).ok();
    let token = word_after(&r.stdout, "token:");
    let hash = word_after(&r.stdout, "token_sha256:");
    (token, hash)
}

#[test]
fn token_new_prints_a_token_and_its_sha256() {
    use sha2::{Digest, Sha256};
    let (token, hash) = token_new();
    assert!(token.starts_with("jgt_") && token.len() >= 40, "{token}");
    assert_eq!(hash.len(), 64, "{hash}");
    assert!(
        hash.chars()
            .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)),
        "{hash}"
    );
    assert_eq!(hash, hex::encode(Sha256::digest(token.as_bytes())));
    let (token2, hash2) = token_new();
    assert_ne!(token, token2, "tokens are random");
    assert_ne!(hash, hash2);
}

#[test]
fn a_new_token_authenticates_once_its_hash_is_in_the_config() {
    let (token, hash) = token_new();
    let d = Daemon::start_with(
        None,
        &format!("\n[[users]]\nname = \"frank\"\ntoken_sha256 = \"{hash}\"\n"),
    );
    let r = cli(&d, &token, &["whoami"]).ok();
    assert!(r.stdout.contains("user: frank"), "{r}");
    // The hash itself is not a token.
    cli(&d, &hash, &["whoami"]).api_error(&["401"]);
}
