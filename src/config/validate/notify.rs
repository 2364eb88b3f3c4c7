//! `[[notify]]` receivers. The url is the receiver's identity in the outbox
//! (rows queued for it are delivered to whichever entry carries that url
//! now), so it must be unique and parse the way the delivery client will
//! parse it.

use super::super::locate::{Path, Seg};
use super::super::model::FileConfig;
use super::super::types::*;
use super::{k, p, Checker};
use std::collections::BTreeSet;
use std::time::Duration;

use super::super::events::ALL as NOTIFY_EVENTS;

/// A delivery that takes longer than this holds a worker slot and a lease
/// for too long; receivers that slow should queue and answer at once.
const MAX_TIMEOUT: Duration = Duration::from_secs(60);

fn at(base: &Path, key: &str) -> Path {
    let mut x = base.clone();
    x.push(k(key));
    x
}

/// Checks what the delivery client needs: http(s), a host, no credentials
/// in the authority (urls are logged without their path, but never with a
/// password).
fn check_url(url: &str) -> Result<(), String> {
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(format!(
            "notify url {url:?} must start with http:// or https://"
        ));
    }
    let uri: hyper::Uri = url
        .parse()
        .map_err(|e| format!("notify url {url:?} is not a valid URL: {e}"))?;
    let Some(auth) = uri.authority() else {
        return Err(format!("notify url {url:?} has no host"));
    };
    if auth.as_str().contains('@') {
        return Err(format!(
            "notify url {url:?} carries credentials; use secret_env and verify the signature instead"
        ));
    }
    if auth.host().is_empty() {
        return Err(format!("notify url {url:?} has no host"));
    }
    Ok(())
}

pub(super) fn check_notify(c: &mut Checker, file: &FileConfig) -> Vec<Notify> {
    let mut out = Vec::new();
    let mut urls = BTreeSet::new();
    for (i, n) in file.notify.iter().enumerate() {
        let base = p(&[k("notify"), Seg::Index(i)]);
        if let Err(m) = check_url(&n.url) {
            c.err(at(&base, "url"), m);
        } else if !urls.insert(n.url.clone()) {
            c.err(
                at(&base, "url"),
                format!(
                    "notify url {:?} is listed twice; list every event it wants in one entry",
                    n.url
                ),
            );
        }
        let mut events = BTreeSet::new();
        for (j, e) in n.events.iter().enumerate() {
            if e != "*" && !NOTIFY_EVENTS.contains(&e.as_str()) {
                let mut ep = at(&base, "events");
                ep.push(Seg::Index(j));
                c.err(
                    ep,
                    format!("unknown event {e:?}; known: {}", NOTIFY_EVENTS.join(", ")),
                );
            }
            events.insert(e.clone());
        }
        if let Some(var) = &n.secret_env {
            match std::env::var(var) {
                Ok(v) if !v.is_empty() => {}
                Ok(_) => c.err(
                    at(&base, "secret_env"),
                    format!("environment variable {var} is empty"),
                ),
                Err(_) => c.err(
                    at(&base, "secret_env"),
                    format!("environment variable {var} is not set"),
                ),
            }
        }
        let mut dur = |key: &str, raw: &Option<String>, default: Duration| match raw {
            Some(s) => c.duration(at(&base, key), s).unwrap_or(default),
            None => default,
        };
        let timeout = dur("timeout", &n.timeout, Duration::from_secs(5));
        let retry_initial = dur("retry_initial", &n.retry_initial, Duration::from_secs(1));
        let retry_max = dur("retry_max", &n.retry_max, Duration::from_secs(600));
        let give_up_after = dur(
            "give_up_after",
            &n.give_up_after,
            Duration::from_secs(24 * 3600),
        );
        if timeout > MAX_TIMEOUT {
            c.err(
                at(&base, "timeout"),
                format!(
                    "timeout {} is too long; at most {}",
                    humantime::format_duration(timeout),
                    humantime::format_duration(MAX_TIMEOUT)
                ),
            );
        }
        if retry_max < retry_initial {
            c.err(
                at(&base, "retry_max"),
                format!(
                    "retry_max {} is shorter than retry_initial {}",
                    humantime::format_duration(retry_max),
                    humantime::format_duration(retry_initial)
                ),
            );
        }
        let format = match n.format.as_deref() {
            None | Some("jitgate") => NotifyFormat::Jitgate,
            Some("slack") => NotifyFormat::Slack,
            Some(other) => {
                c.err(
                    at(&base, "format"),
                    format!("unknown format {other:?}; use \"jitgate\" or \"slack\""),
                );
                NotifyFormat::Jitgate
            }
        };
        out.push(Notify {
            format,
            url: n.url.clone(),
            events,
            secret_env: n.secret_env.clone(),
            timeout,
            retry_initial,
            retry_max,
            give_up_after,
        });
    }
    out
}
