//! The README's "Sign-in with your IdP" walk-through, end to end: a user
//! only the IdP knows (no `[[users]]` entry, no `ssh_keys`) signs in with
//! `jitgate login --no-browser` through the IdP's own form, and then, with
//! no JITGATE_TOKEN and no --token (only the saved sign-in), requests with
//! `--wait`, runs `jitgate ssh` against a real sshd with the certificate the
//! login made, and `jitgate psql` against the real PostgreSQL. Then
//! `jitgate logout` and a lock of the user, and what each leaves working.

use crate::common::client_home::ClientHome;
use crate::common::daemon::{Daemon, BIN, DAVE};
use crate::common::idp::{Browser, Idp};
use crate::common::pg::PgCluster;
use crate::common::pgproxy::{PASSWORD_ENV, ROLE_PASSWORD};
use crate::common::sshd::Sshd;
use crate::common::sshproxy::out;
use crate::common::wait::{wait_output, OutputWithin, HANG};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};

/// zoe requests (IdP group idp-prod-oncall), quinn approves (idp-leads);
/// neither has a `[[users]]` entry.
const USERS: &str = r#"{"zoe": {"preferred_username": "zoe", "groups": ["idp-prod-oncall"]},
                        "quinn": {"preferred_username": "quinn", "groups": ["idp-leads"]}}"#;

/// prod-web needs no approver; prod-db one from the IdP group idp-leads and
/// a reason.
const POLICIES: &str = r#"
[[policies]]
name = "prod-ssh"
requesters = ["group:idp-prod-oncall"]
targets = ["prod-web"]
approvals_required = 0
max_duration = "1h"

[[policies]]
name = "prod-sql"
requesters = ["group:idp-prod-oncall"]
targets = ["prod-db"]
approvers = ["group:idp-leads"]
approvals_required = 1
max_duration = "1h"
require_reason = true
"#;

struct Walk {
    d: Daemon,
    idp: Idp,
    _sshd: Sshd,
    cluster: &'static PgCluster,
    ssh_port: u16,
    db: String,
    home: ClientHome,
}

impl Walk {
    fn start() -> Option<Walk> {
        let cluster = PgCluster::shared()?;
        let sshd = Sshd::start()?;
        let (role, db) = ("jit_walk_role".to_string(), "walk_app".to_string());
        cluster.admin_sql(&format!(
            "CREATE ROLE {role} LOGIN PASSWORD '{ROLE_PASSWORD}'"
        ));
        cluster.admin_sql(&format!("CREATE DATABASE {db} OWNER {role}"));
        std::env::set_var(PASSWORD_ENV, ROLE_PASSWORD);
        let (ssh_port, pg_port) = (crate::common::free_port(), crate::common::free_port());
        let mut extra = format!(
            "\n[listeners.ssh]\nlisten = \"127.0.0.1:{ssh_port}\"\n\n[listeners.postgres]\nlisten = \"127.0.0.1:{pg_port}\"\n"
        );
        extra += &sshd.target("prod-web");
        extra += &format!(
            "\n[[targets]]\nname = \"prod-db\"\nkind = \"postgres\"\naddress = \"127.0.0.1:{}\"\nupstream = {{ user = \"{role}\", password_env = \"{PASSWORD_ENV}\", tls = \"disable\" }}\n",
            cluster.port
        );
        extra += POLICIES;
        let (d, idp) = crate::start_with(&extra, "", &[("IDP_USERS", USERS)])?;
        Some(Walk {
            d,
            idp,
            _sshd: sshd,
            cluster,
            ssh_port,
            db,
            home: ClientHome::new(),
        })
    }

    /// `jitgate ARGS` in the client home with no URL and no token in the
    /// environment: only the saved sign-in can say who and where.
    fn jitgate(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.args(args)
            .env_remove("JITGATE_URL")
            .env_remove("JITGATE_TOKEN")
            .env_remove("JITGATE_CA")
            .env("HOME", self.home.dir.path())
            .env("XDG_CONFIG_HOME", self.home.xdg());
        c
    }

    /// `jitgate login --no-browser --url URL`, with the person's browser
    /// played by `Browser` through the IdP's login form as `login`.
    fn login(&self, login: &str) -> Output {
        let mut child = self
            .jitgate(&["login", "--no-browser", "--url", &self.d.url()])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn login");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            let mut all = String::new();
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.trim_start().starts_with("http") {
                    let _ = tx.send(line.trim().to_string());
                }
                all.push_str(&line);
                all.push('\n');
            }
            all
        });
        let start = rx.recv_timeout(HANG).expect("login printed no URL");
        let browser = Browser::new();
        let callback = browser.sign_in_at_idp(&start, &self.idp, login);
        let loopback = browser.get(&callback).location.expect("loopback");
        assert_eq!(browser.get(&loopback).status, 200);
        let mut o = wait_output(child, HANG);
        o.stderr = reader.join().unwrap_or_default().into_bytes();
        o
    }

    fn cert_file(&self) -> std::path::PathBuf {
        self.home.server_dir(&self.d).join("id_ed25519-cert.pub")
    }

    fn audit(&self) -> String {
        self.d.get("/v1/audit?limit=1000", Some(DAVE)).unwrap().body
    }

    /// Plain ssh to prod-web with the saved key and `cert`: what anyone
    /// holding these two files can do without jitgate's CLI.
    fn plain_ssh(&self, cert: &Path) -> Output {
        let dir = self.home.server_dir(&self.d);
        Command::new("ssh")
            .args(["-p", &self.ssh_port.to_string()])
            .args(["-o", "StrictHostKeyChecking=no"])
            .args(["-o", "UserKnownHostsFile=/dev/null"])
            .args(["-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes"])
            .args(["-o", "LogLevel=ERROR", "-o", "ConnectTimeout=20"])
            .arg("-o")
            .arg(format!("IdentityFile={}", dir.join("id_ed25519").display()))
            .arg("-o")
            .arg(format!("CertificateFile={}", cert.display()))
            .args(["prod-web@127.0.0.1", "echo", "by-hand"])
            .output_within(HANG)
    }
}

/// The serial of an OpenSSH certificate file, as `ssh-keygen -L` reads it.
fn serial(cert: &Path) -> String {
    let o = Command::new("ssh-keygen")
        .arg("-L")
        .arg("-f")
        .arg(cert)
        .output_within(HANG);
    out(&o)
        .0
        .lines()
        .find_map(|l| l.trim().strip_prefix("Serial: ").map(str::to_string))
        .unwrap_or_else(|| panic!("no serial in {:?}", out(&o)))
}

#[test]
fn an_idp_user_goes_from_login_to_ssh_and_psql_with_nothing_by_hand() {
    let Some(w) = Walk::start() else { return };

    // Login: one line on stdout, exit 0; the SSH note on stderr only.
    let o = w.login("zoe");
    let (so, se) = out(&o);
    assert!(o.status.success(), "{so} {se}\n{}", w.d.logs());
    assert_eq!(so.lines().count(), 1, "{so}");
    assert!(
        so.starts_with("signed in as zoe until ") && so.trim_end().ends_with('Z'),
        "{so}"
    );
    assert!(
        se.contains("SSH certificate ") && se.contains("(for `jitgate ssh`)"),
        "{se}"
    );
    // The login made the certificate: issued once, to zoe.
    let cert = std::fs::read_to_string(w.cert_file()).expect("login made no certificate");
    let issued = serial(&w.cert_file());
    let audit = w.audit();
    assert_eq!(audit.matches("\"ssh.certificate_issued\"").count(), 1);
    assert!(
        audit.contains(&format!("\"serial\":\"{issued}\"")),
        "{audit}"
    );

    let who = w.jitgate(&["whoami"]).output_within(HANG);
    let text = out(&who).0;
    assert!(
        text.contains("user: zoe\n") && text.contains("via: oidc"),
        "{text}"
    );

    // prod-web: auto-approved; --wait prints the grant at once.
    let o = w
        .jitgate(&[
            "request", "prod-web", "--for", "10m", "--reason", "INC-7", "--wait",
        ])
        .output_within(HANG);
    let (so, se) = out(&o);
    assert!(o.status.success(), "{so} {se}");
    assert!(so.contains("approved") && so.contains("prod-web"), "{so}");

    // jitgate ssh through the proxy to the real sshd, with the login's
    // certificate (not a new one): the proxy admitted that serial.
    let o = w
        .jitgate(&["ssh", "prod-web", "--", "echo", "hello"])
        .output_within(HANG);
    let (so, se) = out(&o);
    assert_eq!(
        (o.status.code(), so.as_str()),
        (Some(0), "hello\n"),
        "{se}\n{}",
        w.d.logs()
    );
    assert_eq!(std::fs::read_to_string(w.cert_file()).unwrap(), cert);
    assert_eq!(w.audit().matches("\"ssh.certificate_issued\"").count(), 1);
    assert!(
        w.d.logs()
            .lines()
            .any(|l| l.contains("ssh session admitted") && l.contains(&format!("serial {issued}"))),
        "{}",
        w.d.logs()
    );

    // prod-db: quinn, signed in through the IdP too, approves meanwhile.
    let waiting = w
        .jitgate(&[
            "request", "prod-db", "--for", "10m", "--reason", "INC-7", "--wait",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn request --wait");
    let quinn = crate::sign_in(&w.d, &w.idp, "quinn");
    let mut pending = String::new();
    crate::common::tunnel::wait_for("zoe's request for prod-db", || {
        let r = w.d.get("/v1/requests?state=pending", Some(&quinn)).unwrap();
        pending = r.json()["requests"][0]["id"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        !pending.is_empty()
    });
    let r =
        w.d.post(
            &format!("/v1/requests/{pending}/approve"),
            Some(&quinn),
            "{}",
        )
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    let o = wait_output(waiting, HANG);
    let (so, se) = out(&o);
    assert!(o.status.success(), "{so} {se}");
    assert!(so.contains("approved") && so.contains("prod-db"), "{so}");
    assert!(se.contains("waiting for approval"), "{se}");

    // jitgate psql through the proxy to the real PostgreSQL.
    let bin = w.cluster.tool("psql");
    let path = format!(
        "{}:{}",
        bin.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let o = w
        .jitgate(&[
            "psql", "prod-db", "--", "-d", &w.db, "-At", "-c", "select 1",
        ])
        .env("PATH", path)
        .output_within(HANG);
    let (so, se) = out(&o);
    assert!(o.status.success(), "{so} {se}\n{}", w.d.logs());
    assert_eq!(so.trim(), "1");

    // logout: the sign-in ends at the server, the saved one and the
    // certificate are gone here, and jitgate ssh says to sign in again.
    // The certificate names its sign-in, as OpenSSH reads it (ssh-keygen
    // prints a vendor extension's value in hex: a string "si_...").
    let o = Command::new("ssh-keygen")
        .arg("-L")
        .arg("-f")
        .arg(w.cert_file())
        .output_within(HANG);
    let listing = out(&o).0;
    assert!(
        listing.contains("jitgate-signin@jitgate UNKNOWN OPTION: 00000013")
            && listing.contains("73695f"),
        "{listing}"
    );
    let kept = w.home.dir.path().join("kept-cert.pub");
    std::fs::copy(w.cert_file(), &kept).unwrap();
    let o = w.jitgate(&["logout"]).output_within(HANG);
    assert!(o.status.success(), "{:?}", out(&o));
    assert!(!w.cert_file().exists(), "logout left the certificate");
    let o = w
        .jitgate(&["ssh", "prod-web", "--", "echo", "never"])
        .output_within(HANG);
    let (so, se) = out(&o);
    assert_eq!((o.status.code(), so.as_str()), (Some(1), ""), "{se}");
    assert!(se.contains("jitgate login"), "{se}");

    // A copy of the certificate taken before the logout is refused too: it
    // names its sign-in (extension jitgate-signin@jitgate), which has ended.
    let o = w.plain_ssh(&kept);
    let (so, se) = out(&o);
    assert_eq!((o.status.code(), so.as_str()), (Some(255), ""), "{se}");
    assert!(se.contains("Permission denied"), "{se}");
    crate::common::tunnel::wait_for("the ended sign-in's refusal in the audit", || {
        let audit = w.audit();
        audit.contains("\"auth.failed\"")
            && audit.contains("that obtained the certificate has ended")
    });
    // A lock of the user refuses it as well (checked first).
    let r =
        w.d.post("/v1/users/zoe/lock", Some(DAVE), r#"{"reason": "left"}"#)
            .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    let o = w.plain_ssh(&kept);
    let (so, se) = out(&o);
    assert_eq!((o.status.code(), so.as_str()), (Some(255), ""), "{se}");
    assert!(se.contains("Permission denied"), "{se}");
    // The SSH front end audits a refusal asynchronously.
    crate::common::tunnel::wait_for("the locked user's refusal in the audit", || {
        let audit = w.audit();
        audit.contains("\"auth.failed\"") && audit.contains("user zoe is locked")
    });
}
