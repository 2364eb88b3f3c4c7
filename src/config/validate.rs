//! Whole-file validation: collects every problem with its path instead of
//! stopping at the first, so an operator fixes a file in one pass.

use super::locate::{Path, Seg};
use super::model::*;
use super::types::*;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::path::{Path as FsPath, PathBuf};
use std::time::Duration;

pub struct Issue {
    pub path: Path,
    pub message: String,
}

struct Checker {
    issues: Vec<Issue>,
    base: PathBuf,
    /// Off only for parsing untrusted text (fuzzing): opening paths an input
    /// names could block on a FIFO or probe the host.
    check_files: bool,
}

/// Whether `build` opens the key and CA files a config names.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum FileChecks {
    Open,
    Skip,
}

fn k(s: &str) -> Seg {
    Seg::Key(s.to_string())
}

fn p(segs: &[Seg]) -> Path {
    segs.to_vec()
}

impl Checker {
    fn err(&mut self, path: Path, message: impl Into<String>) {
        self.issues.push(Issue {
            path,
            message: message.into(),
        });
    }

    fn duration(&mut self, path: Path, s: &str) -> Option<Duration> {
        match crate::duration::parse(s) {
            Ok(d) if d.is_zero() => {
                self.err(path, format!("duration {s:?} must be greater than zero"));
                None
            }
            Ok(d) => Some(d),
            Err(e) => {
                self.err(path, e.to_string());
                None
            }
        }
    }

    fn listen(&mut self, path: Path, s: &str) -> Option<SocketAddr> {
        match s.parse::<SocketAddr>() {
            Ok(a) => Some(a),
            Err(_) => {
                self.err(
                    path,
                    format!(
                        "invalid listen address {s:?}: expected IP:PORT such as \"127.0.0.1:8080\""
                    ),
                );
                None
            }
        }
    }

    /// Resolves relative to the config file's directory's working dir as the
    /// daemon sees it; checks the file can be opened now so a bad path fails at
    /// start, not at the first connection.
    fn readable_file(&mut self, path: Path, s: &str) -> PathBuf {
        let file = self.resolve(s);
        if !self.check_files {
            return file;
        }
        if let Err(e) = std::fs::File::open(&file) {
            self.err(path, format!("cannot read {}: {e}", file.display()));
        }
        file
    }

    fn resolve(&self, s: &str) -> PathBuf {
        let f = FsPath::new(s);
        if f.is_absolute() {
            f.to_path_buf()
        } else {
            self.base.join(f)
        }
    }

    fn tls_pair(
        &mut self,
        path: &Path,
        cert: &Option<String>,
        key: &Option<String>,
    ) -> Option<TlsFiles> {
        match (cert, key) {
            (None, None) => None,
            (Some(c), Some(kf)) => {
                let mut pc = path.clone();
                pc.push(k("tls_cert"));
                let mut pk = path.clone();
                pk.push(k("tls_key"));
                Some(TlsFiles {
                    cert: self.readable_file(pc, c),
                    key: self.readable_file(pk, kf),
                })
            }
            (Some(_), None) => {
                let mut pc = path.clone();
                pc.push(k("tls_cert"));
                self.err(pc, "tls_cert is set but tls_key is missing");
                None
            }
            (None, Some(_)) => {
                let mut pk = path.clone();
                pk.push(k("tls_key"));
                self.err(pk, "tls_key is set but tls_cert is missing");
                None
            }
        }
    }
}

/// Validates `file`; `base` is the directory relative paths are read from
/// (the daemon's working directory, as for `data_dir`).
pub fn build(
    file: &FileConfig,
    source: &FsPath,
    base: &FsPath,
    files: FileChecks,
) -> Result<Config, Vec<Issue>> {
    let mut c = Checker {
        issues: Vec::new(),
        base: base.to_path_buf(),
        check_files: files == FileChecks::Open,
    };

    let data_dir = c.resolve(&file.server.data_dir);
    let request_ttl = match &file.server.request_ttl {
        Some(s) => c.duration(p(&[k("server"), k("request_ttl")]), s),
        None => None,
    }
    .unwrap_or(Duration::from_secs(24 * 3600));
    let shutdown_timeout = match &file.server.shutdown_timeout {
        Some(s) => c.duration(p(&[k("server"), k("shutdown_timeout")]), s),
        None => None,
    }
    .unwrap_or(Duration::from_secs(10));

    let store_url = file
        .store
        .url
        .clone()
        .unwrap_or_else(|| format!("sqlite://{}", data_dir.join("jitgate.db").display()));
    if !(store_url.starts_with("sqlite:")
        || store_url.starts_with("postgres://")
        || store_url.starts_with("postgresql://"))
    {
        c.err(
            p(&[k("store"), k("url")]),
            "store url must start with sqlite:// or postgres://",
        );
    }
    let store_max_connections = file.store.max_connections.unwrap_or(10).max(1);

    // Listeners, with clash detection across all of them.
    let mut listens: Vec<(SocketAddr, Path)> = Vec::new();
    let admin_path = p(&[k("admin")]);
    let admin_listen = c.listen(p(&[k("admin"), k("listen")]), &file.admin.listen);
    let admin_tls = c.tls_pair(&admin_path, &file.admin.tls_cert, &file.admin.tls_key);
    let instance = match &file.server.instance {
        Some(i) => {
            if !valid_name(i) {
                c.err(
                    p(&[k("server"), k("instance")]),
                    format!("invalid instance name {i:?}: use [a-z0-9][a-z0-9._-]{{0,62}}"),
                );
            }
            i.clone()
        }
        None => default_instance_name(admin_listen.map(|a| a.port())),
    };
    if let Some(a) = admin_listen {
        listens.push((a, p(&[k("admin"), k("listen")])));
    }
    let metrics_listen = file.metrics.as_ref().and_then(|m| {
        let path = p(&[k("metrics"), k("listen")]);
        let a = c.listen(path.clone(), &m.listen);
        if let Some(a) = a {
            listens.push((a, path));
        }
        a
    });
    let ssh = file.listeners.ssh.as_ref().and_then(|l| {
        let path = p(&[k("listeners"), k("ssh"), k("listen")]);
        let a = c.listen(path.clone(), &l.listen)?;
        listens.push((a, path));
        let host_key = l
            .host_key
            .as_ref()
            .map(|h| c.readable_file(p(&[k("listeners"), k("ssh"), k("host_key")]), h));
        let user_ca_key = l
            .user_ca_key
            .as_ref()
            .map(|h| c.readable_file(p(&[k("listeners"), k("ssh"), k("user_ca_key")]), h));
        Some(SshListenerConfig {
            listen: a,
            host_key,
            user_ca_key,
        })
    });
    let postgres = file.listeners.postgres.as_ref().and_then(|l| {
        let path = p(&[k("listeners"), k("postgres"), k("listen")]);
        let a = c.listen(path.clone(), &l.listen)?;
        listens.push((a, path));
        let tls = c.tls_pair(
            &p(&[k("listeners"), k("postgres")]),
            &l.tls_cert,
            &l.tls_key,
        );
        Some(PostgresListenerConfig {
            listen: a,
            tls,
            allow_plaintext: l.allow_plaintext,
        })
    });
    let tcp = file.listeners.tcp.as_ref().and_then(|l| {
        let path = p(&[k("listeners"), k("tcp"), k("listen")]);
        let a = c.listen(path.clone(), &l.listen)?;
        listens.push((a, path));
        let tls = c.tls_pair(&p(&[k("listeners"), k("tcp")]), &l.tls_cert, &l.tls_key);
        Some(TcpListenerConfig { listen: a, tls })
    });
    check_clashes(&mut c, &listens);

    let users = check_users(&mut c, file);
    let groups = check_groups(&mut c, file, &users);
    let targets = check_targets(&mut c, file);
    let oidc = check_oidc(&mut c, file);
    let policies = check_policies(&mut c, file, &users, &groups, &targets, oidc.is_some());
    let notify = check_notify(&mut c, file);
    let audit_signing_key = file
        .audit
        .signing_key
        .as_ref()
        .map(|f| c.readable_file(p(&[k("audit"), k("signing_key")]), f));
    let recording = file
        .recording
        .as_ref()
        .and_then(|r| check_recording(&mut c, r, &data_dir));

    if !c.issues.is_empty() {
        return Err(c.issues);
    }
    if let Some(u) = &file.admin.public_url {
        let ok = (u.starts_with("http://") || u.starts_with("https://"))
            && u.parse::<hyper::Uri>().is_ok_and(|x| x.host().is_some());
        if !ok {
            c.err(
                p(&[k("admin"), k("public_url")]),
                format!("public_url {u:?} must be an http:// or https:// URL with a host"),
            );
        }
    }
    let admin_listen = admin_listen.ok_or_else(Vec::new)?;
    Ok(Config {
        source: source.to_path_buf(),
        data_dir,
        instance,
        request_ttl,
        shutdown_timeout,
        store_url,
        store_max_connections,
        admin: AdminConfig {
            public_url: file.admin.public_url.clone().unwrap_or_else(|| {
                let scheme = if admin_tls.is_some() { "https" } else { "http" };
                format!("{scheme}://{admin_listen}")
            }),
            listen: admin_listen,
            tls: admin_tls,
        },
        metrics_listen,
        ssh,
        postgres,
        tcp,
        groups,
        users,
        targets,
        policies,
        notify,
        audit_signing_key,
        oidc,
        recording,
    })
}

/// The host name and the admin port: two instances on one host cannot
/// share an admin port, so the default is unique per host as well as
/// across hosts (SPEC "Several instances").
fn default_instance_name(admin_port: Option<u16>) -> String {
    let raw = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
    let suffix = admin_port.map(|p| format!("-{p}")).unwrap_or_default();
    let host: String = raw
        .trim()
        .to_ascii_lowercase()
        .chars()
        .filter(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '.' | '_' | '-'))
        .take(63 - suffix.len())
        .collect();
    let host = if valid_name(&host) {
        host
    } else {
        "jitgate".to_string()
    };
    format!("{host}{suffix}")
}

fn check_clashes(c: &mut Checker, listens: &[(SocketAddr, Path)]) {
    for (i, (a, pa)) in listens.iter().enumerate() {
        if a.port() == 0 {
            continue;
        }
        for (b, pb) in &listens[..i] {
            let overlap = a.port() == b.port()
                && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified());
            if overlap {
                c.err(
                    pa.clone(),
                    format!(
                        "listen address {a} clashes with {} ({b})",
                        super::locate::render(pb)
                    ),
                );
            }
        }
    }
}

fn check_users(c: &mut Checker, file: &FileConfig) -> BTreeMap<String, User> {
    let mut users = BTreeMap::new();
    let mut tokens: HashMap<[u8; 32], String> = HashMap::new();
    // Key material (type and base64 blob, comment ignored) to its owner.
    let mut ssh_key_owners: HashMap<String, String> = HashMap::new();
    for (i, u) in file.users.iter().enumerate() {
        let base = p(&[k("users"), Seg::Index(i)]);
        let at = |key: &str| {
            let mut x = base.clone();
            x.push(k(key));
            x
        };
        if !valid_name(&u.name) {
            c.err(
                at("name"),
                format!(
                    "invalid user name {:?}: use [a-z0-9][a-z0-9._-]{{0,62}}",
                    u.name
                ),
            );
        } else if users.contains_key(&u.name) {
            c.err(at("name"), format!("duplicate user {:?}", u.name));
        }
        let token_sha256 = match &u.token_sha256 {
            None => None,
            Some(h) => match hex::decode(h)
                .ok()
                .and_then(|b| <[u8; 32]>::try_from(b).ok())
            {
                Some(arr) => {
                    if let Some(other) = tokens.insert(arr, u.name.clone()) {
                        c.err(at("token_sha256"), format!("token hash is also used by user {other:?}; every user needs their own token"));
                    }
                    Some(arr)
                }
                None => {
                    c.err(
                        at("token_sha256"),
                        "token_sha256 must be 64 hex characters (see `jitgate token new`)",
                    );
                    None
                }
            },
        };
        for (j, key) in u.ssh_keys.iter().enumerate() {
            let mut path = at("ssh_keys");
            path.push(Seg::Index(j));
            if let Err(msg) = check_ssh_public_key(key) {
                c.err(path, msg);
            } else if let Some(other) = ssh_key_owners.insert(ssh_key_material(key), u.name.clone())
            {
                // A key identifies its owner on the SSH listener: under two
                // users it would log in as whichever comes first.
                if other != u.name {
                    c.err(path, format!("ssh key is also listed for user {other:?}; a key must identify one user"));
                }
            }
        }
        users.insert(
            u.name.clone(),
            User {
                name: u.name.clone(),
                token_sha256,
                ssh_keys: u.ssh_keys.clone(),
                admin: u.admin,
            },
        );
    }
    users
}

/// The type and key data of a public key line, without its comment: what the
/// SSH front end compares.
fn ssh_key_material(line: &str) -> String {
    line.split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Shape check of an OpenSSH public key line; the SSH front end parses it fully.
pub fn check_ssh_public_key(line: &str) -> Result<(), String> {
    use base64::Engine;
    let mut parts = line.split_whitespace();
    let (Some(kind), Some(blob)) = (parts.next(), parts.next()) else {
        return Err("ssh key must look like \"ssh-ed25519 AAAA... comment\"".into());
    };
    const KINDS: &[&str] = &[
        "ssh-ed25519",
        "ecdsa-sha2-nistp256",
        "ecdsa-sha2-nistp384",
        "ecdsa-sha2-nistp521",
        "ssh-rsa",
        "sk-ssh-ed25519@openssh.com",
        "sk-ecdsa-sha2-nistp256@openssh.com",
    ];
    if !KINDS.contains(&kind) {
        return Err(format!("unsupported ssh key type {kind:?}"));
    }
    match base64::engine::general_purpose::STANDARD.decode(blob) {
        Ok(b) if b.len() > 4 => Ok(()),
        _ => Err("ssh key data is not valid base64".into()),
    }
}

fn check_groups(
    c: &mut Checker,
    file: &FileConfig,
    users: &BTreeMap<String, User>,
) -> BTreeMap<String, Vec<String>> {
    let mut groups = BTreeMap::new();
    for (name, members) in &file.groups {
        let base = p(&[k("groups"), k(name)]);
        if !valid_name(name) {
            c.err(
                base.clone(),
                format!("invalid group name {name:?}: use [a-z0-9][a-z0-9._-]{{0,62}}"),
            );
        }
        let mut seen = BTreeSet::new();
        for (j, m) in members.iter().enumerate() {
            let mut path = base.clone();
            path.push(Seg::Index(j));
            if !users.contains_key(m) {
                c.err(path, format!("group {name:?} names unknown user {m:?}"));
            } else if !seen.insert(m.clone()) {
                c.err(
                    path,
                    format!("user {m:?} is listed twice in group {name:?}"),
                );
            }
        }
        groups.insert(name.clone(), members.clone());
    }
    groups
}

mod notify;
mod oidc;
mod recording;
mod targets;
use notify::check_notify;
use oidc::check_oidc;
use recording::check_recording;
use targets::{check_policies, check_targets};
