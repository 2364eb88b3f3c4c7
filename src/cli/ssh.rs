//! `jitgate ssh TARGET [-- SSH_ARGS...]`: the real `ssh` through the proxy
//! under the caller's active grant, with this server's key pair and
//! certificate (`ssh_identity`) and the proxy's host key pinned in a
//! private known_hosts (StrictHostKeyChecking=yes): the engineer types no
//! port, key, certificate or fingerprint, and never trusts on first use.

use super::api::Api;
use super::client_dir::ServerDir;
use super::grant_for::{active, endpoint, exec, none, user};
use super::ssh_identity;
use anyhow::anyhow;
use std::path::Path;
use std::process::{Command, ExitCode};

pub async fn run(api: &Api, target: &str, args: &[String]) -> anyhow::Result<ExitCode> {
    let who = api.get("/v1/whoami").await?;
    let me = user(&who)?;
    if active(api, &me, target).await?.is_none() {
        return none(api, target).await;
    }
    let (host, port) = endpoint(api, &who["ssh_address"], "SSH")?;
    let host_key = who["ssh_host_key"]
        .as_str()
        .ok_or_else(|| anyhow!("the server reports no SSH host key"))?;
    let ca = who["ssh_user_ca"]
        .as_str()
        .ok_or_else(|| anyhow!("the server reports no SSH user CA"))?;
    let dir = ServerDir::for_url(&api.url)?;
    let id = ssh_identity::ensure_in(api, &dir, ca).await?;
    let known = dir.write_private(
        "known_hosts",
        format!("{} {}\n", known_host(&host, port), host_key.trim()).as_bytes(),
    )?;
    let mut cmd = Command::new("ssh");
    cmd.args(["-p", &port.to_string()])
        .args(["-o", "StrictHostKeyChecking=yes"])
        .arg("-o")
        .arg(format!("UserKnownHostsFile={}", ssh_path(&known)))
        .args(["-o", "GlobalKnownHostsFile=/dev/null"])
        .args(["-o", "IdentitiesOnly=yes"])
        .arg("-o")
        .arg(format!("IdentityFile={}", ssh_path(&id.key)))
        .arg("-o")
        .arg(format!("CertificateFile={}", ssh_path(&id.certificate)))
        .arg(format!("{target}@{host}"))
        .args(args);
    exec(cmd)
}

/// The host as known_hosts names it: `[HOST]:PORT` off port 22.
pub fn known_host(host: &str, port: u16) -> String {
    if port == 22 {
        host.to_string()
    } else {
        format!("[{host}]:{port}")
    }
}

/// A path as an ssh option value: quoted (a space would split it) with
/// ssh's `%` tokens escaped.
fn ssh_path(p: &Path) -> String {
    let s = p
        .display()
        .to_string()
        .replace('%', "%%")
        .replace('"', "\\\"");
    format!("\"{s}\"")
}
