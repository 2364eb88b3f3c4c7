//! `jitgate check-config` on a file with several kinds of error: every one
//! is reported with its line, in one run.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_jitgate");

const FILE: &str = r#"[server]
data_dir = "./data"
listen_on = "0.0.0.0:80"

[[users]]
name = "alice"

[[users]]
name = "carol"

[[targets]]
name = "cache"
kind = "tcp"
address = "127.0.0.1:6379"
port = 6379

[[policies]]
name = "oncall"
requesters = ["alice"]
targets = ["cache"]
approvers = ["carol"]
approvals_required = 1
max_duration = "2 fortnights"
"#;

#[test]
fn check_config_reports_unknown_keys_and_bad_values_together_each_with_its_line() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let path = tmp.path().join("j.toml");
    std::fs::write(&path, FILE).expect("write");
    let file = path.display().to_string();
    let out = Command::new(BIN)
        .args(["check-config", "--config", &file])
        .current_dir(tmp.path())
        .output()
        .expect("run jitgate");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(out.stdout.is_empty(), "{stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.is_empty()).collect();
    assert_eq!(lines.len(), 3, "{stderr}");
    for (line, (row, what)) in lines.iter().zip([
        (3, "server.listen_on: unknown key `listen_on`"),
        (15, "targets[0].port: unknown key `port`"),
        (
            23,
            "policies[0].max_duration: invalid duration \"2 fortnights\"",
        ),
    ]) {
        assert!(
            line.starts_with(&format!("{file}:{row}:")) && line.contains(what),
            "want line {row} with {what:?}:\n{stderr}"
        );
    }
}
