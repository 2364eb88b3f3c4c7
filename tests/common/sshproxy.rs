//! jitgate with its SSH listener in front of a private sshd (`sshd.rs`),
//! and the real OpenSSH clients pointed at it as bob.

use super::daemon::*;
use super::free_port;
use super::sshd::*;
use std::path::PathBuf;
use std::process::{Command, Output};

/// The environment variable holding the password target's password.
pub const PASSWORD_ENV: &str = "JITGATE_TEST_SSH_PASSWORD";

pub struct SshProxy {
    pub sshd: Sshd,
    pub d: Daemon,
    pub port: u16,
    /// bob's private key.
    pub key: PathBuf,
    /// A TCP echo server on 127.0.0.1, a forwarding destination of auto-host.
    pub echo: u16,
}

impl SshProxy {
    /// Targets: auto-host (key login; `ssh -L`/`-W` allowed to the echo
    /// server and to the sshd itself, nothing else), auto-forged (a wrong pinned host
    /// key), auto-pw (password login, when the tests know a password),
    /// warn-host (policy `warn`: warn_before 3s), few-host (policy `few`:
    /// one session per grant).
    pub fn start() -> Option<SshProxy> {
        Self::start_with("")
    }

    /// `start` with `more` appended to the config (e.g. a `[recording]`).
    pub fn start_with(more: &str) -> Option<SshProxy> {
        Self::start_with_targets(more, &[])
    }

    /// `start_with`, plus `targets` on the same sshd (for `more`'s policies).
    pub fn start_with_targets(more: &str, targets: &[&str]) -> Option<SshProxy> {
        let sshd = Sshd::start()?;
        let port = free_port();
        let mut extra = format!("\n[listeners.ssh]\nlisten = \"127.0.0.1:{port}\"\n");
        let echo = echo_server();
        extra += &sshd.target("auto-host");
        extra += &format!(
            "forwarding = [\"127.0.0.1:{echo}\", \"127.0.0.1:{}\"]\n",
            sshd.port
        );
        // The same sshd under a wrong pinned key.
        extra += &sshd.target("auto-forged").replace(
            &sshd.host_key,
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl forged",
        );
        extra += &sshd.target_with_password("auto-pw", PASSWORD_ENV);
        extra += &sshd.target("warn-host");
        extra += &sshd.target("few-host");
        extra += WARN_AND_FEW_POLICIES;
        for t in targets {
            extra += &sshd.target(t);
        }
        extra += more;
        let pw = sshd.password.clone().unwrap_or_default();
        let d = Daemon::start_with_env(None, "", &extra, &[(PASSWORD_ENV, &pw)]);
        let key = bob_key(&d.dir);
        Some(SshProxy {
            sshd,
            d,
            port,
            key,
            echo,
        })
    }

    /// `ssh -p PORT TARGET@127.0.0.1 ARGS...` as bob.
    pub fn ssh(&self, target: &str, args: &[&str]) -> Command {
        let mut c = Command::new("ssh");
        c.args(ssh_opts(&self.key))
            .args(["-p", &self.port.to_string()])
            .arg(format!("{target}@127.0.0.1"))
            .args(args);
        c
    }

    /// The `ssh -e` command line for rsync and friends.
    pub fn ssh_command_line(&self) -> String {
        let mut parts = vec!["ssh".to_string()];
        parts.extend(ssh_opts(&self.key));
        parts.extend(["-p".to_string(), self.port.to_string()]);
        parts.join(" ")
    }

    /// An ssh config in which `jitgate` is the proxy (as bob, for -J) and
    /// every other host is reached as the target's own user with the
    /// target's key: the inner ssh of a jump authenticates end to end.
    pub fn jump_config(&self) -> PathBuf {
        let path = self.d.dir.join("ssh_config");
        let text = format!(
            "Host jitgate\n  HostName 127.0.0.1\n  Port {port}\n  IdentityFile {bob}\n\n\
             Host *\n  User {user}\n  IdentityFile {up}\n  IdentitiesOnly yes\n  \
             StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n  BatchMode yes\n  \
             LogLevel ERROR\n  ConnectTimeout 20\n",
            port = self.port,
            bob = self.key.display(),
            user = self.sshd.user,
            up = self.sshd.upstream_key.display(),
        );
        std::fs::write(&path, text).unwrap();
        path
    }

    /// `ssh -F CONFIG -J bob@jitgate TARGET ARGS...`.
    pub fn ssh_jump(&self, jump_user: &str, target: &str, args: &[&str]) -> Command {
        let mut c = Command::new("ssh");
        c.arg("-F")
            .arg(self.jump_config())
            .args(["-J", &format!("{jump_user}@jitgate"), target])
            .args(args);
        c
    }

    /// An auto-approved grant for bob; its id.
    pub fn grant(&self, target: &str) -> String {
        self.grant_for(target, "5m")
    }

    pub fn grant_for(&self, target: &str, duration: &str) -> String {
        let r = self.d.create_request(BOB, target, duration);
        r["grant"]["id"].as_str().unwrap().to_string()
    }

    pub fn audit(&self) -> String {
        self.d.get("/v1/audit?limit=1000", Some(DAVE)).unwrap().body
    }
}

pub fn out(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// Whether a process whose full command line is exactly `cmd` runs.
pub fn running(cmd: &str) -> bool {
    Command::new("pgrep")
        .args(["-x", "-f", cmd])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// A TCP echo server on 127.0.0.1; its port.
pub fn echo_server() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            std::thread::spawn(move || {
                let mut r = s.try_clone().unwrap();
                let mut w = s;
                let _ = std::io::copy(&mut r, &mut w);
            });
        }
    });
    port
}

/// A long remote command with a command line no other test uses, so the
/// target can be asked whether it still runs: the check behind every "no
/// command outlives the grant" assertion.
pub struct RemoteSleep {
    pub cmd: String,
}

impl RemoteSleep {
    pub fn new() -> RemoteSleep {
        RemoteSleep {
            cmd: format!("sleep 6{}", super::free_port()),
        }
    }

    /// Spawns `ssh` (whose command line already runs `self.cmd`) with
    /// `stdin` and piped stdout/stderr, and waits until the command runs on
    /// the target.
    pub fn start(&self, mut ssh: Command, stdin: std::process::Stdio) -> std::process::Child {
        use std::process::Stdio;
        let child = ssh
            .stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn ssh");
        super::tunnel::wait_for("the remote command to run", || running(&self.cmd));
        child
    }

    /// Waits (bounded) until the command no longer runs on the target.
    pub fn wait_gone(&self) {
        super::tunnel::wait_for("the remote command to be gone", || !running(&self.cmd));
    }
}
