//! Operating the real daemon: config reload (API and SIGHUP) with good and
//! bad files, what a reload does to live sessions and pending requests, and
//! stopping on SIGINT, and the JSON log format.

use crate::common;

use common::daemon::*;
use common::free_port;
use common::tunnel::*;
use std::io::Write;
use std::process::Command;
use std::time::{Duration, Instant};

fn signal(d: &Daemon, sig: &str) {
    let pid = d.child.as_ref().expect("running").id().to_string();
    let st = Command::new("kill").args([sig, &pid]).status().unwrap();
    assert!(st.success(), "kill {sig} {pid}");
}

fn edit_config(d: &Daemon, f: impl FnOnce(String) -> String) {
    let old = std::fs::read_to_string(&d.config).unwrap();
    std::fs::write(&d.config, f(old)).unwrap();
}

fn reloads(d: &Daemon, result: &str) -> f64 {
    let sample = format!("jitgate_config_reloads_total{{result=\"{result}\"}}");
    d.metrics()
        .lines()
        .find_map(|l| l.strip_prefix(&sample)?.trim().parse().ok())
        .unwrap_or(0.0)
}

/// Whether a log line has `what` from a reload SIGHUP asked for (the
/// API's reloads log the same words under the caller's name).
fn logged_by_sighup(d: &Daemon, what: &str) -> bool {
    d.logs()
        .lines()
        .any(|l| l.contains(what) && l.contains("SIGHUP"))
}

fn request_status(d: &Daemon, token: &str, target: &str) -> (u16, serde_json::Value) {
    let body = serde_json::json!({"target": target, "duration": "5m", "reason": "INC-7"});
    let r = d
        .post("/v1/requests", Some(token), &body.to_string())
        .unwrap();
    let v = serde_json::from_str(&r.body).unwrap_or_default();
    (r.status, v)
}

const NEW_TARGET: &str = r#"
[[targets]]
name = "auto-new"
kind = "tcp"
address = "127.0.0.1:6390"
"#;

const NEW_POLICY: &str = r#"
[[targets]]
name = "extra"
kind = "tcp"
address = "127.0.0.1:6391"

[[policies]]
name = "extra"
requesters = ["alice"]
targets = ["extra"]
approvals_required = 0
max_duration = "10m"
"#;

#[test]
fn a_good_edit_takes_effect_through_the_api_and_through_sighup() {
    let d = Daemon::start();
    assert_eq!(request_status(&d, BOB, "auto-new").0, 404);

    edit_config(&d, |c| c + NEW_TARGET);
    let r = d.post("/v1/admin/reload", Some(BOB), "").unwrap();
    assert_eq!(r.status, 403, "only admins reload: {}", r.body);
    let r = d.post("/v1/admin/reload", Some(DAVE), "").unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    assert_eq!(v["reloaded"], true, "{v}");
    assert_eq!(v["sessions_terminated"], 0, "{v}");
    assert_eq!(v["restart_required_for"], serde_json::json!([]), "{v}");
    let (st, req) = request_status(&d, BOB, "auto-new");
    assert_eq!(st, 201, "{req}");
    assert_eq!(req["state"], "approved", "{req}");

    // A new policy by SIGHUP: alice may not request `extra` before, may after.
    assert_eq!(request_status(&d, ALICE, "extra").0, 404);
    edit_config(&d, |c| c + NEW_POLICY);
    signal(&d, "-HUP");
    wait_for("the SIGHUP reload", || reloads(&d, "ok") == 2.0);
    let (st, req) = request_status(&d, ALICE, "extra");
    assert_eq!(st, 201, "{req}");
    assert_eq!(req["policy"], "extra", "{req}");
    assert_eq!(reloads(&d, "error"), 0.0);
    // The API's reload logged the same words: this one names SIGHUP.
    assert!(logged_by_sighup(&d, "config reloaded"), "{}", d.logs());
}

#[test]
fn a_bad_file_keeps_the_running_config_and_reports_every_error() {
    let d = Daemon::start();
    let good = std::fs::read_to_string(&d.config).unwrap();

    // A syntax error.
    edit_config(&d, |c| c + NEW_TARGET + "\n[[targets]\nname = \"x\"\n");
    let r = d.post("/v1/admin/reload", Some(DAVE), "").unwrap();
    assert_eq!(r.status, 400, "{}", r.body);
    let e = &r.json()["error"];
    assert_eq!(e["code"], "invalid_config", "{e}");
    let errors = e["errors"].as_array().expect("errors listed");
    assert_eq!(errors.len(), 1, "{e}");
    assert!(
        errors[0].as_str().unwrap().contains("jitgate.toml:"),
        "located: {e}"
    );
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("running config stays"),
        "{e}"
    );
    assert_eq!(reloads(&d, "error"), 1.0);

    // Three semantic errors at once: every one is reported, with its location.
    std::fs::write(
        &d.config,
        good.clone()
            + NEW_TARGET
            + r#"
[[targets]]
name = "ftp-box"
kind = "ftp"
address = "127.0.0.1:21"

[[policies]]
name = "broken"
requesters = ["group:nobody"]
targets = ["cache"]
approvals_required = 0
max_duration = "forever"
"#,
    )
    .unwrap();
    let r = d.post("/v1/admin/reload", Some(DAVE), "").unwrap();
    assert_eq!(r.status, 400, "{}", r.body);
    let e = &r.json()["error"];
    let errors: Vec<&str> = e["errors"]
        .as_array()
        .expect("errors listed")
        .iter()
        .map(|x| x.as_str().unwrap())
        .collect();
    for want in ["\"ftp\"", "nobody", "\"forever\""] {
        assert!(
            errors.iter().any(|x| x.contains(want)),
            "{want} not reported: {errors:?}"
        );
        assert!(e["message"].as_str().unwrap().contains(want), "{e}");
    }
    assert!(
        errors.iter().all(|x| x.contains("jitgate.toml:")),
        "{errors:?}"
    );
    assert_eq!(reloads(&d, "error"), 2.0);

    // The same bad file by SIGHUP: counted and logged, nothing changes.
    signal(&d, "-HUP");
    wait_for("the rejected SIGHUP reload", || reloads(&d, "error") == 3.0);
    assert!(
        logged_by_sighup(&d, "config reload rejected"),
        "{}",
        d.logs()
    );
    assert_eq!(reloads(&d, "ok"), 0.0);
    assert_eq!(
        request_status(&d, BOB, "auto-new").0,
        404,
        "a rejected file must change nothing"
    );
    let (st, req) = request_status(&d, BOB, "auto-web");
    assert_eq!(st, 201, "the running config still serves: {req}");
}

#[test]
fn removing_a_target_ends_its_live_sessions_with_policy_changed() {
    let t = Tunnel::start();
    let (_g1, echo_secret) = t.grant(BOB, "auto-echo", "5m");
    let (_g2, few_secret) = t.grant(ALICE, "few-echo", "5m");
    let (mut doomed, r) = t.raw("auto-echo", &echo_secret);
    assert_eq!(r.status, OK, "{r:?}");
    let (mut kept, r) = t.raw("few-echo", &few_secret);
    assert_eq!(r.status, OK, "{r:?}");
    echo(&mut doomed, b"before");
    echo(&mut kept, b"before");

    edit_config(&t.d, |c| {
        let block = format!(
            "\n[[targets]]\nname = \"auto-echo\"\nkind = \"tcp\"\naddress = \"127.0.0.1:{}\"\n",
            t.up.echo
        );
        assert!(c.contains(&block), "{c}");
        c.replace(&block, "\n")
    });
    let r = t.d.post("/v1/admin/reload", Some(DAVE), "").unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.json()["sessions_terminated"],
        1,
        "the reload returns after the session is closed"
    );
    assert!(closed_by_peer(&mut doomed), "session on a removed target");
    echo(&mut kept, b"still here");
    assert_eq!(t.live_sessions(), 1);

    let (_, r) = t.raw("auto-echo", &echo_secret);
    assert_eq!(r.status, UNKNOWN_TARGET, "{r:?}");
    assert_eq!(
        t.metric(r#"jitgate_sessions_ended_total{kind="tcp",reason="policy_changed"}"#),
        1.0
    );
    wait_for("the session end in the audit log", || {
        let a = t.d.get("/v1/audit?limit=1000", Some(DAVE)).unwrap().json();
        a["events"].as_array().unwrap().iter().any(|e| {
            e["action"] == "session.ended"
                && e["detail"]["reason"] == "policy_changed"
                && e["detail"]["target"] == "auto-echo"
        })
    });
}

#[test]
fn a_lowered_max_duration_keeps_live_grants_but_blocks_approving_longer_requests() {
    let d = Daemon::start();
    // A live grant of 2h and a pending request of 2h under `oncall` (max 2h).
    let req = d.create_request(BOB, "cache", "2h");
    let r = d
        .post(
            &format!("/v1/requests/{}/approve", req["id"].as_str().unwrap()),
            Some(CAROL),
            "{}",
        )
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    let gid = r.json()["grant"]["id"].as_str().unwrap().to_string();
    let before = d
        .get(&format!("/v1/grants/{gid}"), Some(BOB))
        .unwrap()
        .json();
    let pending = d.create_request(ALICE, "cache", "2h");
    let pending_id = pending["id"].as_str().unwrap();

    edit_config(&d, |c| {
        c.replacen(
            "max_duration = \"2h\"\ndefault_duration = \"30m\"",
            "max_duration = \"1h\"\ndefault_duration = \"30m\"",
            1,
        )
    });
    let r = d.post("/v1/admin/reload", Some(DAVE), "").unwrap();
    assert_eq!(r.status, 200, "{}", r.body);

    let after = d
        .get(&format!("/v1/grants/{gid}"), Some(BOB))
        .unwrap()
        .json();
    assert_eq!(after["state"], "active", "{after}");
    assert_eq!(after["expires_at"], before["expires_at"], "{after}");

    let r = d
        .post(
            &format!("/v1/requests/{pending_id}/approve"),
            Some(CAROL),
            "{}",
        )
        .unwrap();
    assert_eq!(r.status, 409, "{}", r.body);
    let m = r.json()["error"]["message"].as_str().unwrap().to_string();
    assert!(m.contains("now allows at most 1h"), "{m}");
    let (st, v) = request_status(&d, ALICE, "cache");
    assert_eq!(st, 201, "{v}");
}

#[test]
fn a_renamed_policy_keeps_its_limits_for_grants_made_under_the_old_name() {
    let t = Tunnel::start();
    let (_gid, secret) = t.grant(ALICE, "few-echo", "5m");
    let (mut one, r) = t.raw("few-echo", &secret);
    assert_eq!(r.status, OK, "{r:?}");
    edit_config(&t.d, |c| {
        assert!(c.contains("name = \"few\"\n"), "{c}");
        c.replacen("name = \"few\"\n", "name = \"few-renamed\"\n", 1)
    });
    let r = t.d.post("/v1/admin/reload", Some(DAVE), "").unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["sessions_terminated"], 0, "still covered");
    echo(&mut one, b"covered by the renamed policy");
    let (_two, r) = t.raw("few-echo", &secret);
    assert_eq!(r.status, OK, "{r:?}");
    let (_, r) = t.raw("few-echo", &secret);
    assert_eq!(
        r.status, MAX_SESSIONS,
        "max_sessions_per_grant of the covering policy applies: {r:?}"
    );
}

/// A tunnel daemon with `server_keys` in its `[server]` section and extra
/// `serve` arguments.
fn tunnel_with(server_keys: &str, args: &[&str]) -> Tunnel {
    let up = Upstreams::start();
    let port = free_port();
    let mut d = Daemon::configured(None, server_keys, &up.config(port));
    d.args = args.iter().map(|a| a.to_string()).collect();
    d.spawn();
    let fingerprint = d.get("/v1/whoami", Some(BOB)).unwrap().json()["tcp_tls_fingerprint"]
        .as_str()
        .unwrap()
        .to_string();
    Tunnel {
        d,
        port,
        up,
        fingerprint,
    }
}

#[test]
fn sigint_ends_live_sessions_with_shutdown_and_exits_zero_within_the_timeout() {
    const TIMEOUT: Duration = Duration::from_secs(15);
    let mut t = tunnel_with("shutdown_timeout = \"15s\"", &[]);
    let (_gid, secret) = t.grant(BOB, "auto-echo", "5m");
    let (mut s, r) = t.raw("auto-echo", &secret);
    assert_eq!(r.status, OK, "{r:?}");
    echo(&mut s, b"before");

    signal(&t.d, "-INT");
    let sent = Instant::now();
    let mut child = t.d.child.take().unwrap();
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if sent.elapsed() > TIMEOUT {
            let _ = child.kill();
            panic!("still running after shutdown_timeout: {}", t.d.logs());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(0), "{}", t.d.logs());
    assert!(closed_by_peer(&mut s));
    let logs = t.d.logs();
    assert!(
        logs.contains("session ended: proxy shutting down"),
        "{logs}"
    );
    assert!(logs.contains("jitgate stopped"), "{logs}");

    // The end reason was flushed to the store before exit.
    t.d.spawn();
    let a = t.d.get("/v1/audit?limit=1000", Some(DAVE)).unwrap().json();
    assert!(
        a["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| { e["action"] == "session.ended" && e["detail"]["reason"] == "shutdown" }),
        "{a}"
    );
}

#[test]
fn json_logs_are_one_object_per_line_and_a_sessions_lines_name_it() {
    let t = tunnel_with("", &["--log-format", "json"]);
    let (_, r) = t.raw("auto-echo", "jgc_not_a_real_secret");
    assert_eq!(r.status, BAD_SECRET, "{r:?}");
    let (_gid, secret) = t.grant(BOB, "auto-echo", "5m");
    let (mut s, r) = t.raw("auto-echo", &secret);
    assert_eq!(r.status, OK, "{r:?}");
    let sid = r.session_id.clone();
    echo(&mut s, b"logged");
    s.conn.send_close_notify();
    let _ = s.flush();
    drop(s);
    wait_for("the session end to be logged", || {
        t.d.logs().contains("session ended")
    });

    let logs = t.d.logs();
    let lines: Vec<serde_json::Value> = logs
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(lines.len() > 5, "{logs}");
    for l in &lines {
        assert!(l.is_object(), "{l}");
        for key in ["timestamp", "level", "module", "message"] {
            assert!(l[key].is_string(), "{key} missing: {l}");
        }
    }

    let of_session: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|l| l["session_id"] == sid.as_str())
        .collect();
    let said = |m: &str| {
        of_session
            .iter()
            .any(|l| l["message"].as_str().unwrap().starts_with(m))
    };
    assert!(said("session started"), "{of_session:#?}");
    assert!(said("session ended"), "{of_session:#?}");
    for l in &of_session {
        assert_eq!(l["user"], "bob", "{l}");
        assert_eq!(
            l["target"], "auto-echo",
            "the target's name, not a module: {l}"
        );
        assert_eq!(l["kind"], "tcp", "{l}");
        assert!(l["peer"].as_str().unwrap().starts_with("127.0.0.1:"), "{l}");
    }
    let ended = of_session
        .iter()
        .find(|l| l["message"].as_str().unwrap().starts_with("session ended"))
        .unwrap();
    assert_eq!(ended["reason"], "client_closed", "{ended}");
    assert_eq!(ended["bytes_in"], 6, "{ended}");

    // A refused connection is logged in its own span, without a session.
    let refused = lines
        .iter()
        .find(|l| {
            l["message"]
                .as_str()
                .unwrap()
                .contains("connection refused")
        })
        .unwrap_or_else(|| panic!("no refusal logged: {logs}"));
    assert_eq!(refused["kind"], "tcp", "{refused}");
    assert!(refused.get("session_id").is_none(), "{refused}");
}

#[test]
fn a_store_migrated_by_a_newer_release_is_refused_at_start() {
    let mut d = Daemon::start();
    assert!(d.stop().success());
    let url = format!("sqlite://{}", d.dir.join("data/jitgate.db").display());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = jitgate::store::Store::connect(&url, 1).await.unwrap();
        sqlx::query("INSERT INTO schema_migrations (version, name, applied_at) VALUES (9999, 'from_the_future', 0)")
            .execute(store.raw_pool())
            .await
            .unwrap();
        store.close().await;
    });
    d.launch();
    let mut child = d.child.take().unwrap();
    let st = common::wait::wait_status(&mut child, common::wait::HANG);
    assert_eq!(st.code(), Some(1), "{}", d.logs());
    let logs = d.logs();
    assert!(
        logs.contains("schema is at version 9999, but this jitgate knows only up to"),
        "{logs}"
    );
}

/// Runs `jitgate serve` on `config` and waits (bounded) for it to exit.
fn serve_expecting_exit(config: &std::path::Path) -> std::process::Output {
    let child = Command::new(BIN)
        .args(["serve", "--config", &config.display().to_string()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(Duration::from_secs(30)) {
        Ok(out) => out.unwrap(),
        Err(_) => {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            panic!("a second daemon on the same SQLite store kept running");
        }
    }
}

#[test]
fn a_second_daemon_on_the_same_sqlite_store_is_refused_naming_the_first() {
    let d = Daemon::start();
    let first = d.child.as_ref().unwrap().id();
    // The same config with only the ports changed, as an operator copying
    // a unit file would write it.
    let text = std::fs::read_to_string(&d.config)
        .unwrap()
        .replace(
            &format!(":{}\"", d.admin_port),
            &format!(":{}\"", free_port()),
        )
        .replace(
            &format!(":{}\"", d.metrics_port),
            &format!(":{}\"", free_port()),
        );
    let second = d.dir.join("second.toml");
    std::fs::write(&second, text).unwrap();
    let out = serve_expecting_exit(&second);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("pid {first}")) && stderr.contains("exactly one daemon"),
        "the refusal names the holder: {stderr}"
    );
    // The first daemon is untouched and still serves.
    assert_eq!(d.get("/readyz", None).unwrap().status, 200);
}

#[test]
fn the_store_lock_is_released_when_the_daemon_exits() {
    let mut d = Daemon::start();
    let st = d.stop();
    assert!(st.success(), "{st}");
    // Started again on the same data: the lock of the stopped process is gone.
    d.spawn();
    assert_eq!(d.get("/readyz", None).unwrap().status, 200);
}

#[test]
fn a_second_daemon_on_a_hard_link_to_the_sqlite_store_is_refused() {
    let d = Daemon::start();
    let other = d.dir.join("other");
    std::fs::create_dir(&other).unwrap();
    let db = d.dir.join("data").join("jitgate.db");
    let link = other.join("linked.db");
    std::fs::hard_link(&db, &link).unwrap();
    let text = std::fs::read_to_string(&d.config)
        .unwrap()
        .replace(
            &format!(":{}\"", d.admin_port),
            &format!(":{}\"", free_port()),
        )
        .replace(
            &format!(":{}\"", d.metrics_port),
            &format!(":{}\"", free_port()),
        )
        .replace(
            &format!("data_dir = \"{}\"", d.dir.join("data").display()),
            &format!("data_dir = \"{}\"", other.join("data").display()),
        )
        + &format!("\n[store]\nurl = \"sqlite://{}\"\n", link.display());
    let second = d.dir.join("linked.toml");
    std::fs::write(&second, text).unwrap();
    let out = serve_expecting_exit(&second);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("exactly one daemon"), "{stderr}");
    assert_eq!(d.get("/readyz", None).unwrap().status, 200);
}
