//! SSH user certificates: issued by `POST /v1/ssh/certificate` and
//! accepted by the SSH front end for a user with no `ssh_keys` (alice), run
//! with the real ssh against the real sshd; refused when expired, signed by
//! another CA, naming another principal, or held by a locked user.

use crate::common;

use common::api::assert_api_error;
use common::daemon::*;
use common::sshd::ssh_opts;
use common::sshproxy::*;
use common::tunnel::wait_for;
use common::wait::*;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A fresh ed25519 key pair under `dir`: (private key path, public line).
pub(crate) fn keygen(dir: &Path, name: &str) -> (PathBuf, String) {
    let key = dir.join(name);
    let o = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", name, "-f"])
        .arg(&key)
        .output_within(HANG);
    assert!(o.status.success(), "{:?}", out(&o));
    let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();
    (key, public.trim().to_string())
}

/// Signs `key`'s public half with the CA key file `ca` as ssh-keygen
/// does; the certificate lands in `<key>-cert.pub`.
fn sign(ca: &Path, key: &Path, id: &str, principals: &str, validity: &str) -> PathBuf {
    let o = Command::new("ssh-keygen")
        .args(["-q", "-s"])
        .arg(ca)
        .args(["-I", id, "-n", principals, "-V", validity])
        .arg(key.with_extension("pub"))
        .output_within(HANG);
    assert!(o.status.success(), "{:?}", out(&o));
    cert_path(key)
}

fn cert_path(key: &Path) -> PathBuf {
    let mut s = key.as_os_str().to_owned();
    s.push("-cert.pub");
    PathBuf::from(s)
}

/// `ssh` as the holder of `key` and its certificate `cert`.
pub(crate) fn ssh_cert(
    p: &SshProxy,
    key: &Path,
    cert: &Path,
    target: &str,
    cmd: &str,
) -> (i32, String, String) {
    let o = Command::new("ssh")
        .args(ssh_opts(key))
        .arg("-o")
        .arg(format!("CertificateFile={}", cert.display()))
        .args(["-p", &p.port.to_string()])
        .arg(format!("{target}@127.0.0.1"))
        .arg(cmd)
        .output_within(HANG);
    let (so, se) = out(&o);
    (o.status.code().unwrap_or(-1), so, se)
}

/// The certificate the API issues to `token`'s user for `public`, written
/// beside `key`.
pub(crate) fn api_cert(
    d: &Daemon,
    token: &str,
    key: &Path,
    public: &str,
) -> (PathBuf, serde_json::Value) {
    let body = serde_json::json!({ "public_key": public }).to_string();
    let r = d.post("/v1/ssh/certificate", Some(token), &body).unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    let path = cert_path(key);
    std::fs::write(&path, v["certificate"].as_str().unwrap()).unwrap();
    (path, v)
}

/// What `ssh-keygen -L` reads in the certificate at `cert`.
pub(crate) fn listing(cert: &Path) -> String {
    let o = Command::new("ssh-keygen")
        .arg("-L")
        .arg("-f")
        .arg(cert)
        .output_within(HANG);
    out(&o).0
}

fn ca_file(d: &Daemon) -> PathBuf {
    d.dir.join("data").join("ssh-user-ca-ed25519")
}

#[test]
fn a_certificate_from_the_api_logs_in_a_user_without_ssh_keys() {
    let Some(p) = SshProxy::start() else { return };
    p.d.create_request(ALICE, "auto-host", "5m");
    let (key, public) = keygen(&p.d.dir, "alice_key");

    // The bare key is nobody's.
    let o = p
        .ssh("auto-host", &["echo no"])
        .args(["-i"])
        .arg(&key)
        .output_within(HANG);
    assert_ne!(o.status.code(), Some(0));

    let (cert, v) = api_cert(&p.d, ALICE, &key, &public);
    assert!(v["valid_before"].as_str().unwrap().ends_with('Z'), "{v}");
    let (code, so, se) = ssh_cert(&p, &key, &cert, "auto-host", "echo via-certificate");
    assert_eq!((code, so.as_str()), (0, "via-certificate\n"), "{se}");

    // What ssh-keygen reads in it: alice as key id and only principal.
    let listing = listing(&cert);
    assert!(listing.contains("Key ID: \"alice\""), "{listing}");
    assert!(
        listing.contains("Type: ssh-ed25519-cert-v01@openssh.com user certificate"),
        "{listing}"
    );
    assert!(listing.contains("permit-pty"), "{listing}");
    // It names no IdP sign-in (those carry jitgate-signin@jitgate).
    assert!(!listing.contains("jitgate-signin@"), "{listing}");
    // A static token has no end of its own: 12 hours, from 5 minutes back.
    let valid = listing
        .lines()
        .find_map(|l| l.trim().strip_prefix("Valid: from "))
        .unwrap_or_else(|| panic!("{listing}"));
    let (from, to) = valid.split_once(" to ").unwrap();
    let t = |s: &str| humantime::parse_rfc3339_weak(s.trim()).unwrap();
    let span = t(to).duration_since(t(from)).unwrap();
    assert_eq!(
        span,
        std::time::Duration::from_secs(12 * 3600 + 300),
        "{listing}"
    );
    let principals = listing.split("Principals:").nth(1).unwrap_or("");
    let principals: Vec<&str> = principals
        .lines()
        .skip(1)
        .take_while(|l| !l.contains("Critical Options"))
        .map(str::trim)
        .collect();
    assert_eq!(principals, ["alice"], "{listing}");

    // whoami names the CA that signed it.
    let who = p.d.get("/v1/whoami", Some(ALICE)).unwrap().json();
    let ca_line = who["ssh_user_ca"].as_str().unwrap().to_string();
    assert!(
        listing.contains(&fingerprint(&p.d.dir, &ca_line)),
        "{listing}"
    );

    // The audit names who got which key signed, its serial and end, and
    // the CA.
    let audit: serde_json::Value = serde_json::from_str(&p.audit()).unwrap();
    let events = audit["events"].as_array().unwrap();
    let issued: Vec<_> = events
        .iter()
        .filter(|e| e["action"] == "ssh.certificate_issued")
        .collect();
    assert_eq!(issued.len(), 1, "{audit}");
    let e = issued[0];
    assert_eq!(
        (&e["actor"], &e["subject"]),
        (&"alice".into(), &"alice".into())
    );
    assert_eq!(e["detail"]["key"], fingerprint(&p.d.dir, &public));
    assert_eq!(e["detail"]["serial"], v["serial"]);
    assert_eq!(e["detail"]["valid_before"], v["valid_before"]);
    assert_eq!(e["detail"]["ca"], fingerprint(&p.d.dir, &ca_line));
    assert!(
        listing.contains(&format!("Serial: {}", v["serial"].as_str().unwrap())),
        "{listing}"
    );
    assert!(events
        .iter()
        .any(|e| e["action"] == "session.started" && e["actor"] == "alice"));
}

/// `SHA256:...` of a public key line, as ssh-keygen prints it.
fn fingerprint(dir: &Path, line: &str) -> String {
    let f = dir.join("fp.pub");
    std::fs::write(&f, line).unwrap();
    let o = Command::new("ssh-keygen")
        .arg("-lf")
        .arg(&f)
        .output_within(HANG);
    out(&o)
        .0
        .split_whitespace()
        .nth(1)
        .unwrap_or("?")
        .to_string()
}

#[test]
fn certificates_are_refused_when_expired_foreign_misnamed_or_locked() {
    let Some(p) = SshProxy::start() else { return };
    p.d.create_request(ALICE, "auto-host", "5m");
    let dir = &p.d.dir;
    let ca = ca_file(&p.d);

    // Signed by jitgate's own CA key with ssh-keygen: accepted, so each
    // refusal below is the one thing that differs.
    let (good, _) = keygen(dir, "good");
    let cert = sign(&ca, &good, "alice", "alice", "-5m:+1h");
    let (code, so, se) = ssh_cert(&p, &good, &cert, "auto-host", "echo ok");
    assert_eq!((code, so.as_str()), (0, "ok\n"), "{se}");

    let (expired, _) = keygen(dir, "expired");
    let cert = sign(&ca, &expired, "alice", "alice", "20200101:20200102");
    let (code, so, _) = ssh_cert(&p, &expired, &cert, "auto-host", "echo ok");
    assert_eq!((code, so.as_str()), (255, ""), "an expired certificate");

    let (foreign, _) = keygen(dir, "foreign");
    let (other_ca, _) = keygen(dir, "other_ca");
    let cert = sign(&other_ca, &foreign, "alice", "alice", "-5m:+1h");
    let (code, so, _) = ssh_cert(&p, &foreign, &cert, "auto-host", "echo ok");
    assert_eq!((code, so.as_str()), (255, ""), "another CA's certificate");

    let (misnamed, _) = keygen(dir, "misnamed");
    let cert = sign(&ca, &misnamed, "alice", "bob", "-5m:+1h");
    let (code, so, _) = ssh_cert(&p, &misnamed, &cert, "auto-host", "echo ok");
    assert_eq!(
        (code, so.as_str()),
        (255, ""),
        "a principal that is not the user"
    );

    let (two, _) = keygen(dir, "two");
    let cert = sign(&ca, &two, "alice", "alice,bob", "-5m:+1h");
    let (code, so, _) = ssh_cert(&p, &two, &cert, "auto-host", "echo ok");
    assert_eq!((code, so.as_str()), (255, ""), "two principals");

    // Refused logins are audited off the connection's task: the last one
    // may land a moment after its client has exited.
    let refusals = [
        "certificate not signed by jitgate's user CA",
        "certificate principal is not its user",
    ];
    wait_for("the refused certificate logins audited", || {
        let audit = p.audit();
        refusals.iter().all(|r| audit.contains(r))
    });

    // A locked user: the certificate issued before the lock stops working,
    // and no new one is issued.
    let (locked, public) = keygen(dir, "locked");
    let (cert, _) = api_cert(&p.d, ALICE, &locked, &public);
    let (code, so, se) = ssh_cert(&p, &locked, &cert, "auto-host", "echo ok");
    assert_eq!((code, so.as_str()), (0, "ok\n"), "{se}");
    p.d.lock("alice", "left the company");
    let (code, so, _) = ssh_cert(&p, &locked, &cert, "auto-host", "echo ok");
    assert_eq!(
        (code, so.as_str()),
        (255, ""),
        "a locked user's certificate"
    );
    wait_for("the locked user's refusal audited", || {
        p.audit().contains("user alice is locked")
    });
    let m = p.d.metrics();
    assert!(
        m.contains(r#"jitgate_connections_rejected_total{kind="ssh",reason="locked"} 1"#),
        "{m}"
    );
    let body = serde_json::json!({ "public_key": public }).to_string();
    let r = p.d.post("/v1/ssh/certificate", Some(ALICE), &body).unwrap();
    assert_api_error(&r, 403, "forbidden");
}

#[test]
fn the_api_refuses_keys_it_does_not_sign() {
    let Some(p) = SshProxy::start() else { return };
    let dir = &p.d.dir;
    let post = |body: String| p.d.post("/v1/ssh/certificate", Some(BOB), &body).unwrap();
    for bad in ["", "ssh-ed25519", "not a key at all"] {
        let r = post(serde_json::json!({ "public_key": bad }).to_string());
        assert_api_error(&r, 400, "bad_request");
    }
    assert_api_error(&post("{}".into()), 400, "bad_request");
    // A weak RSA key.
    let weak = dir.join("weak");
    let o = Command::new("ssh-keygen")
        .args(["-q", "-t", "rsa", "-b", "1024", "-N", "", "-f"])
        .arg(&weak)
        .output_within(HANG);
    if o.status.success() {
        let line = std::fs::read_to_string(weak.with_extension("pub")).unwrap();
        let r = post(serde_json::json!({ "public_key": line }).to_string());
        let e = assert_api_error(&r, 400, "bad_request");
        assert!(e.to_string().contains("too weak"), "{e}");
    }
    // A certificate is not a public key.
    let (key, public) = keygen(dir, "k");
    let (cert, _) = api_cert(&p.d, BOB, &key, &public);
    let line = std::fs::read_to_string(cert).unwrap();
    let r = post(serde_json::json!({ "public_key": line }).to_string());
    assert_api_error(&r, 400, "bad_request");
    let r =
        p.d.post(
            "/v1/ssh/certificate",
            None,
            &serde_json::json!({ "public_key": public }).to_string(),
        )
        .unwrap();
    assert_eq!(r.status, 401);
}
