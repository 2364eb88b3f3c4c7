//! `jitgate psql TARGET [-- PSQL_ARGS...]`: the real `psql` through the
//! proxy under the caller's active grant, with a fresh connect secret and
//! the listener's certificate pinned (`sslmode=verify-full` against
//! `postgres_ca_pem` from whoami, saved as a private sslrootcert).
//!
//! The connection parameters go in libpq's environment, not in argv: the
//! secret must not show in `ps`, and the user's own `-d DB`, `-c SQL` or
//! positional database then combine with them as psql's documentation
//! says. Variables that would send the connection elsewhere or weaken it
//! (PGHOSTADDR, PGSERVICE, PGSSLMODE, ...) are replaced or removed.

use super::api::Api;
use super::client_dir::ServerDir;
use super::format::enc;
use super::grant_for::{active, endpoint, exec, none, user};
use anyhow::anyhow;
use serde_json::json;
use std::process::{Command, ExitCode};

/// libpq variables cleared: each could point the connection elsewhere,
/// override what is set here, or add a client certificate of the user's.
const CLEARED: &[&str] = &[
    "PGHOSTADDR",
    "PGSERVICE",
    "PGSERVICEFILE",
    "PGSSLCERT",
    "PGSSLKEY",
    "PGSSLCRL",
    "PGSSLCRLDIR",
    "PGREQUIRESSL",
    "PGSSLNEGOTIATION",
    "PGTARGETSESSIONATTRS",
    "PGCHANNELBINDING",
];

pub async fn run(api: &Api, target: &str, args: &[String]) -> anyhow::Result<ExitCode> {
    let who = api.get("/v1/whoami").await?;
    let me = user(&who)?;
    let Some(grant) = active(api, &me, target).await? else {
        return none(api, target).await;
    };
    let (host, port) = endpoint(api, &who["postgres_address"], "PostgreSQL")?;
    let ca = who["postgres_ca_pem"]
        .as_str()
        .ok_or_else(|| anyhow!("the server reports no PostgreSQL certificate"))?;
    let dir = ServerDir::for_url(&api.url)?;
    let rootcert = dir.write_private("postgres-ca.pem", ca.as_bytes())?;
    let id = grant["id"].as_str().unwrap_or_default();
    let r = api
        .post(
            &format!("/v1/grants/{}/secret", enc(id)),
            json!({ "rotate": false }),
        )
        .await?;
    let secret = r["secret"]
        .as_str()
        .ok_or_else(|| anyhow!("the server's answer holds no connect secret"))?;
    let mut cmd = Command::new("psql");
    for v in CLEARED {
        cmd.env_remove(v);
    }
    cmd.env("PGHOST", &host)
        .env("PGPORT", port.to_string())
        .env("PGUSER", format!("{me}@{target}"))
        .env("PGSSLMODE", "verify-full")
        .env("PGSSLROOTCERT", &rootcert)
        .env("PGGSSENCMODE", "disable")
        .env("PGPASSWORD", secret)
        .args(args);
    exec(cmd)
}
