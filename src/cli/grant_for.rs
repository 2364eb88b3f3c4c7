//! What `jitgate ssh` and `jitgate psql` share: the caller's active grant for
//! a target (or the exact `jitgate request` command that would get one),
//! and where a listener the daemon reports can be reached from here.

use super::api::Api;
use super::format::{enc, esc, note};
use anyhow::{anyhow, bail};
use serde_json::Value;
use std::net::SocketAddr;
use std::process::ExitCode;

/// The caller's user name, from `whoami`.
pub fn user(who: &Value) -> anyhow::Result<String> {
    who["user"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| anyhow!("the server's whoami names no user"))
}

/// `user`'s active grant for `target` that ends last, if any. The query
/// names the user: an approver or admin sees others' grants too.
pub async fn active(api: &Api, user: &str, target: &str) -> anyhow::Result<Option<Value>> {
    let r = api
        .get(&format!(
            "/v1/grants?state=active&user={}&target={}",
            enc(user),
            enc(target)
        ))
        .await?;
    let mine = r["grants"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|g| g["user"] == user && g["target"] == target && g["state"] == "active")
        .filter(|g| g["id"].is_string())
        .max_by_key(|g| g["remaining_seconds"].as_i64().unwrap_or(0));
    Ok(mine.cloned())
}

/// Says there is no grant, with the exact request command when the
/// caller may ask for one (`GET /v1/targets`: the policy's default
/// duration, and `--reason` when it requires one); exit status 1.
pub async fn none(api: &Api, target: &str) -> anyhow::Result<ExitCode> {
    let targets = api.get("/v1/targets").await?;
    let listed = targets["targets"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|t| t["name"] == target);
    match listed {
        Some(t) => {
            note(&format!("jitgate: you have no active grant for {}; request one with:", esc(target)));
            note(&format!("  {}", request_command(target, t)));
        }
        None => note(&format!(
            "jitgate: you have no active grant for {}, and no policy lets you request it (check the target's name)",
            esc(target)
        )),
    }
    Ok(ExitCode::from(1))
}

/// `jitgate request TARGET --for DEFAULT [--reason "..."]`.
pub fn request_command(target: &str, t: &Value) -> String {
    // humantime writes "1h 30m"; the CLI takes "1h30m".
    let default: String = t["default_duration"]
        .as_str()
        .unwrap_or("30m")
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    let mut cmd = format!("jitgate request {} --for {}", esc(target), esc(&default));
    if t["require_reason"] == true {
        cmd.push_str(" --reason \"...\"");
    }
    cmd
}

/// Host and port of a listener the daemon reports as bound to `address`
/// (`whoami`'s `ssh_address`, `postgres_address`). A wildcard bind says
/// nothing about how to reach it, so the admin URL's host stands in.
pub fn endpoint(api: &Api, address: &Value, what: &str) -> anyhow::Result<(String, u16)> {
    let Some(a) = address.as_str() else {
        bail!("this jitgate has no {what} listener");
    };
    let a: SocketAddr = a
        .parse()
        .map_err(|_| anyhow!("the server reports its {what} address as {:?}", esc(a)))?;
    let host = if a.ip().is_unspecified() {
        api.host().to_string()
    } else {
        a.ip().to_string()
    };
    Ok((host, a.port()))
}

/// Runs `cmd` in place of this process (its exit status is the command's);
/// returns only when it cannot be started.
pub fn exec(mut cmd: std::process::Command) -> anyhow::Result<ExitCode> {
    use std::os::unix::process::CommandExt;
    let program = cmd.get_program().to_string_lossy().into_owned();
    let e = cmd.exec();
    bail!("cannot run {program}: {e}")
}
