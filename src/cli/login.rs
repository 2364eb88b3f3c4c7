//! `jitgate login`, `jitgate logout`: the loopback sign-in of SPEC. The CLI
//! listens on 127.0.0.1:0, sends the browser to the server's /auth/login
//! with its port and a PKCE-style challenge, waits for the browser to come
//! back to /callback with a one-time code, and trades the code with the
//! matching verifier, so a process that sees only the redirect cannot use it.

use super::api::Api;
use super::format::{note, out};
use super::signin_store::{self, SavedSignin};
use super::ApiArgs;
use anyhow::{anyhow, bail, Context};
use base64::Engine;
use rand::RngCore;
use serde_json::json;
use std::process::ExitCode;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// How long the person has to finish signing in at the IdP.
pub const LOGIN_DEADLINE: Duration = Duration::from_secs(300);
/// A browser's request head is far smaller than this.
const MAX_HEAD: usize = 16 * 1024;

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

pub async fn login(args: &ApiArgs, no_browser: bool) -> anyhow::Result<ExitCode> {
    let url = args.url.trim_end_matches('/').to_string();
    let mut verifier = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut verifier);
    let verifier = b64(&verifier);
    let challenge = b64(&crate::secrets::sha256(verifier.as_bytes()));
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .context("cannot listen on 127.0.0.1 for the sign-in's return")?;
    let port = listener.local_addr()?.port();
    let start = format!("{url}/auth/login?cli_port={port}&cli_challenge={challenge}");
    if no_browser || !open_browser(&start) {
        note("Open this URL in a browser to sign in:");
        note(&format!("  {start}"));
    } else {
        // One line each: `note` escapes control characters, a newline too.
        note("Signing in through your browser; if it did not open, visit:");
        note(&format!("  {start}"));
    }
    let code = tokio::time::timeout(LOGIN_DEADLINE, wait_for_code(&listener))
        .await
        .map_err(|_| {
            anyhow!(
                "no sign-in within {}; run `jitgate login` again",
                humantime::format_duration(LOGIN_DEADLINE)
            )
        })??;
    let api = Api::new(&ApiArgs {
        token: None,
        ..args.clone()
    })?;
    let r = api
        .post(
            "/auth/exchange",
            json!({"code": code, "cli_verifier": verifier}),
        )
        .await?;
    let (Some(token), Some(user), Some(expires_at)) = (
        r["token"].as_str(),
        r["user"].as_str(),
        r["expires_at"].as_str(),
    ) else {
        bail!("the server's answer to the sign-in lacks token, user or expires_at");
    };
    signin_store::save(&SavedSignin {
        url: url.clone(),
        token: token.to_string(),
        user: user.to_string(),
        expires_at: expires_at.to_string(),
        saved_at_ms: crate::clock::now_ms(),
    })?;
    out(&format!(
        "signed in as {} until {}",
        crate::text::escape(user),
        crate::text::escape(expires_at)
    ))?;
    // The key pair and certificate `jitgate ssh` uses, made now so the first
    // `jitgate ssh` needs nothing more. The sign-in stands without them: a
    // proxy with no SSH listener has no CA, and a failure here is retried
    // by `jitgate ssh` itself.
    let signed_in = Api::new(&ApiArgs {
        token: Some(token.to_string()),
        ..args.clone()
    })?;
    match crate::cli::ssh_identity::ensure(&signed_in).await {
        Ok(id) => note(&format!(
            "SSH certificate {} (for `jitgate ssh`)",
            id.certificate.display()
        )),
        Err(e) => note(&format!("no SSH certificate yet: {e:#}")),
    }
    Ok(ExitCode::SUCCESS)
}

/// `$BROWSER URL`, else `xdg-open URL`; false when neither could start.
fn open_browser(url: &str) -> bool {
    let candidates: Vec<String> = std::env::var("BROWSER")
        .ok()
        .filter(|b| !b.trim().is_empty())
        .into_iter()
        .chain(std::iter::once("xdg-open".to_string()))
        .collect();
    candidates.iter().any(|prog| {
        std::process::Command::new(prog)
            .arg(url)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .is_ok()
    })
}

/// Serves the loopback listener until a request for /callback?code=...
/// arrives; anything else (a favicon) gets a 404 and the wait goes on.
/// Each connection is served on its own task: a browser's speculative
/// connection that never sends a request must not hold up the real one.
async fn wait_for_code(listener: &TcpListener) -> anyhow::Result<String> {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<String>(1);
    let mut tasks = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            Some(code) = rx.recv() => return Ok(code),
            accepted = listener.accept() => {
                let (stream, _) = accepted?;
                // Bounded: a local process opening connections in a loop
                // gets them refused rather than growing the set.
                if tasks.len() >= 64 {
                    continue;
                }
                let tx = tx.clone();
                tasks.spawn(async move {
                    match tokio::time::timeout(Duration::from_secs(10), one_request(stream)).await {
                        Ok(Ok(Some(code))) => {
                            let _ = tx.send(code).await;
                        }
                        Ok(Ok(None)) | Err(_) => {}
                        Ok(Err(e)) => note(&format!("warning: the browser's request failed: {e}")),
                    }
                });
            }
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
        }
    }
}

async fn one_request(mut stream: TcpStream) -> anyhow::Result<Option<String>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 2048];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut chunk).await?;
        if n == 0 || buf.len() + n > MAX_HEAD {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let head = String::from_utf8_lossy(&buf);
    let target = head
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("GET "))
        .and_then(|l| l.split(' ').next())
        .unwrap_or("");
    let code = target
        .strip_prefix("/callback?")
        .and_then(|q| {
            q.split('&')
                .find_map(|kv| kv.strip_prefix("code="))
                .map(str::to_string)
        })
        .filter(|c| {
            !c.is_empty()
                && c.len() <= 256
                && c.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    let (status, body) = match &code {
        Some(_) => (
            "200 OK",
            "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>jitgate</title></head><body><p>Signed in. You can close this tab and return to the terminal.</p></body></html>",
        ),
        None => (
            "404 Not Found",
            "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>jitgate</title></head><body><p>Not a sign-in.</p></body></html>",
        ),
    };
    let resp = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(resp.as_bytes()).await?;
    let _ = stream.shutdown().await;
    Ok(code)
}

/// `jitgate logout`: ends the sign-in at the server and forgets it here.
pub async fn logout(args: &ApiArgs) -> anyhow::Result<ExitCode> {
    let Some(token) = args.token.clone() else {
        bail!("not signed in to {} (no saved sign-in)", args.url);
    };
    if !token.starts_with("jgs_") {
        bail!("a static token cannot be signed out; unset JITGATE_TOKEN or drop --token");
    }
    let api = Api::new(args)?;
    let ended = api.post("/v1/auth/logout", json!({})).await;
    let forgot = signin_store::remove(&args.url)?;
    forget_certificate(&args.url)?;
    match ended {
        Ok(_) => out(&format!("signed out of {}", args.url))?,
        // An expired or already ended sign-in is refused with 401: the
        // local copy is gone all the same.
        Err(e) if forgot => note(&format!(
            "the server did not confirm the sign-out ({e}); the saved sign-in is removed"
        )),
        Err(e) => return Err(e),
    }
    Ok(ExitCode::SUCCESS)
}

/// Removes the SSH certificate `jitgate login` (or `jitgate ssh`) made with
/// the sign-in being ended: the proxy cannot tell that its sign-in ended
/// (docs/identity.md, "Known limits"), so it must not stay lying around
/// here. The key pair stays: without a certificate it opens nothing.
fn forget_certificate(url: &str) -> anyhow::Result<()> {
    let path = super::client_dir::config_home()?
        .join("jitgate")
        .join("servers")
        .join(super::client_dir::slug(url))
        .join(super::ssh_identity::CERT_FILE);
    match std::fs::remove_file(&path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("removing {}", path.display())),
    }
}
