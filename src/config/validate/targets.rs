//! Targets and policies: the parts of validation that cross-reference users,
//! groups and each other.

use super::super::locate::{Path, Seg};
use super::super::model::FileConfig;
use super::super::types::*;
use super::{k, p, Checker};
use std::collections::{BTreeMap, BTreeSet};

fn at(base: &Path, key: &str) -> Path {
    let mut x = base.clone();
    x.push(k(key));
    x
}

fn valid_address(a: &str) -> bool {
    match a.rsplit_once(':') {
        Some((host, port)) => {
            !host.is_empty()
                && port.parse::<u16>().is_ok_and(|p| p > 0)
                && !host.contains(char::is_whitespace)
        }
        None => false,
    }
}

pub(super) fn check_targets(c: &mut Checker, file: &FileConfig) -> BTreeMap<String, Target> {
    let mut targets = BTreeMap::new();
    for (i, t) in file.targets.iter().enumerate() {
        let base = p(&[k("targets"), Seg::Index(i)]);
        if !valid_name(&t.name) {
            c.err(
                at(&base, "name"),
                format!(
                    "invalid target name {:?}: use [a-z0-9][a-z0-9._-]{{0,62}}",
                    t.name
                ),
            );
        } else if targets.contains_key(&t.name) {
            c.err(at(&base, "name"), format!("duplicate target {:?}", t.name));
        }
        let Some(kind) = TargetKind::parse(&t.kind) else {
            c.err(
                at(&base, "kind"),
                format!("unknown target kind {:?}: use postgres, ssh or tcp", t.kind),
            );
            continue;
        };
        if !valid_address(&t.address) {
            c.err(
                at(&base, "address"),
                format!("invalid address {:?}: expected HOST:PORT", t.address),
            );
        }
        let up_base = at(&base, "upstream");
        let raw = t.upstream.clone();
        let tls = match raw.as_ref().and_then(|u| u.tls.as_deref()) {
            None => UpstreamTls::Prefer,
            Some("disable") => UpstreamTls::Disable,
            Some("prefer") => UpstreamTls::Prefer,
            Some("require") => UpstreamTls::Require,
            Some("verify-full") => UpstreamTls::VerifyFull,
            Some(other) => {
                c.err(
                    at(&up_base, "tls"),
                    format!(
                        "unknown tls mode {other:?}: use disable, prefer, require or verify-full"
                    ),
                );
                UpstreamTls::Prefer
            }
        };
        let key_file = raw
            .as_ref()
            .and_then(|u| u.key_file.as_ref())
            .map(|f| c.readable_file(at(&up_base, "key_file"), f));
        let ca_file = raw
            .as_ref()
            .and_then(|u| u.ca_file.as_ref())
            .map(|f| c.readable_file(at(&up_base, "ca_file"), f));
        let upstream = Upstream {
            user: raw.as_ref().and_then(|u| u.user.clone()),
            password_env: raw.as_ref().and_then(|u| u.password_env.clone()),
            key_file,
            tls,
            ca_file,
        };
        if let Some(var) = &upstream.password_env {
            if std::env::var_os(var).is_none() {
                c.err(
                    at(&up_base, "password_env"),
                    format!("environment variable {var} is not set"),
                );
            }
        }
        if kind != TargetKind::Ssh && !t.forwarding.is_empty() {
            c.err(
                at(&base, "forwarding"),
                "forwarding applies to ssh targets only",
            );
        }
        match kind {
            TargetKind::Ssh => {
                match &t.host_key {
                    None => c.err(at(&base, "host_key"), "ssh targets need a pinned host_key (the target's public host key, e.g. from ssh-keyscan)"),
                    Some(h) => {
                        if let Err(m) = super::check_ssh_public_key(h) {
                            c.err(at(&base, "host_key"), m);
                        }
                    }
                }
                if upstream.user.is_none() {
                    c.err(up_base.clone(), "ssh targets need upstream.user");
                }
                if upstream.key_file.is_none() && upstream.password_env.is_none() {
                    c.err(
                        up_base.clone(),
                        "ssh targets need upstream.key_file or upstream.password_env",
                    );
                }
                for (j, d) in t.forwarding.iter().enumerate() {
                    if !valid_address(d) {
                        let mut path = at(&base, "forwarding");
                        path.push(Seg::Index(j));
                        c.err(path, format!("invalid forwarding destination {d:?}: expected HOST:PORT such as \"127.0.0.1:5432\" (IPv6 as \"[::1]:5432\")"));
                    }
                }
            }
            TargetKind::Postgres => {
                if upstream.user.is_none() {
                    c.err(up_base.clone(), "postgres targets need upstream.user");
                }
                if t.host_key.is_some() {
                    c.err(
                        at(&base, "host_key"),
                        "host_key applies to ssh targets only",
                    );
                }
            }
            TargetKind::Tcp => {
                if raw.is_some() {
                    c.err(up_base.clone(), "tcp targets take no upstream credential");
                }
                if t.host_key.is_some() {
                    c.err(
                        at(&base, "host_key"),
                        "host_key applies to ssh targets only",
                    );
                }
            }
        }
        targets.insert(
            t.name.clone(),
            Target {
                name: t.name.clone(),
                kind,
                address: t.address.clone(),
                host_key: t.host_key.clone(),
                upstream,
                forwarding: t.forwarding.clone(),
            },
        );
    }
    targets
}

/// The names a policy may refer to. With `[auth.oidc]` (`idp`), users and
/// groups only the IdP defines are allowed, as long as they are valid names.
struct Known<'a> {
    users: &'a BTreeMap<String, User>,
    groups: &'a BTreeMap<String, Vec<String>>,
    idp: bool,
}

fn principals(c: &mut Checker, path: &Path, list: &[String], known: &Known) -> Vec<Principal> {
    let mut out = Vec::new();
    for (j, s) in list.iter().enumerate() {
        let mut pp = path.clone();
        pp.push(Seg::Index(j));
        let pr = Principal::parse(s);
        match &pr {
            Principal::User(u) | Principal::Group(u) if known.idp && !valid_name(u) => c.err(
                pp,
                format!("invalid name {u:?}: use [a-z0-9][a-z0-9._-]{{0,62}}"),
            ),
            _ if known.idp => {}
            Principal::User(u) if !known.users.contains_key(u) => c.err(
                pp,
                format!("unknown user {u:?} (write group:NAME for a group)"),
            ),
            Principal::Group(g) if !known.groups.contains_key(g) => {
                c.err(pp, format!("unknown group {g:?}"))
            }
            _ => {}
        }
        out.push(pr);
    }
    out
}

fn expand(groups: &BTreeMap<String, Vec<String>>, list: &[Principal]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for pr in list {
        match pr {
            Principal::User(u) => {
                out.insert(u.clone());
            }
            Principal::Group(g) => out.extend(groups.get(g).into_iter().flatten().cloned()),
        }
    }
    out
}

pub(super) fn check_policies(
    c: &mut Checker,
    file: &FileConfig,
    users: &BTreeMap<String, User>,
    groups: &BTreeMap<String, Vec<String>>,
    targets: &BTreeMap<String, Target>,
    idp: bool,
) -> Vec<Policy> {
    let mut out: Vec<Policy> = Vec::new();
    for (i, raw) in file.policies.iter().enumerate() {
        let base = p(&[k("policies"), Seg::Index(i)]);
        if !valid_name(&raw.name) {
            c.err(
                at(&base, "name"),
                format!(
                    "invalid policy name {:?}: use [a-z0-9][a-z0-9._-]{{0,62}}",
                    raw.name
                ),
            );
        } else if out.iter().any(|o| o.name == raw.name) {
            c.err(
                at(&base, "name"),
                format!("duplicate policy {:?}", raw.name),
            );
        }
        if raw.requesters.is_empty() {
            c.err(
                at(&base, "requesters"),
                "a policy needs at least one requester",
            );
        }
        let known = Known { users, groups, idp };
        let requesters = principals(c, &at(&base, "requesters"), &raw.requesters, &known);
        let approvers = principals(c, &at(&base, "approvers"), &raw.approvers, &known);
        if raw.targets.is_empty() {
            c.err(
                at(&base, "targets"),
                "a policy needs at least one target name or glob",
            );
        }
        for (j, t) in raw.targets.iter().enumerate() {
            let mut tp = at(&base, "targets");
            tp.push(Seg::Index(j));
            if is_glob(t) {
                let literal: String = t.chars().filter(|ch| !matches!(ch, '*' | '?')).collect();
                if !literal.is_empty() && !valid_name(&literal.replace(['.', '_', '-'], "a")) {
                    c.err(
                        tp,
                        format!("target pattern {t:?} can never match a valid target name"),
                    );
                }
            } else if !targets.contains_key(t) {
                c.err(tp, format!("unknown target {t:?}"));
            }
        }
        // Satisfiability: every requester must be able to collect enough
        // approvals from people other than themselves.
        // Groups only the IdP defines have members jitgate cannot count here.
        let idp_approvers = approvers
            .iter()
            .any(|a| matches!(a, Principal::Group(g) if !groups.contains_key(g)));
        let approver_set = expand(groups, &approvers);
        for requester in expand(groups, &requesters) {
            if idp_approvers {
                break;
            }
            let available = approver_set.iter().filter(|a| **a != requester).count();
            if (raw.approvals_required as usize) > available {
                c.err(
                    at(&base, "approvals_required"),
                    format!(
                        "approvals_required = {} can never be met for requester {requester:?}: only {available} approver(s) other than them",
                        raw.approvals_required
                    ),
                );
                break;
            }
        }
        let max_duration = c.duration(at(&base, "max_duration"), &raw.max_duration);
        let default_duration = match &raw.default_duration {
            Some(s) => c.duration(at(&base, "default_duration"), s),
            None => max_duration,
        };
        if let (Some(m), Some(d)) = (max_duration, default_duration) {
            if d > m {
                c.err(
                    at(&base, "default_duration"),
                    "default_duration is longer than max_duration",
                );
            }
        }
        let idle_timeout = raw
            .idle_timeout
            .as_ref()
            .and_then(|s| c.duration(at(&base, "idle_timeout"), s));
        let mut warn_before = Vec::new();
        for (j, w) in raw.warn_before.iter().enumerate() {
            let mut wp = at(&base, "warn_before");
            wp.push(Seg::Index(j));
            if let Some(d) = c.duration(wp.clone(), w) {
                if warn_before.contains(&d) {
                    c.err(wp, format!("warn_before {w:?} is listed twice"));
                } else {
                    warn_before.push(d);
                }
            }
        }
        warn_before.sort_by(|a, b| b.cmp(a));
        if raw.max_sessions_per_grant == Some(0) {
            c.err(
                at(&base, "max_sessions_per_grant"),
                "max_sessions_per_grant must be at least 1 (omit it for no limit)",
            );
        }
        let max_total = match &raw.max_total {
            Some(s) => c.duration(at(&base, "max_total"), s),
            None => max_duration,
        };
        if let (Some(m), Some(t)) = (max_duration, max_total) {
            if t < m {
                c.err(
                    at(&base, "max_total"),
                    "max_total is shorter than max_duration (a first grant could not even last max_duration)",
                );
            }
        }
        let reason_pattern = raw.reason_pattern.as_ref().and_then(|s| {
            ReasonPattern::compile(s)
                .map_err(|e| c.err(at(&base, "reason_pattern"), e))
                .ok()
        });
        if raw.break_glass && raw.approvers.is_empty() {
            c.err(
                at(&base, "break_glass"),
                "break_glass needs approvers: someone must review each break-glass grant",
            );
        }
        let max_schedule_ahead = match &raw.max_schedule_ahead {
            Some(s) => c
                .duration(at(&base, "max_schedule_ahead"), s)
                .unwrap_or_default(),
            None => DEFAULT_MAX_SCHEDULE_AHEAD,
        };
        out.push(Policy {
            name: raw.name.clone(),
            requesters,
            targets: raw.targets.clone(),
            approvers,
            approvals_required: raw.approvals_required,
            max_duration: max_duration.unwrap_or_default(),
            default_duration: default_duration.unwrap_or_default(),
            idle_timeout,
            require_reason: raw.require_reason,
            warn_before,
            max_sessions_per_grant: raw.max_sessions_per_grant,
            max_total: max_total.unwrap_or_default(),
            reason_pattern,
            max_schedule_ahead,
            break_glass: raw.break_glass,
        });
    }
    out
}
