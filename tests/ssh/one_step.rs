//! `jitgate ssh TARGET -- ARGS`: the real ssh through the proxy to the real
//! sshd, with a key pair and certificate the CLI makes and renews under a
//! private config directory, and the proxy's host key pinned; without a
//! grant, the exact `jitgate request` command instead.

use crate::common;

use common::client_home::ClientHome;
use common::daemon::*;
use common::sshproxy::*;
use common::wait::*;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

fn issued(p: &SshProxy) -> usize {
    p.audit().matches("\"ssh.certificate_issued\"").count()
}

#[test]
fn jitgate_ssh_runs_a_command_with_its_own_certificate_and_pinned_host_key() {
    let Some(p) = SshProxy::start() else { return };
    p.d.create_request(ALICE, "auto-host", "5m");
    let home = ClientHome::new();
    let o = home
        .cli(
            &p.d,
            ALICE,
            &[
                "ssh",
                "auto-host",
                "--",
                "echo one-step; echo err >&2; exit 3",
            ],
        )
        .output_within(HANG);
    let (so, se) = out(&o);
    assert_eq!(
        (o.status.code(), so.as_str()),
        (Some(3), "one-step\n"),
        "{se}"
    );
    assert!(se.contains("err"), "{se}");

    let dir = home.server_dir(&p.d);
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&home.xdg().join("jitgate")), 0o700);
    for f in ["id_ed25519", "id_ed25519-cert.pub", "known_hosts"] {
        assert_eq!(mode(&dir.join(f)), 0o600, "{f}");
    }
    let known = std::fs::read_to_string(dir.join("known_hosts")).unwrap();
    assert_eq!(
        known,
        format!("[127.0.0.1]:{} {}\n", p.port, whoami_host_key(&p))
    );
    assert_eq!(issued(&p), 1);

    // A second run reuses the certificate.
    let cert = std::fs::read_to_string(dir.join("id_ed25519-cert.pub")).unwrap();
    let o = home
        .cli(&p.d, ALICE, &["ssh", "auto-host", "--", "echo again"])
        .output_within(HANG);
    assert_eq!(out(&o).0, "again\n", "{:?}", out(&o));
    assert_eq!(issued(&p), 1);
    assert_eq!(
        std::fs::read_to_string(dir.join("id_ed25519-cert.pub")).unwrap(),
        cert
    );

    // One ending within minutes is renewed before ssh runs.
    let ca = p.d.dir.join("data").join("ssh-user-ca-ed25519");
    let o = Command::new("ssh-keygen")
        .args(["-q", "-s"])
        .arg(&ca)
        .args(["-I", "alice", "-n", "alice", "-V", "-5m:+2m"])
        .arg(dir.join("id_ed25519.pub"))
        .output_within(HANG);
    assert!(o.status.success(), "{:?}", out(&o));
    let short = std::fs::read_to_string(dir.join("id_ed25519-cert.pub")).unwrap();
    assert_ne!(short, cert);
    let o = home
        .cli(&p.d, ALICE, &["ssh", "auto-host", "--", "echo renewed"])
        .output_within(HANG);
    assert_eq!(out(&o).0, "renewed\n", "{:?}", out(&o));
    assert_eq!(issued(&p), 2);
    assert_ne!(
        std::fs::read_to_string(dir.join("id_ed25519-cert.pub")).unwrap(),
        short
    );
}

fn whoami_host_key(p: &SshProxy) -> String {
    let who = p.d.get("/v1/whoami", Some(ALICE)).unwrap().json();
    who["ssh_host_key"].as_str().unwrap().to_string()
}

#[test]
fn without_a_grant_jitgate_ssh_prints_the_exact_request_command() {
    let Some(p) = SshProxy::start() else { return };
    let home = ClientHome::new();
    // auto-host's policy needs no reason.
    let o = home
        .cli(&p.d, ALICE, &["ssh", "auto-host", "--", "echo never"])
        .output_within(HANG);
    let (so, se) = out(&o);
    assert_eq!(o.status.code(), Some(1), "{se}");
    assert_eq!(so, "");
    let targets = p.d.get("/v1/targets", Some(ALICE)).unwrap().json();
    let default = targets["targets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "auto-host")
        .unwrap()["default_duration"]
        .as_str()
        .unwrap()
        .replace(' ', "");
    assert!(
        se.contains("no active grant for auto-host")
            && se
                .lines()
                .any(|l| l.trim() == format!("jitgate request auto-host --for {default}")),
        "{se}"
    );
    // The oncall policy of `cache` requires a reason and defaults to 30m.
    let o = home.cli(&p.d, ALICE, &["ssh", "cache"]).output_within(HANG);
    let se = out(&o).1;
    assert_eq!(o.status.code(), Some(1), "{se}");
    assert!(
        se.lines()
            .any(|l| l.trim() == "jitgate request cache --for 30m --reason \"...\""),
        "{se}"
    );
    // Nothing to request: said so.
    let o = home
        .cli(&p.d, ERIN, &["ssh", "auto-host"])
        .output_within(HANG);
    let se = out(&o).1;
    assert_eq!(o.status.code(), Some(1), "{se}");
    assert!(se.contains("no policy lets you request it"), "{se}");
    // bob's grant is not dave's, though dave (an admin) sees it.
    p.d.create_request(BOB, "auto-host", "5m");
    let o = home
        .cli(&p.d, DAVE, &["ssh", "auto-host", "--", "echo never"])
        .output_within(HANG);
    let se = out(&o).1;
    assert_eq!(o.status.code(), Some(1), "{se}");
    assert!(se.contains("no active grant for auto-host"), "{se}");
}

/// An ssh that swaps the pinned host key for another just before running
/// the real ssh: what a proxy presenting another key looks like to the
/// client. The one-step client must then refuse the host.
#[test]
fn jitgate_ssh_refuses_a_host_key_other_than_the_pinned_one() {
    let Some(p) = SshProxy::start() else { return };
    p.d.create_request(ALICE, "auto-host", "5m");
    let home = ClientHome::new();
    let real = Command::new("sh")
        .args(["-c", "command -v ssh"])
        .output_within(HANG);
    let real = out(&real).0.trim().to_string();
    let bin = home.dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let wrapper = bin.join("ssh");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nfor a in \"$@\"; do case \"$a\" in UserKnownHostsFile=*) f=${{a#UserKnownHostsFile=}}; f=${{f#\\\"}}; f=${{f%\\\"}};; esac; done\n\
             echo '[127.0.0.1]:{} ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl' > \"$f\"\n\
             exec {real} \"$@\"\n",
            p.port
        ),
    )
    .unwrap();
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let o = home
        .cli(&p.d, ALICE, &["ssh", "auto-host", "--", "echo never"])
        .env("PATH", path)
        .output_within(HANG);
    let (so, se) = out(&o);
    assert_eq!((o.status.code(), so.as_str()), (Some(255), ""), "{se}");
    assert!(se.contains("Host key verification failed"), "{se}");
}
