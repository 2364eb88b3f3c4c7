//! The admin API over TLS when `[admin] tls_cert`/`tls_key` are set: the
//! real CLI talks to it over https with `--ca`, and plain HTTP on the same
//! port gets no answer, so tokens never cross the wire in the clear.

use crate::common;

use common::wait::{OutputWithin, HANG};

use common::daemon::*;
use common::tunnel::wait_for;
use std::process::Command;

#[test]
fn tls_files_put_the_admin_api_behind_tls() {
    let mut d = Daemon::configured(None, "", "");
    // A certificate for localhost and 127.0.0.1, made by the daemon's own code.
    let certs = d.dir.join("admin-tls");
    std::fs::create_dir_all(&certs).unwrap();
    jitgate::tls::server_tls(jitgate::tls::Source::Generated {
        data_dir: &certs,
        stem: "admin",
        instance: "test",
        listen: None,
    })
    .unwrap();
    let (cert, key) = (certs.join("admin-cert.pem"), certs.join("admin-key.pem"));
    let listen = format!("listen = \"127.0.0.1:{}\"\n", d.admin_port);
    let config = std::fs::read_to_string(&d.config).unwrap().replacen(
        &listen,
        &format!(
            "{listen}tls_cert = \"{}\"\ntls_key = \"{}\"\n",
            cert.display(),
            key.display()
        ),
        1,
    );
    std::fs::write(&d.config, config).unwrap();
    d.launch();
    let https = format!("https://127.0.0.1:{}", d.admin_port);
    let whoami = || {
        Command::new(BIN)
            .args(["whoami", "--ca", &cert.display().to_string()])
            .env("JITGATE_URL", &https)
            .env("JITGATE_TOKEN", BOB)
            .output_within(HANG)
    };
    wait_for("the CLI to get an answer over https", || {
        whoami().status.success()
    });
    let o = whoami();
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("bob"),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    // The CLI with http:// for this TLS port says what is wrong.
    let o = Command::new(BIN)
        .args(["whoami"])
        .env("JITGATE_URL", d.url())
        .env("JITGATE_TOKEN", BOB)
        .output_within(HANG);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("did not answer in HTTP") && err.contains("https://"),
        "{err}"
    );
    // Plain HTTP to the TLS port: no HTTP response at all.
    // (A reset, or a TLS alert that is no HTTP status line.)
    if let Ok(r) = d.get("/readyz", Some(BOB)) {
        assert_eq!(r.status, 0, "plain HTTP was answered: {}", r.body);
    }
}
