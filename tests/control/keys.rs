//! The proxy's own key material: what `GET /v1/whoami` hands an engineer's
//! laptop to verify the proxy (checked with real ssh-keyscan and psql),
//! instances sharing configured keys, and generated certificates renewed at
//! start when near their end.

use crate::common;

use common::wait::{OutputWithin, HANG};

use common::daemon::*;
use common::e2e_skip;
use common::free_port;
use common::pgproxy::PgProxy;
use std::path::Path;
use std::process::Command;

fn listeners(ssh: u16, pg: u16, tcp: u16, keys: &str) -> String {
    format!(
        "\n[listeners.ssh]\nlisten = \"127.0.0.1:{ssh}\"\n{}\n[listeners.postgres]\nlisten = \"127.0.0.1:{pg}\"\n{}\n[listeners.tcp]\nlisten = \"127.0.0.1:{tcp}\"\n{}\n",
        key_line(keys, "host_key"),
        key_line(keys, "tls"),
        key_line(keys, "tls"),
    )
}

/// `keys` is a directory holding shared material, or "" for generated.
fn key_line(keys: &str, what: &str) -> String {
    match (keys, what) {
        ("", _) => String::new(),
        (d, "host_key") => {
            format!("host_key = \"{d}/ssh_host_ed25519\"\nuser_ca_key = \"{d}/ssh_user_ca\"")
        }
        (d, _) => format!("tls_cert = \"{d}/cert.pem\"\ntls_key = \"{d}/key.pem\""),
    }
}

fn whoami(d: &Daemon) -> serde_json::Value {
    let r = d.get("/v1/whoami", Some(BOB)).unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()
}

/// `ssh-ed25519 AAAA...` as real OpenSSH sees the listener, or None (with
/// the skip said) when ssh-keyscan is missing.
fn keyscan(port: u16) -> Option<String> {
    let out = match Command::new("ssh-keyscan")
        .args([
            "-T",
            "20",
            "-t",
            "ed25519",
            "-p",
            &port.to_string(),
            "127.0.0.1",
        ])
        .output()
    {
        Ok(o) => o,
        Err(_) => {
            e2e_skip("ssh-keyscan (openssh-client) is not installed");
            return None;
        }
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| !l.starts_with('#') && !l.trim().is_empty())
        .unwrap_or_else(|| panic!("ssh-keyscan saw no key: {out:?}"));
    let fields: Vec<&str> = line.split_whitespace().collect();
    assert!(fields.len() >= 3, "{line}");
    Some(format!("{} {}", fields[1], fields[2]))
}

fn fingerprint_of(cert_pem: &[u8]) -> String {
    let der = rustls_pemfile::certs(&mut &cert_pem[..])
        .next()
        .expect("a certificate")
        .expect("valid PEM");
    jitgate::tls::fingerprint(der.as_ref())
}

/// A self-signed certificate for localhost valid for `days`, PEM cert and key.
fn short_cert(days: i64) -> (String, String) {
    let mut p = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    let now = time::OffsetDateTime::now_utc();
    p.not_before = now - time::Duration::hours(1);
    p.not_after = now + time::Duration::days(days);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = p.self_signed(&key).unwrap();
    (cert.pem(), key.serialize_pem())
}

fn write_0600(path: &Path, data: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, data).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

#[test]
fn whoami_gives_every_address_and_the_host_key_ssh_keyscan_sees() {
    let (ssh, pg, tcp) = (free_port(), free_port(), free_port());
    let d = Daemon::start_with(None, &listeners(ssh, pg, tcp, ""));
    let w = whoami(&d);
    assert_eq!(w["ssh_address"], format!("127.0.0.1:{ssh}"), "{w}");
    assert_eq!(w["postgres_address"], format!("127.0.0.1:{pg}"), "{w}");
    assert_eq!(w["tcp_address"], format!("127.0.0.1:{tcp}"), "{w}");
    let data = d.dir.join("data");
    let tcp_pem = std::fs::read(data.join("tcp-cert.pem")).unwrap();
    let pg_pem = std::fs::read(data.join("postgres-cert.pem")).unwrap();
    assert_eq!(w["tcp_tls_fingerprint"], fingerprint_of(&tcp_pem), "{w}");
    let ca = w["ca_pem"].as_str().expect("ca_pem");
    let pg_ca = w["postgres_ca_pem"].as_str().expect("postgres_ca_pem");
    assert_eq!(fingerprint_of(ca.as_bytes()), fingerprint_of(&tcp_pem));
    assert_eq!(fingerprint_of(pg_ca.as_bytes()), fingerprint_of(&pg_pem));
    assert!(!ca.contains("PRIVATE KEY") && !pg_ca.contains("PRIVATE KEY"));
    // Fields that were there before stay.
    for k in [
        "user",
        "admin",
        "locked",
        "approver_of",
        "instance",
        "version",
    ] {
        assert!(w.get(k).is_some(), "{k} missing: {w}");
    }
    let line = w["ssh_host_key"].as_str().expect("ssh_host_key");
    if let Some(seen) = keyscan(ssh) {
        assert_eq!(line, seen);
    }
}

#[test]
fn psql_verifies_the_proxy_with_the_pem_whoami_gives() {
    let Some(p) = PgProxy::start() else { return };
    let w = whoami(&p.d);
    let pem = w["postgres_ca_pem"].as_str().expect("postgres_ca_pem");
    let ca = p.d.dir.join("from-whoami.pem");
    std::fs::write(&ca, pem).unwrap();
    let (_, secret) = p.grant(BOB, "auto-db", "5m");
    let conninfo = format!(
        "host=localhost port={} user=bob@auto-db dbname={} sslmode=verify-full sslrootcert={}",
        p.port,
        p.db,
        ca.display()
    );
    let out = p
        .psql_command(&conninfo, &secret)
        .args(["-c", "select 'verified'"])
        .output_within(HANG);
    let (stdout, stderr) = common::pgproxy::text(&out);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(stdout.trim(), "verified");
}

#[test]
fn two_instances_on_the_same_key_files_look_the_same_to_clients() {
    let keys = tempfile::tempdir().unwrap();
    let (cert, key) = short_cert(200);
    write_0600(&keys.path().join("cert.pem"), &cert);
    write_0600(&keys.path().join("key.pem"), &key);
    let host_key = keys.path().join("ssh_host_ed25519");
    let st = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "shared", "-f"])
        .arg(&host_key)
        .status();
    if !st.is_ok_and(|s| s.success()) {
        e2e_skip("ssh-keygen (openssh-client) is not installed");
        return;
    }
    let st = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "ca", "-f"])
        .arg(keys.path().join("ssh_user_ca"))
        .status();
    assert!(st.is_ok_and(|s| s.success()));
    let dir = keys.path().display().to_string();
    let ssh = [free_port(), free_port()];
    let one = Daemon::start_with(None, &listeners(ssh[0], free_port(), free_port(), &dir));
    let two = Daemon::start_with(None, &listeners(ssh[1], free_port(), free_port(), &dir));
    let (a, b) = (whoami(&one), whoami(&two));
    for k in [
        "tcp_tls_fingerprint",
        "ca_pem",
        "postgres_ca_pem",
        "ssh_host_key",
        "ssh_user_ca",
    ] {
        assert!(a[k].is_string(), "{k}: {a}");
        assert_eq!(a[k], b[k], "{k}");
    }
    assert_eq!(a["tcp_tls_fingerprint"], fingerprint_of(cert.as_bytes()));
    let public = std::fs::read_to_string(keys.path().join("ssh_host_ed25519.pub")).unwrap();
    let public: Vec<&str> = public.split_whitespace().take(2).collect();
    assert_eq!(a["ssh_host_key"], public.join(" "));
    if let (Some(x), Some(y)) = (keyscan(ssh[0]), keyscan(ssh[1])) {
        assert_eq!(x, y);
        assert_eq!(a["ssh_host_key"], x);
    }
    // Nothing generated: the configured files are the only material.
    let data = one.dir.join("data");
    assert!(!data.join("tcp-cert.pem").exists() && !data.join("ssh-host-ed25519").exists());
    assert!(!data.join("ssh-user-ca-ed25519").exists());
}

#[test]
fn a_generated_certificate_near_its_end_is_replaced_at_start_and_a_fresh_one_kept() {
    let tcp = free_port();
    let mut d = Daemon::configured(
        None,
        "",
        &format!("\n[listeners.tcp]\nlisten = \"127.0.0.1:{tcp}\"\n"),
    );
    let data = d.dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    let (old_cert, old_key) = short_cert(1);
    write_0600(&data.join("tcp-cert.pem"), &old_cert);
    write_0600(&data.join("tcp-key.pem"), &old_key);
    d.spawn();
    let fresh = std::fs::read(data.join("tcp-cert.pem")).unwrap();
    assert_ne!(fingerprint_of(&fresh), fingerprint_of(old_cert.as_bytes()));
    assert_eq!(whoami(&d)["tcp_tls_fingerprint"], fingerprint_of(&fresh));
    // About 397 days, a proper subject.
    let end = jitgate::tls::generate::not_after(&fresh).unwrap();
    let days = jitgate::tls::generate::remaining(end).as_secs() / 86400;
    assert!((395..=397).contains(&days), "{days} days");
    use x509_cert::der::Decode;
    let der = rustls_pemfile::certs(&mut &fresh[..])
        .next()
        .unwrap()
        .unwrap();
    let parsed = x509_cert::Certificate::from_der(der.as_ref()).unwrap();
    assert_eq!(
        parsed.tbs_certificate.subject.to_string(),
        "CN=jitgate test"
    );
    // A certificate with time left survives a restart.
    d.stop();
    d.spawn();
    let again = std::fs::read(data.join("tcp-cert.pem")).unwrap();
    assert_eq!(fingerprint_of(&again), fingerprint_of(&fresh));
}

#[test]
fn a_configured_certificate_near_its_end_is_kept_with_a_warning() {
    let keys = tempfile::tempdir().unwrap();
    let (cert, key) = short_cert(1);
    write_0600(&keys.path().join("cert.pem"), &cert);
    write_0600(&keys.path().join("key.pem"), &key);
    let extra = format!(
        "\n[listeners.tcp]\nlisten = \"127.0.0.1:{}\"\n{}\n",
        free_port(),
        key_line(&keys.path().display().to_string(), "tls")
    );
    let d = Daemon::start_with(None, &extra);
    assert_eq!(
        std::fs::read_to_string(keys.path().join("cert.pem")).unwrap(),
        cert
    );
    assert_eq!(
        whoami(&d)["tcp_tls_fingerprint"],
        fingerprint_of(cert.as_bytes())
    );
    assert!(d.logs().contains("expires soon"), "{}", d.logs());
}
